//! StemeDB embedded in a host application's actix System.
//!
//! Starts a node on a data directory (default `stemedb-data`, or the first argument), submits
//! signed assertions from a few concurrent agents (one a batch, one superseding an earlier
//! claim, one naming a parent nobody wrote), waits until they are indexed, reads them back by
//! hash, by subject and by (subject, predicate), casts votes and reads their totals, resolves
//! the disagreement three ways (recency, confidence, consensus), watches the consensus winner
//! flip when new votes arrive, resolves as of the offset before they did, writes and reads back
//! an audit record, and shuts down gracefully. Run it twice: the second run starts from the
//! first run's state.
//!
//! ```sh
//! cargo run --release --example embedded [DATA_DIR]
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use stemedb::Config;
use stemedb::lens::{AsOf, Query};
use stemedb::node::ListQuery;
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, Assertion, Hash, ObjectValue, Vote, now_ms};

fn claim(
    key: &AgentKey,
    subject: &str,
    predicate: &str,
    object: ObjectValue,
    parent: Option<Hash>,
) -> Assertion {
    let mut assertion = Assertion::new(subject, predicate, object, 0.9, now_ms());
    assertion.parent = parent;
    assertion.sign(key);
    assertion
}

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let data_dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "stemedb-data".to_owned());
    let node = Node::start(Config::default(), &data_dir)?;
    println!(
        "node started on {data_dir}; ingest cursor {}",
        node.ingest_status().cursor
    );

    let alice = AgentKey::generate()?;
    let bob = AgentKey::generate()?;

    // Two agents submit concurrently; Bob sends a batch, verified in one batch call.
    let first = claim(
        &alice,
        "city:paris",
        "population",
        ObjectValue::Integer(2_102_650),
        None,
    );
    let alice_task = node.submit(first.clone());
    let bob_batch = vec![
        claim(
            &bob,
            "city:paris",
            "population",
            ObjectValue::Integer(2_133_111),
            None,
        ),
        claim(
            &bob,
            "city:paris",
            "mayor",
            ObjectValue::Text("Anne Hidalgo".into()),
            None,
        ),
        claim(
            &bob,
            "city:paris",
            "country",
            ObjectValue::Ref("country:france".into()),
            None,
        ),
    ];
    let bob_task = node.submit_many(bob_batch);
    let (alice_receipt, bob_results) = futures_util::future::join(alice_task, bob_task).await;
    let alice_receipt = alice_receipt?;
    println!(
        "alice: durable at offset {} as {}",
        alice_receipt.offset, alice_receipt.hash
    );
    let mut bob_receipts = Vec::new();
    for result in bob_results? {
        let receipt = result?;
        println!("bob:   durable at offset {} as {}", receipt.offset, receipt.hash);
        bob_receipts.push(receipt);
    }

    // Alice revises her figure: the new claim supersedes the old one.
    let revised = claim(
        &alice,
        "city:paris",
        "population",
        ObjectValue::Integer(2_113_705),
        Some(alice_receipt.hash),
    );
    let revised_receipt = node.submit(revised).await?;

    // A claim naming an unknown parent is durable, then rejected by the ingestor, with a reason.
    let orphan = claim(
        &bob,
        "city:paris",
        "area",
        ObjectValue::Float(105.4),
        Some(Hash::of(b"no such claim")),
    );
    let orphan_receipt = node.submit(orphan).await?;

    // Read-your-writes: wait until the last one is indexed.
    node.wait_indexed(
        orphan_receipt.offset.max(revised_receipt.offset),
        Instant::now() + Duration::from_secs(10),
    )
    .await?;

    let stored = node
        .get(&revised_receipt.hash)?
        .ok_or("revised claim not found")?;
    println!("get {}: {:?}", stored.hash, stored.assertion.object);
    let heads = node.list(&ListQuery::pair("city:paris", "population"))?;
    println!("population heads: {}", heads.assertions.len());
    let mut history = ListQuery::pair("city:paris", "population");
    history.history = true;
    println!("population history: {}", node.list(&history)?.assertions.len());
    println!(
        "all claims about city:paris: {}",
        node.list(&ListQuery::subject("city:paris"))?.assertions.len()
    );
    for rejection in node.rejections(orphan_receipt.offset, 10)? {
        println!("rejected at offset {}: {}", rejection.offset, rejection.reason);
    }
    // Votes: Bob endorses the revised figure, then changes his mind about its weight; only his
    // newest vote counts.
    let first_vote = Vote::sign(&bob, revised_receipt.hash, 1.0, now_ms());
    let second_vote = Vote::sign(&bob, revised_receipt.hash, 2.5, first_vote.timestamp_ms + 1);
    let carol = AgentKey::generate()?;
    let carol_vote = Vote::sign(&carol, revised_receipt.hash, 0.5, now_ms());
    let mut last = 0;
    for result in node.cast_votes(vec![first_vote, second_vote, carol_vote]).await? {
        last = last.max(result?.offset);
    }
    node.wait_indexed(last, Instant::now() + Duration::from_secs(10))
        .await?;
    let totals = node.vote_totals(&revised_receipt.hash)?;
    println!(
        "votes on the revised figure: {} voters, total weight {}",
        totals.count,
        totals.weight_f64()
    );
    // The disagreement about the population (Bob's 2,133,111 against Alice's revised
    // 2,113,705), resolved three ways, with each lens's reasons.
    for lens in ["recency", "confidence", "consensus"] {
        let resolution = node.resolve(Query::new("city:paris", "population", lens)).await?;
        println!("resolved by {lens} at offset {}:", resolution.offset);
        for scored in &resolution.ranked {
            let winner = if Some(scored.candidate.hash) == resolution.winner {
                "winner"
            } else {
                "      "
            };
            println!(
                "  {winner} {} score {:.3}: {}",
                scored.candidate.hash, scored.score.value, scored.score.reason
            );
        }
    }
    // Watch the consensus winner, then let two more agents back Bob's figure: their 4.0 of
    // weight outvotes the 3.0 behind Alice's, and the feed reports the change once.
    let mut watch = node.watch("city:paris", "population", "consensus").await?;
    let backers = [AgentKey::generate()?, AgentKey::generate()?];
    let votes = backers
        .iter()
        .map(|key| Vote::sign(key, bob_receipts[0].hash, 2.0, now_ms()))
        .collect();
    for result in node.cast_votes(votes).await? {
        result?;
    }
    let show = |hash: Option<Hash>| hash.map_or_else(|| "none".to_owned(), |h| h.to_string());
    let change = actix_rt::time::timeout(Duration::from_secs(10), watch.next()).await??;
    println!(
        "winner changed at offset {}: {} -> {}",
        change.offset,
        show(change.old),
        show(change.new)
    );
    // As of Carol's vote, the last record before theirs, the store still names Alice's figure.
    let mut then = Query::new("city:paris", "population", "consensus");
    then.as_of = Some(AsOf::Offset(last));
    println!(
        "as of offset {last}, consensus named {}",
        show(node.resolve(then).await?.winner)
    );
    // An audited resolution: its record (query, candidates and scores, winner, requester, the
    // offset it reflected) is committed before the answer and can be read back by id.
    let mut audited = Query::new("city:paris", "population", "consensus");
    audited.audit = true;
    audited.requester = Some("examples/embedded".into());
    let audit_id = node.resolve(audited).await?.audit_id.ok_or("no audit id")?;
    let record = node.audit(audit_id)?.ok_or("audit record not found")?;
    println!(
        "audit {audit_id}: {} candidates, winner {}, requested by {:?}, at offset {}",
        record.candidates.len(),
        show(record.winner),
        record.requester,
        record.offset
    );

    let (assertions, rejected) = node.counts()?;
    println!("stored: {assertions} assertions, {rejected} rejections");

    node.shutdown().await?;
    println!("shut down; run again to start from this state");
    Ok(())
}
