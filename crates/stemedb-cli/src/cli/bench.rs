//! `stemedb bench`: the benchmark suite of `stemedb_sim::bench`, from a source checkout.

use std::path::PathBuf;

use clap::Args;

use super::CliError;

/// `stemedb bench` arguments.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Where the logs, `results.json`, `table.txt` and `throughput.svg` go.
    #[arg(long, default_value = "target/bench-suite", value_name = "DIR")]
    out: PathBuf,
    /// Smaller and shorter runs (one round, fewer records): a smoke run, not figures to quote.
    #[arg(long)]
    quick: bool,
    /// Only these benchmarks (comma-separated: journal, ingest, votes, resolve, http, truth).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// Run nothing: redraw the table, JSON and chart from the results already in `--out`.
    #[arg(long)]
    no_run: bool,
}

pub(crate) fn run(args: &BenchArgs) -> Result<(), CliError> {
    let suite = stemedb_sim::bench::BenchArgs {
        out: args.out.clone(),
        quick: args.quick,
        only: args.only.clone(),
        no_run: args.no_run,
    };
    stemedb_sim::bench::run(&suite).map_err(|e| CliError::Input(e.to_string()))
}
