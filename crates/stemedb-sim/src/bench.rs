//! `stemedb bench`: the journal, ingest, vote, resolve and HTTP benchmarks as one suite, each
//! against its peer (okaywal, SQLite, the embedded node), in one table with ratios, a JSON file
//! and an SVG chart of throughput against concurrency per system.
//!
//! The benchmarks are the repository's `cargo bench` targets (their peers are
//! dev-dependencies), so this runs from a source checkout: it runs each with
//! `STEMEDB_BENCH_RESULTS` set, and each appends its results to that file, one JSON object a
//! line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Why the suite failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

/// The suite, in order, with each one's peer.
const BENCHES: [(&str, &str); 5] = [
    ("journal", "okaywal"),
    ("ingest", "sqlite"),
    ("votes", "sqlite"),
    ("resolve", "sqlite"),
    ("http", "stemedb embedded"),
];

/// What `stemedb bench` runs.
#[derive(Debug, Clone, Default)]
pub struct BenchArgs {
    /// Where the logs, `results.json`, `table.txt` and `throughput.svg` go.
    pub out: PathBuf,
    /// Smaller and shorter runs (one round, fewer records): a smoke run, not figures to quote.
    pub quick: bool,
    /// Only these benchmarks (journal, ingest, votes, resolve, http, truth); all when empty.
    pub only: Vec<String>,
    /// Run nothing: redraw the table, JSON and chart from the results already in `out`.
    pub no_run: bool,
}

/// One result line, as the benchmarks write it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Result_ {
    bench: String,
    system: String,
    case: String,
    concurrency: usize,
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// A row of the table: StemeDB and its peer on one case at one concurrency.
#[derive(Debug, Serialize)]
struct Row {
    bench: String,
    case: String,
    concurrency: usize,
    stemedb: Result_,
    peer: Option<Result_>,
    ratio: Option<f64>,
}

/// Runs the suite (or, with `no_run`, redraws it) and writes its table, JSON and chart; then,
/// unless `only` leaves it out, the truth-inference benchmark, whose accuracy table goes to
/// `truth.txt`.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap_or_default();
    if !manifest.contains("name = \"stemedb\"") {
        return Err(BenchError(
            "stemedb bench runs the repository's benchmarks: run it from a stemedb source checkout".into(),
        ));
    }
    let truth = args.only.is_empty() || args.only.iter().any(|o| o == "truth");
    let throughput: Vec<String> = args.only.iter().filter(|o| *o != "truth").cloned().collect();
    if args.only.is_empty() || !throughput.is_empty() {
        run_throughput(&BenchArgs {
            only: throughput,
            ..args.clone()
        })?;
    }
    if truth && !args.no_run {
        run_truth(args)?;
    }
    Ok(())
}

/// `cargo bench --bench truth`: accuracy against gold labels of the `learned` lens, uniform
/// consensus and crowd-kit's methods on the datasets (crowd-kit skipped by `quick`).
fn run_truth(args: &BenchArgs) -> Result<(), BenchError> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| BenchError(format!("create {}: {e}", args.out.display())))?;
    let path = args.out.join("truth.txt");
    eprintln!(
        "stemedb bench: cargo bench --bench truth (output in {})",
        path.display()
    );
    let mut command = Command::new("cargo");
    command.args(["bench", "--locked", "--bench", "truth"]);
    if args.quick {
        command.env("STEMEDB_TRUTH_CROWDKIT", "0");
    }
    let output = command.output().map_err(|e| BenchError(format!("cargo: {e}")))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(&path, &text).map_err(|e| BenchError(format!("{}: {e}", path.display())))?;
    if !output.status.success() {
        return Err(BenchError(format!(
            "cargo bench --bench truth failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )));
    }
    print!("{text}");
    Ok(())
}

/// The throughput suite: runs it (or, with `no_run`, redraws it) and writes its table, JSON
/// and chart.
fn run_throughput(args: &BenchArgs) -> Result<(), BenchError> {
    let selected: Vec<(&str, &str)> = BENCHES
        .iter()
        .copied()
        .filter(|(name, _)| args.only.is_empty() || args.only.iter().any(|o| o == name))
        .collect();
    if selected.is_empty() {
        return Err(BenchError(format!(
            "--only {:?}: none of journal, ingest, votes, resolve, http, truth",
            args.only
        )));
    }
    let failed = |what: String| move |e: std::io::Error| BenchError(format!("{what}: {e}"));
    std::fs::create_dir_all(&args.out).map_err(failed(format!("create {}", args.out.display())))?;
    let results_path = std::fs::canonicalize(&args.out)
        .map_err(failed(args.out.display().to_string()))?
        .join("results.jsonl");
    if !args.no_run {
        let _ = std::fs::remove_file(&results_path);
    }
    for (name, _) in selected.iter().filter(|_| !args.no_run) {
        let log = args.out.join(format!("{name}.log"));
        eprintln!(
            "stemedb bench: cargo bench --bench {name} (output in {})",
            log.display()
        );
        let output = std::fs::File::create(&log).map_err(failed(log.display().to_string()))?;
        let errors = output.try_clone().map_err(failed(log.display().to_string()))?;
        let mut command = Command::new("cargo");
        command
            .args(["bench", "--locked", "--bench", name])
            .env("STEMEDB_BENCH_RESULTS", &results_path)
            .stdout(output)
            .stderr(errors);
        if args.quick {
            for (key, value) in [
                ("STEMEDB_BENCH_ROUNDS", "1"),
                ("STEMEDB_BENCH_SECS", "1"),
                ("STEMEDB_BENCH_ASSERTIONS", "4000"),
                ("STEMEDB_BENCH_VOTES", "4000"),
                ("STEMEDB_BENCH_RESOLVES", "4000"),
            ] {
                command.env(key, value);
            }
        }
        let status = command.status().map_err(failed("cargo".into()))?;
        if !status.success() {
            return Err(BenchError(format!(
                "cargo bench --bench {name} failed ({status}); see {}",
                log.display()
            )));
        }
    }
    let text = std::fs::read_to_string(&results_path).map_err(failed(results_path.display().to_string()))?;
    let results: Vec<Result_> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError(format!("{}: {e}", results_path.display())))?;
    for (name, _) in &selected {
        if !results.iter().any(|r| r.bench == *name) {
            return Err(BenchError(format!(
                "cargo bench --bench {name} reported no results"
            )));
        }
    }
    let rows = rows(&selected, &results);
    // The machine line of the run itself (a redraw keeps the date of the run).
    let machine_path = args.out.join("machine.txt");
    let machine = match std::fs::read_to_string(&machine_path) {
        Ok(line) if args.no_run => line.trim().to_owned(),
        _ => machine_line(),
    };
    let table = table(&rows, &machine);
    print!("{table}");
    let write = |name: &str, contents: String| {
        let path = args.out.join(name);
        std::fs::write(&path, contents).map_err(failed(path.display().to_string()))
    };
    write("table.txt", table.clone())?;
    write("machine.txt", format!("{machine}\n"))?;
    let json = serde_json::json!({ "machine": machine, "rows": rows, "results": results });
    write(
        "results.json",
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )?;
    let chart = args.out.join("throughput.svg");
    draw(&chart, &results, &machine).map_err(|e| BenchError(format!("chart {}: {e}", chart.display())))?;
    println!(
        "wrote {}, {} and {}",
        args.out.join("table.txt").display(),
        args.out.join("results.json").display(),
        chart.display()
    );
    Ok(())
}

/// Pairs each StemeDB result with its peer's: the same case at the same concurrency; for
/// resolve, the SQLite query (the same question, cold); for HTTP, the embedded cell of the same
/// work.
fn rows(selected: &[(&str, &str)], results: &[Result_]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (bench, peer) in selected {
        for ours in results.iter().filter(|r| r.bench == *bench && r.system != *peer) {
            let theirs = results.iter().find(|r| {
                r.bench == *bench
                    && r.system == *peer
                    && r.concurrency == ours.concurrency
                    && match *bench {
                        "resolve" => true,
                        "http" => r.case == embedded_case(&ours.case),
                        _ => r.case == ours.case,
                    }
            });
            rows.push(Row {
                bench: (*bench).to_owned(),
                case: format!("{} {}", ours.system, ours.case),
                concurrency: ours.concurrency,
                stemedb: ours.clone(),
                ratio: theirs.filter(|t| t.per_s > 0.0).map(|t| ours.per_s / t.per_s),
                peer: theirs.cloned(),
            });
        }
    }
    rows
}

/// The embedded case an HTTP case compares with: `POST one assertion` with `ingest`, `POST
/// batch of 100` with `batch of 100`, `GET resolve warm` with `resolve warm`.
fn embedded_case(http: &str) -> String {
    let work = http.split_once(' ').map_or(http, |(_, rest)| rest);
    if work == "one assertion" {
        "ingest".to_owned()
    } else {
        work.to_owned()
    }
}

fn table(rows: &[Row], machine: &str) -> String {
    let mut out = format!("{machine}\n");
    out.push_str(&format!(
        "{:<8} {:<36} {:>6} | {:>11} {:>9} | {:<17} {:>11} {:>9} | {:>6}\n",
        "bench", "stemedb", "conc.", "per s", "p99 us", "peer", "per s", "p99 us", "ratio"
    ));
    out.push_str(&format!("{}\n", "-".repeat(126)));
    for row in rows {
        let (peer, peer_rate, peer_p99) =
            row.peer
                .as_ref()
                .map_or(("-".to_owned(), "-".to_owned(), "-".to_owned()), |p| {
                    (
                        format!("{} {}", p.system, p.case),
                        format!("{:.0}", p.per_s),
                        format!("{:.0}", p.p99_us),
                    )
                });
        out.push_str(&format!(
            "{:<8} {:<36} {:>6} | {:>11.0} {:>9.0} | {:<17} {:>11} {:>9} | {:>6}\n",
            row.bench,
            row.case,
            row.concurrency,
            row.stemedb.per_s,
            row.stemedb.p99_us,
            peer.chars().take(17).collect::<String>(),
            peer_rate,
            peer_p99,
            row.ratio.map_or("-".to_owned(), |r| format!("{r:.2}")),
        ));
    }
    out
}

/// The date, the CPU, the cores and the build, for the table's first line.
fn machine_line() -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("stemedb bench, {date}; {cpu}, {cores} cores; release build (cargo bench)")
}

/// Throughput against concurrency, one line per (benchmark, system) measured at several
/// concurrencies; logarithmic axes, since appenders and submitters span 1 to 1,000.
fn draw(path: &Path, results: &[Result_], machine: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut series: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for r in results {
        series
            .entry(format!("{} {} ({})", r.bench, r.system, r.case))
            .or_default()
            .push((r.concurrency, r.per_s));
    }
    series.retain(|_, points| points.len() > 1);
    if series.is_empty() {
        return Err(
            "no benchmark was measured at more than one concurrency (run journal, ingest or votes)".into(),
        );
    }
    let x_max = series.values().flatten().map(|p| p.0).max().unwrap_or(1).max(2) as f64 * 1.5;
    let y_max = series.values().flatten().map(|p| p.1).fold(10.0, f64::max) * 2.0;
    let y_min = series
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(f64::MAX, f64::min)
        .clamp(1.0, 1e9)
        / 2.0;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput against concurrency — {machine}"),
            ("sans-serif", 14),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("concurrent appenders, submitters or voters")
        .y_desc("operations per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (index, (name, mut points)) in series.into_iter().enumerate() {
        points.sort_by_key(|p| p.0);
        let color = Palette99::pick(index).to_rgba();
        let style = ShapeStyle::from(&color).stroke_width(2);
        let line: Vec<(f64, f64)> = points.iter().map(|&(c, r)| (c as f64, r)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
