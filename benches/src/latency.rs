//! Delay samples and their percentiles.

use std::time::Instant;

/// The clock every load task shares: nanoseconds since one process-wide instant.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// Starts the clock.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the start.
    pub fn now_nanos(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Collected one-way delays in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Delays {
    micros: Vec<u32>,
}

impl Delays {
    /// Records one delay.
    pub fn record(&mut self, nanos: u64) {
        self.micros
            .push(u32::try_from(nanos / 1_000).unwrap_or(u32::MAX));
    }

    /// Adds another set.
    pub fn merge(&mut self, other: Delays) {
        self.micros.extend(other.micros);
    }

    /// How many were recorded.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether none were recorded.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The `q` quantile (0 to 1) in microseconds; 0 if empty.
    pub fn quantile(&mut self, q: f64) -> u32 {
        if self.micros.is_empty() {
            return 0;
        }
        self.micros.sort_unstable();
        let index = ((self.micros.len() - 1) as f64 * q).round() as usize;
        self.micros[index]
    }
}
