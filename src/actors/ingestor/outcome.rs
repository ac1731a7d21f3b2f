//! The metrics of one committed ingest batch.

use crate::storage::state::ApplyOutcome;
use crate::telemetry::catalog;

/// Counts what one committed batch did.
pub(super) fn record_outcome(outcome: &ApplyOutcome) {
    let records = outcome.applied
        + outcome.duplicates
        + outcome.votes_counted
        + outcome.votes_ignored
        + outcome.trust_applied
        + outcome.trust_ignored
        + outcome.rejected.len();
    metrics::counter!(catalog::INGEST_RECORDS).increment(records as u64);
    metrics::counter!(catalog::INGEST_APPLIED).increment(outcome.applied as u64);
    metrics::counter!(catalog::INGEST_DUPLICATES).increment(outcome.duplicates as u64);
    metrics::counter!(catalog::VOTES_APPLIED).increment(outcome.votes_counted as u64);
    metrics::counter!(catalog::VOTES_REPLACED).increment(outcome.votes_replaced as u64);
    metrics::counter!(catalog::VOTES_IGNORED).increment(outcome.votes_ignored as u64);
    metrics::counter!(catalog::TRUST_APPLIED).increment(outcome.trust_applied as u64);
    metrics::counter!(catalog::TRUST_IGNORED).increment(outcome.trust_ignored as u64);
    for rejection in &outcome.rejected {
        tracing::warn!(offset = rejection.offset, reason = %rejection.reason, "record rejected");
        metrics::counter!(catalog::INGEST_REJECTED, "reason" => rejection.reason.code()).increment(1);
    }
}
