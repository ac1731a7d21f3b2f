//! Views and watches of the `learned` lens (issue 26): refreshed when the learned trust model
//! moves, not only when their own pair is touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::{NOW_MS, key};
use stemedb::lens::Query;
use stemedb::protocol::{Assertion, ObjectValue, Vote};

#[test]
fn a_watch_of_the_learned_lens_sees_the_winner_move_with_the_model_on_other_pairs() {
    let mut config = stemedb::Config::default();
    config.learned.epoch_answers_min = 8;
    config.learned.epoch_growth = 0.1;
    common::with_node(config, |node| async move {
        let deadline = || std::time::Instant::now() + common::WAIT;
        let claim = |subject: &str, value: i64, signer: u8, ts: u64| {
            let mut a = Assertion::new(subject, "p", ObjectValue::Integer(value), 0.5, NOW_MS + ts);
            a.sign(&key(signer));
            a
        };
        // On s0, agent 50 says 1 and agent 51 says 0: nobody knows either yet.
        let (a, b) = (claim("s0", 1, 50, 0), claim("s0", 0, 51, 1));
        for c in [&a, &b] {
            let receipt = node.submit(c.clone()).await.unwrap();
            node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        }
        let mut watch = node.watch("s0", "p", "learned").await.unwrap();
        let first = node.view_status("s0", "p", "learned").unwrap().winner;
        // The loser's author: elsewhere it agrees with four others on 30 subjects, and the
        // winner's author never does.
        let (loser, (good, bad)) = if first == Some(a.content_hash()) {
            (b.content_hash(), (51, 50))
        } else {
            (a.content_hash(), (50, 51))
        };
        let mut last = 0;
        for s in 1..=30u64 {
            let subject = format!("s{s}");
            let right = claim(&subject, 1, good, 10 + s);
            let wrong = claim(&subject, 0, bad, 10 + s);
            for c in [&right, &wrong] {
                last = last.max(node.submit(c.clone()).await.unwrap().offset);
            }
            for voter in 60..64u8 {
                let vote = Vote::sign(&key(voter), right.content_hash(), 1.0, NOW_MS + 100 + s);
                last = last.max(node.cast_vote(vote).await.unwrap().offset);
            }
        }
        node.wait_indexed(last, deadline()).await.unwrap();
        // s0 was not touched; the model moved, and with it the view's winner.
        let change = actix_rt::time::timeout(common::WAIT, watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((change.old, change.new), (first, Some(loser)));
        let now = node.resolve(Query::new("s0", "p", "learned")).await.unwrap();
        assert_eq!(now.winner, Some(loser), "{:?}", now.ranked);
        assert!(node.learned_meta().unwrap().epochs > 0);
    });
}
