//! Command-line interface: argument definitions and dispatch.
//!
//! Exit status: 0 on success, 1 when the command ran and failed (a record that does not
//! verify, a key file that cannot be written), 2 on a usage error.

mod keyfile;
mod sign;
mod verify;
mod wal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thiserror::Error;

use stemedb::config::{Config, ConfigError};
use stemedb::protocol::{CodecError, ValidationError};

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
    /// Create a new agent key file (mode 0600); refuses to overwrite an existing file.
    Keygen(keyfile::KeygenArgs),
    /// Produce a signed assertion or vote as JSON, ready to submit.
    #[command(subcommand)]
    Sign(sign::SignCommand),
    /// Check a signed assertion or vote (JSON on stdin, or --file): shape, limits, signatures.
    Verify(verify::VerifyArgs),
    /// Examine a journal directory without changing it.
    #[command(subcommand)]
    Wal(wal::WalCommand),
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
        Command::Keygen(args) => keyfile::keygen(&args),
        Command::Sign(command) => sign::run(&command, &config),
        Command::Verify(args) => verify::run(&args, &config),
        Command::Wal(command) => wal::run(&command, &config),
    }
}
