//! The HTTP benchmark's load generator, its requests and answer checks, and what its cells
//! measured. Keep-alive HTTP/1.1 connections over loopback, each driven by one task, all on one
//! client thread of their own (a current-thread tokio runtime), so the client's CPU can be told
//! apart from the server's. A task writes one pre-built request (request line, headers and
//! body, made before the clock starts), reads its whole answer (status line, headers, a
//! `Content-Length` body), then sends the next: one request in flight per connection, no
//! pipelining.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::spawn;

/// Retries of one request answered 503 or 429 before the client gives up, and the pause
/// before each (the embedded submitters' `Busy` backoff; `Retry-After` is in whole seconds).
const RETRIES_MAX: u64 = 10_000;
const RETRY_BACKOFF: Duration = Duration::from_millis(1);

/// What the connections of one cell did.
pub struct Load {
    /// Request latencies in nanoseconds (write of the request to the end of the answer).
    pub samples: Vec<u64>,
    /// When the first request was written (every connection was open before).
    pub started: Instant,
    /// When the last answer was read.
    pub finished: Instant,
    /// CPU time of the client thread from `started` to `finished`.
    pub client_cpu: Duration,
    /// Requests answered 503 or 429 and sent again.
    pub retries: u64,
    /// Bytes of answer bodies.
    pub body_bytes: u64,
    /// The greatest `"offset":` number in any answer (a receipt's journal offset).
    pub offset_max: u64,
}

/// What one cell of the HTTP benchmark measured (an HTTP peer's, or an embedded one's).
pub struct Cell {
    /// Assertions stored or resolutions answered.
    pub items: usize,
    pub requests: usize,
    /// Request (or call) latencies in nanoseconds, sorted.
    pub samples: Vec<u64>,
    /// Clock start to the last answer, and to everything indexed (the same for resolves).
    pub answered: Duration,
    pub elapsed: Duration,
    /// Process CPU over the cell (client included), and the client thread's.
    pub cpu: Duration,
    pub client_cpu: Option<Duration>,
    pub retries: u64,
    pub body_bytes: u64,
}

impl Cell {
    pub fn from_load(load: Load, items: usize, elapsed: Duration, cpu: Duration) -> Self {
        let mut samples = load.samples;
        samples.sort_unstable();
        Self {
            items,
            requests: samples.len(),
            samples,
            answered: load.finished - load.started,
            elapsed,
            cpu,
            client_cpu: Some(load.client_cpu),
            retries: load.retries,
            body_bytes: load.body_bytes,
        }
    }

    /// A cell of the embedded peer: one sample per item, no client.
    pub fn embedded(mut samples: Vec<u64>, answered: Duration, elapsed: Duration, cpu: Duration) -> Self {
        samples.sort_unstable();
        let (items, requests) = (samples.len(), samples.len());
        let (client_cpu, retries, body_bytes) = (None, 0, 0);
        Self {
            items,
            requests,
            samples,
            answered,
            elapsed,
            cpu,
            client_cpu,
            retries,
            body_bytes,
        }
    }

    pub fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    pub fn us(&self, pct: usize) -> f64 {
        let rank = (self.samples.len() * pct).div_ceil(100).max(1);
        self.samples.get(rank - 1).map_or(0.0, |&ns| ns as f64 / 1e3)
    }
}

/// Prints one row per cell, named by `names`.
pub fn print_table(names: &[String], rows: &[Cell]) {
    println!(
        "row (median cell by rate)                  N   items/s    req/s  p50 us  p99 us  cpu%  cpu us  client  \
         body B retries\n{:>101}\n{}",
        "/item  us/req",
        "-".repeat(117)
    );
    for (name, cell) in names.iter().zip(rows) {
        let req_rate = cell.requests as f64 / cell.answered.as_secs_f64();
        let cpu_pct = 100.0 * cell.cpu.as_secs_f64() / cell.elapsed.as_secs_f64();
        let cpu_us = cell.cpu.as_secs_f64() * 1e6 / cell.items as f64;
        let per_request = |total: f64| format!("{:.1}", total / cell.requests as f64);
        let client = cell.client_cpu.map(|c| per_request(c.as_secs_f64() * 1e6));
        let body = cell
            .client_cpu
            .map(|_| (cell.body_bytes / cell.requests as u64).to_string());
        let (client, body) = (client.unwrap_or("-".into()), body.unwrap_or("-".into()));
        println!(
            "{name:<36} {:>7} {:>9.0} {req_rate:>8.0} {:>7.0} {:>7.0} {cpu_pct:>5.0} {cpu_us:>7.1} {client:>7} \
             {body:>7} {:>7}",
            cell.items,
            cell.rate(),
            cell.us(50),
            cell.us(99),
            cell.retries
        );
    }
}

/// CPU time of the calling thread so far: `se.sum_exec_runtime` of `/proc/thread-self/sched`
/// (nanoseconds, where the kernel has it), else `/proc/thread-self/stat` (10 ms ticks).
fn thread_cpu() -> Duration {
    let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
    let runtime = sched
        .lines()
        .find_map(|line| line.strip_prefix("se.sum_exec_runtime"));
    let ms = runtime.and_then(|r| r.trim_start_matches([' ', ':']).trim().parse::<f64>().ok());
    if let Some(ms) = ms {
        return Duration::from_secs_f64(ms / 1e3);
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("read /proc/thread-self/stat");
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11..13]
        .iter()
        .map(|t| t.parse::<u64>().expect("ticks"))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Checks a 200 answer's body: `None` refuses it (the client panics), `Some(offset)` accepts
/// it with the greatest journal offset it acknowledges (0 for none).
pub type Check = fn(&[u8]) -> Option<u64>;

/// Sends each share of requests on a connection of its own to `addr`, from a new client
/// thread; `check` must accept every 200 answer (a request answered otherwise, but for 503 and
/// 429, panics the client). Resolves once every request is answered.
pub fn run(addr: SocketAddr, shares: Vec<Vec<Vec<u8>>>, check: Check) -> oneshot::Receiver<Load> {
    let (done, load) = oneshot::channel();
    let client = move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let load = runtime
            .expect("client runtime")
            .block_on(drive(addr, shares, check));
        let _ = done.send(load);
    };
    drop(spawn("http-client".into(), client));
    load
}

/// A POST of the JSON `body` to `path` with the API key `token`.
pub fn post(path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// A GET of `path` (with its query) with the API key `token`.
pub fn get(path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes()
}

/// Accepts a single receipt; returns its offset.
pub fn check_receipt(body: &[u8]) -> Option<u64> {
    body.starts_with(b"{\"hash\":\"").then(|| offset_max(body))
}

/// Accepts a batch answer with nothing refused; returns its greatest offset.
pub fn check_batch(body: &[u8]) -> Option<u64> {
    let head = &body[..body.len().min(40)];
    let refused_none = head.windows(12).any(|w| w == b"\"refused\":0,");
    refused_none.then(|| offset_max(body))
}

/// Accepts a resolution naming a winner.
pub fn check_resolution(body: &[u8]) -> Option<u64> {
    body.starts_with(b"{\"winner\":\"").then_some(0)
}

/// What one connection's task did.
#[derive(Default)]
struct Done {
    samples: Vec<u64>,
    retries: u64,
    body_bytes: u64,
    offset_max: u64,
}

async fn drive(addr: SocketAddr, shares: Vec<Vec<Vec<u8>>>, check: Check) -> Load {
    let mut streams = Vec::with_capacity(shares.len());
    for _ in &shares {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        streams.push(stream);
    }
    let (started, cpu) = (Instant::now(), thread_cpu());
    let tasks: Vec<_> = streams
        .into_iter()
        .zip(shares)
        .map(|(stream, share)| tokio::spawn(connection(stream, share, check)))
        .collect();
    let mut load = Load {
        samples: Vec::new(),
        started,
        finished: started,
        client_cpu: Duration::ZERO,
        retries: 0,
        body_bytes: 0,
        offset_max: 0,
    };
    for task in tasks {
        let done = task.await.expect("a connection task panicked");
        load.samples.extend(done.samples);
        load.retries += done.retries;
        load.body_bytes += done.body_bytes;
        load.offset_max = load.offset_max.max(done.offset_max);
    }
    (load.finished, load.client_cpu) = (Instant::now(), thread_cpu() - cpu);
    load
}

async fn connection(mut stream: TcpStream, share: Vec<Vec<u8>>, check: Check) -> Done {
    let mut done = Done {
        samples: Vec::with_capacity(share.len()),
        ..Done::default()
    };
    let mut buf = Vec::with_capacity(16 << 10);
    for request in share {
        let start = Instant::now();
        let mut retries = 0;
        let body = loop {
            stream.write_all(&request).await.expect("write a request");
            let (status, body) = exchange(&mut stream, &mut buf).await;
            match status {
                200 => break body,
                429 | 503 if retries < RETRIES_MAX => {
                    retries += 1;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                _ => panic!(
                    "answered {status} after {retries} retries: {}",
                    String::from_utf8_lossy(&buf[body])
                ),
            }
        };
        done.samples.push(start.elapsed().as_nanos() as u64);
        let body = &buf[body];
        let offset = check(body);
        let offset = offset.unwrap_or_else(|| panic!("unexpected answer: {}", String::from_utf8_lossy(body)));
        done.retries += retries;
        done.body_bytes += body.len() as u64;
        done.offset_max = done.offset_max.max(offset);
    }
    done
}

/// Reads one whole answer into `buf`; returns its status and where its body lies in `buf`.
async fn exchange(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, std::ops::Range<usize>) {
    buf.clear();
    let head = loop {
        read_more(stream, buf).await;
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = std::str::from_utf8(&buf[..head]).expect("an ASCII head");
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let length = text
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse::<usize>().expect("a length"))
        .expect("answers have a Content-Length");
    while buf.len() < head + length {
        read_more(stream, buf).await;
    }
    (status, head..head + length)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    buf.reserve(8 << 10);
    let read = stream.read_buf(buf).await.expect("read an answer");
    assert!(read > 0, "the server closed the connection");
}

/// The greatest number following `"offset":` in `body`, or 0.
pub fn offset_max(body: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"offset\":";
    let mut max = 0;
    let mut at = 0;
    while let Some(quote) = body[at..].iter().position(|&b| b == b'"') {
        at += quote + 1;
        if body[at - 1..].starts_with(KEY) {
            at += KEY.len() - 1;
            let digits = body[at..].iter().take_while(|b| b.is_ascii_digit());
            max = max.max(digits.fold(0, |n, d| n * 10 + u64::from(d - b'0')));
        }
    }
    max
}
