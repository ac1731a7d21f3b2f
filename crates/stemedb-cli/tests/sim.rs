//! The simulation arenas at CI size: all six pass with several seeds on an embedded node,
//! arenas 0, 1, 2 and 4 pass over real HTTP against a served node, and a deliberately broken
//! build (one that skips every assertion while its cursor moves on) fails arena 0 with the
//! seed and the command that repeats it, which shows that the arenas can fail.
//! `STEMEDB_SIM_SEEDS` (default 3), `STEMEDB_SIM_AGENTS` (20) and `STEMEDB_SIM_TICKS` (6) size
//! the embedded run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::path::PathBuf;

use stemedb_server::ServerConfig as Config;
use stemedb_sim::{Report, SimConfig, Target};
use tempfile::TempDir;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(arenas: Vec<u8>, seed: u64, work: &TempDir) -> SimConfig {
    let mut config = SimConfig::new(
        arenas,
        seed,
        env("STEMEDB_SIM_AGENTS", 20),
        env("STEMEDB_SIM_TICKS", 6),
        work.path().to_owned(),
    );
    config.binary = PathBuf::from(env!("CARGO_BIN_EXE_stemedb"));
    config
}

fn run(config: &SimConfig) -> Report {
    actix::System::new().block_on(async { stemedb_sim::run(config).await })
}

#[test]
fn all_six_arenas_pass_at_ci_size_with_several_seeds() {
    for seed in 1..=env("STEMEDB_SIM_SEEDS", 3) as u64 {
        let work = TempDir::new().unwrap();
        let report = run(&config(vec![0, 1, 2, 3, 4, 5], seed, &work));
        println!("{report}");
        assert!(report.passed, "seed {seed} failed:\n{report}");
        assert_eq!(report.arenas.len(), 6);
        for arena in &report.arenas {
            assert_eq!(
                arena.written,
                arena.verified + arena.replaced + arena.destroyed,
                "arena {}",
                arena.arena
            );
            assert!(arena.written > 0, "arena {} wrote nothing", arena.arena);
            assert!(!arena.checks.is_empty(), "arena {} checked nothing", arena.arena);
        }
        let chaos = &report.arenas[3];
        let kinds: Vec<&str> = chaos.faults.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["sigkill", "corruption", "disk_full", "fsync_error"]);
        assert!(chaos.faults.iter().all(|f| f.survived), "{:?}", chaos.faults);
        let swarm = &report.arenas[4];
        assert!(swarm.written >= 1000, "the swarm wrote {}", swarm.written);
        assert!(swarm.writes_per_s > 0.0 && swarm.latency.p99_us > 0);
        // The JSON report has the same content.
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["arenas"][4]["written"], swarm.written);
        // Learned trust held against each adversary, and said by how much.
        let trust = &report.arenas[5];
        for scenario in ["trolls", "spammers", "sleepers", "sybils"] {
            assert!(
                trust
                    .checks
                    .iter()
                    .any(|c| c.starts_with(&format!("{scenario}: learned right"))),
                "{:?}",
                trust.checks
            );
        }
    }
}

#[test]
fn arenas_pass_over_real_http_against_a_served_node() {
    let mut node_config = Config::default();
    // The swarm's thousand agents share one key: its rate limit is not what is under test.
    node_config.http.rate_per_s = 1_000_000;
    node_config.http.rate_burst = 1_000_000;
    common::http::with_server(node_config, |served| async move {
        let work = TempDir::new().unwrap();
        let mut config = config(vec![0, 1, 2, 4], 7, &work);
        config.ticks = 3;
        config.target = Target::Http {
            base: served.base.clone(),
            admin_token: served.admin.clone(),
        };
        let report = stemedb_sim::run(&config).await;
        println!("{report}");
        assert!(report.passed, "{report}");
        assert_eq!(report.target, served.base);
        assert!(
            report
                .arenas
                .iter()
                .all(|a| a.written > 0 && a.written == a.verified + a.replaced)
        );
    });
}

#[test]
fn a_broken_build_fails_arena_0_and_says_how_to_repeat_it() {
    let work = TempDir::new().unwrap();
    let mut config = config(vec![0], 11, &work);
    config.ticks = 2;
    // The broken build: assertions are applied as records that change nothing, while the
    // ingest cursor moves past them as if they were stored.
    config.hooks.broken_skip_assertions = true;
    let report = run(&config);
    println!("{report}");
    assert!(!report.passed);
    let spine = &report.arenas[0];
    assert!(!spine.passed);
    assert!(spine.verified < spine.written, "{spine:?}");
    let failure = spine.failure.as_deref().unwrap();
    assert!(failure.contains("read back"), "{failure}");
    assert_eq!(
        spine.command,
        "stemedb sim --arena 0 --seed 11 --agents 20 --ticks 2"
    );
    assert!(
        report
            .to_string()
            .contains("repeat with: stemedb sim --arena 0 --seed 11")
    );
}
