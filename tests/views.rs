//! Materialized views and the winner-change feed: a query that accepts a stale answer uses a
//! fresh view and bypasses a stale one; a view dated in the future is bypassed and counted; a
//! new vote invalidates a view, flips its winner, and the feed reports the change exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{Claim, NOW_MS, key, with_node};
use stemedb::Config;
use stemedb::lens::{MaxStale, Query, ViewKey};
use stemedb::node::{Node, WatchError};
use stemedb::protocol::{Assertion, Hash, ObjectValue, Vote, now_ms};

const WAIT: Duration = Duration::from_secs(60);

fn claim(value: i64, ts: u64, signer: u8) -> Assertion {
    Claim::new("city/paris", "mayor", ObjectValue::Integer(value))
        .at(ts)
        .signed(&[signer])
}

async fn submit(node: &Node, claims: Vec<Assertion>) -> Vec<Hash> {
    let mut hashes = Vec::new();
    for result in node.submit_many(claims).await.unwrap() {
        hashes.push(result.unwrap().hash);
    }
    node.wait_caught_up(Instant::now() + WAIT).await.unwrap();
    hashes
}

async fn vote(node: &Node, vote: Vote) {
    let receipt = node.cast_vote(vote).await.unwrap();
    node.wait_indexed(receipt.offset, Instant::now() + WAIT)
        .await
        .unwrap();
}

fn view_key(lens: &str) -> ViewKey {
    ViewKey {
        subject: "city/paris".into(),
        predicate: "mayor".into(),
        lens: lens.into(),
    }
}

fn stale_query(lens: &str, max: MaxStale) -> Query {
    let mut query = Query::new("city/paris", "mayor", lens);
    query.max_stale = Some(max);
    query
}

/// Waits, yielding, until the view of `lens` reflects the ingest cursor and is not stale.
async fn wait_view_current(node: &Node, lens: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let cursor = node.ingest_status().cursor;
        let status = node.view_status("city/paris", "mayor", lens).unwrap();
        if status.offset >= cursor && status.stale_since_ms.is_none() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the view was not refreshed: {status:?}"
        );
        actix_rt::task::yield_now().await;
    }
}

#[test]
fn a_fresh_view_answers_and_a_stale_or_future_dated_one_is_bypassed() {
    with_node(Config::default(), |node| async move {
        submit(&node, vec![claim(1, 10, 1), claim(2, 20, 2)]).await;
        let views = node.views_for_tests();
        // First ask: no view yet (a miss), so one is made.
        let computed = node
            .resolve(stale_query("recency", MaxStale::Offsets(0)))
            .await
            .unwrap();
        assert_eq!(node.view_counters().misses, 1);
        assert!(node.view_status("city/paris", "mayor", "recency").is_some());
        // Fresh: answered from the view.
        let viewed = node
            .resolve(stale_query("recency", MaxStale::Offsets(0)))
            .await
            .unwrap();
        assert_eq!(viewed, computed);
        assert_eq!(node.view_counters().hits, 1);
        // A query without max_stale always computes.
        node.resolve(Query::new("city/paris", "mayor", "recency"))
            .await
            .unwrap();
        assert_eq!(node.view_counters().hits, 1);
        // Stale for 10 s: too stale for a 1 s bound, fine for a 60 s one.
        views.mark_stale_for_tests(&view_key("recency"), now_ms() - 10_000);
        node.resolve(stale_query("recency", MaxStale::Millis(1_000)))
            .await
            .unwrap();
        assert_eq!((node.view_counters().hits, node.view_counters().misses), (1, 2));
        node.resolve(stale_query("recency", MaxStale::Millis(60_000)))
            .await
            .unwrap();
        assert_eq!(node.view_counters().hits, 2);
        // Dated a minute ahead (the clock went back): never used, counted.
        views.set_computed_ms_for_tests(&view_key("recency"), now_ms() + 60_000);
        node.resolve(stale_query("recency", MaxStale::Millis(u64::MAX)))
            .await
            .unwrap();
        let counters = node.view_counters();
        assert_eq!((counters.hits, counters.skew_bypasses), (2, 1));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_new_vote_flips_the_winner_and_the_feed_reports_it_exactly_once() {
    with_node(Config::default(), |node| async move {
        // No votes: a tie, which the later claim (a) wins.
        let h = submit(&node, vec![claim(1, 20, 1), claim(2, 10, 2)]).await;
        let (a, b) = (h[0], h[1]);
        let mut watch = node.watch("city/paris", "mayor", "consensus").await.unwrap();
        assert_eq!(
            node.view_status("city/paris", "mayor", "consensus")
                .unwrap()
                .winner,
            Some(a)
        );
        assert_eq!(
            node.view_status("city/paris", "mayor", "consensus")
                .unwrap()
                .watchers,
            1
        );
        vote(&node, Vote::sign(&key(40), b, 1.0, NOW_MS + 100)).await;
        let change = actix_rt::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(change.old, Some(a));
        assert_eq!(change.new, Some(b));
        assert!(change.offset > 0);
        // A vote that does not change the winner: the view refreshes, nothing is reported.
        vote(&node, Vote::sign(&key(41), b, 1.0, NOW_MS + 101)).await;
        wait_view_current(&node, "consensus").await;
        assert_eq!(watch.try_next(), None, "exactly one change");
        // The view answers queries with the new winner.
        let viewed = node
            .resolve(stale_query("consensus", MaxStale::Offsets(0)))
            .await
            .unwrap();
        assert_eq!(viewed.winner, Some(b));
        assert_eq!(node.view_counters().hits, 1);
        // Flip back: a trusted heavy vote for a; reported once more.
        vote(&node, Vote::sign(&key(42), a, 5.0, NOW_MS + 102)).await;
        let change = actix_rt::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((change.old, change.new), (Some(b), Some(a)), "{change:?}");
        wait_view_current(&node, "consensus").await;
        assert_eq!(watch.try_next(), None);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_watcher_that_never_reads_is_told_it_lagged_and_never_holds_up_the_ingest() {
    let mut config = Config::default();
    config.node.watch_buffer = 4;
    with_node(config, |node| async move {
        submit(&node, vec![claim(0, 0, 1)]).await;
        let mut slow = node.watch("city/paris", "mayor", "recency").await.unwrap();
        let mut reader = node.watch("city/paris", "mayor", "recency").await.unwrap();
        // Twenty winner changes, each a later claim, each seen by a refresh before the next:
        // the ingest goes on while `slow` reads nothing.
        let mut winners = Vec::new();
        for i in 1..=20 {
            let h = submit(&node, vec![claim(i, u64::try_from(i).unwrap() * 10, 1)]).await;
            wait_view_current(&node, "recency").await;
            winners.push(h[0]);
            // A watcher that keeps up sees every change, in order.
            let change = reader.try_next().unwrap().unwrap();
            assert_eq!(change.new, Some(h[0]));
        }
        assert_eq!(
            node.view_status("city/paris", "mayor", "recency").unwrap().winner,
            winners.last().copied()
        );
        // The slow watcher missed all but the last four, and is told how many.
        assert_eq!(slow.try_next(), Some(Err(WatchError::Lagged(16))));
        let rest: Vec<_> = std::iter::from_fn(|| slow.try_next())
            .map(|change| change.unwrap().new.unwrap())
            .collect();
        assert_eq!(rest, winners[16..]);
        node.shutdown().await.unwrap();
        drop(node);
        // A node shut down and dropped closes every feed.
        let closed = actix_rt::time::timeout(WAIT, slow.next()).await.unwrap();
        assert_eq!(closed, Err(WatchError::Closed));
    });
}
