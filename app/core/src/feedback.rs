//! Receiver reports in a call: once a second we tell the channel how much of each speaker we
//! lost, and we tune our own encoder from what the others report about us.

use std::time::{Duration, Instant};

use sotto_media::engine::Meters;
use sotto_media::loss::{ExpectedLoss, LossMeter};
use sotto_net::proto::feedback::{ReceiverReport, SenderLoss};

/// How often we report.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Both directions of loss feedback for one call.
pub(crate) struct Feedback {
    meter: LossMeter,
    expected: ExpectedLoss,
    own_slot: u16,
    started: Instant,
    last_report: Instant,
    applied: i32,
}

impl Feedback {
    /// Feedback for a call where we send with `own_slot`.
    pub(crate) fn new(own_slot: u16) -> Self {
        let now = Instant::now();
        Self {
            meter: LossMeter::new(),
            expected: ExpectedLoss::new(),
            own_slot,
            started: now,
            last_report: now,
            applied: 0,
        }
    }

    /// We rejoined and send with a new slot: reports about the old one no longer apply.
    pub(crate) fn set_own_slot(&mut self, slot: u16) {
        self.own_slot = slot;
        self.expected = ExpectedLoss::new();
    }

    /// A listener left the channel.
    pub(crate) fn forget(&mut self, listener: u16) {
        self.expected.forget(listener);
    }

    /// Our report, when one is due and we heard anyone since the last.
    pub(crate) fn due_report(&mut self, meters: &Meters) -> Option<Vec<u8>> {
        if self.last_report.elapsed() < REPORT_INTERVAL {
            return None;
        }
        self.last_report = Instant::now();
        let losses: Vec<SenderLoss> = self
            .meter
            .interval(&meters.jitter)
            .into_iter()
            .map(|(slot, loss_percent)| SenderLoss { slot, loss_percent })
            .collect();
        (!losses.is_empty()).then(|| ReceiverReport { losses }.encode())
    }

    /// A report from listener `from`. Malformed reports are ignored: they come from a member
    /// of the channel, but a bad one must not stop the call.
    pub(crate) fn on_report(&mut self, from: u16, payload: &[u8]) {
        if let Ok(report) = ReceiverReport::decode(payload)
            && let Some(loss) = report.loss_for(self.own_slot)
        {
            self.expected.report(from, loss, self.started.elapsed());
        }
    }

    /// The loss our encoder should plan for, when it differs from what it was last told.
    pub(crate) fn changed_expectation(&mut self) -> Option<i32> {
        let percent = self.expected.percent(self.started.elapsed());
        (percent != self.applied).then(|| {
            self.applied = percent;
            percent
        })
    }
}
