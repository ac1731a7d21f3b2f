//! Encodings of the `learned` database's values: fixed-width big-endian integers and IEEE
//! doubles, checked on the way in.

use super::{LearnedMeta, LearnedSettings, PredicateDigest};
use crate::truth::{CLASSES_MAX, Params};
use crate::storage::state::StateError;

/// A predicate's classes and class weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    /// Distinct object values seen, counted up to `classes_max` (every use takes the lesser).
    pub classes: u32,
    /// Expected tasks per class (its first `classes_max`).
    pub weights: Vec<f64>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        if self.bytes.len() < N {
            return Err(StateError::corrupt(self.what, "truncated"));
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn f64(&mut self) -> Result<f64, StateError> {
        let v = f64::from_bits(self.u64()?);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(StateError::corrupt(self.what, "not a finite number"))
        }
    }

    fn end(self) -> Result<(), StateError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(StateError::corrupt(self.what, "trailing bytes"))
        }
    }
}

/// A unit's params; a matrix of zeros (a unit that answered only tasks of the one-coin form)
/// is written as none at all.
pub(super) fn encode_params(params: &Params) -> Vec<u8> {
    let empty = params.counts.iter().all(|v| *v == 0.0);
    let (k, counts): (u32, &[f64]) = if empty { (0, &[]) } else { (params.k, &params.counts) };
    let mut out = Vec::with_capacity(4 + 8 * (counts.len() + 2));
    out.extend_from_slice(&k.to_be_bytes());
    for v in counts.iter().chain([&params.open_right, &params.open_seen]) {
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    out
}

pub(super) fn decode_params(bytes: &[u8]) -> Result<Params, StateError> {
    let mut r = Reader {
        bytes,
        what: "learned unit",
    };
    let k = r.u32()?;
    if k > CLASSES_MAX {
        return Err(StateError::corrupt("learned unit", "too many classes"));
    }
    let counts = (0..k * k).map(|_| r.f64()).collect::<Result<Vec<_>, _>>()?;
    let (open_right, open_seen) = (r.f64()?, r.f64()?);
    r.end()?;
    Ok(Params {
        k,
        counts,
        open_right,
        open_seen,
    })
}

pub(super) fn encode_weights(weights: &Weights) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 * weights.weights.len());
    out.extend_from_slice(&weights.classes.to_be_bytes());
    out.extend_from_slice(&(weights.weights.len() as u32).to_be_bytes());
    for v in &weights.weights {
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    out
}

pub(super) fn decode_weights(bytes: &[u8]) -> Result<Weights, StateError> {
    let mut r = Reader {
        bytes,
        what: "learned weights",
    };
    let classes = r.u32()?;
    let n = r.u32()?;
    if n > CLASSES_MAX {
        return Err(StateError::corrupt("learned weights", "too many classes"));
    }
    let weights = (0..n).map(|_| r.f64()).collect::<Result<Vec<_>, _>>()?;
    r.end()?;
    Ok(Weights { classes, weights })
}

/// A task's running state: per candidate class, the log-score of its answers and its
/// posterior.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct TaskState {
    pub candidates: Vec<(u32, f64, f64)>,
}

pub(super) fn encode_task(task: &TaskState) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 20 * task.candidates.len());
    out.extend_from_slice(&(task.candidates.len() as u32).to_be_bytes());
    for (class, log, q) in &task.candidates {
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&log.to_bits().to_be_bytes());
        out.extend_from_slice(&q.to_bits().to_be_bytes());
    }
    out
}

pub(super) fn decode_task(bytes: &[u8]) -> Result<TaskState, StateError> {
    let mut r = Reader {
        bytes,
        what: "learned task",
    };
    let n = r.u32()?;
    if n as usize > bytes.len() / 20 {
        return Err(StateError::corrupt("learned task", "count beyond its bytes"));
    }
    let candidates = (0..n)
        .map(|_| Ok((r.u32()?, r.f64()?, r.f64()?)))
        .collect::<Result<Vec<_>, StateError>>()?;
    r.end()?;
    Ok(TaskState { candidates })
}

pub(super) fn encode_label(predicate: &PredicateDigest, class: u32) -> Vec<u8> {
    let mut out = predicate.to_vec();
    out.extend_from_slice(&class.to_be_bytes());
    out
}

pub(super) fn decode_label(bytes: &[u8]) -> Result<(PredicateDigest, u32), StateError> {
    let mut r = Reader {
        bytes,
        what: "learned label",
    };
    let predicate = r.take::<32>()?;
    let class = r.u32()?;
    r.end()?;
    Ok((predicate, class))
}

pub(super) fn encode_answer(offset: u64, class: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&offset.to_be_bytes());
    out[8..].copy_from_slice(&class.to_be_bytes());
    out
}

pub(super) fn decode_answer(bytes: &[u8]) -> Result<(u64, u32), StateError> {
    let mut r = Reader {
        bytes,
        what: "learned answer",
    };
    let out = (r.u64()?, r.u32()?);
    r.end()?;
    Ok(out)
}

pub(super) fn encode_meta(meta: &LearnedMeta) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, v) in [meta.cursor, meta.answers, meta.next_epoch, meta.epochs].iter().enumerate() {
        out[i * 8..(i + 1) * 8].copy_from_slice(&v.to_be_bytes());
    }
    out
}

pub(super) fn decode_meta(bytes: &[u8]) -> Result<LearnedMeta, StateError> {
    let mut r = Reader {
        bytes,
        what: "learned meta",
    };
    let meta = LearnedMeta {
        cursor: r.u64()?,
        answers: r.u64()?,
        next_epoch: r.u64()?,
        epochs: r.u64()?,
    };
    r.end()?;
    Ok(meta)
}

pub(super) fn encode_settings(s: &LearnedSettings) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&s.classes_max.to_be_bytes());
    for v in [s.skill_new, s.strength, s.admin_strength, s.epoch_growth] {
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    out.extend_from_slice(&s.epoch_answers_min.to_be_bytes());
    out.extend_from_slice(&s.rounds_max.to_be_bytes());
    out
}

pub(super) fn decode_settings(bytes: &[u8]) -> Result<LearnedSettings, StateError> {
    let mut r = Reader {
        bytes,
        what: "learned settings",
    };
    let classes_max = r.u32()?;
    let (skill_new, strength, admin_strength, epoch_growth) = (r.f64()?, r.f64()?, r.f64()?, r.f64()?);
    let epoch_answers_min = r.u64()?;
    let rounds_max = r.u32()?;
    r.end()?;
    let settings = LearnedSettings {
        classes_max,
        skill_new,
        strength,
        admin_strength,
        epoch_answers_min,
        epoch_growth,
        rounds_max,
    };
    settings.validate().map_err(|e| StateError::corrupt("learned settings", e))?;
    Ok(settings)
}
