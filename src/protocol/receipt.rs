//! The receipt format (issue 25): what a node sends with a verifiable resolution and
//! `stemedb::receipt::verify` checks; see the `receipt` module for what each part proves.

use serde::{Deserialize, Serialize};

use super::merkle::MerkleHash;
use super::smt::{MapProof, hex32, hex32_vec};
use super::{AgentId, Hash, Lifecycle};

/// The receipt format's version.
pub const RECEIPT_VERSION: u32 = 1;
/// The checkpoint extension line that carries the map root: `stemedb-map <base64 root>`.
pub const MAP_EXTENSION: &str = "stemedb-map";

/// A verifiable resolution; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_VERSION`].
    pub version: u32,
    /// The node's signed checkpoint (C2SP signed note) of tree size `N`, with the map root.
    pub checkpoint: String,
    /// For an answer about the past (`size < N`): a signed checkpoint of tree size `size`.
    pub past_checkpoint: Option<String>,
    /// The consistency proof from `size` to `N` (empty when they are equal).
    #[serde(with = "hex32_vec")]
    pub consistency: Vec<MerkleHash>,
    /// What was asked, and the lens's parameters.
    pub query: ReceiptQuery,
    /// The trust the lens read besides the journal's.
    pub trust: ReceiptTrust,
    /// The tree size the answer reflects: the records of leaves below it counted.
    pub size: u64,
    /// The evidence: every record below `size` of the pair's chain and of the voters' chains,
    /// in leaf order.
    pub records: Vec<ReceiptRecord>,
    /// One batch inclusion proof of all the records in the tree of `size` leaves.
    #[serde(with = "hex32_vec")]
    pub inclusion: Vec<MerkleHash>,
    /// The pair's chain: its entries at or past `size`, and its map proof.
    pub pair: ChainProof,
    /// Each voter's trust chain, by agent.
    pub agents: Vec<AgentChain>,
    /// The answer.
    pub result: ReceiptResult,
    /// The node's signature over all of the above ([`Receipt::digest`]): a signed note whose
    /// text is `stemedb receipt v1`, then the digest in base64. It binds the node to the query,
    /// the parameters and the answer, so not one byte of a receipt can change unnoticed.
    pub signature: String,
}

/// The first line of a receipt signature's note.
pub const RECEIPT_NOTE_HEADER: &str = "stemedb receipt v1";

impl Receipt {
    /// SHA-256 of the receipt's JSON with an empty `signature`: what the node signs.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        // Serializing plain data to a Vec cannot fail.
        let json = serde_json::to_vec(&unsigned).unwrap_or_default();
        sha2::Sha256::digest(&json).into()
    }

    /// The text of the note that signs this receipt.
    pub fn signature_text(&self) -> String {
        use base64::Engine;
        format!(
            "{RECEIPT_NOTE_HEADER}\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(self.digest())
        )
    }
}

/// The query a receipt answers, with the lens and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens (a built-in: `recency`, `confidence` or `consensus`).
    pub lens: String,
    /// The lifecycles a candidate may have.
    pub lifecycles: Vec<Lifecycle>,
    /// Whether superseded assertions competed.
    pub history: bool,
    /// Most candidates ranked.
    pub limit: usize,
}

/// The trust a lens reads besides the journal's, and who may change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptTrust {
    /// The factor of an agent neither journaled nor configured.
    pub default: f32,
    /// The configured factors of the voters that have one.
    pub configured: Vec<(AgentId, f32)>,
    /// The administrators, whose trust changes count.
    pub admins: Vec<AgentId>,
}

/// One record of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRecord {
    /// Its leaf index in the log tree.
    pub index: u64,
    /// Its log position (informative: not covered by any proof).
    pub offset: u64,
    /// The record's bytes, hex: the leaf is SHA-256(0x00 || bytes).
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

/// An entry of a chain at or past the receipt's size: only its leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailEntry {
    /// The leaf index.
    pub index: u64,
    /// The leaf hash.
    #[serde(with = "hex32")]
    pub leaf: MerkleHash,
}

/// What proves a chain: its entries past the receipt's size, and the map proof of its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainProof {
    /// The chain's entries at or past the receipt's size, in order.
    pub tail: Vec<TailEntry>,
    /// The map proof of the chain's value (or of its absence).
    pub map: MapProof,
}

/// A voter's trust chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentChain {
    /// The agent.
    pub agent: AgentId,
    /// Its chain's proof.
    pub chain: ChainProof,
}

/// The answer a receipt gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptResult {
    /// The winner, if any candidate qualified.
    pub winner: Option<Hash>,
    /// Every ranked candidate, best first, with its score.
    pub ranked: Vec<RankedScore>,
}

/// A ranked candidate's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankedScore {
    /// The candidate.
    pub hash: Hash,
    /// Its score.
    pub score: f64,
}

/// Serde of bytes as lowercase hex.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
