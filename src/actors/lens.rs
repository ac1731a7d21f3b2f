//! [`LensActor`]: resolutions run on a pool of these, each on a thread of its own (an actix
//! `SyncArbiter`), so that a slow lens never blocks ingestion or the host's thread.

use std::sync::Arc;

use actix::prelude::*;

use crate::lens::{Lens, Query, Resolution, ResolveError, TrustBook, resolve};
use crate::storage::state::Snapshot;

/// Resolve `query` with `lens` on `snapshot`.
pub struct Resolve {
    /// The snapshot to read: taken by the caller, so the resolution reflects the state at the
    /// call.
    pub snapshot: Snapshot,
    /// The query.
    pub query: Query,
    /// The lens it names.
    pub lens: Arc<dyn Lens>,
    /// The configured trust.
    pub trust: Arc<TrustBook>,
}

impl Message for Resolve {
    type Result = Result<Resolution, ResolveError>;
}

/// A resolver thread; stateless.
#[derive(Debug, Default)]
pub struct LensActor;

impl Actor for LensActor {
    type Context = SyncContext<Self>;
}

impl Handler<Resolve> for LensActor {
    type Result = Result<Resolution, ResolveError>;

    fn handle(&mut self, message: Resolve, _ctx: &mut Self::Context) -> Self::Result {
        let Resolve {
            snapshot,
            query,
            lens,
            trust,
        } = message;
        // A lens is the host's code: its panic fails this resolution, not the pool thread.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            resolve(&snapshot, &query, lens.as_ref(), &trust)
        }))
        .unwrap_or_else(|_| {
            Err(ResolveError::Lens {
                lens: query.lens.clone(),
                reason: "the lens panicked".to_owned(),
            })
        })
    }
}
