//! Crash safety of the journal under SIGKILL: a child process (this test binary, re-executed
//! into the ignored `child_entry` test) appends from many threads and prints one line per
//! acknowledged append; the parent kills it with SIGKILL after a random number of
//! acknowledgements (zero included, so some kills land while the child starts or recovers) and
//! then proves, in process, that every acknowledged record reads back byte-exact at its offset,
//! that the whole log walks contiguously from offset 0 to the end with no corruption, and that
//! the reopened journal accepts and returns a new append.
//!
//! Rounds: `STEMEDB_CRASH_ROUNDS` (default 5). Seed: `STEMEDB_CRASH_SEED` (default: the
//! clock); it is printed, and every failure message repeats it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread::{self};
use std::time::{Duration, Instant};

use common::Rng;
use common::kill::{Kill, run_and_kill as run_and_kill_child};
use stemedb::storage::journal::{Journal, JournalConfig, ReadOutcome, format};
use tempfile::TempDir;

/// Environment variables that turn `child_entry` into the appending child.
const ENV_DIR: &str = "STEMEDB_CRASH_CHILD_DIR";
const ENV_SEED: &str = "STEMEDB_CRASH_CHILD_SEED";
const ENV_ROUND: &str = "STEMEDB_CRASH_CHILD_ROUND";
/// Appender threads in the child.
const THREADS: u16 = 8;
/// Payload header: len u16, thread u16, round u32, seq u32 (all little-endian).
const HEADER_BYTES: usize = 12;
/// Largest payload written.
const PAYLOAD_BYTES_MAX: usize = 2000;
/// Most acknowledgements the parent waits for before a kill.
const KILL_ACKS_MAX: u64 = 3000;
/// Rounds that share one journal directory before a fresh one starts (bounds its size).
const ROUNDS_PER_DIR: u32 = 5;
/// The thread id used for the parent's own append after each recovery.
const PARENT_THREAD: u16 = u16::MAX;
/// Longest the parent waits for the acknowledgements it picked.
const ACK_WAIT_MAX: Duration = Duration::from_secs(30);
/// The child stops on its own after this long, should the parent never kill it.
const CHILD_RUN_MAX: Duration = Duration::from_secs(60);

fn config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 * 1024,
        ..JournalConfig::default()
    }
}

fn identity(round: u32, thread: u16, seq: u32) -> u64 {
    (u64::from(round) << 48) ^ (u64::from(thread) << 32) ^ u64::from(seq)
}

/// The payload length of append `seq` of `thread` in `round`, derived from the seed.
fn payload_len(seed: u64, round: u32, thread: u16, seq: u32) -> usize {
    let span = (PAYLOAD_BYTES_MAX - HEADER_BYTES + 1) as u64;
    HEADER_BYTES + Rng::new(seed ^ Rng::new(identity(round, thread, seq)).next()).below(span) as usize
}

/// A self-describing payload: the header names it, and the rest follows from the header.
fn payload(round: u32, thread: u16, seq: u32, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    bytes.extend_from_slice(&u16::try_from(len).unwrap().to_le_bytes());
    bytes.extend_from_slice(&thread.to_le_bytes());
    bytes.extend_from_slice(&round.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    let rest = len.saturating_sub(bytes.len());
    bytes.extend(Rng::new(identity(round, thread, seq)).bytes(rest));
    bytes.truncate(len);
    bytes
}

/// Reads a payload's header and checks the whole payload against it; returns
/// (round, thread, seq), or `None` if the bytes are not a payload this test wrote.
fn identify(bytes: &[u8]) -> Option<(u32, u16, u32)> {
    let field = |at: usize, n: usize| bytes.get(at..at + n);
    let len = u16::from_le_bytes(field(0, 2)?.try_into().ok()?);
    let thread = u16::from_le_bytes(field(2, 2)?.try_into().ok()?);
    let round = u32::from_le_bytes(field(4, 4)?.try_into().ok()?);
    let seq = u32::from_le_bytes(field(8, 4)?.try_into().ok()?);
    (bytes == payload(round, thread, seq, usize::from(len)).as_slice()).then_some((round, thread, seq))
}

/// One acknowledged append, as printed by the child.
#[derive(Debug, Clone, Copy)]
struct Ack {
    offset: u64,
    round: u32,
    thread: u16,
    seq: u32,
    len: usize,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

/// Entry point of the child process; does nothing unless spawned by the crash test.
#[test]
#[ignore = "the crash test's child process; runs only when spawned with its environment"]
fn child_entry() {
    let (Ok(dir), Some(seed), Some(round)) = (std::env::var(ENV_DIR), env_u64(ENV_SEED), env_u64(ENV_ROUND))
    else {
        return;
    };
    let round = u32::try_from(round).unwrap();
    let journal = Journal::open(&dir, config()).unwrap();
    let deadline = Instant::now() + CHILD_RUN_MAX;
    let appenders: Vec<_> = (0..THREADS)
        .map(|thread| {
            let journal = journal.clone();
            thread::spawn(move || append_and_print(&journal, seed, round, thread, deadline))
        })
        .collect();
    for appender in appenders {
        appender.join().unwrap();
    }
}

/// Appends until `deadline` (or until stdout is gone), printing each acknowledgement.
fn append_and_print(journal: &Journal, seed: u64, round: u32, thread: u16, deadline: Instant) {
    let stdout = std::io::stdout();
    for seq in 0.. {
        if Instant::now() >= deadline {
            return;
        }
        let len = payload_len(seed, round, thread, seq);
        let offset = journal.append(payload(round, thread, seq, len)).unwrap();
        let mut out = stdout.lock();
        let printed = writeln!(out, "ack {offset} {thread} {seq}").and_then(|()| out.flush());
        if printed.is_err() {
            return;
        }
    }
}

/// Parses `ack <offset> <thread> <seq>`.
fn parse_ack(line: &str, seed: u64, round: u32) -> Option<Ack> {
    let mut words = line.strip_prefix("ack ")?.split_whitespace();
    let offset = words.next()?.parse().ok()?;
    let thread = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    let len = payload_len(seed, round, thread, seq);
    Some(Ack {
        offset,
        round,
        thread,
        seq,
        len,
    })
}

/// Runs one child on `dir`, kills it with SIGKILL after `kill_after` acknowledgements plus
/// `jitter` spins, and returns every acknowledgement it printed in full.
fn run_and_kill(dir: &Path, seed: u64, round: u32, kill_after: u64, jitter: u64, ctx: &str) -> Vec<Ack> {
    let kill = Kill {
        env: vec![
            (ENV_DIR, dir.display().to_string()),
            (ENV_SEED, seed.to_string()),
            (ENV_ROUND, round.to_string()),
        ],
        parse: Arc::new(move |line: &str| parse_ack(line, seed, round)),
        counts_too: None,
        lines: kill_after,
        jitter,
        wait_max: ACK_WAIT_MAX,
    };
    run_and_kill_child(kill, ctx).acks
}

/// What one recovery found.
#[derive(Debug, Default)]
struct Found {
    /// Records the child of this round wrote that are in the log.
    child_records: usize,
    /// Bytes recovery truncated past the last valid record (a torn tail or preallocated space).
    truncated_bytes: u64,
}

/// Reopens the journal in `dir` and checks everything `acked` there survived.
fn verify_recovery(dir: &Path, acked: &[Ack], round: u32, ctx: &str) -> Found {
    let journal = Journal::open(dir, config()).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    assert_eq!(
        journal.quarantined_count(),
        0,
        "{ctx}: SIGKILL cannot damage the middle of the log"
    );
    let mut reader = journal.reader();
    for ack in acked {
        let expected = payload(ack.round, ack.thread, ack.seq, ack.len);
        match reader.read(ack.offset) {
            Ok(ReadOutcome::Record { offset, payload, .. }) => {
                assert_eq!(offset, ack.offset, "{ctx}: {ack:?} read back at another offset");
                assert!(payload == expected, "{ctx}: {ack:?} read back different bytes");
            }
            other => panic!("{ctx}: acknowledged {ack:?} reads back as {other:?}"),
        }
    }
    let (end, per_writer) = walk_contiguously(&journal, ctx);
    assert_eq!(
        end,
        journal.durable_end(),
        "{ctx}: the walk stops short of the durable end"
    );
    let own = payload(round, PARENT_THREAD, 0, 777);
    let offset = journal
        .append(own.clone())
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery failed: {e}"));
    assert_eq!(
        offset, end,
        "{ctx}: an append after recovery lands at the end of the log"
    );
    match journal.reader().read(offset) {
        Ok(ReadOutcome::Record { payload, next, .. }) => {
            assert!(
                payload == own,
                "{ctx}: the append after recovery reads back different bytes"
            );
            // Its batch mark closes the log.
            assert_eq!(next + format::MARK_BYTES as u64, journal.durable_end(), "{ctx}");
        }
        other => panic!("{ctx}: the append after recovery reads back as {other:?}"),
    }
    Found {
        child_records: (0..THREADS)
            .map(|thread| per_writer.get(&(round, thread)).map_or(0, |&n| n as usize))
            .sum(),
        truncated_bytes: journal.recovered().truncated_bytes,
    }
}

/// Walks the log from offset 0 to the end: every record sits right after the previous one (or
/// after the one batch mark that closes the previous one's batch), is a payload this test wrote, and each writer's records appear in order with no gap
/// (a thread appends only after its previous append was durable). Returns the end offset and
/// the number of records of each (round, thread).
fn walk_contiguously(journal: &Journal, ctx: &str) -> (u64, HashMap<(u32, u16), u32>) {
    let mut reader = journal.reader();
    let mut next_seq: HashMap<(u32, u16), u32> = HashMap::new();
    let mut at = 0;
    loop {
        match reader.read(at) {
            Ok(ReadOutcome::Record {
                offset,
                payload,
                next,
            }) => {
                assert!(
                    offset == at || offset == at + format::MARK_BYTES as u64,
                    "{ctx}: the walk skipped more than a batch mark at {at} (to {offset})"
                );
                assert_eq!(
                    next,
                    offset + format::record_len(payload.len()) as u64,
                    "{ctx}: at {at}"
                );
                let Some((round, thread, seq)) = identify(&payload) else {
                    panic!("{ctx}: the record at {at} holds bytes no appender wrote");
                };
                let expected = next_seq.entry((round, thread)).or_insert(0);
                assert_eq!(
                    seq, *expected,
                    "{ctx}: round {round} thread {thread} out of order at {at}"
                );
                *expected += 1;
                at = next;
            }
            Ok(ReadOutcome::EndOfLog) => {
                // Past the last record, only the last batch's mark (none in an empty log).
                let end = journal.durable_end();
                let mark = if at == 0 { 0 } else { format::MARK_BYTES as u64 };
                assert_eq!(end, at + mark, "{ctx}: bytes after the last record at {at}");
                return (end, next_seq);
            }
            Ok(ReadOutcome::NotYetDurable) => panic!("{ctx}: nothing is in flight after reopening"),
            Err(e) => panic!("{ctx}: the walk failed at {at}: {e}"),
        }
    }
}

#[test]
fn acknowledged_appends_survive_sigkill_at_random_moments() {
    let seed = env_u64("STEMEDB_CRASH_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        u64::try_from(now.as_nanos() & u128::from(u64::MAX)).unwrap()
    });
    let rounds = u32::try_from(env_u64("STEMEDB_CRASH_ROUNDS").unwrap_or(5)).unwrap();
    eprintln!("journal crash test: seed {seed}, {rounds} rounds (rerun with STEMEDB_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let (mut dir, mut acked) = (TempDir::new().unwrap(), Vec::new());
    let (mut total_acks, mut unacked, mut truncated) = (0, 0, 0);
    for round in 0..rounds {
        if round > 0 && round % ROUNDS_PER_DIR == 0 {
            (dir, acked) = (TempDir::new().unwrap(), Vec::new());
        }
        // The second round on each directory, and one other in six, kill before the first
        // acknowledgement: during start-up, open or recovery of a journal with history.
        let kill_after = if round % ROUNDS_PER_DIR == 1 || rng.below(6) == 0 {
            0
        } else {
            1 + rng.below(KILL_ACKS_MAX)
        };
        let jitter = rng.below(200_000);
        let round_seed = Rng::new(seed ^ u64::from(round)).next();
        let ctx = format!("seed {seed} round {round} (kill after {kill_after} acks, {jitter} spins)");
        let acks = run_and_kill(dir.path(), round_seed, round, kill_after, jitter, &ctx);
        assert!(
            acks.len() as u64 >= kill_after,
            "{ctx}: fewer acks than were counted"
        );
        total_acks += acks.len();
        let acks_this_round = acks.len();
        acked.extend(acks);
        let found = verify_recovery(dir.path(), &acked, round, &ctx);
        // Durable but unacknowledged: the kill landed between the fdatasync and the printing.
        unacked += found.child_records - acks_this_round;
        truncated += found.truncated_bytes;
    }
    eprintln!(
        "journal crash test: {rounds} rounds, {total_acks} acknowledged appends verified, \
         {unacked} durable but unacknowledged, {truncated} bytes truncated by recovery, {:.1?}",
        started.elapsed()
    );
}
