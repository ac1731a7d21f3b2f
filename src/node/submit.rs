//! Admission: validate and verify submissions (assertions, votes, trust changes), then append
//! them to the journal.
//!
//! Submissions go through a bounded queue to `verify_threads` threads. Each thread takes one
//! submission, gathers more that are already waiting (up to `verify_batch_records_max`
//! assertions, from any submitters), checks shape and limits, verifies every signature in one
//! batch-verification call, and queues each valid record to the journal without waiting. The
//! journal's acknowledgement then completes the submitter's future. So a submitter learns of
//! a bad signature or a broken limit at once, and the journal receives only verified records.
//!
//! A trust change is admitted only if its signer is one of the configured administrators
//! (`votes.admins`); this is the one place the list is consulted, so the journal holds only
//! authorized changes and applying them never depends on the configuration of the day.
//!
//! Within one submission, records reach the journal in order: an assertion and its child
//! submitted together are journaled parent first.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::{oneshot, watch};

use super::error::SubmitError;
use crate::protocol::{AgentId, Hash, Limits, LogRecord, now_ms, validate_records};
use crate::storage::journal::{Journal, JournalError};

/// A journal acknowledgement: the durable offset, or why the append failed.
pub(crate) type Ack = oneshot::Receiver<Result<u64, JournalError>>;
/// The verdict on one submitted assertion: queued to the journal (its hash and pending
/// acknowledgement), or refused.
pub(crate) type Admitted = Result<(Hash, Ack), SubmitError>;

/// One submission.
struct Job {
    records: Vec<LogRecord>,
    reply: oneshot::Sender<Vec<Admitted>>,
}

/// The verification threads and their queue.
pub(crate) struct Admission {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    depth: usize,
    /// Appends queued to the journal and not yet acknowledged.
    in_flight: Arc<watch::Sender<usize>>,
}

impl Admission {
    /// Starts `threads` verification threads feeding `journal`; trust changes are admitted
    /// only when signed by one of `admins`.
    pub(crate) fn start(
        journal: &Journal,
        limits: &Limits,
        admins: HashSet<AgentId>,
        threads: usize,
        depth: usize,
        batch_records_max: usize,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = crossbeam_channel::bounded(depth);
        let in_flight = Arc::new(watch::Sender::new(0usize));
        let admins = Arc::new(admins);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let worker = Worker {
                receiver: receiver.clone(),
                journal: journal.clone(),
                limits: limits.clone(),
                admins: Arc::clone(&admins),
                batch_records_max,
                in_flight: Arc::clone(&in_flight),
            };
            let handle = std::thread::Builder::new()
                .name(format!("stemedb-verify-{index}"))
                .spawn(move || worker.run())?;
            handles.push(handle);
        }
        Ok(Self {
            sender: Some(sender),
            threads: handles,
            depth,
            in_flight,
        })
    }

    /// Queues a submission; the returned receiver yields one verdict per record, in order.
    pub(crate) fn submit(
        &self,
        records: Vec<LogRecord>,
    ) -> Result<oneshot::Receiver<Vec<Admitted>>, SubmitError> {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        let (reply, receiver) = oneshot::channel();
        match sender.try_send(Job { records, reply }) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => Err(SubmitError::Busy {
                queue: "verification queue",
                depth: self.depth,
            }),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Closed),
        }
    }

    /// Stops accepting, lets the threads verify and queue what is waiting, and joins them.
    /// Returns a receiver of the number of appends still awaiting their acknowledgement.
    pub(crate) fn close(&mut self) -> watch::Receiver<usize> {
        self.sender.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a verification thread panicked");
            }
        }
        self.in_flight.subscribe()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.close();
    }
}

/// One append awaiting its acknowledgement; it leaves the count when dropped.
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn enter(count: &Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

struct Worker {
    receiver: Receiver<Job>,
    journal: Journal,
    limits: Limits,
    admins: Arc<HashSet<AgentId>>,
    batch_records_max: usize,
    in_flight: Arc<watch::Sender<usize>>,
}

impl Worker {
    fn run(self) {
        while let Ok(first) = self.receiver.recv() {
            let mut records = first.records.len();
            let mut jobs = vec![first];
            while records < self.batch_records_max {
                match self.receiver.try_recv() {
                    Ok(job) => {
                        records += job.records.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.admit(jobs, records);
        }
    }

    fn admit(&self, jobs: Vec<Job>, records: usize) {
        let mut all = Vec::with_capacity(records);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            replies.push((job.records.len(), job.reply));
            all.extend(job.records);
        }
        let verdicts = validate_records(&all, &self.limits, now_ms());
        let mut pairs = all.iter().zip(verdicts);
        for (count, reply) in replies {
            let admitted = pairs
                .by_ref()
                .take(count)
                .map(|(record, verdict)| {
                    self.authorize(record)?;
                    self.append(record, verdict?)
                })
                .collect();
            // A submitter that gave up has dropped its receiver; its records stay queued.
            let _ = reply.send(admitted);
        }
    }

    /// Refuses a trust change whose signer is not an administrator.
    fn authorize(&self, record: &LogRecord) -> Result<(), SubmitError> {
        match record {
            LogRecord::Trust(change) if !self.admins.contains(&change.admin) => {
                Err(SubmitError::NotAdmin { admin: change.admin })
            }
            _ => Ok(()),
        }
    }

    fn append(&self, record: &LogRecord, hash: Hash) -> Admitted {
        let (ack, receiver) = oneshot::channel();
        // Counted until the reply runs or is dropped unrun (say, the journal refused it).
        let guard = InFlight::enter(&self.in_flight);
        let reply = Box::new(move |outcome| {
            let _ = ack.send(outcome);
            drop(guard);
        });
        match self.journal.try_append(record.encode(), reply) {
            Ok(()) => Ok((hash, receiver)),
            Err(error) => Err(error.into()),
        }
    }
}
