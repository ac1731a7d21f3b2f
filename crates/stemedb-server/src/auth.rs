//! Who is calling: the `Authorization: Bearer <key>` of a request, checked against the key
//! store, then charged against the key's rate limit (a token bucket: `http.rate_per_s`,
//! `http.rate_burst`) and, for writes, its daily quota of records.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::Api;
use super::keys::{KeyInfo, Role};
use super::problem::ApiError;
use stemedb::protocol::{AgentId, now_ms};

const DAY_MS: u64 = 86_400_000;

/// The rate limiters and quota counters of the keys that made requests.
pub(crate) struct Meters {
    quota: Quota,
    records_per_day: u64,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    used: Mutex<HashMap<String, (u64, u64)>>,
    /// Requests without a valid key, by peer address.
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
}

/// Peer addresses the unauthenticated limiter tracks before it forgets those whose buckets
/// are full again: bounds its memory under a flood from many addresses, while a peer that is
/// still limited stays tracked.
const ANONYMOUS_PEERS_SWEEP: usize = 10_000;

impl Meters {
    pub(crate) fn new(config: &crate::HttpConfig) -> Self {
        let rate_per_s = config.rate_per_s;
        let burst = config.rate_burst;
        let records_per_day = config.quota_records_per_day;
        let anonymous =
            Quota::per_second(NonZeroU32::new(config.unauthenticated_rate_per_s).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(config.unauthenticated_rate_burst).unwrap_or(NonZeroU32::MIN));
        Self {
            anonymous: RateLimiter::keyed(anonymous),
            quota: Quota::per_second(NonZeroU32::new(rate_per_s).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)),
            records_per_day,
            limiters: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from key `id`'s bucket, or says how long until one is there.
    fn take(&self, id: &str) -> Result<(), ApiError> {
        let limiter = {
            let mut limiters = self.limiters.lock();
            match limiters.get(id) {
                Some(limiter) => limiter.clone(),
                // Allocates the key's id once, not on every request.
                None => limiters
                    .entry(id.to_owned())
                    .or_insert_with(|| Arc::new(RateLimiter::direct(self.quota)))
                    .clone(),
            }
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            crate::observe::rejected("rate_limited");
            ApiError::too_many(
                "rate-limited",
                format!(
                    "this API key's rate limit (a request every {:?}, bursts of {}) is spent",
                    self.quota.replenish_interval(),
                    self.quota.burst_size()
                ),
                wait.as_secs() + 1,
            )
        })
    }

    /// Takes one request from the bucket of `peer`, a request without a valid key (429 once
    /// spent). Without a peer address (not a TCP connection) there is nothing to key on.
    pub(crate) fn take_anonymous(&self, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(peer) = peer else { return Ok(()) };
        if self.anonymous.len() > ANONYMOUS_PEERS_SWEEP {
            self.anonymous.retain_recent();
        }
        self.anonymous.check_key(&peer).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            crate::observe::rejected("unauthenticated");
            ApiError::too_many(
                "rate-limited",
                "too many requests without a valid API key from this address \
                 (http.unauthenticated_rate_per_s)",
                wait.as_secs() + 1,
            )
        })
    }

    /// Charges `records` to key `id`'s quota for today (UTC), or refuses them all.
    fn charge(&self, id: &str, records: u64) -> Result<(), ApiError> {
        if self.records_per_day == 0 {
            return Ok(());
        }
        let now = now_ms();
        let day = now / DAY_MS;
        let mut used = self.used.lock();
        let entry = used.entry(id.to_owned()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1.saturating_add(records) > self.records_per_day {
            let to_midnight_s = ((day + 1) * DAY_MS - now).div_ceil(1000);
            crate::observe::rejected("quota");
            return Err(ApiError::too_many(
                "quota-exceeded",
                format!(
                    "this API key's quota of {} records per day is spent ({} used, {records} more asked)",
                    self.records_per_day, entry.1
                ),
                to_midnight_s,
            )
            .field("records")
            .limit(self.records_per_day));
        }
        entry.1 += records;
        Ok(())
    }

    /// Gives back `records` charged today that were not journaled after all.
    fn refund(&self, id: &str, records: u64) {
        if let Some(entry) = self.used.lock().get_mut(id)
            && entry.0 == now_ms() / DAY_MS
        {
            entry.1 = entry.1.saturating_sub(records);
        }
    }
}

/// The key a request came with, authenticated and charged one request of its rate.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key.
    pub key: KeyInfo,
}

impl Caller {
    /// Refuses (403) unless the key has `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.key.roles.contains(&role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "API key {} lacks the {role:?} role",
                self.key.id
            )))
        }
    }

    /// Refuses (403) unless the key may submit as every one of `agents`.
    pub fn require_agents<'a>(&self, agents: impl IntoIterator<Item = &'a AgentId>) -> Result<(), ApiError> {
        for agent in agents {
            if !self.key.agents.contains(agent) {
                return Err(ApiError::forbidden(format!(
                    "API key {} may not submit as agent {agent}: it is not one of the key's agents",
                    self.key.id
                ))
                .field("agent"));
            }
        }
        Ok(())
    }

    /// Charges `records` to the key's daily quota (429 once it is spent).
    pub fn charge(&self, api: &Api, records: u64) -> Result<(), ApiError> {
        api.meters.charge(&self.key.id, records)
    }

    /// Gives back `records` of the quota that were charged but refused.
    pub fn refund(&self, api: &Api, records: u64) {
        api.meters.refund(&self.key.id, records);
    }
}

/// Who a request comes from, as admission found it (see [`crate::admission`]).
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    /// A valid key, charged one request of its rate.
    Key(Caller),
    /// No `Authorization` header: the error a route that needs a key answers.
    Anonymous(ApiError),
    /// A malformed, unknown or revoked key, or one whose rate is spent: the error.
    Refused(ApiError),
}

/// Checks the request's key (and takes one request from its rate).
pub(crate) fn identify(api: &Api, req: &HttpRequest) -> Identity {
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        return Identity::Anonymous(ApiError::unauthorized(
            "an API key is required: send Authorization: Bearer <key>",
        ));
    };
    let Some(token) = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")) else {
        return Identity::Refused(ApiError::unauthorized(
            "the Authorization header must be Bearer <key>",
        ));
    };
    let key = match api.keys.authenticate(token.trim()) {
        Ok(authenticated) => authenticated.info,
        Err(reason) => return Identity::Refused(ApiError::unauthorized(reason)),
    };
    match api.meters.take(&key.id) {
        Ok(()) => Identity::Key(Caller { key }),
        Err(error) => Identity::Refused(error),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let identity = crate::admission::identity_of(req)
            .or_else(|| req.app_data::<web::Data<Api>>().map(|api| identify(api, req)));
        ready(match identity {
            Some(Identity::Key(caller)) => Ok(caller),
            Some(Identity::Anonymous(error) | Identity::Refused(error)) => Err(error),
            None => Err(ApiError::unavailable("the API is not configured", 5)),
        })
    }
}
