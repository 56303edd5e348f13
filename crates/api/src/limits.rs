//! Call limits of the Verifier service: how many `Verify` calls run at once, and how many calls
//! one caller (one bearer token, or everyone together when the API has none) may make per
//! minute. A call over a limit fails at once with RESOURCE_EXHAUSTED, before the backend sees
//! it, so a client cannot queue up work the fleet would then have to do.
//!
//! Owns `CallLimits` (the configured values), `Caller` (whom a request is counted against, set
//! by `auth::BearerAuth`) and `Admission` (the per-caller token buckets and the `Verify`
//! semaphore). It does not own the limits on what a campaign may hold (bytes, rows, running
//! campaigns): the backend does, since only it knows what is running.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// What one client may make the service do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// `Verify` calls running at once (each one resolves and probes an address on the fleet).
    pub max_concurrent_verify: NonZeroUsize,
    /// Calls per minute per caller, sustained; a caller may spend a minute's worth at once.
    pub requests_per_minute: NonZeroU32,
}

impl Default for CallLimits {
    fn default() -> CallLimits {
        CallLimits {
            max_concurrent_verify: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
            requests_per_minute: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Whom a call is counted against: the token it authenticated with, or `ANONYMOUS` when the
/// API has no token. Only a hash of the token is kept, so nothing here can print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller(u64);

impl Caller {
    /// Every call of an API without a token.
    pub const ANONYMOUS: Caller = Caller(0);

    /// The caller that presented `token` (already checked by `BearerAuth`).
    pub fn for_token(token: &[u8]) -> Caller {
        let mut hasher = DefaultHasher::new();
        token.hash(&mut hasher);
        // 0 stays the anonymous caller's.
        Caller(hasher.finish().max(1))
    }
}

/// A token bucket: `tokens` left at `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limits in force, shared by every clone of the service.
#[derive(Debug)]
pub struct Admission {
    limits: CallLimits,
    verify: Arc<Semaphore>,
    /// One bucket per caller. Bounded: callers are the configured tokens (only calls that
    /// passed `BearerAuth` get here) or the one anonymous caller.
    buckets: Mutex<HashMap<Caller, Bucket>>,
}

impl Admission {
    pub fn new(limits: CallLimits) -> Admission {
        Admission {
            limits,
            verify: Arc::new(Semaphore::new(limits.max_concurrent_verify.get())),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one call of `caller` against its rate.
    pub(crate) fn admit(&self, caller: Caller) -> Result<(), Status> {
        if self.admit_at(caller, Instant::now()) {
            Ok(())
        } else {
            Err(self.rate_refusal())
        }
    }

    fn rate_refusal(&self) -> Status {
        Status::resource_exhausted(format!(
            "rate limit: at most {} calls per minute per token; retry in a few seconds",
            self.limits.requests_per_minute
        ))
    }

    fn admit_at(&self, caller: Caller, now: Instant) -> bool {
        let per_minute = f64::from(self.limits.requests_per_minute.get());
        // A panic while holding the lock cannot leave a bucket half-written (one assignment).
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(caller).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * per_minute / 60.0;
        bucket.tokens = (bucket.tokens + refilled).min(per_minute);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A slot for one `Verify` call, held until the call ends; none free is RESOURCE_EXHAUSTED
    /// at once (waiting would let clients pile up calls the fleet then has to serve).
    /// Counts a call of `caller` against its rate: `false` when it is over (the HTTP API's
    /// form of `admit`).
    pub fn try_admit(&self, caller: Caller) -> bool {
        self.admit_at(caller, Instant::now())
    }

    /// A `Verify` slot, or `None` when every one is taken (the HTTP API's form of
    /// `verify_slot`).
    pub fn try_verify_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.verify).try_acquire_owned().ok()
    }

    /// The limits enforced.
    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// Seconds until a caller over its rate has a call again (one call's worth of refill),
    /// for a `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        60u64.div_ceil(u64::from(self.limits.requests_per_minute.get()))
    }

    pub(crate) fn verify_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.verify).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "at most {} Verify calls run at once; retry when one has finished",
                self.limits.max_concurrent_verify
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admission(per_minute: u32, verify: usize) -> Admission {
        Admission::new(CallLimits {
            max_concurrent_verify: NonZeroUsize::new(verify).unwrap(),
            requests_per_minute: NonZeroU32::new(per_minute).unwrap(),
        })
    }

    #[test]
    fn a_caller_gets_a_minutes_worth_then_the_sustained_rate() {
        let admission = admission(6, 1);
        let start = Instant::now();
        let caller = Caller::for_token(b"t0k");
        for _ in 0..6 {
            assert!(admission.admit_at(caller, start));
        }
        assert!(!admission.admit_at(caller, start));
        // 6 per minute: one more every 10 s.
        assert!(!admission.admit_at(caller, start + Duration::from_secs(9)));
        assert!(admission.admit_at(caller, start + Duration::from_secs(10)));
        assert!(!admission.admit_at(caller, start + Duration::from_secs(10)));
        // Another caller has its own bucket.
        assert!(admission.admit_at(Caller::ANONYMOUS, start));
        let refusal = admission.rate_refusal();
        assert_eq!(refusal.code(), tonic::Code::ResourceExhausted);
        assert!(refusal.message().contains("6 calls per minute"));
    }

    #[test]
    fn verify_slots_are_given_back_when_the_call_ends() {
        let admission = admission(600, 2);
        let first = admission.verify_slot().unwrap();
        let _second = admission.verify_slot().unwrap();
        let refused = admission.verify_slot().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("at most 2 Verify"));
        drop(first);
        assert!(admission.verify_slot().is_ok());
    }

    #[test]
    fn callers_by_token_differ_and_are_never_anonymous() {
        assert_eq!(Caller::for_token(b"a"), Caller::for_token(b"a"));
        assert_ne!(Caller::for_token(b"a"), Caller::for_token(b"b"));
        assert_ne!(Caller::for_token(b""), Caller::ANONYMOUS);
    }
}
