//! Per-principal request rate limit: one token bucket per authenticated
//! principal; a request finding its bucket empty is answered with
//! ThrottlingException (which AWS clients retry with backoff). Buckets are
//! keyed by principals that authenticated, so their number is bounded by
//! the engine's access keys, not by what clients send.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A rate: `per_second` requests on average, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` with a burst of one second's worth (at least 1).
    pub fn per_second(per_second: u32) -> RateLimit {
        RateLimit {
            per_second: f64::from(per_second),
            burst: per_second.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every principal seen.
#[derive(Debug)]
pub struct Throttle {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Throttle {
    pub fn new(limit: RateLimit) -> Throttle {
        Throttle {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `principal`'s bucket at time `now`; false when
    /// the bucket is empty (the request is throttled).
    pub fn admit(&self, principal: &str, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false; // a poisoned lock fails closed
        };
        let burst = f64::from(self.limit.burst);
        let b = match buckets.get_mut(principal) {
            Some(b) => b,
            None => buckets.entry(principal.to_string()).or_insert(Bucket {
                tokens: burst,
                last: now,
            }),
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.limit.per_second).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_per_principal() {
        let t = Throttle::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let t0 = Instant::now();
        assert!((0..3).all(|_| t.admit("user:a", t0)));
        assert!(!t.admit("user:a", t0));
        // Another principal has its own bucket.
        assert!(t.admit("user:b", t0));
        // Half a second refills one token at 2/s.
        let t1 = t0 + Duration::from_millis(500);
        assert!(t.admit("user:a", t1));
        assert!(!t.admit("user:a", t1));
        // Never more than the burst, however long idle.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| t.admit("user:a", t2)).count(), 3);
    }
}
