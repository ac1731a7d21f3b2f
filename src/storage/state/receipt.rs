//! What a receipt is built from (see `crate::receipt`), read in one transaction: the tree and
//! the map at the ingest cursor, and for a pair at a log position, its chain's records and
//! those of its voters' trust chains, with the proofs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use heed::RoTxn;

use super::layout::{decode_record, decode_summary, section_prefix, split_assertion, split_pair_key};
use super::map;
use super::tree::{self, TreeHead};
use super::{Databases, PairId, Section, State, StateError};
use crate::protocol::merkle::{MerkleHash, batch_inclusion_proof_from, consistency_proof_from};
use crate::protocol::smt::{agent_key, pair_key};
use crate::protocol::{AGENT_ID_LEN, AgentId, HASH_LEN, Hash, TAG_ASSERTION, TAG_TRUST, TAG_VOTE};
use crate::protocol::receipt::{AgentChain, ChainProof, ReceiptRecord, TailEntry};

/// The evidence and proofs of a receipt, as the state holds them at one point.
#[derive(Debug, Clone)]
pub struct ReceiptEvidence {
    /// The tree at the ingest cursor.
    pub head: TreeHead,
    /// The map root at the ingest cursor.
    pub map_root: MerkleHash,
    /// The tree size at the receipt's log position.
    pub size: u64,
    /// The root at that size.
    pub root_at_size: MerkleHash,
    /// The consistency proof from `size` to the head.
    pub consistency: Vec<MerkleHash>,
    /// The records below `size` of the pair's and voters' chains, in leaf order.
    pub records: Vec<ReceiptRecord>,
    /// Their batch inclusion proof in the tree of `size`.
    pub inclusion: Vec<MerkleHash>,
    /// The pair's chain proof.
    pub pair: ChainProof,
    /// The voters' chain proofs.
    pub agents: Vec<AgentChain>,
    /// The voters.
    pub voters: Vec<AgentId>,
}

impl State {
    /// Gathers the evidence of (`subject`, `predicate`) as of log position `end` (the records
    /// below it), with the proofs against the tree and map now; refused if the tree or the map
    /// does not cover the log ([`StateError::TreeUnavailable`]).
    pub fn receipt_evidence(&self, subject: &str, predicate: &str, end: u64) -> Result<ReceiptEvidence, StateError> {
        self.read(|txn, dbs| gather(txn, dbs, &PairId::of(subject, predicate), end))
    }
}

fn gather(txn: &RoTxn<'_>, dbs: &Databases, pair: &PairId, end: u64) -> Result<ReceiptEvidence, StateError> {
    let at = tree::extent(txn, dbs)?;
    let cursor = super::apply::read_cursor(txn, dbs)?;
    let map_cursor = map::cursor(txn, dbs)?;
    if at.cursor != cursor || map_cursor != cursor {
        return Err(StateError::TreeUnavailable {
            tree_cursor: at.cursor.min(map_cursor),
            cursor,
        });
    }
    let head = TreeHead {
        size: at.size,
        root: tree::root(txn, dbs, at.size)?,
        cursor,
    };
    let size = tree::size_at(txn, dbs, at, end.min(cursor))?;
    // The pair's records, by log position: its assertions, and their live and replaced votes.
    let mut bytes: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut voter_of: HashMap<u64, AgentId> = HashMap::new();
    let mut hashes: Vec<Hash> = Vec::new();
    for section in [Section::Head, Section::Superseded] {
        for entry in dbs
            .pairs
            .prefix_iter(txn, &section_prefix(pair, section))
            .map_err(StateError::lmdb("scan pairs"))?
        {
            let (key, value) = entry.map_err(StateError::lmdb("scan pairs"))?;
            let key = split_pair_key(key).ok_or_else(|| StateError::corrupt("pairs key", "malformed"))?;
            let offset = decode_summary(value)?.offset;
            let record = dbs
                .assertion_records
                .get(txn, &offset.to_be_bytes())
                .map_err(StateError::lmdb("read assertion"))?
                .ok_or_else(|| StateError::corrupt("assertion", format!("no record at {offset}")))?;
            bytes.insert(offset, tagged(TAG_ASSERTION, split_assertion(record)?.1));
            hashes.push(key.hash);
        }
    }
    for hash in &hashes {
        for db in [dbs.votes, dbs.vote_history] {
            for entry in db.prefix_iter(txn, hash.as_bytes()).map_err(StateError::lmdb("scan votes"))? {
                let (key, value) = entry.map_err(StateError::lmdb("scan votes"))?;
                let (offset, record) = decode_record("vote", value)?;
                let voter: [u8; AGENT_ID_LEN] = key
                    .get(HASH_LEN..HASH_LEN + AGENT_ID_LEN)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StateError::corrupt("vote key", "not assertion and voter"))?;
                voter_of.insert(offset, AgentId::from_stored_bytes(voter));
                bytes.insert(offset, tagged(TAG_VOTE, record));
            }
        }
    }
    let mut records: Vec<ReceiptRecord> = Vec::new();
    let pair_proof = chain_proof(txn, dbs, &pair_key(pair.as_bytes()), size, &bytes, &mut records)?;
    let voters: BTreeSet<AgentId> = records.iter().filter_map(|r| voter_of.get(&r.offset).copied()).collect();
    // Each voter's applied trust changes.
    let mut agents = Vec::with_capacity(voters.len());
    for voter in &voters {
        let mut trust_bytes: HashMap<u64, Vec<u8>> = HashMap::new();
        if let Some(value) = dbs.trust.get(txn, voter.as_bytes()).map_err(StateError::lmdb("read trust"))? {
            let (offset, record) = decode_record("trust change", value)?;
            trust_bytes.insert(offset, tagged(TAG_TRUST, record));
        }
        for entry in dbs
            .trust_history
            .prefix_iter(txn, voter.as_bytes())
            .map_err(StateError::lmdb("scan trust history"))?
        {
            let (_, value) = entry.map_err(StateError::lmdb("scan trust history"))?;
            let (offset, record) = decode_record("trust change", value)?;
            trust_bytes.insert(offset, tagged(TAG_TRUST, record));
        }
        let chain = chain_proof(txn, dbs, &agent_key(voter.as_bytes()), size, &trust_bytes, &mut records)?;
        agents.push(AgentChain { agent: *voter, chain });
    }
    records.sort_by_key(|r| r.index);
    let indices: Vec<u64> = records.iter().map(|r| r.index).collect();
    let range = |start, end| tree::range(txn, dbs, start, end);
    let inclusion = batch_inclusion_proof_from(&indices, size, range)?;
    let consistency = consistency_proof_from(size, at.size, range)?;
    Ok(ReceiptEvidence {
        head,
        map_root: map::root(txn, dbs)?,
        size,
        root_at_size: tree::root(txn, dbs, size)?,
        consistency,
        records,
        inclusion,
        pair: pair_proof,
        agents,
        voters: voters.into_iter().collect(),
    })
}

fn tagged(tag: u8, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + record.len());
    out.push(tag);
    out.extend_from_slice(record);
    out
}

/// The proof of `key`'s chain at `size`: its records below `size` go to `records` (their bytes
/// from `bytes`, by log position), its entries at or past `size` to the tail.
fn chain_proof(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    key: &MerkleHash,
    size: u64,
    bytes: &HashMap<u64, Vec<u8>>,
    records: &mut Vec<ReceiptRecord>,
) -> Result<ChainProof, StateError> {
    let mut tail = Vec::new();
    for (index, offset) in map::chain(txn, dbs, key)? {
        if index >= size {
            tail.push(TailEntry {
                index,
                leaf: tree::node(txn, dbs, 0, index)?,
            });
            continue;
        }
        let record = bytes
            .get(&offset)
            .ok_or_else(|| StateError::corrupt("evidence", format!("no stored record at {offset} for leaf {index}")))?;
        records.push(ReceiptRecord {
            index,
            offset,
            bytes: record.clone(),
        });
    }
    Ok(ChainProof {
        tail,
        map: map::proof(txn, dbs, key)?,
    })
}

/// What a map rebuilt from the state starts from: every record that belongs to a chain, as
/// (map key, log position).
pub(super) fn chain_members(txn: &RoTxn<'_>, dbs: &Databases) -> Result<BTreeMap<u64, MerkleHash>, StateError> {
    let mut members = BTreeMap::new();
    for entry in dbs
        .assertion_records
        .iter(txn)
        .map_err(StateError::lmdb("scan assertions"))?
    {
        let (key, value) = entry.map_err(StateError::lmdb("scan assertions"))?;
        let offset = super::layout::decode_u64("assertion offset", key)?;
        members.insert(offset, pair_key(split_assertion(value)?.0.as_bytes()));
    }
    for db in [dbs.votes, dbs.vote_history] {
        for entry in db.iter(txn).map_err(StateError::lmdb("scan votes"))? {
            let (key, value) = entry.map_err(StateError::lmdb("scan votes"))?;
            let (offset, _) = decode_record("vote", value)?;
            let assertion: [u8; HASH_LEN] = key
                .get(..HASH_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StateError::corrupt("vote key", "too short"))?;
            let assertion = Hash::from_bytes(assertion);
            let at = super::read::offset_of(txn, dbs, &assertion)?
                .ok_or_else(|| StateError::corrupt("vote", format!("a vote on {assertion}, which is not stored")))?;
            let record = super::read::record_at(txn, dbs, &assertion, at)?;
            members.insert(offset, pair_key(super::layout::assertion_pair(record)?.as_bytes()));
        }
    }
    for db in [dbs.trust, dbs.trust_history] {
        for entry in db.iter(txn).map_err(StateError::lmdb("scan trust"))? {
            let (key, value) = entry.map_err(StateError::lmdb("scan trust"))?;
            let (offset, _) = decode_record("trust change", value)?;
            let agent: [u8; AGENT_ID_LEN] = key
                .get(..AGENT_ID_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StateError::corrupt("trust key", "too short"))?;
            members.insert(offset, agent_key(&agent));
        }
    }
    Ok(members)
}
