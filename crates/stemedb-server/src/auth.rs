//! Who is calling: the `Authorization: Bearer <key>` of a request, checked against the key
//! store, then charged against the key's rate limit (a token bucket: `http.rate_per_s`,
//! `http.rate_burst`) and, for writes, its daily quota of records.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
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
}

impl Meters {
    pub(crate) fn new(rate_per_s: u32, burst: u32, records_per_day: u64) -> Self {
        Self {
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

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let api = req
        .app_data::<web::Data<Api>>()
        .ok_or_else(|| ApiError::unavailable("the API is not configured", 5))?;
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an API key is required: send Authorization: Bearer <key>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be Bearer <key>"))?;
    let key = api
        .keys
        .authenticate(token.trim())
        .map_err(ApiError::unauthorized)?
        .info;
    api.meters.take(&key.id)?;
    Ok(Caller { key })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}
