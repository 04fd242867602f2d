//! A sliding replay window over packet counters (in the manner of RFC 6479).
//!
//! Check a counter with [`ReplayWindow::check`] before the expensive decryption, and
//! [`ReplayWindow::commit`] it only once the datagram authenticated, so forgeries cannot move
//! the window.

/// Counters this far behind the newest one are still accepted once.
pub const WINDOW_BITS: u64 = 1024;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Which recent counters have been seen for one sender stream.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    newest: Option<u64>,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub fn new() -> Self {
        Self {
            newest: None,
            bits: [0; WORDS],
        }
    }

    /// Whether `counter` would be accepted: newer than anything seen, or inside the window
    /// and not seen yet.
    pub fn check(&self, counter: u64) -> bool {
        let Some(newest) = self.newest else {
            return true;
        };
        if counter > newest {
            return true;
        }
        let age = newest - counter;
        age < WINDOW_BITS && !self.is_set(counter)
    }

    /// Records `counter` as received. Returns false, changing nothing, if it is a replay.
    pub fn commit(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        match self.newest {
            Some(newest) if counter <= newest => {}
            Some(newest) => {
                let advance = counter - newest;
                if advance >= WINDOW_BITS {
                    self.bits = [0; WORDS];
                } else {
                    for step in newest + 1..=counter {
                        self.clear(step);
                    }
                }
                self.newest = Some(counter);
            }
            None => self.newest = Some(counter),
        }
        self.set(counter);
        true
    }

    /// The newest counter seen.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    fn position(counter: u64) -> (usize, u64) {
        let index = counter % WINDOW_BITS;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, mask) = Self::position(counter);
        self.bits[word] & mask != 0
    }

    fn set(&mut self, counter: u64) {
        let (word, mask) = Self::position(counter);
        self.bits[word] |= mask;
    }

    fn clear(&mut self, counter: u64) {
        let (word, mask) = Self::position(counter);
        self.bits[word] &= !mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_each_counter_once() {
        let mut window = ReplayWindow::new();
        assert!(window.commit(5));
        assert!(!window.commit(5));
        assert!(window.commit(3));
        assert!(!window.commit(3));
        assert!(window.commit(6));
        assert_eq!(window.newest(), Some(6));
    }

    #[test]
    fn rejects_counters_older_than_the_window() {
        let mut window = ReplayWindow::new();
        assert!(window.commit(WINDOW_BITS + 10));
        assert!(!window.check(10));
        assert!(window.check(11));
    }

    #[test]
    fn a_large_jump_forgets_the_old_window() {
        let mut window = ReplayWindow::new();
        assert!(window.commit(1));
        assert!(window.commit(1 + 3 * WINDOW_BITS));
        assert!(window.commit(1 + 2 * WINDOW_BITS + 5));
        assert!(!window.commit(1 + 2 * WINDOW_BITS + 5));
    }

    proptest! {
        #[test]
        fn matches_a_set_model(counters in proptest::collection::vec(0u64..3000, 0..400)) {
            let mut window = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut newest: Option<u64> = None;
            for counter in counters {
                let fresh = !seen.contains(&counter);
                let in_window = newest.is_none_or(|n| counter > n || n - counter < WINDOW_BITS);
                let accepted = window.commit(counter);
                prop_assert_eq!(accepted, fresh && in_window, "counter {}", counter);
                if accepted {
                    seen.insert(counter);
                    newest = Some(newest.map_or(counter, |n| n.max(counter)));
                }
            }
        }
    }
}
