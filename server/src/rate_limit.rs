//! Token buckets that cap how many datagrams and requests one connection may send.

use std::time::Instant;

/// Allows `rate` events per second on average and bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// After this many requests refused in a row, the connection is closed.
pub const REFUSALS_BEFORE_CLOSE: u32 = 100;

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Carry it out.
    Allow,
    /// Answer that the member must slow down, and do nothing else.
    Refuse,
    /// The member keeps flooding: answer, then close its connection.
    Close,
}

/// Rate-limits one connection's requests: over the limit a request is refused, and a member
/// that goes on regardless is disconnected.
#[derive(Debug, Clone)]
pub struct RequestLimiter {
    bucket: TokenBucket,
    refused_in_a_row: u32,
}

impl RequestLimiter {
    /// Allows `rate` requests per second on average and bursts of `burst`, from `now`.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(rate, burst, now),
            refused_in_a_row: 0,
        }
    }

    /// Judges a request arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.bucket.try_take(now) {
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row >= REFUSALS_BEFORE_CLOSE {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, 10, start);
        assert_eq!((0..20).filter(|_| bucket.try_take(start)).count(), 10);
        // 100 ms later, 10 more tokens.
        let later = start + Duration::from_millis(100);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 10);
        // A long pause refills only up to the burst.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..50).filter(|_| bucket.try_take(much_later)).count(), 10);
    }

    #[test]
    fn a_client_a_little_over_the_limit_is_slowed_but_a_flood_is_closed() {
        let start = Instant::now();
        // 25 requests a second against a limit of 20: some refused, never closed.
        let mut limiter = RequestLimiter::new(20, 40, start);
        let verdicts: Vec<Verdict> = (0..25 * 60)
            .map(|i| limiter.check(start + Duration::from_millis(40 * i)))
            .collect();
        let refused = verdicts.iter().filter(|v| **v == Verdict::Refuse).count();
        assert!(refused > 0, "over the limit is refused");
        assert!(!verdicts.contains(&Verdict::Close), "but never closed");
        // 5,000 a second: closed within the first tenth of a second after the burst.
        let mut limiter = RequestLimiter::new(20, 40, start);
        let closed_at = (0..1_000u64)
            .position(|i| limiter.check(start + Duration::from_micros(200 * i)) == Verdict::Close)
            .expect("a flood is closed");
        assert!(
            closed_at < 40 + REFUSALS_BEFORE_CLOSE as usize + 5,
            "{closed_at}"
        );
    }
}
