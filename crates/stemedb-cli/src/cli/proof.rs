//! `stemedb proof verify` and `stemedb checkpoint compare`: checking a node's answers and
//! logs from outside it.
//!
//! - `proof verify RECEIPT --key KEY` needs no node: it checks a receipt (the `receipt` of a
//!   `GET /v1/resolve?proof=true` answer, or the receipt alone) with the node's checkpoint
//!   verifier key, and prints the verified winner, or names the failure (exit 1).
//! - `checkpoint compare URL...` fetches each node's signed checkpoint (verified with its key:
//!   the served one, or one given with `--key URL=KEY`), then asks the larger of each two for
//!   the consistency proof from the smaller: it names every node whose log diverged from the
//!   others', and any two that show different roots at the same size (exit 1).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use stemedb::protocol::merkle::{MerkleHash, verify_consistency};
use stemedb::protocol::note::{Checkpoint, NoteVerifier};
use stemedb::receipt::{Receipt, verify};

use super::CliError;

/// Largest receipt or answer read, in bytes.
const INPUT_BYTES_MAX: u64 = 1 << 30;

/// `stemedb proof` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ProofCommand {
    /// Verify a receipt offline: the checkpoints' signatures, every record's signatures, the
    /// inclusion, consistency and map proofs, the built-in lens replayed on exactly that
    /// evidence, and the node's signature over the receipt. Exit 1 names what failed.
    Verify(VerifyArgs),
}

/// Arguments of `stemedb proof verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The receipt (JSON): a `GET /v1/resolve?proof=true` answer, or its `receipt` alone.
    receipt: PathBuf,
    /// The node's checkpoint verifier key (`<name>+<id>+<key>`), or a file holding it (the
    /// node's `checkpoint.key.pub`).
    #[arg(long)]
    key: String,
}

/// `stemedb checkpoint` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum CheckpointCommand {
    /// Fetch the signed checkpoints of several nodes and check that their logs agree: each two
    /// are consistent (one a prefix of the other), and equal sizes have equal roots.
    Compare(CompareArgs),
}

/// Arguments of `stemedb checkpoint compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The nodes' base URLs (`http://host:port`).
    #[arg(required = true, num_args = 2..)]
    urls: Vec<String>,
    /// An API key with the read role: once for every node, or once per node in order.
    #[arg(long)]
    token: Vec<String>,
    /// A node's verifier key, as `URL=KEY` (else the key the node serves is used).
    #[arg(long)]
    key: Vec<String>,
}

fn parse_key(text: &str) -> Result<NoteVerifier, CliError> {
    if let Ok(key) = NoteVerifier::parse(text) {
        return Ok(key);
    }
    let from_file = std::fs::read_to_string(text).map_err(|e| {
        CliError::Input(format!(
            "--key {text:?} is neither a verifier key nor a readable file: {e}"
        ))
    })?;
    NoteVerifier::parse(&from_file).map_err(|e| CliError::Input(format!("{text}: {e}")))
}

/// Runs `stemedb proof verify`.
pub(crate) fn run_proof(command: &ProofCommand) -> Result<(), CliError> {
    let ProofCommand::Verify(args) = command;
    let key = parse_key(&args.key)?;
    let file = std::fs::File::open(&args.receipt).map_err(|source| CliError::Io {
        context: format!("reading {}", args.receipt.display()),
        source,
    })?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, INPUT_BYTES_MAX), &mut text).map_err(
        |source| CliError::Io {
            context: format!("reading {}", args.receipt.display()),
            source,
        },
    )?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CliError::Input(format!("the receipt is not JSON: {e}")))?;
    let value = match value.get("receipt") {
        Some(receipt) => receipt.clone(),
        None => value,
    };
    let receipt: Receipt =
        serde_json::from_value(value).map_err(|e| CliError::Input(format!("not a receipt: {e}")))?;
    let verified =
        verify(&receipt, &key).map_err(|e| CliError::Input(format!("the receipt does not verify: {e}")))?;
    let winner = verified
        .winner
        .map_or_else(|| "none".to_owned(), |h| h.to_string());
    println!(
        "verified: {} / {} by {} at tree size {} ({} of {}): winner {winner}, {} candidate(s), {} record(s)",
        receipt.query.subject,
        receipt.query.predicate,
        receipt.query.lens,
        verified.size,
        verified.checkpoint.origin,
        verified.checkpoint.size,
        verified.ranked.len(),
        verified.records,
    );
    Ok(())
}

/// One node's view, as fetched.
struct Seen {
    origin: String,
    size: u64,
    root: MerkleHash,
}

/// Runs `stemedb checkpoint compare`.
pub(crate) fn run_checkpoint(command: &CheckpointCommand) -> Result<(), CliError> {
    let CheckpointCommand::Compare(args) = command;
    let tokens: Vec<String> = match args.token.len() {
        0 => vec![String::new(); args.urls.len()],
        1 => vec![args.token[0].clone(); args.urls.len()],
        n if n == args.urls.len() => args.token.clone(),
        n => {
            return Err(CliError::Input(format!(
                "{n} --token for {} URLs: give one, or one per URL",
                args.urls.len()
            )));
        }
    };
    let mut keys = BTreeMap::new();
    for pair in &args.key {
        let (url, key) = pair
            .split_once('=')
            .ok_or_else(|| CliError::Input(format!("--key {pair:?} is not URL=KEY")))?;
        keys.insert(url.trim_end_matches('/').to_owned(), parse_key(key)?);
    }
    let urls: Vec<String> = args
        .urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    actix::System::new().block_on(async {
        let client = awc::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .finish();
        let get = |url: String, token: String| {
            let client = client.clone();
            async move {
                let mut request = client.get(&url);
                if !token.is_empty() {
                    request = request.insert_header(("Authorization", format!("Bearer {token}")));
                }
                let mut response = request.send().await.map_err(|e| format!("GET {url}: {e}"))?;
                let body = response
                    .body()
                    .limit(1 << 24)
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!(
                        "GET {url}: {}: {}",
                        response.status(),
                        String::from_utf8_lossy(&body)
                    ));
                }
                String::from_utf8(body.to_vec()).map_err(|e| format!("GET {url}: {e}"))
            }
        };
        // Each node's checkpoint.
        let mut seen: Vec<Result<Seen, String>> = Vec::new();
        for (url, token) in urls.iter().zip(&tokens) {
            let outcome = async {
                let key = match keys.get(url) {
                    Some(key) => key.clone(),
                    None => {
                        NoteVerifier::parse(&get(format!("{url}/v1/checkpoint/key"), token.clone()).await?)
                            .map_err(|e| format!("{url}: its key: {e}"))?
                    }
                };
                let note = get(format!("{url}/v1/checkpoint"), token.clone()).await?;
                let checkpoint =
                    Checkpoint::open(&note, &key).map_err(|e| format!("{url}: its checkpoint: {e}"))?;
                Ok::<_, String>(Seen {
                    origin: checkpoint.origin,
                    size: checkpoint.size,
                    root: checkpoint.root,
                })
            }
            .await;
            match &outcome {
                Ok(s) => println!("{url}: {} size {} root {}", s.origin, s.size, hex::encode(s.root)),
                Err(e) => println!("{url}: UNREADABLE: {e}"),
            }
            seen.push(outcome);
        }
        // Each two: equal sizes, equal roots; else the larger proves the smaller a prefix.
        let mut conflicts = vec![0usize; urls.len()];
        let mut failures = Vec::new();
        for i in 0..urls.len() {
            for j in i + 1..urls.len() {
                let (Ok(a), Ok(b)) = (&seen[i], &seen[j]) else {
                    continue;
                };
                let (small, large, s, l) = if a.size <= b.size {
                    (i, j, a, b)
                } else {
                    (j, i, b, a)
                };
                let problem = if s.size == l.size {
                    (s.root != l.root).then(|| format!("different roots at the same size {}", s.size))
                } else {
                    let url = format!(
                        "{}/v1/proofs/consistency?old={}&new={}",
                        urls[large], s.size, l.size
                    );
                    match get(url, tokens[large].clone()).await {
                        Err(e) => Some(format!("no consistency proof: {e}")),
                        Ok(body) => match parse_proof(&body) {
                            Err(e) => Some(e),
                            Ok(proof) => verify_consistency(s.size, l.size, &s.root, &l.root, &proof)
                                .err()
                                .map(|e| format!("not consistent from size {} to {}: {e}", s.size, l.size)),
                        },
                    }
                };
                if let Some(problem) = problem {
                    conflicts[small] += 1;
                    conflicts[large] += 1;
                    failures.push(format!("{} and {}: {problem}", urls[small], urls[large]));
                }
            }
        }
        for failure in &failures {
            println!("INCONSISTENT: {failure}");
        }
        let readable = seen.iter().filter(|s| s.is_ok()).count();
        let mut diverged = Vec::new();
        for (i, count) in conflicts.iter().enumerate() {
            // A node at odds with more than half of the others is the one that diverged.
            if *count > 0 && *count * 2 > readable.saturating_sub(1) {
                diverged.push(urls[i].clone());
                println!(
                    "DIVERGED: {} (inconsistent with {count} of {} other node(s))",
                    urls[i],
                    readable - 1
                );
            }
        }
        let unreadable = seen.iter().filter(|s| s.is_err()).count();
        if failures.is_empty() && unreadable == 0 {
            println!("consistent: {} node(s)", urls.len());
            return Ok(());
        }
        Err(CliError::Input(format!(
            "{} inconsistent pair(s), {} unreadable node(s){}",
            failures.len(),
            unreadable,
            match diverged.is_empty() {
                true => String::new(),
                false => format!("; diverged: {}", diverged.join(", ")),
            }
        )))
    })
}

fn parse_proof(body: &str) -> Result<Vec<MerkleHash>, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the proof is not JSON: {e}"))?;
    value["path"]
        .as_array()
        .ok_or("the proof has no path")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| "a proof hash is not 64 hex digits".to_owned())
        })
        .collect()
}
