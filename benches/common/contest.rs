//! The resolve benchmarks' contest: one (subject, predicate) with `CANDIDATES` competing
//! assertions and a live vote from each of `VOTERS` voters on every one, half the voters with a
//! configured trust factor, the others at `TRUST_DEFAULT`.

use std::time::{Duration, Instant};

use stemedb::Config;
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, Assertion, ObjectValue, Vote, now_ms};

pub const CANDIDATES: usize = 20;
pub const VOTERS: usize = 100;
pub const TRUST_DEFAULT: f32 = 0.5;
pub const SUBJECT: &str = "city/paris";
pub const PREDICATE: &str = "population";

/// The contest's records and the trust factors to configure.
pub struct Contest {
    pub claims: Vec<Assertion>,
    pub votes: Vec<Vote>,
    pub trust: Vec<(AgentKey, f32)>,
}

impl Contest {
    /// Signs the contest.
    pub fn new() -> Self {
        let now = now_ms();
        let claims: Vec<Assertion> = (0..CANDIDATES)
            .map(|i| {
                let object = ObjectValue::Integer(i as i64);
                let mut a = Assertion::new(SUBJECT, PREDICATE, object, 0.5, now + i as u64);
                a.sign(&AgentKey::from_secret_bytes(&[1 + i as u8; 32]));
                a
            })
            .collect();
        let voters: Vec<AgentKey> = (0..VOTERS)
            .map(|v| AgentKey::from_secret_bytes(&[100 + v as u8; 32]))
            .collect();
        let mut votes = Vec::new();
        for (c, claim) in claims.iter().enumerate() {
            for (v, voter) in voters.iter().enumerate() {
                let weight = 1.0 + ((c * 7 + v * 13) % 50) as f32;
                votes.push(Vote::sign(voter, claim.content_hash(), weight, now));
            }
        }
        let trust = voters
            .iter()
            .enumerate()
            .filter(|(v, _)| v % 2 == 0)
            .map(|(v, k)| (k.clone(), 0.1 + (v % 10) as f32 / 10.0))
            .collect();
        Self { claims, votes, trust }
    }

    /// The default config with the contest's trust factors.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.votes.trust_default = TRUST_DEFAULT;
        for (key, factor) in &self.trust {
            config.votes.trust.insert(key.agent_id().to_string(), *factor);
        }
        config
    }

    /// Submits the contest to `node` and waits until it is indexed.
    pub async fn load(&self, node: &Node) {
        let mut last = 0;
        for result in node.submit_many(self.claims.clone()).await.unwrap() {
            last = last.max(result.unwrap().offset);
        }
        for chunk in self.votes.chunks(1000) {
            for result in node.cast_votes(chunk.to_vec()).await.unwrap() {
                last = last.max(result.unwrap().offset);
            }
        }
        node.wait_indexed(last, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
    }
}
