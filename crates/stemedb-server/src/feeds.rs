//! Slots of the winner feeds: at most `http.watchers_max` open at once, and at most
//! `http.watchers_per_key_max` per API key, so no one key can lock the others out of
//! `/v1/watch`. A slot is held by its feed's stream and freed when the stream is dropped: the
//! client left, the key was revoked, or the server stops.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::observe;
use crate::problem::{ApiError, RETRY_UNAVAILABLE_S};

/// The open feeds: in all, and per key.
#[derive(Default)]
pub(crate) struct FeedSlots {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_key: HashMap<String, usize>,
}

impl FeedSlots {
    /// Takes a slot for a feed of `key`, within `max` in all and `per_key_max` for the key.
    pub(crate) fn take(
        self: &Arc<Self>,
        key: &str,
        max: usize,
        per_key_max: usize,
    ) -> Result<FeedSlot, ApiError> {
        let mut open = self.open.lock();
        let of_key = open.by_key.get(key).copied().unwrap_or(0);
        if of_key >= per_key_max {
            observe::rejected("watchers");
            return Err(ApiError::too_many(
                "too-many-feeds",
                format!("this API key has {of_key} winner feeds open, its share (http.watchers_per_key_max)"),
                RETRY_UNAVAILABLE_S,
            )
            .limit(per_key_max as u64));
        }
        if open.total >= max {
            observe::rejected("watchers");
            return Err(ApiError::unavailable(
                format!("{max} winner feeds are open already (http.watchers_max)"),
                RETRY_UNAVAILABLE_S,
            )
            .limit(max as u64));
        }
        open.total += 1;
        *open.by_key.entry(key.to_owned()).or_insert(0) += 1;
        Ok(FeedSlot {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }
}

/// One open feed's slot; freed when dropped.
pub(crate) struct FeedSlot {
    slots: Arc<FeedSlots>,
    key: String,
}

impl FeedSlot {
    /// The key whose feed holds the slot.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_key.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_key.remove(&self.key);
            }
        }
    }
}
