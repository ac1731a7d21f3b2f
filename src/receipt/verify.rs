//! [`verify`]: the offline check of a [`Receipt`]; see the module docs of `receipt`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;

use super::{ChainProof, MAP_EXTENSION, RECEIPT_VERSION, Receipt, TailEntry};
use crate::protocol::merkle::{
    MerkleHash, ProofError, leaf_hash, verify_batch_inclusion, verify_consistency,
};
use crate::protocol::note::{Checkpoint, NoteError, NoteVerifier};
use crate::protocol::smt::{MAP_EMPTY, MapProofError, agent_key, evidence_step, pair_key};
use crate::protocol::{
    AgentId, Assertion, Hash, LogRecord, RecordKind, SignatureCheck, TrustChange, Vote, check_values,
    verify_batch,
};
use crate::storage::state::PairId;

/// What a receipt proves, once verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The checkpoint it was checked against.
    pub checkpoint: Checkpoint,
    /// The tree size the answer reflects.
    pub size: u64,
    /// The winner.
    pub winner: Option<Hash>,
    /// The candidates ranked, with their scores, best first.
    pub ranked: Vec<(Hash, f64)>,
    /// Records checked.
    pub records: usize,
}

/// Why a receipt does not verify: which proof, which record, which step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt is of another version, or malformed.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// A checkpoint note does not verify or parse.
    #[error("the {which} checkpoint: {source}")]
    Checkpoint {
        /// "current" or "past".
        which: &'static str,
        /// Why.
        source: NoteError,
    },
    /// The node's signature over the receipt does not verify, or covers other bytes.
    #[error("the receipt's signature: {0}")]
    Signature(String),
    /// The current checkpoint carries no map root.
    #[error("the checkpoint has no {MAP_EXTENSION} line: the node committed no map")]
    NoMapRoot,
    /// The past checkpoint does not fit the receipt: another origin or size, or missing.
    #[error("the past checkpoint: {0}")]
    PastCheckpoint(String),
    /// The consistency proof from the past checkpoint to the current one fails.
    #[error("the consistency proof from size {old} to {new}: {source}")]
    Consistency {
        /// The past size.
        old: u64,
        /// The current size.
        new: u64,
        /// Why.
        source: ProofError,
    },
    /// A record is unusable as evidence.
    #[error("record at leaf {index}: {reason}")]
    Record {
        /// Its leaf index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// The batch inclusion proof of the records fails.
    #[error("the inclusion proof of the {records} records in the tree of size {size}: {source}")]
    Inclusion {
        /// Records covered.
        records: usize,
        /// The tree size.
        size: u64,
        /// Why.
        source: ProofError,
    },
    /// A chain's tail is out of order or reaches below the receipt's size.
    #[error("the {chain} chain's tail: {reason}")]
    Tail {
        /// `pair`, or `agent <id>`.
        chain: String,
        /// Why.
        reason: String,
    },
    /// A chain recomputed from the records does not match the map: a record left out, added
    /// or changed, or a wrong map proof.
    #[error("the {chain} chain ({entries} entries) against the map: {source}")]
    Chain {
        /// `pair`, or `agent <id>`.
        chain: String,
        /// Entries recomputed.
        entries: usize,
        /// Why.
        source: MapProofError,
    },
    /// A voter whose votes count has no trust chain in the receipt.
    #[error("voter {agent} has no trust chain in the receipt")]
    MissingAgent {
        /// The voter.
        agent: AgentId,
    },
    /// Replaying the lens failed.
    #[error("replaying lens {lens:?}: {reason}")]
    Lens {
        /// The lens.
        lens: String,
        /// Why.
        reason: String,
    },
    /// The replayed ranking differs from the receipt's answer.
    #[error("the answer differs from the replay: {0}")]
    Answer(String),
}

/// A decoded record of the evidence.
enum Decoded {
    Assertion(Hash, Box<Assertion>),
    Vote(Hash, Vote),
    Trust(Hash, TrustChange),
}

/// Checks `receipt` against the node's checkpoint `key`; see the module docs.
pub fn verify(receipt: &Receipt, key: &NoteVerifier) -> Result<Verified, ReceiptError> {
    if receipt.version != RECEIPT_VERSION {
        return Err(ReceiptError::Malformed(format!(
            "version {}, this build verifies {RECEIPT_VERSION}",
            receipt.version
        )));
    }
    // 1. The checkpoints, and the tree the answer reflects.
    let checkpoint =
        Checkpoint::open(&receipt.checkpoint, key).map_err(|source| ReceiptError::Checkpoint {
            which: "current",
            source,
        })?;
    let map_root = map_root(&checkpoint)?;
    let size = receipt.size;
    let root_at_size = match &receipt.past_checkpoint {
        None if size == checkpoint.size => checkpoint.root,
        None => {
            return Err(ReceiptError::PastCheckpoint(format!(
                "the answer reflects size {size}, the checkpoint is of {}, and no past checkpoint is given",
                checkpoint.size
            )));
        }
        Some(note) => {
            let past = Checkpoint::open(note, key).map_err(|source| ReceiptError::Checkpoint {
                which: "past",
                source,
            })?;
            if past.origin != checkpoint.origin || past.size != size {
                return Err(ReceiptError::PastCheckpoint(format!(
                    "{} at size {}, for an answer at size {size} of {}",
                    past.origin, past.size, checkpoint.origin
                )));
            }
            past.root
        }
    };
    verify_consistency(
        size,
        checkpoint.size,
        &root_at_size,
        &checkpoint.root,
        &receipt.consistency,
    )
    .map_err(|source| ReceiptError::Consistency {
        old: size,
        new: checkpoint.size,
        source,
    })?;
    // 2. Every record: in order, below the size, decodable, valid, signed.
    let decoded = decode_records(receipt)?;
    // 3. The leaves.
    let leaves: Vec<(u64, MerkleHash)> = receipt
        .records
        .iter()
        .map(|r| (r.index, leaf_hash(&r.bytes)))
        .collect();
    // 4. The pair's chain and the voters' chains, each against the map: nothing left out.
    let query = &receipt.query;
    let pair = PairId::of(&query.subject, &query.predicate);
    let mut pair_entries = Vec::new();
    let mut assertions: BTreeMap<Hash, (u64, &Assertion, u64)> = BTreeMap::new();
    let mut votes: Vec<(u64, Hash, &Vote, u64)> = Vec::new();
    let mut trust: BTreeMap<AgentId, Vec<(u64, MerkleHash, Hash, &TrustChange)>> = BTreeMap::new();
    let admins: BTreeSet<AgentId> = receipt.trust.admins.iter().copied().collect();
    for ((record, decoded), (index, leaf)) in receipt.records.iter().zip(&decoded).zip(&leaves) {
        let refuse = |reason: String| ReceiptError::Record {
            index: *index,
            reason,
        };
        match decoded {
            Decoded::Assertion(hash, assertion) => {
                if assertion.subject != query.subject || assertion.predicate != query.predicate {
                    return Err(refuse(
                        "an assertion about another subject or predicate".to_owned(),
                    ));
                }
                assertions.insert(*hash, (*index, assertion, record.offset));
                pair_entries.push((*index, *leaf));
            }
            Decoded::Vote(hash, vote) => {
                if !assertions.contains_key(&vote.assertion) {
                    return Err(refuse(format!(
                        "a vote on {}, which is not an earlier assertion of the pair",
                        vote.assertion
                    )));
                }
                votes.push((*index, *hash, vote, record.offset));
                pair_entries.push((*index, *leaf));
            }
            Decoded::Trust(hash, change) => {
                if !admins.contains(&change.admin) {
                    return Err(refuse(format!(
                        "a trust change by {}, who is not an administrator",
                        change.admin
                    )));
                }
                trust
                    .entry(change.agent)
                    .or_default()
                    .push((*index, *leaf, *hash, change));
            }
        }
    }
    check_chain(
        "pair".to_owned(),
        &pair_entries,
        &receipt.pair,
        size,
        &map_root,
        &pair_key(pair.as_bytes()),
    )?;
    let voters: BTreeSet<AgentId> = votes.iter().map(|(_, _, vote, _)| vote.voter).collect();
    let proven: BTreeMap<AgentId, &ChainProof> = receipt.agents.iter().map(|a| (a.agent, &a.chain)).collect();
    for voter in &voters {
        if !proven.contains_key(voter) {
            return Err(ReceiptError::MissingAgent { agent: *voter });
        }
    }
    for (agent, chain) in &proven {
        let entries: Vec<(u64, MerkleHash)> = trust
            .get(agent)
            .map(|changes| {
                changes
                    .iter()
                    .map(|(index, leaf, _, _)| (*index, *leaf))
                    .collect()
            })
            .unwrap_or_default();
        check_chain(
            format!("agent {agent}"),
            &entries,
            chain,
            size,
            &map_root,
            &agent_key(agent.as_bytes()),
        )?;
    }
    if let Some((agent, changes)) = trust.iter().find(|(agent, _)| !proven.contains_key(agent)) {
        return Err(ReceiptError::Record {
            index: changes[0].0,
            reason: format!("a trust change of {agent}, whose chain the receipt does not prove"),
        });
    }
    // 5. All of them in the tree of that size (after the chains, so that a record left out is
    // named as such, not as a proof that no longer fits).
    verify_batch_inclusion(&leaves, size, &receipt.inclusion, &root_at_size).map_err(|source| {
        ReceiptError::Inclusion {
            records: leaves.len(),
            size,
            source,
        }
    })?;
    // 6. Replay: the candidates, their live votes and the voters' trust, then the lens.
    let ranked = super::replay::replay(receipt, &assertions, &votes, &trust, size)?;
    let winner = ranked.first().map(|(hash, _)| *hash);
    let claimed: Vec<(Hash, f64)> = receipt.result.ranked.iter().map(|r| (r.hash, r.score)).collect();
    if receipt.result.winner != winner {
        return Err(ReceiptError::Answer(format!(
            "the receipt's winner is {:?}, the replay's {winner:?}",
            receipt.result.winner.map(|h| h.to_string())
        )));
    }
    if claimed.len() != ranked.len() {
        return Err(ReceiptError::Answer(format!(
            "the receipt ranks {} candidates, the replay {}",
            claimed.len(),
            ranked.len()
        )));
    }
    for (i, (claim, replayed)) in claimed.iter().zip(&ranked).enumerate() {
        if claim.0 != replayed.0 || claim.1.to_bits() != replayed.1.to_bits() {
            return Err(ReceiptError::Answer(format!(
                "rank {i}: the receipt has {} scored {}, the replay {} scored {}",
                claim.0, claim.1, replayed.0, replayed.1
            )));
        }
    }
    // 7. Last, the node's signature over the whole receipt: what the steps above cannot see
    // (a parameter or an informative field changed without changing the answer) is caught
    // here, while a change they see is named by them.
    let signed = key
        .verify(&receipt.signature)
        .map_err(|e| ReceiptError::Signature(e.to_string()))?;
    if signed != receipt.signature_text() {
        return Err(ReceiptError::Signature("it signs another receipt".to_owned()));
    }
    Ok(Verified {
        checkpoint,
        size,
        winner,
        ranked,
        records: receipt.records.len(),
    })
}

/// The map root of a checkpoint's `stemedb-map` line.
pub(crate) fn map_root(checkpoint: &Checkpoint) -> Result<MerkleHash, ReceiptError> {
    let text = checkpoint
        .extension(MAP_EXTENSION)
        .ok_or(ReceiptError::NoMapRoot)?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(ReceiptError::NoMapRoot)
}

fn decode_records(receipt: &Receipt) -> Result<Vec<Decoded>, ReceiptError> {
    let mut decoded = Vec::with_capacity(receipt.records.len());
    let mut previous: Option<u64> = None;
    for record in &receipt.records {
        let refuse = |reason: String| ReceiptError::Record {
            index: record.index,
            reason,
        };
        if previous.is_some_and(|p| p >= record.index) {
            return Err(refuse(
                "records are not in ascending leaf order, each once".to_owned(),
            ));
        }
        previous = Some(record.index);
        if record.index >= receipt.size {
            return Err(refuse(format!(
                "at or past the answer's tree size {}",
                receipt.size
            )));
        }
        let log_record =
            LogRecord::decode(&record.bytes).map_err(|e| refuse(format!("does not decode: {e}")))?;
        check_values(&log_record).map_err(|e| refuse(format!("invalid: {e}")))?;
        let hash = log_record.content_hash();
        decoded.push(match log_record {
            LogRecord::Assertion(assertion) => Decoded::Assertion(hash, Box::new(assertion)),
            LogRecord::Vote(vote) => Decoded::Vote(hash, vote),
            LogRecord::Trust(change) => Decoded::Trust(hash, change),
        });
    }
    // Every signature, in one batch.
    let mut checks = Vec::new();
    let mut owners = Vec::new();
    for (i, d) in decoded.iter().enumerate() {
        match d {
            Decoded::Assertion(hash, assertion) => {
                if assertion.signatures.is_empty() {
                    return Err(ReceiptError::Record {
                        index: receipt.records[i].index,
                        reason: "an assertion without a signature".to_owned(),
                    });
                }
                for signature in &assertion.signatures {
                    checks.push(SignatureCheck {
                        agent: &signature.agent,
                        kind: RecordKind::Assertion,
                        content_hash: hash,
                        signature: &signature.signature,
                    });
                    owners.push(i);
                }
            }
            Decoded::Vote(hash, vote) => {
                checks.push(SignatureCheck {
                    agent: &vote.voter,
                    kind: RecordKind::Vote,
                    content_hash: hash,
                    signature: &vote.signature,
                });
                owners.push(i);
            }
            Decoded::Trust(hash, change) => {
                checks.push(SignatureCheck {
                    agent: &change.admin,
                    kind: RecordKind::Trust,
                    content_hash: hash,
                    signature: &change.signature,
                });
                owners.push(i);
            }
        }
    }
    if let Some(bad) = first_invalid(&checks) {
        return Err(ReceiptError::Record {
            index: receipt.records[owners[bad]].index,
            reason: format!("the signature by {} does not verify", checks[bad].agent),
        });
    }
    Ok(decoded)
}

/// Checks below which one batch is verified on the calling thread.
const PARALLEL_CHECKS_MIN: usize = 256;

/// Returns the index of the first invalid signature of `checks`, if any: batch-verified, in
/// one chunk per available core when there are many.
fn first_invalid(checks: &[SignatureCheck<'_>]) -> Option<usize> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(16);
    if checks.len() < PARALLEL_CHECKS_MIN || threads == 1 {
        return verify_batch(checks).iter().position(|valid| !valid);
    }
    let chunk = checks.len().div_ceil(threads);
    let verdicts: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = checks
            .chunks(chunk)
            .map(|part| (part.len(), scope.spawn(move || verify_batch(part))))
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, handle)| handle.join().unwrap_or_else(|_| vec![false; len]))
            .collect()
    });
    verdicts.iter().position(|valid| !valid)
}

/// Recomputes a chain from its entries below the size (from the records) and its tail, and
/// checks its value against the map.
fn check_chain(
    name: String,
    entries: &[(u64, MerkleHash)],
    proof: &ChainProof,
    size: u64,
    map_root: &MerkleHash,
    key: &MerkleHash,
) -> Result<(), ReceiptError> {
    let mut last = entries.last().map(|(index, _)| *index);
    for TailEntry { index, .. } in &proof.tail {
        if *index < size || last.is_some_and(|l| l >= *index) {
            return Err(ReceiptError::Tail {
                chain: name,
                reason: format!("entry at leaf {index} is below the size {size} or out of order"),
            });
        }
        last = Some(*index);
    }
    let all = entries
        .iter()
        .copied()
        .chain(proof.tail.iter().map(|t| (t.index, t.leaf)));
    let mut chain = MAP_EMPTY;
    let mut count = 0;
    for (index, leaf) in all {
        chain = evidence_step(&chain, index, &leaf);
        count += 1;
    }
    let value = (count > 0).then_some(chain);
    proof
        .map
        .verify(map_root, key, value.as_ref())
        .map_err(|source| ReceiptError::Chain {
            chain: name,
            entries: count,
            source,
        })
}
