//! A token bucket that caps how many datagrams one connection may send.

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
}
