//! `[http]`: the API server's bind address, limits and CORS.

use serde::{Deserialize, Serialize};

/// The HTTP API (`[http]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on (default `127.0.0.1:7410`: loopback only).
    pub bind: String,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// Most concurrent connections per worker (default 10,000).
    pub connections_max: usize,
    /// Largest request body, in bytes (default 1 MiB); larger is 413.
    pub body_bytes_max: usize,
    /// Most records in one batch request (default 1,000); more is 422.
    pub batch_records_max: usize,
    /// Most request-body bytes being handled at once, over all requests (default 64 MiB);
    /// past it requests are refused with 503 before their bodies are read.
    pub inflight_bytes_max: usize,
    /// Most request-body bytes one API key may have in flight (default 16 MiB, a quarter of
    /// the whole budget): no one key can take the budget from the others. Taken as at least
    /// `body_bytes_max` and at most `inflight_bytes_max`.
    pub inflight_bytes_per_key_max: usize,
    /// Longest a request body may take to arrive, in milliseconds (default 5,000); past it,
    /// 408. A body trickled in slowly holds its bytes of the budget only this long.
    pub body_timeout_ms: u64,
    /// Longest a request may take, in milliseconds (default 10,000); past it, 503.
    pub request_timeout_ms: u64,
    /// Largest answer of a list that can be long, in bytes (default 8 MiB): a page is cut to
    /// fit and says where the next one starts.
    pub response_bytes_max: usize,
    /// Most bytes of answers not yet sent, over all requests (default 64 MiB): past it, 503
    /// before an answer is sent. Answers under 64 KiB are not counted.
    pub outbound_bytes_max: usize,
    /// Most bytes of answers not yet sent to one API key (default 16 MiB, taken as at most
    /// `outbound_bytes_max`): a key that does not read what it asked for blocks only itself.
    pub outbound_bytes_per_key_max: usize,
    /// Longest an answer may take to send, in milliseconds (default 30,000): past it the
    /// connection closes, and its answer's bytes are freed.
    pub send_timeout_ms: u64,
    /// Longest `?wait=indexed` waits for the ingest, in milliseconds (default 5,000).
    pub wait_indexed_ms_max: u64,
    /// Requests per second each API key may make, sustained (default 5,000).
    pub rate_per_s: u32,
    /// Requests a key may make in a burst above its rate (default 10,000).
    pub rate_burst: u32,
    /// Requests per second each peer address may make without a valid API key, sustained
    /// (default 20): probes and mistakes pass, a flood of unauthenticated requests does not.
    pub unauthenticated_rate_per_s: u32,
    /// Requests a peer address may make without a valid key in a burst (default 100).
    pub unauthenticated_rate_burst: u32,
    /// Records (assertions, votes, trust changes) each key may submit per UTC day
    /// (0: no quota, the default). Counted in memory: a restart starts the day afresh.
    pub quota_records_per_day: u64,
    /// Origins allowed by CORS (`["*"]` for any); none by default.
    pub cors_origins: Vec<String>,
    /// Most winner-feed (SSE) streams open at once (default 1,024).
    pub watchers_max: usize,
    /// Most winner feeds one API key may have open at once (default 64): no one key can take
    /// every slot of `watchers_max` (taken as at most `watchers_max`).
    pub watchers_per_key_max: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:7410".to_owned(),
            workers: 0,
            connections_max: 10_000,
            body_bytes_max: 1 << 20,
            batch_records_max: 1000,
            inflight_bytes_max: 64 << 20,
            inflight_bytes_per_key_max: 16 << 20,
            body_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            response_bytes_max: 8 << 20,
            outbound_bytes_max: 64 << 20,
            outbound_bytes_per_key_max: 16 << 20,
            send_timeout_ms: 30_000,
            wait_indexed_ms_max: 5_000,
            rate_per_s: 5_000,
            rate_burst: 10_000,
            unauthenticated_rate_per_s: 20,
            unauthenticated_rate_burst: 100,
            quota_records_per_day: 0,
            cors_origins: Vec::new(),
            watchers_max: 1024,
            watchers_per_key_max: 64,
        }
    }
}

impl HttpConfig {
    /// Checks the fields; returns a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("http.bind = {:?}: not an address:port", self.bind));
        }
        let positive = [
            ("connections_max", self.connections_max as u64),
            ("body_bytes_max", self.body_bytes_max as u64),
            ("batch_records_max", self.batch_records_max as u64),
            ("inflight_bytes_max", self.inflight_bytes_max as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("rate_per_s", u64::from(self.rate_per_s)),
            ("rate_burst", u64::from(self.rate_burst)),
            ("watchers_max", self.watchers_max as u64),
            (
                "inflight_bytes_per_key_max",
                self.inflight_bytes_per_key_max as u64,
            ),
            ("body_timeout_ms", self.body_timeout_ms),
            ("response_bytes_max", self.response_bytes_max as u64),
            ("outbound_bytes_max", self.outbound_bytes_max as u64),
            (
                "outbound_bytes_per_key_max",
                self.outbound_bytes_per_key_max as u64,
            ),
            ("send_timeout_ms", self.send_timeout_ms),
            (
                "unauthenticated_rate_per_s",
                u64::from(self.unauthenticated_rate_per_s),
            ),
            (
                "unauthenticated_rate_burst",
                u64::from(self.unauthenticated_rate_burst),
            ),
            ("watchers_per_key_max", self.watchers_per_key_max as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("http.{name} must be positive"));
            }
        }
        if self.inflight_bytes_max < self.body_bytes_max {
            return Err("http.inflight_bytes_max must be at least http.body_bytes_max".to_owned());
        }
        if self.body_timeout_ms > self.request_timeout_ms {
            return Err("http.body_timeout_ms must be at most http.request_timeout_ms".to_owned());
        }
        if self.response_bytes_max > self.outbound_bytes_share() {
            return Err(
                "http.response_bytes_max must be at most http.outbound_bytes_per_key_max (and \
                 http.outbound_bytes_max): else a long page could never be sent"
                    .to_owned(),
            );
        }
        if self.wait_indexed_ms_max >= self.request_timeout_ms {
            return Err("http.wait_indexed_ms_max must be below http.request_timeout_ms".to_owned());
        }
        Ok(())
    }

    /// The body bytes one key may have in flight: `inflight_bytes_per_key_max`, within
    /// `body_bytes_max..=inflight_bytes_max`.
    pub fn inflight_bytes_share(&self) -> usize {
        self.inflight_bytes_per_key_max
            .max(self.body_bytes_max)
            .min(self.inflight_bytes_max)
    }

    /// The answer bytes one key may have unsent: `outbound_bytes_per_key_max`, at most
    /// `outbound_bytes_max`.
    pub fn outbound_bytes_share(&self) -> usize {
        self.outbound_bytes_per_key_max.min(self.outbound_bytes_max)
    }

    /// Worker threads: `workers`, or one per core.
    pub fn workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}
