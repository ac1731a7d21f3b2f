//! `stemedb verify`: read a signed assertion, vote or trust change as JSON and check it fully.
//!
//! The kind is recognized by its fields (a vote has `voter`, a trust change `admin`);
//! everything else — unknown fields, bad hex, invalid keys, broken limits, bad signatures, a
//! trust change signed by an agent the configuration's `votes.admins` does not list — is
//! reported with the reason.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use stemedb::protocol::{
    Assertion, TrustChange, Vote, now_ms, validate_assertion, validate_trust, validate_vote,
};
use stemedb_server::ServerConfig as Config;

use super::CliError;
use super::admin::require_admin;

/// Largest input read, in bytes: the largest possible record's JSON form (hex doubles binary
/// sizes; escapes can grow text up to six-fold) is far below it.
const INPUT_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Arguments of `stemedb verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Read the record from this file instead of standard input.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

/// Runs `stemedb verify`; prints what was verified.
pub(crate) fn run(args: &VerifyArgs, config: &Config) -> Result<(), CliError> {
    let text = read_input(args)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CliError::Input(format!("input is not JSON: {e}")))?;
    let now = now_ms();
    if value.get("admin").is_some() {
        let change = TrustChange::from_json(&text)?;
        let hash = validate_trust(&change, &config.limits, now)?;
        require_admin(&change, config)?;
        println!(
            "valid trust change {hash}: administrator {} sets the trust factor of agent {} to {}",
            change.admin, change.agent, change.factor
        );
    } else if value.get("voter").is_some() {
        let vote = Vote::from_json(&text)?;
        let hash = validate_vote(&vote, &config.limits, now)?;
        println!(
            "valid vote {hash}: voter {} gives weight {} to assertion {}",
            vote.voter, vote.weight, vote.assertion
        );
    } else {
        let assertion = Assertion::from_json(&text)?;
        let hash = validate_assertion(&assertion, &config.limits, now)?;
        let signers: Vec<String> = assertion.signatures.iter().map(|s| s.agent.to_string()).collect();
        println!(
            "valid assertion {hash}: {} signature(s) by {}",
            signers.len(),
            signers.join(", ")
        );
    }
    Ok(())
}

fn read_input(args: &VerifyArgs) -> Result<String, CliError> {
    let (origin, reader): (String, Box<dyn Read>) = match &args.file {
        Some(path) => (
            path.display().to_string(),
            Box::new(std::fs::File::open(path).map_err(|source| CliError::Io {
                context: format!("cannot open {}", path.display()),
                source,
            })?),
        ),
        None => ("standard input".to_owned(), Box::new(std::io::stdin())),
    };
    let mut text = String::new();
    let read = reader
        .take(INPUT_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|source| CliError::Io {
            context: format!("cannot read {origin}"),
            source,
        })?;
    if read as u64 > INPUT_BYTES_MAX {
        return Err(CliError::Input(format!(
            "{origin} is larger than {INPUT_BYTES_MAX} bytes"
        )));
    }
    Ok(text)
}
