//! `stemedb sim`: the simulation arenas against an embedded node or a running server.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::CliError;
use stemedb_sim::{SimConfig, Target};

/// `stemedb sim` arguments.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Which arena: 0 spine, 1 cortex, 2 voting, 3 chaos, 4 swarm, or all.
    #[arg(long, default_value = "all", value_name = "0-4|all")]
    arena: String,
    /// Seed of every random choice; the same seed repeats the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Agents per arena (the swarm runs at least 1,000).
    #[arg(long, default_value_t = 20)]
    agents: usize,
    /// Rounds of work per agent.
    #[arg(long, default_value_t = 20)]
    ticks: usize,
    /// Drive the HTTP API of a running `stemedb serve` at this URL instead of an embedded
    /// node (arena 3 always starts nodes of its own).
    #[arg(long, value_name = "URL")]
    http: Option<String>,
    /// An admin API token of that server (else $STEMEDB_TOKEN): the run creates a key for its agents.
    #[arg(long, value_name = "TOKEN", requires = "http")]
    token: Option<String>,
    /// Where embedded nodes keep their data (default: a new directory under the system's
    /// temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Longest any one wait may take, in seconds.
    #[arg(long, default_value_t = 60)]
    deadline_secs: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &SimArgs) -> Result<(), CliError> {
    let arenas = match args.arena.as_str() {
        "all" => vec![0, 1, 2, 3, 4, 5],
        one => match one.parse::<u8>() {
            Ok(arena) if arena <= 5 => vec![arena],
            _ => {
                return Err(CliError::Input(format!(
                    "--arena {one:?}: expected 0 to 5, or all"
                )));
            }
        },
    };
    if args.agents == 0 || args.ticks == 0 {
        return Err(CliError::Input("--agents and --ticks must be positive".into()));
    }
    let (work_dir, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("stemedb-sim-{}-{}", std::process::id(), args.seed)),
            true,
        ),
    };
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| CliError::Input(format!("cannot create {}: {e}", work_dir.display())))?;
    let mut config = SimConfig::new(arenas, args.seed, args.agents, args.ticks, work_dir.clone());
    config.deadline = Duration::from_secs(args.deadline_secs.max(1));
    if let Some(base) = &args.http {
        let admin_token = match &args.token {
            Some(token) => token.clone(),
            None => std::env::var("STEMEDB_TOKEN").map_err(|_| {
                CliError::Input("--http needs --token or $STEMEDB_TOKEN (an admin key)".into())
            })?,
        };
        config.target = Target::Http {
            base: base.clone(),
            admin_token,
        };
    }
    let report = actix::System::new().block_on(async { stemedb_sim::run(&config).await });
    if temporary {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| CliError::Input(e.to_string()))?;
        println!("{json}");
    } else {
        println!("{report}");
    }
    if report.passed {
        Ok(())
    } else {
        let failed: Vec<String> = report
            .arenas
            .iter()
            .filter(|a| !a.passed)
            .map(|a| format!("arena {} (repeat with: {})", a.arena, a.command))
            .collect();
        Err(CliError::Input(format!("failed: {}", failed.join("; "))))
    }
}
