//! `stemedb sign assertion|vote|trust`: build, sign and validate a record, print its JSON form.
//!
//! The record is validated with the configured limits before it is printed, and a trust
//! change's signer must be listed in the configured `votes.admins`, so what this prints is what
//! a node with the same configuration accepts (state-dependent checks such as "parent exists"
//! aside).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use stemedb::protocol::{
    AgentId, Assertion, Hash, Lifecycle, ObjectValue, TRUST_FACTOR_MAX, TrustChange, Vote, now_ms,
    validate_assertion, validate_trust, validate_vote,
};
use stemedb_server::ServerConfig as Config;

use super::CliError;
use super::admin::require_admin;
use super::keyfile::read_key_file;

/// `stemedb sign` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SignCommand {
    /// Sign an assertion "subject · predicate · object, with confidence".
    Assertion(AssertionArgs),
    /// Sign a weighted vote for an assertion.
    Vote(VoteArgs),
    /// Sign an administrator's change of an agent's trust factor.
    ///
    /// The signer (--key) must be listed in votes.admins of the configuration (--config): a
    /// node refuses a trust change from anyone else, so this refuses to print one (exit 1).
    /// The built-in default configuration lists no administrators.
    Trust(TrustArgs),
}

/// Arguments of `stemedb sign assertion`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("object").required(true).args(["text", "integer", "float", "bool", "ref_subject"])))]
pub(crate) struct AssertionArgs {
    /// Key file of a signer; repeat to co-sign (up to the configured signatures_max).
    #[arg(long = "key", short, value_name = "PATH", required = true)]
    keys: Vec<PathBuf>,
    /// What the claim is about.
    #[arg(long)]
    subject: String,
    /// Which property of the subject.
    #[arg(long)]
    predicate: String,
    /// Object: UTF-8 text.
    #[arg(long)]
    text: Option<String>,
    /// Object: a signed 64-bit integer.
    #[arg(long, allow_negative_numbers = true)]
    integer: Option<i64>,
    /// Object: a finite float.
    #[arg(long, allow_negative_numbers = true)]
    float: Option<f64>,
    /// Object: true or false.
    #[arg(long)]
    bool: Option<bool>,
    /// Object: a reference to another subject.
    #[arg(long = "ref", value_name = "SUBJECT")]
    ref_subject: Option<String>,
    /// Confidence in [0, 1].
    #[arg(long, default_value_t = 1.0)]
    confidence: f32,
    /// Lifecycle state.
    #[arg(long, value_enum, default_value_t = LifecycleArg::Active)]
    lifecycle: LifecycleArg,
    /// Content hash (hex) of the assertion this one supersedes.
    #[arg(long)]
    parent: Option<Hash>,
    /// Timestamp in milliseconds since the Unix epoch; now when omitted.
    #[arg(long)]
    timestamp_ms: Option<u64>,
    /// Print indented JSON instead of one line.
    #[arg(long)]
    pretty: bool,
}

/// Arguments of `stemedb sign vote`.
#[derive(Debug, Args)]
pub(crate) struct VoteArgs {
    /// Key file of the voter.
    #[arg(long, short, value_name = "PATH")]
    key: PathBuf,
    /// Content hash (hex) of the assertion voted for.
    #[arg(long)]
    assertion: Hash,
    /// Weight of the vote, in (0, vote_weight_max].
    #[arg(long, default_value_t = 1.0)]
    weight: f32,
    /// Timestamp in milliseconds since the Unix epoch; now when omitted.
    #[arg(long)]
    timestamp_ms: Option<u64>,
    /// Print indented JSON instead of one line.
    #[arg(long)]
    pretty: bool,
}

/// Arguments of `stemedb sign trust`.
#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    /// Key file of the administrator; its agent must be listed in votes.admins.
    #[arg(long, short, value_name = "PATH")]
    key: PathBuf,
    /// Agent id (64 hex digits, as `stemedb keygen` prints it) whose trust factor is set.
    #[arg(long)]
    agent: AgentId,
    #[arg(long, allow_negative_numbers = true, help = factor_help())]
    factor: f32,
    /// Timestamp in milliseconds since the Unix epoch; now when omitted.
    #[arg(long)]
    timestamp_ms: Option<u64>,
    /// Print indented JSON instead of one line.
    #[arg(long)]
    pretty: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LifecycleArg {
    Proposed,
    Active,
    Deprecated,
    Retracted,
}

impl From<LifecycleArg> for Lifecycle {
    fn from(arg: LifecycleArg) -> Self {
        match arg {
            LifecycleArg::Proposed => Lifecycle::Proposed,
            LifecycleArg::Active => Lifecycle::Active,
            LifecycleArg::Deprecated => Lifecycle::Deprecated,
            LifecycleArg::Retracted => Lifecycle::Retracted,
        }
    }
}

/// Runs `stemedb sign ...`.
pub(crate) fn run(command: &SignCommand, config: &Config) -> Result<(), CliError> {
    let now = now_ms();
    let json = match command {
        SignCommand::Assertion(args) => {
            let mut assertion = Assertion::new(
                args.subject.clone(),
                args.predicate.clone(),
                object_of(args)?,
                args.confidence,
                args.timestamp_ms.unwrap_or(now),
            );
            assertion.lifecycle = args.lifecycle.into();
            assertion.parent = args.parent;
            for path in &args.keys {
                assertion.sign(&read_key_file(path)?);
            }
            validate_assertion(&assertion, &config.limits, now)?;
            render(&assertion, args.pretty)?
        }
        SignCommand::Vote(args) => {
            let key = read_key_file(&args.key)?;
            let vote = Vote::sign(
                &key,
                args.assertion,
                args.weight,
                args.timestamp_ms.unwrap_or(now),
            );
            validate_vote(&vote, &config.limits, now)?;
            render(&vote, args.pretty)?
        }
        SignCommand::Trust(args) => {
            let key = read_key_file(&args.key)?;
            let change = TrustChange::sign(&key, args.agent, args.factor, args.timestamp_ms.unwrap_or(now));
            validate_trust(&change, &config.limits, now)?;
            require_admin(&change, config)?;
            render(&change, args.pretty)?
        }
    };
    println!("{json}");
    Ok(())
}

/// The help of `sign trust --factor`, built from [`TRUST_FACTOR_MAX`] so it cannot drift from
/// the rule that validation applies.
fn factor_help() -> String {
    format!("The new trust factor, finite in [0, {TRUST_FACTOR_MAX}]; it scales the agent's vote weights")
}

fn object_of(args: &AssertionArgs) -> Result<ObjectValue, CliError> {
    let objects = [
        args.text.clone().map(ObjectValue::Text),
        args.integer.map(ObjectValue::Integer),
        args.float.map(ObjectValue::Float),
        args.bool.map(ObjectValue::Bool),
        args.ref_subject.clone().map(ObjectValue::Ref),
    ];
    // clap's required, single-member "object" group guarantees exactly one; say so if not.
    objects.into_iter().flatten().next().ok_or_else(|| {
        CliError::Input("give exactly one of --text, --integer, --float, --bool, --ref".into())
    })
}

fn render<T: serde::Serialize>(value: &T, pretty: bool) -> Result<String, CliError> {
    let result = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    result.map_err(|e| CliError::Codec(e.into()))
}
