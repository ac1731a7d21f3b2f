//! The composite-key codec: distinct tuples never encode equal, keys decode back to their
//! tuples, and a prefix scan over keys in LMDB order (bytewise) returns exactly the tuples
//! with that prefix — whatever bytes the parts hold (`:`, NUL, bytes that look like lengths).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use stemedb::storage::keys::{KEY_BYTES_MAX, KeyBuilder, KeyError, KeyReader};

/// A tuple of the shape most indexes use: (subject, predicate, timestamp, hash-like tail).
type Tuple = (Vec<u8>, Vec<u8>, u64, [u8; 4]);

fn encode(t: &Tuple) -> Vec<u8> {
    KeyBuilder::new()
        .bytes(&t.0)
        .bytes(&t.1)
        .u64(t.2)
        .fixed(&t.3)
        .finish()
        .unwrap()
}

fn decode(key: &[u8]) -> Tuple {
    let mut reader = KeyReader::new(key);
    let tuple = (
        reader.bytes().unwrap().to_vec(),
        reader.bytes().unwrap().to_vec(),
        reader.u64().unwrap(),
        reader.fixed::<4>().unwrap(),
    );
    reader.finish().unwrap();
    tuple
}

/// Short parts over a tiny alphabet (including ':' and NUL), so that collisions, shared
/// prefixes and look-alike lengths are frequent rather than astronomically rare.
fn part() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(vec![0u8, 1, 2, b':', b'a']), 0..5)
}

fn tuple() -> impl Strategy<Value = Tuple> {
    (
        part(),
        part(),
        0u64..4,
        proptest::sample::select(vec![[0u8; 4], [0, 0, 0, 1], [b':'; 4]]),
    )
}

proptest! {
    #[test]
    fn distinct_tuples_never_encode_equal(a in tuple(), b in tuple()) {
        prop_assert_eq!(a == b, encode(&a) == encode(&b));
    }

    #[test]
    fn keys_decode_to_their_tuples(t in tuple()) {
        prop_assert_eq!(decode(&encode(&t)), t);
    }

    #[test]
    fn variable_part_sequences_are_unambiguous(a in proptest::collection::vec(part(), 0..4), b in proptest::collection::vec(part(), 0..4)) {
        let enc = |parts: &Vec<Vec<u8>>| parts.iter().fold(KeyBuilder::new(), |k, p| k.bytes(p)).finish().unwrap();
        prop_assert_eq!(a == b, enc(&a) == enc(&b));
    }

    #[test]
    fn prefix_scans_return_exactly_the_matching_tuples(
        tuples in proptest::collection::btree_set(tuple(), 0..64),
        subject in part(),
        predicate in part(),
    ) {
        // LMDB orders keys bytewise, as a BTreeMap of byte vectors does.
        let store: BTreeMap<Vec<u8>, Tuple> = tuples.iter().map(|t| (encode(t), t.clone())).collect();
        prop_assert_eq!(store.len(), tuples.len());

        let by_subject = KeyBuilder::new().bytes(&subject).finish().unwrap();
        let scanned: BTreeSet<Tuple> = store.range(by_subject.clone()..).take_while(|(k, _)| k.starts_with(&by_subject)).map(|(_, t)| t.clone()).collect();
        let expected: BTreeSet<Tuple> = tuples.iter().filter(|t| t.0 == subject).cloned().collect();
        prop_assert_eq!(scanned, expected);

        let by_pair = KeyBuilder::new().bytes(&subject).bytes(&predicate).finish().unwrap();
        let scanned: Vec<Tuple> = store.range(by_pair.clone()..).take_while(|(k, _)| k.starts_with(&by_pair)).map(|(_, t)| t.clone()).collect();
        let expected: Vec<Tuple> = tuples.iter().filter(|t| t.0 == subject && t.1 == predicate).cloned().collect();
        // Within one (subject, predicate), keys sort by the big-endian u64 part, then the tail.
        let mut expected_order = expected.clone();
        expected_order.sort_by_key(|t| (t.2, t.3));
        prop_assert_eq!(scanned, expected_order);
    }

    #[test]
    fn arbitrary_bytes_decode_consistently_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Untrusted bytes never panic the reader; what it accepts re-encodes to the same bytes.
        let mut reader = KeyReader::new(&bytes);
        let parsed = (|| Ok::<_, KeyError>((reader.bytes()?.to_vec(), reader.bytes()?.to_vec(), reader.u64()?)))();
        match parsed {
            Ok((a, b, n)) => {
                let again = KeyBuilder::new().bytes(&a).bytes(&b).u64(n).finish().unwrap();
                prop_assert!(bytes.starts_with(&again));
                prop_assert_eq!(reader.finish().is_ok(), again.len() == bytes.len());
            }
            Err(error) => {
                let truncated = matches!(error, KeyError::Truncated { .. });
                prop_assert!(truncated, "{}", error);
            }
        }
    }
}

#[test]
fn colon_in_a_subject_cannot_collide_with_a_split_tuple() {
    let joined = KeyBuilder::new().bytes(b"a:b").bytes(b"c").finish().unwrap();
    let split = KeyBuilder::new().bytes(b"a").bytes(b"b:c").finish().unwrap();
    assert_ne!(joined, split);
    let nul = KeyBuilder::new().bytes(b"a\0").bytes(b"b").finish().unwrap();
    let nul_split = KeyBuilder::new().bytes(b"a").bytes(b"\0b").finish().unwrap();
    assert_ne!(nul, nul_split);
}

#[test]
fn keys_longer_than_lmdb_allows_are_refused() {
    let at_limit = KeyBuilder::new()
        .bytes(&vec![7; KEY_BYTES_MAX - 2])
        .finish()
        .unwrap();
    assert_eq!(at_limit.len(), KEY_BYTES_MAX);
    let over = KeyBuilder::new()
        .bytes(&vec![7; KEY_BYTES_MAX - 2])
        .u64(1)
        .finish()
        .unwrap_err();
    assert_eq!(
        over,
        KeyError::TooLong {
            len_bytes: KEY_BYTES_MAX + 8
        }
    );
    let huge = KeyBuilder::new().bytes(&vec![0; 70_000]).finish().unwrap_err();
    assert_eq!(huge, KeyError::TooLong { len_bytes: 70_002 });
}

#[test]
fn truncated_and_trailing_keys_are_reported() {
    let key = KeyBuilder::new().bytes(b"subject").u64(9).finish().unwrap();
    let mut reader = KeyReader::new(&key[..key.len() - 1]);
    reader.bytes().unwrap();
    assert_eq!(
        reader.u64().unwrap_err(),
        KeyError::Truncated {
            part: 1,
            needed: 8,
            available: 7
        }
    );
    let mut reader = KeyReader::new(&key);
    reader.bytes().unwrap();
    assert_eq!(
        reader.finish().unwrap_err(),
        KeyError::TrailingBytes { trailing: 8 }
    );
}
