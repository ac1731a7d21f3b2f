//! Materialized views and the winner-change feed: a query that accepts a stale answer uses a
//! fresh view and bypasses a stale one; a view dated in the future is bypassed and counted; a
//! new vote invalidates a view, flips its winner, and the feed reports the change exactly once.
//! The views stay within `views_max` and `views_bytes_max` under a flood of unique queries,
//! evicting the least recently used first; watched views are pinned; a watch works after the
//! caps were reached; no view is kept of a pair nobody asserted; a trust change refreshes every
//! view and fires their feeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{Claim, NOW_MS, key, with_node};
use stemedb::Config;
use stemedb::lens::{MaxStale, Query, ResolveError, ViewKey};
use stemedb::node::{Node, WatchError};
use stemedb::protocol::{Assertion, Hash, ObjectValue, TrustChange, Vote, now_ms};

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

/// The subject of unique pair `i`, `len` bytes long.
fn subject(i: usize, len: usize) -> String {
    format!("{i:08}{}", "s".repeat(len.saturating_sub(8)))
}

/// Submits one claim about each of pairs `0..count` (subjects `len` bytes long).
async fn claim_pairs(node: &Node, count: usize, len: usize) {
    let claims = (0..count)
        .map(|i| {
            Claim::new(subject(i, len), "mayor", ObjectValue::Integer(1))
                .at(10)
                .signed(&[1])
        })
        .collect();
    submit(node, claims).await;
}

/// Resolves pair `i` accepting any staleness (creating its view if it has none).
async fn stale_resolve(node: &Node, i: usize, len: usize) {
    let mut query = Query::new(subject(i, len), "mayor", "recency");
    query.max_stale = Some(MaxStale::Offsets(u64::MAX));
    node.resolve(query).await.unwrap();
}

async fn stale_resolve_as(node: &Node, i: usize, len: usize, requester: &str) {
    let mut query = Query::new(subject(i, len), "mayor", "recency");
    query.max_stale = Some(MaxStale::Offsets(u64::MAX));
    query.requester = Some(requester.to_owned());
    node.resolve(query).await.unwrap();
}

fn has_view(node: &Node, i: usize, len: usize) -> bool {
    node.view_status(&subject(i, len), "mayor", "recency").is_some()
}

#[test]
fn views_stay_within_views_max_under_unique_max_stale_queries() {
    let mut config = Config::default();
    config.node.views_max = 16;
    with_node(config, |node| async move {
        claim_pairs(&node, 100, 16).await;
        for i in 0..100 {
            stale_resolve(&node, i, 16).await;
        }
        let census = node.views_for_tests().census();
        assert_eq!(census.views, 16, "{census:?}");
        assert!((84..100).all(|i| has_view(&node, i, 16)), "the newest are kept");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn views_stay_within_views_bytes_max_under_unique_max_stale_queries() {
    const BYTES_MAX: usize = 32 * 1024;
    let mut config = Config::default();
    config.node.views_bytes_max = BYTES_MAX;
    with_node(config, |node| async move {
        // Subjects of 1 KiB: each view holds more than 1 KiB, so 100 of them need over 100 KiB.
        claim_pairs(&node, 100, 1024).await;
        for i in 0..100 {
            stale_resolve(&node, i, 1024).await;
            let census = node.views_for_tests().census();
            assert!(census.bytes <= BYTES_MAX, "after {i}: {census:?}");
        }
        let census = node.views_for_tests().census();
        assert!(census.views > 1 && census.views < 32, "{census:?}");
        assert!(has_view(&node, 99, 1024), "the newest is kept");
        assert!(!has_view(&node, 0, 1024), "the oldest went");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn views_are_evicted_least_recently_used_first() {
    let mut config = Config::default();
    config.node.views_max = 3;
    with_node(config, |node| async move {
        claim_pairs(&node, 5, 16).await;
        for i in 0..3 {
            stale_resolve(&node, i, 16).await;
        }
        // A hit on 0 makes 1 the least recently used.
        stale_resolve(&node, 0, 16).await;
        assert_eq!(node.view_counters().hits, 1);
        stale_resolve(&node, 3, 16).await;
        let kept: Vec<bool> = (0..4).map(|i| has_view(&node, i, 16)).collect();
        assert_eq!(kept, [true, false, true, true]);
        // Uses now, oldest first: 0, 3, then a hit on 2; so 0 goes next.
        stale_resolve(&node, 2, 16).await;
        stale_resolve(&node, 4, 16).await;
        let kept: Vec<bool> = (0..5).map(|i| has_view(&node, i, 16)).collect();
        assert_eq!(kept, [false, false, true, true, true]);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn one_requester_holds_its_share_of_the_views_and_evicts_only_its_own() {
    let mut config = Config::default();
    config.node.views_max = 8;
    with_node(config, |node| async move {
        claim_pairs(&node, 40, 16).await;
        // Another requester's two views, made first (so the oldest).
        stale_resolve_as(&node, 0, 16, "api-key:calm").await;
        stale_resolve_as(&node, 1, 16, "api-key:calm").await;
        // A greedy requester asks for 30 pairs: it keeps its share, 8 / 4 = 2 views.
        for i in 10..40 {
            stale_resolve_as(&node, i, 16, "api-key:greedy").await;
        }
        let greedy: Vec<usize> = (10..40).filter(|i| has_view(&node, *i, 16)).collect();
        assert_eq!(greedy, [38, 39], "the greedy requester's newest views, its share");
        assert!(
            has_view(&node, 0, 16) && has_view(&node, 1, 16),
            "the other's views stay"
        );
        assert_eq!(node.views_for_tests().census().views, 4);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn watched_views_are_pinned_and_a_watch_works_after_the_cap_was_reached() {
    let mut config = Config::default();
    config.node.views_max = 2;
    with_node(config, |node| async move {
        claim_pairs(&node, 8, 16).await;
        for i in 0..5 {
            stale_resolve(&node, i, 16).await;
        }
        assert_eq!(node.views_for_tests().census().views, 2);
        // The cap was reached by queries: a watch still gets a view, evicting an unwatched one.
        let first = node.watch(&subject(5, 16), "mayor", "recency").await.unwrap();
        let second = node.watch(&subject(6, 16), "mayor", "recency").await.unwrap();
        // Queries never evict watched views.
        for i in 0..5 {
            stale_resolve(&node, i, 16).await;
        }
        assert!(has_view(&node, 5, 16) && has_view(&node, 6, 16));
        assert_eq!(node.views_for_tests().census().views, 2);
        // Every view watched: a new watch is refused, a query computes without a view.
        match node.watch(&subject(7, 16), "mayor", "recency").await {
            Err(ResolveError::ViewsFull { max }) => assert_eq!(max, 2),
            other => panic!("expected ViewsFull, got {other:?}"),
        }
        stale_resolve(&node, 7, 16).await;
        assert!(!has_view(&node, 7, 16));
        // The last watcher of 5 leaves: its view becomes evictable, and goes first.
        drop(first);
        let _third = node.watch(&subject(7, 16), "mayor", "recency").await.unwrap();
        assert!(!has_view(&node, 5, 16) && has_view(&node, 6, 16) && has_view(&node, 7, 16));
        drop(second);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn no_view_is_kept_for_a_pair_nobody_asserted_unless_it_is_watched() {
    let mut config = Config::default();
    config.node.views_max = 1;
    with_node(config, |node| async move {
        let mut query = Query::new("nobody/here", "mayor", "recency");
        query.max_stale = Some(MaxStale::Offsets(u64::MAX));
        assert_eq!(node.resolve(query).await.unwrap().winner, None);
        assert!(node.view_status("nobody/here", "mayor", "recency").is_none());
        // A watch before the first assertion works, and reports it.
        let mut watch = node.watch("city/paris", "mayor", "recency").await.unwrap();
        let h = submit(&node, vec![claim(1, 10, 1)]).await;
        let change = actix_rt::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((change.old, change.new), (None, Some(h[0])));
        // Unwatched, the view is evictable.
        drop(watch);
        claim_pairs(&node, 1, 16).await;
        stale_resolve(&node, 0, 16).await;
        assert!(node.view_status("city/paris", "mayor", "recency").is_none());
        assert!(has_view(&node, 0, 16));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_trust_change_refreshes_every_view_and_fires_the_feed() {
    const ADMIN: u8 = 77;
    const VOTER: u8 = 40;
    let mut config = Config::default();
    config.votes.admins = vec![key(ADMIN).agent_id().to_string()];
    with_node(config, |node| async move {
        // a is later, b has a vote: b wins while the voter is trusted.
        let h = submit(&node, vec![claim(1, 20, 1), claim(2, 10, 2)]).await;
        let (a, b) = (h[0], h[1]);
        vote(&node, Vote::sign(&key(VOTER), b, 1.0, NOW_MS + 100)).await;
        let mut watch = node.watch("city/paris", "mayor", "consensus").await.unwrap();
        node.resolve(stale_query("recency", MaxStale::Offsets(0)))
            .await
            .unwrap();
        assert_eq!(
            node.view_status("city/paris", "mayor", "consensus")
                .unwrap()
                .winner,
            Some(b)
        );
        // The voter's trust drops to zero: a tie, which the later claim (a) wins.
        let change = TrustChange::sign(&key(ADMIN), key(VOTER).agent_id(), 0.0, NOW_MS + 200);
        let receipt = node.submit_trust(change).await.unwrap();
        node.wait_indexed(receipt.offset, Instant::now() + WAIT)
            .await
            .unwrap();
        let change = actix_rt::time::timeout(WAIT, watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((change.old, change.new), (Some(b), Some(a)));
        // Every view was refreshed past the trust change, the unwatched one too.
        wait_view_current(&node, "consensus").await;
        wait_view_current(&node, "recency").await;
        let viewed = node
            .resolve(stale_query("consensus", MaxStale::Offsets(0)))
            .await
            .unwrap();
        assert_eq!(viewed.winner, Some(a));
        node.shutdown().await.unwrap();
    });
}
