//! Verifiable resolutions (issue 25): a [`Receipt`] carries what an answer rests on, and
//! [`verify`] checks it offline, with nothing but the node's checkpoint verifier key.
//!
//! A receipt holds:
//! - the node's signed checkpoint (tree size `N`, root, and the map root in its `stemedb-map`
//!   extension line); for an answer about the past, also a signed checkpoint of the tree size
//!   `S` the answer reflects, and the consistency proof from `S` to `N`;
//! - the query: the lens and its parameters (lifecycles, history, limit, the default and
//!   configured trust of the voters, the administrators);
//! - every record below `S` of the pair's evidence chain (its stored assertions, and the votes
//!   on them that became live) and of each voter's trust chain (the trust changes applied),
//!   with one batch inclusion proof of all of them in the tree of size `S`;
//! - for the pair and each voter, the map proof of the chain's value, and the chain's entries
//!   at or past `S` (leaf index and hash only), so the chain can be recomputed whole;
//! - the winner and every candidate's score.
//!
//! [`verify`] checks the checkpoints' signatures, the consistency proof, every record's own
//! signature and values, the inclusion proof, that each chain recomputed from the records
//! matches its map proof (so no record was left out or added), then replays the built-in lens
//! on exactly that evidence and compares the ranking, and last checks the node's signature
//! over the whole receipt (so a parameter changed without changing the answer is caught too).
//! Each failure is named
//! ([`ReceiptError`]): which proof, which record, which step.

mod replay;
mod verify;

pub use crate::protocol::receipt::{
    AgentChain, ChainProof, MAP_EXTENSION, RECEIPT_NOTE_HEADER, RECEIPT_VERSION, RankedScore, Receipt,
    ReceiptQuery, ReceiptRecord, ReceiptResult, ReceiptTrust, TailEntry,
};
pub use verify::{ReceiptError, Verified, verify};
