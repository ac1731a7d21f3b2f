//! The kill harness of the crash tests: run the test binary's own ignored `child_entry` test as
//! a child process, read what it acknowledges line by line, and SIGKILL it once it has said
//! enough.
//!
//! A line cut short by the kill has no newline and never counts: the parent knows of an
//! acknowledgement only if the child printed it whole, after the child's own wait for it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The name of the ignored test that each crash test's child runs.
pub const CHILD_TEST: &str = "child_entry";

/// Parses one line of the child's output into an acknowledgement, if it is one.
pub type ParseLine<T> = Arc<dyn Fn(&str) -> Option<T> + Send + Sync>;

/// One child to run and kill.
pub struct Kill<T> {
    /// The child's environment (its data directory, seed, round).
    pub env: Vec<(&'static str, String)>,
    /// Parses an acknowledgement line.
    pub parse: ParseLine<T>,
    /// A line other than an acknowledgement that counts toward `lines` (say, the start line).
    pub counts_too: Option<&'static str>,
    /// Counted lines after which the child is killed (0: at once).
    pub lines: u64,
    /// Spins between the last counted line and the kill: spreads kills over the work in
    /// flight, by computing, not by waiting on anything.
    pub jitter: u64,
    /// Longest the parent waits for the counted lines.
    pub wait_max: Duration,
}

/// What a killed child printed: its acknowledgements, parsed, and its other whole lines.
pub struct Killed<T> {
    /// Every acknowledgement printed in full, in order.
    pub acks: Vec<T>,
    /// The other lines, for failure messages.
    pub other: Vec<String>,
}

/// Runs `CHILD_TEST` of the running test binary with `kill.env`, kills it with SIGKILL after
/// `kill.lines` counted lines and `kill.jitter` spins, and returns what it printed. Panics,
/// naming `ctx`, if the child stops printing before that, or ends by itself.
pub fn run_and_kill<T: Send + 'static>(kill: Kill<T>, ctx: &str) -> Killed<T> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .envs(kill.env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let (tick, ticks) = mpsc::channel();
    let (parse, counts_too) = (Arc::clone(&kill.parse), kill.counts_too);
    // Drains the child's output all along, so that printing never holds the child up.
    let reader = std::thread::spawn(move || {
        let (mut acks, mut other, mut line) = (Vec::new(), Vec::new(), String::new());
        while stdout.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            match parse(&line) {
                Some(ack) => {
                    acks.push(ack);
                    let _ = tick.send(());
                }
                None => {
                    if counts_too.is_some_and(|marker| line.contains(marker)) {
                        let _ = tick.send(());
                    }
                    other.push(line.clone());
                }
            }
            line.clear();
        }
        Killed { acks, other }
    });
    let deadline = Instant::now() + kill.wait_max;
    for seen in 0..kill.lines {
        if let Err(error) = ticks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let status = (child.kill(), child.wait());
            let printed = reader.join().map(|k| k.other).unwrap_or_default();
            panic!(
                "{ctx}: the child gave {seen} of {} lines ({error}; {status:?}); output: {printed:?}",
                kill.lines
            );
        }
    }
    for _ in 0..kill.jitter {
        std::hint::spin_loop();
    }
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    let killed = reader.join().expect("the reader thread");
    assert!(
        status.signal() == Some(libc::SIGKILL),
        "{ctx}: the child ended by itself ({status}): {:?}",
        killed.other
    );
    killed
}
