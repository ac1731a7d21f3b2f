//! Command-line interface: argument definitions and dispatch.
//!
//! Exit status: 0 on success, 1 when the command ran and failed (a record that does not
//! verify, a key file that cannot be written), 2 on a usage error.

mod admin;
mod bench;
mod keyfile;
mod mcp;
mod proof;
mod serve;
mod sign;
mod sim;
mod verify;
mod wal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thiserror::Error;

use stemedb::config::ConfigError;
use stemedb::protocol::{AgentId, CodecError, ValidationError};
use stemedb_server::ServerConfig as Config;

/// StemeDB: an embeddable knowledge store for agents that make signed claims and disagree.
#[derive(Debug, Parser)]
#[command(name = "stemedb", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML); the built-in config/default.toml when omitted.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node and its HTTP API (`http.bind`, loopback by default) until SIGINT or
    /// SIGTERM, then flush the journal and the state. On first start, writes a development
    /// admin key to `<data-dir>/api/admin.token` (mode 0600) and prints its path.
    Serve(serve::ServeArgs),
    /// Create a new agent key file (mode 0600); refuses to overwrite an existing file.
    Keygen(keyfile::KeygenArgs),
    /// Produce a signed assertion, vote or trust change as JSON, ready to submit.
    #[command(subcommand)]
    Sign(sign::SignCommand),
    /// Check a signed assertion, vote or trust change (JSON on stdin, or --file): shape, limits,
    /// signatures, and a trust change's administrator.
    ///
    /// A trust change is valid only if its signer is listed in votes.admins of the configuration
    /// (--config), as a node with that configuration requires: any other signer is an error
    /// (exit 1), even when the signature itself verifies. The built-in default configuration
    /// lists no administrators.
    Verify(verify::VerifyArgs),
    /// Examine a journal directory without changing it.
    #[command(subcommand)]
    Wal(wal::WalCommand),
    /// Maintain the LMDB state of a data directory.
    #[command(subcommand)]
    State(StateCommand),
    /// Run the simulation arenas: seeded agents attack a real node (embedded, or a running
    /// server over HTTP) and every acknowledged write is verified; exits 1 on a failure, with
    /// the command that repeats it.
    Sim(sim::SimArgs),
    /// Run the journal, ingest, vote, resolve and HTTP benchmarks as one suite against their
    /// peers (okaywal, SQLite, the embedded node): one table with ratios, JSON and an SVG
    /// chart. Runs `cargo bench`, so from a source checkout.
    Bench(bench::BenchArgs),
    /// Verify a receipt of a resolution offline (`GET /v1/resolve?proof=true`), with the
    /// node's checkpoint key.
    #[command(subcommand)]
    Proof(proof::ProofCommand),
    /// Compare the signed checkpoints of several nodes: names any whose log diverged.
    #[command(subcommand)]
    Checkpoint(proof::CheckpointCommand),
    /// Serve MCP (Model Context Protocol) for assistants, over stdio or streamable HTTP
    /// (--http), as a bridge to a running node's HTTP API (--api). Tools: claim, supersede,
    /// vote, resolve, history, as_of, audit; resources stemedb://winner/{subject}/{predicate}
    /// (subscribable: notified when the winner changes). Writes are signed by the node as a
    /// custodial agent of the session's API key.
    Mcp(mcp::McpArgs),
}

/// `stemedb state` subcommands.
#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Convert the state of a data directory written by an older build to this build's schema,
    /// in place, in one transaction. No node may run on the directory. Back it up first: older
    /// builds cannot read the result. A node does this by itself, by rebuilding from the
    /// journal, when the journal still holds every record.
    Convert {
        /// The data directory (holding `journal/` and `state/`).
        data_dir: std::path::PathBuf,
    },
    /// Print the digest of the state of a data directory once it has applied its whole
    /// journal, and its cursor: nodes that applied the same log print the same digest. With
    /// `replication.mode = "jetstream"` (`--config`), the state as it stands, at its cursor.
    /// No node may run on the directory.
    Digest {
        /// The data directory.
        data_dir: std::path::PathBuf,
    },
}

/// Why a command failed.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key file problem.
    #[error(transparent)]
    KeyFile(#[from] keyfile::KeyFileError),
    /// Input that is not a well-formed record.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A record that breaks a rule or does not verify.
    #[error("invalid record: {0}")]
    Invalid(#[from] ValidationError),
    /// A trust change whose signer the configuration's `votes.admins` does not list, so a node
    /// with this configuration would refuse it.
    #[error(
        "trust change signed by {admin}, who is not listed in votes.admins \
         ({admins_configured} administrator(s) configured): a node with this configuration \
         refuses it; pass --config with the node's configuration, or sign with an \
         administrator's key"
    )]
    NotAdmin {
        /// The signer.
        admin: AgentId,
        /// How many administrators the configuration lists.
        admins_configured: usize,
    },
    /// Other input problems, with a message that says what.
    #[error("{0}")]
    Input(String),
    /// Reading or writing a stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Parses the command line, runs the command and reports its outcome as the exit status.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stemedb: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), CliError> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve::run(&args, &config),
        Command::Keygen(args) => keyfile::keygen(&args),
        Command::Sign(command) => sign::run(&command, &config),
        Command::Verify(args) => verify::run(&args, &config),
        Command::Wal(command) => wal::run(&command, &config),
        Command::Sim(args) => sim::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Proof(command) => proof::run_proof(&command),
        Command::Checkpoint(command) => proof::run_checkpoint(&command),
        Command::Mcp(args) => mcp::run(&args),
        Command::State(StateCommand::Convert { data_dir }) => {
            match stemedb::node::Node::convert_state(&config.engine(), &data_dir)
                .map_err(|e| CliError::Input(e.to_string()))?
            {
                Some(found) => println!(
                    "{}: state converted from schema version {found} to {}",
                    data_dir.display(),
                    stemedb::node::STATE_SCHEMA_VERSION
                ),
                None => println!(
                    "{}: state is already at schema version {}; nothing to do",
                    data_dir.display(),
                    stemedb::node::STATE_SCHEMA_VERSION
                ),
            }
            Ok(())
        }
        Command::State(StateCommand::Digest { data_dir }) => digest(&config, &data_dir),
    }
}

/// `stemedb state digest`: starts a node on the directory, lets it apply its journal, prints
/// the digest and the cursor, and shuts it down.
fn digest(config: &Config, data_dir: &std::path::Path) -> Result<(), CliError> {
    if config.replication.is_jetstream() {
        // The log is the stream: the state is digested as it stands, at its cursor.
        let digest = stemedb::node::Node::stored_state_digest(&config.engine(), data_dir)
            .map_err(|e| CliError::Input(format!("{}: {e}", data_dir.display())))?;
        println!("{} cursor {}", digest.hash, digest.cursor);
        return Ok(());
    }
    if !data_dir.join(stemedb::node::JOURNAL_DIR).is_dir() {
        return Err(CliError::Input(format!(
            "{}: no journal/ here: not a data directory",
            data_dir.display()
        )));
    }
    let failed = |e: &dyn std::fmt::Display| CliError::Input(format!("{}: {e}", data_dir.display()));
    actix::System::new().block_on(async {
        let node = stemedb::node::Node::start(config.engine(), data_dir).map_err(|e| failed(&e))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let outcome = match node.wait_caught_up(deadline).await {
            Ok(()) => node.state_digest().map_err(|e| failed(&e)),
            Err(e) => Err(failed(&e)),
        };
        node.shutdown().await.map_err(|e| failed(&e))?;
        let digest = outcome?;
        println!("{} cursor {}", digest.hash, digest.cursor);
        Ok(())
    })
}
