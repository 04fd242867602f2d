//! Loss feedback between listeners and senders: what share of each speaker's packets this
//! listener lost, and what loss this sender should plan for given what its listeners report.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::jitter::JitterStats;

/// How long a listener's report counts.
pub const REPORT_LIFETIME: Duration = Duration::from_secs(5);

/// Turns each remote speaker's running jitter-buffer counters into the loss since the last
/// call: packets rebuilt from FEC or concealed, over all packets that were due.
#[derive(Debug, Default, Clone)]
pub struct LossMeter {
    last: BTreeMap<u16, (u64, u64)>,
}

impl LossMeter {
    /// A meter that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loss percent per speaker since the previous call. Speakers who sent nothing in between
    /// (silent, or gone) are left out: there is nothing to say about them.
    pub fn interval(&mut self, stats: &BTreeMap<u16, JitterStats>) -> Vec<(u16, u8)> {
        self.last.retain(|speaker, _| stats.contains_key(speaker));
        let mut losses = Vec::with_capacity(stats.len());
        for (speaker, stats) in stats {
            let lost = stats.recovered + stats.concealed;
            let due = stats.played + lost;
            let (last_lost, last_due) = self.last.insert(*speaker, (lost, due)).unwrap_or((0, 0));
            let (lost, due) = (lost.saturating_sub(last_lost), due.saturating_sub(last_due));
            if due == 0 {
                continue;
            }
            let percent = (lost * 100).div_ceil(due).min(100);
            losses.push((*speaker, u8::try_from(percent).unwrap_or(100)));
        }
        losses
    }
}

/// What loss a sender should plan for: the worst that any listener reported within
/// [`REPORT_LIFETIME`], so the listener on the worst link is the one protected.
#[derive(Debug, Default, Clone)]
pub struct ExpectedLoss {
    reports: BTreeMap<u16, (u8, Duration)>,
}

impl ExpectedLoss {
    /// No reports yet: plan for no loss.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listener `from` reported `loss_percent` about us at `now`.
    pub fn report(&mut self, from: u16, loss_percent: u8, now: Duration) {
        self.reports.insert(from, (loss_percent.min(100), now));
    }

    /// A listener left: forget its reports.
    pub fn forget(&mut self, listener: u16) {
        self.reports.remove(&listener);
    }

    /// The loss to plan for at `now`, percent.
    pub fn percent(&mut self, now: Duration) -> i32 {
        self.reports
            .retain(|_, (_, at)| now.saturating_sub(*at) <= REPORT_LIFETIME);
        self.reports
            .values()
            .map(|(loss, _)| i32::from(*loss))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(played: u64, recovered: u64, concealed: u64) -> JitterStats {
        JitterStats {
            played,
            recovered,
            concealed,
            ..JitterStats::default()
        }
    }

    #[test]
    fn meter_reports_loss_per_interval_and_skips_silent_speakers() {
        let mut meter = LossMeter::new();
        let mut all = BTreeMap::from([(1, stats(90, 6, 4)), (2, stats(100, 0, 0))]);
        assert_eq!(meter.interval(&all), [(1, 10), (2, 0)]);
        // Next second: speaker 1 lost 1 of 100, speaker 2 said nothing.
        all.insert(1, stats(189, 6, 5));
        assert_eq!(meter.interval(&all), [(1, 1)]);
        // Speaker 2 left and came back with fresh counters.
        all.remove(&2);
        assert_eq!(meter.interval(&all), []);
        all.insert(2, stats(50, 50, 0));
        assert_eq!(meter.interval(&all), [(2, 50)]);
    }

    #[test]
    fn expected_loss_is_the_worst_recent_report() {
        let mut expected = ExpectedLoss::new();
        let at = Duration::from_secs;
        assert_eq!(expected.percent(at(0)), 0);
        expected.report(8, 12, at(2));
        expected.report(7, 3, at(4));
        assert_eq!(expected.percent(at(4)), 12);
        assert_eq!(expected.percent(at(8)), 3, "listener 8's report expired");
        expected.forget(7);
        assert_eq!(expected.percent(at(8)), 0);
        expected.report(9, 250, at(8));
        assert_eq!(expected.percent(at(8)), 100, "capped");
    }
}
