//! A record of exactly `limits.record_bytes_max` fits the journal (its one-byte tag included)
//! with the smallest journal record size the configuration admits, and is stored; one byte
//! more is refused at submission with `RecordTooLarge`; a configuration whose journal cannot
//! hold a record of the limit with its tag is refused with a message saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::node::{Node, SubmitError};
use stemedb::protocol::{Assertion, ObjectValue, TAG_BYTES, ValidationError};
use tempfile::TempDir;

/// The record limit of these tests, in bytes.
const LIMIT_BYTES: usize = 4096;

/// A signed assertion whose record is exactly `len` bytes.
fn assertion_of_len(len: usize) -> Assertion {
    let build = |text_len: usize| {
        let mut claim = Assertion::new(
            "big",
            "blob",
            ObjectValue::Text("x".repeat(text_len)),
            0.5,
            NOW_MS,
        );
        claim.sign(&key(4));
        claim
    };
    // The record grows by one byte per text byte, except where a length prefix widens: step to it.
    let overhead = build(0).to_record_bytes().len();
    let mut text_len = len - overhead;
    let claim = loop {
        let claim = build(text_len);
        match claim.to_record_bytes().len() {
            n if n == len => break claim,
            n if n > len => text_len -= n - len,
            n => text_len += len - n,
        }
    };
    assert_eq!(claim.to_record_bytes().len(), len);
    claim
}

fn config() -> Config {
    let mut config = Config::default();
    config.limits.record_bytes_max = LIMIT_BYTES;
    config.journal.record_bytes_max = LIMIT_BYTES + TAG_BYTES;
    config
}

#[test]
fn a_record_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(config(), dir.path()).unwrap();
        let exact = assertion_of_len(LIMIT_BYTES);
        let receipt = node.submit(exact.clone()).await.unwrap();
        node.wait_indexed(receipt.offset, Instant::now() + Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(node.get(&receipt.hash).unwrap().unwrap().assertion, exact);
        let over = assertion_of_len(LIMIT_BYTES + 1);
        let error = node.submit(over).await.unwrap_err();
        assert!(
            matches!(
                error,
                SubmitError::Invalid(ValidationError::RecordTooLarge {
                    len_bytes,
                    max_bytes: LIMIT_BYTES
                }) if len_bytes == LIMIT_BYTES + 1
            ),
            "{error:?}"
        );
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_journal_too_small_for_a_record_of_the_limit_and_its_tag_is_refused() {
    let mut config = config();
    config.journal.record_bytes_max = LIMIT_BYTES;
    let error = config.validate().unwrap_err();
    assert!(error.to_string().contains("the record tag"), "{error}");
}
