//! Round trips of the layout's keys and values.

#![allow(clippy::unwrap_used)]

use super::super::{EXACT_WEIGHT_BYTES, ExactWeight, VoteTotals};
use super::values::*;
use super::*;

#[test]
fn record_values_round_trip_and_short_ones_are_corrupt() {
    let value = encode_record(0x0102_0304_0506_0708, b"record");
    assert_eq!(&value[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        decode_record("vote", &value).unwrap(),
        (0x0102_0304_0506_0708, &b"record"[..])
    );
    assert!(decode_record("vote", &value[..7]).is_err());
}

#[test]
fn summaries_round_trip_and_bad_ones_are_corrupt() {
    use crate::protocol::AgentKey;
    for (n, lifecycle) in Lifecycle::ALL.into_iter().enumerate() {
        let signers = (0..n as u8)
            .map(|k| AgentKey::from_secret_bytes(&[k + 1; 32]).agent_id())
            .collect();
        let summary = Summary {
            offset: 77 + n as u64,
            confidence: 0.25 * n as f32,
            lifecycle,
            signers,
        };
        let value = encode_summary(&summary);
        assert_eq!(decode_summary(&value).unwrap(), summary);
        assert!(decode_summary(&value[..value.len() - 1]).is_err());
    }
    let mut bad = encode_summary(&Summary {
        offset: 1,
        confidence: 1.0,
        lifecycle: Lifecycle::Active,
        signers: Vec::new(),
    });
    bad[12] = 9;
    assert!(decode_summary(&bad).is_err(), "an unknown lifecycle is corrupt");
}

#[test]
fn digests_are_blake3_key_derivations_in_their_contexts() {
    assert_eq!(subject_digest("paris"), blake3::derive_key(SUBJECT_CONTEXT, b"paris"));
    let id = PairId::of("paris", "population");
    assert_eq!(&id.as_bytes()[DIGEST_BYTES..], &blake3::derive_key(PREDICATE_CONTEXT, b"population"));
}

#[test]
fn pair_keys_round_trip_and_order_heads_before_history() {
    let pair = PairId::of("s", "p");
    let hash = Hash::of(b"x");
    let head = pair_key(&pair, Section::Head, 9, &hash);
    let old = pair_key(&pair, Section::Superseded, 1, &hash);
    assert!(head < old, "a pair's heads come before its superseded entries");
    let split = split_pair_key(&head).unwrap();
    assert_eq!((split.pair, split.section, split.timestamp_ms, split.hash), (pair, Section::Head, 9, hash));
    assert!(head.starts_with(&section_prefix(&pair, Section::Head)));
    assert!(split_pair_key(&head[1..]).is_none());
    assert_ne!(PairId::of("a:b", "c"), PairId::of("a", "b:c"));
    assert_eq!(PairId::of("a", "b").subject_digest(), PairId::of("a", "c").subject_digest());
}

#[test]
fn totals_round_trip_and_short_ones_are_corrupt() {
    let mut weight = ExactWeight::ZERO;
    weight.add(2.5);
    let totals = VoteTotals { count: 3, weight };
    let value = encode_totals(&totals);
    assert_eq!(value.len(), 8 + EXACT_WEIGHT_BYTES);
    assert_eq!(decode_totals(&value).unwrap(), totals);
    assert!(decode_totals(&value[..value.len() - 1]).is_err());
    assert!(decode_totals(&value[..4]).is_err());
}
