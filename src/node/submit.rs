//! Admission: validate and verify submissions (assertions, votes, trust changes), then append
//! them to the log (see [`crate::log`]).
//!
//! Submissions go through a bounded queue to `verify_threads` threads. Each thread takes one
//! submission, gathers more that are already waiting (up to `verify_batch_records_max`
//! assertions, from any submitters), checks shape and limits, verifies every signature in one
//! batch-verification call, and queues each valid record to the log without waiting. The
//! log's acknowledgement then completes the submitter's future. So a submitter learns of
//! a bad signature or a broken limit at once, and the log receives only verified records.
//!
//! A trust change is admitted only if its signer is one of the configured administrators
//! (`votes.admins`); this is the one place the list is consulted, so the log holds only
//! authorized changes and applying them never depends on the configuration of the day.
//!
//! Within one submission, records reach the log in order: an assertion and its child
//! submitted together are appended parent first.
//!
//! Both queues are bounded in entries and in bytes (see [`Budget`]). A submission reserves its
//! share of the verification budget before it is queued and returns it once its records are
//! dropped; its valid records then reserve the log's append budget together, so a submission
//! is appended whole or, over budget, not at all ([`SubmitError::Busy`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::{oneshot, watch};

use super::error::{Queue, SubmitError};
use crate::actors::ingest_check::Published;
use crate::budget::{Budget, QueueFull, QueueUnit, Reservation};
use crate::log::{Acknowledge, Append, AppendError, AppendReply, Outgoing, Reply};
use crate::protocol::{AgentId, Assertion, Hash, Limits, LogRecord, ObjectValue, now_ms, validate_records};
use crate::storage::journal::JournalError;

/// A durable acknowledgement: the record's position in the log, or why it was not stored.
pub(crate) type Ack = oneshot::Receiver<Result<u64, SubmitError>>;

/// The verdict on one submitted assertion: queued to the log (its hash and pending
/// acknowledgement), or refused.
pub(crate) type Admitted = Result<(Hash, Ack), SubmitError>;
/// The verdicts on one submission, in order, or why none of it was queued to the log.
pub(crate) type Verdicts = Result<Vec<Admitted>, SubmitError>;

/// Returns what `record` holds in memory while it waits for verification, in bytes: its struct
/// and the lengths of its variable-length fields (lengths, not capacities, so the figure does
/// not depend on how the caller allocated them).
pub(crate) fn record_memory_bytes(record: &LogRecord) -> usize {
    let heap = match record {
        LogRecord::Assertion(Assertion {
            subject,
            predicate,
            object,
            signatures,
            ..
        }) => {
            let object = match object {
                ObjectValue::Text(text) | ObjectValue::Ref(text) => text.len(),
                ObjectValue::Integer(_) | ObjectValue::Float(_) | ObjectValue::Bool(_) => 0,
            };
            subject.len() + predicate.len() + object + size_of_val(signatures.as_slice())
        }
        // Fixed-size records: the struct is all they hold.
        LogRecord::Vote(_) | LogRecord::Trust(_) => 0,
    };
    super::RECORD_STRUCT_BYTES + heap
}

/// One submission.
struct Job {
    records: Vec<LogRecord>,
    reply: oneshot::Sender<Verdicts>,
    /// The submission's share of the verification budget; returned once its records are
    /// dropped, before its reply is sent.
    share: Reservation,
    /// The submitter's span (say, its HTTP request's): the log appends run in it.
    span: tracing::Span,
}

/// The verification threads and their queue.
pub(crate) struct Admission {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    budget: Arc<Budget>,
    /// Appends queued to the log and not yet acknowledged.
    in_flight: Arc<watch::Sender<usize>>,
}

impl Admission {
    /// Starts `threads` verification threads feeding `log`; trust changes are admitted
    /// only when signed by one of `admins`; `budget` bounds what waits for them (and what
    /// they hold).
    ///
    /// With `published` (a log that others can write), each payload handed to the log is
    /// noted there, so that the ingest need not check it again (see `ingest_check`).
    pub(crate) fn start(
        log: &Arc<dyn Append>,
        limits: &Limits,
        admins: HashSet<AgentId>,
        threads: usize,
        budget: Arc<Budget>,
        batch_records_max: usize,
        published: Option<Arc<Published>>,
    ) -> std::io::Result<Self> {
        // Never full: a job is sent only with an entry of the budget, whose size this is.
        let (sender, receiver) = crossbeam_channel::bounded(budget.entries_max());
        let in_flight = Arc::new(watch::Sender::new(0usize));
        let admins = Arc::new(admins);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let worker = Worker {
                receiver: receiver.clone(),
                published: published.clone(),
                log: Arc::clone(log),
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
            budget,
            in_flight,
        })
    }

    /// Returns the verification queue's (entries, bytes) held and its bound in bytes.
    pub(crate) fn queue_use(&self) -> (usize, usize, usize) {
        let (entries, bytes) = self.budget.in_flight();
        (entries, bytes, self.budget.bytes_max())
    }

    /// Queues a submission without blocking; the returned receiver yields one verdict per
    /// record, in order. Refuses it when the verification queue is full in entries or in bytes.
    pub(crate) fn submit(&self, records: Vec<LogRecord>) -> Result<oneshot::Receiver<Verdicts>, SubmitError> {
        let sender = self.sender.as_ref().ok_or(SubmitError::Closed)?;
        let bytes = records
            .iter()
            .map(record_memory_bytes)
            .fold(0usize, usize::saturating_add);
        let share = self.budget.try_reserve(1, bytes).map_err(|full| {
            if !full.can_never_fit() {
                crate::telemetry::busy("verify");
            }
            SubmitError::refused(Queue::Verification, full)
        })?;
        let (reply, receiver) = oneshot::channel();
        match sender.try_send(Job {
            records,
            reply,
            share,
            span: tracing::Span::current(),
        }) {
            Ok(()) => Ok(receiver),
            // Unreachable while a reserved entry guarantees a slot; reported, never blocked on.
            Err(TrySendError::Full(_)) => Err(SubmitError::Busy {
                queue: Queue::Verification,
                full: QueueFull {
                    unit: QueueUnit::Entries,
                    requested: 1,
                    in_flight: self.budget.in_flight().0,
                    max: self.budget.entries_max(),
                },
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

/// What tells a submitter of its record's outcome: from any log ([`Reply`]), or straight from
/// the local journal ([`Acknowledge`], with no conversion box between them).
struct Acknowledgement {
    submitter: oneshot::Sender<Result<u64, SubmitError>>,
    /// Counts the append as in flight until the outcome is told (or the reply is dropped).
    _in_flight: InFlight,
}

impl Reply for Acknowledgement {
    fn reply(self: Box<Self>, outcome: Result<u64, AppendError>) {
        // A submitter that gave up has dropped its receiver; the outcome stands regardless.
        let _ = self.submitter.send(outcome.map_err(SubmitError::from));
    }
}

impl Acknowledge for Acknowledgement {
    fn acknowledge(self: Box<Self>, outcome: Result<u64, JournalError>) {
        self.reply(outcome.map_err(AppendError::from));
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

/// A record that passed verification, encoded for the log (with whether it depends on an
/// earlier record of its submission), or why it did not pass.
type Checked = Result<(Hash, Vec<u8>, bool), SubmitError>;

struct Worker {
    receiver: Receiver<Job>,
    /// The ingest's batches to check.
    /// Notes each payload handed to a log others can write, so that the ingest need not
    /// check it again.
    published: Option<Arc<Published>>,
    log: Arc<dyn Append>,
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
            replies.push((job.records.len(), job.reply, job.share, job.span));
            all.extend(job.records);
        }
        let verdicts = validate_records(&all, &self.limits, now_ms());
        let mut pairs = all.into_iter().zip(verdicts);
        for (count, reply, share, span) in replies {
            // Each record is dropped once encoded; the payloads take the log's budget
            // before the verification share is returned, so no byte goes uncounted.
            let mut earlier = HashSet::new();
            let checked: Vec<Checked> = pairs
                .by_ref()
                .take(count)
                .map(|(record, verdict)| {
                    self.authorize(&record)?;
                    let hash = verdict?;
                    let depends = match &record {
                        LogRecord::Assertion(assertion) => {
                            assertion.parent.is_some_and(|p| earlier.contains(&p))
                        }
                        LogRecord::Vote(vote) => earlier.contains(&vote.assertion),
                        LogRecord::Trust(_) => false,
                    };
                    earlier.insert(hash);
                    let payload = record.encode();
                    if let Some(published) = &self.published {
                        published.note(&payload);
                    }
                    Ok((hash, payload, depends))
                })
                .collect();
            let verdicts = span.in_scope(|| self.append(checked));
            drop(share);
            // A submitter that gave up has dropped its receiver; its records stay queued.
            let _ = reply.send(verdicts);
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

    /// Queues the valid records of one submission to the log, all or none.
    fn append(&self, checked: Vec<Checked>) -> Verdicts {
        let mut admitted = Vec::with_capacity(checked.len());
        let mut outgoing = Vec::with_capacity(checked.len());
        let max = self.log.record_bytes_max();
        for item in checked {
            admitted.push(item.and_then(|(hash, payload, after_previous)| {
                if payload.len() > max {
                    return Err(SubmitError::Log(AppendError::RecordTooLarge {
                        bytes: payload.len(),
                        max,
                    }));
                }
                let (ack, receiver) = oneshot::channel();
                // Counted until the reply runs or is dropped unrun (the log refused it).
                let reply: AppendReply = Box::new(Acknowledgement {
                    submitter: ack,
                    _in_flight: InFlight::enter(&self.in_flight),
                });
                outgoing.push(Outgoing {
                    id: hash,
                    payload,
                    after_previous,
                    reply,
                });
                Ok((hash, receiver))
            }));
        }
        if !outgoing.is_empty() {
            self.log.try_append(outgoing)?;
        }
        Ok(admitted)
    }
}
