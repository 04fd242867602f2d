//! Roster changes waiting to be written to one member, coalesced per slot.
//!
//! Other members' joins and leaves are recorded here without ever blocking or failing: each slot
//! keeps only its latest state, so however fast the room churns and however slowly the member
//! reads, what waits is bounded by the room's size, and the member is never disconnected for it.
//! The member's own connection task takes the changes as one `RosterChanged` frame when its
//! control stream is free.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sotto_net::proto::control::{ControlFrame, MAX_PARTICIPANTS, Participant};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Pending {
    /// The room the member is in; changes of any other room are stale and dropped.
    channel_id: Option<u32>,
    /// Slot → who holds it now (none: it emptied).
    changes: BTreeMap<u16, Option<Arc<Participant>>>,
}

/// One member's coalesced roster changes.
#[derive(Debug, Default)]
pub struct RosterOutbox {
    pending: Mutex<Pending>,
    ready: Notify,
}

impl RosterOutbox {
    /// An empty outbox for a member in no room.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The member entered `channel_id` (or left, with none) and was sent the whole roster:
    /// earlier changes are moot.
    pub fn reset(&self, channel_id: Option<u32>) {
        let mut pending = self.lock();
        pending.channel_id = channel_id;
        pending.changes.clear();
    }

    /// The member left `channel_id`; if that is still the room it is in, nothing more is sent.
    pub fn leave(&self, channel_id: u32) {
        let mut pending = self.lock();
        if pending.channel_id == Some(channel_id) {
            pending.channel_id = None;
            pending.changes.clear();
        }
    }

    /// Someone took `slot` of `channel_id` (or it emptied, with none).
    pub fn record(&self, channel_id: u32, slot: u16, holder: Option<Arc<Participant>>) {
        let mut pending = self.lock();
        if pending.channel_id != Some(channel_id) {
            return;
        }
        pending.changes.insert(slot, holder);
        drop(pending);
        self.ready.notify_one();
    }

    /// Waits until changes may be waiting.
    pub async fn changed(&self) {
        self.ready.notified().await;
    }

    /// Takes what is waiting as one frame, if anything is.
    pub fn take(&self) -> Option<ControlFrame> {
        let mut pending = self.lock();
        let channel_id = pending.channel_id?;
        if pending.changes.is_empty() {
            return None;
        }
        let changes = std::mem::take(&mut pending.changes);
        drop(pending);
        let (mut joined, mut left) = (Vec::new(), Vec::new());
        for (slot, holder) in changes {
            match holder {
                Some(participant) => joined.push(Participant::clone(&participant)),
                None => left.push(slot),
            }
        }
        debug_assert!(joined.len() <= MAX_PARTICIPANTS && left.len() <= MAX_PARTICIPANTS);
        Some(ControlFrame::RosterChanged {
            channel_id,
            joined,
            left,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(slot: u16) -> Arc<Participant> {
        Arc::new(Participant {
            slot,
            member_id: u32::from(slot),
            public_key: [0; 32],
            display_name: format!("p{slot}"),
            session_salt: [0; 16],
        })
    }

    fn slots(frame: Option<ControlFrame>) -> (Vec<u16>, Vec<u16>) {
        match frame {
            Some(ControlFrame::RosterChanged { joined, left, .. }) => {
                (joined.iter().map(|p| p.slot).collect(), left)
            }
            other => panic!("expected RosterChanged, got {other:?}"),
        }
    }

    #[test]
    fn churn_coalesces_to_the_latest_state_of_each_slot() {
        let outbox = RosterOutbox::new();
        outbox.reset(Some(2));
        // A thousand joins and leaves on five slots while the member does not read.
        for round in 0..1000u16 {
            let slot = round % 5;
            outbox.record(2, slot, Some(participant(slot)));
            if round % 3 == 0 {
                outbox.record(2, slot, None);
            }
        }
        let (joined, left) = slots(outbox.take());
        assert_eq!(joined.len() + left.len(), 5, "one entry per slot");
        assert!(outbox.take().is_none(), "taken whole");
    }

    #[test]
    fn changes_of_another_room_or_before_a_reset_are_dropped() {
        let outbox = RosterOutbox::new();
        outbox.record(2, 0, Some(participant(0)));
        assert!(outbox.take().is_none(), "in no room");
        outbox.reset(Some(2));
        outbox.record(2, 1, Some(participant(1)));
        outbox.record(3, 4, Some(participant(4)));
        outbox.reset(Some(2));
        assert!(outbox.take().is_none(), "a reset comes with a whole roster");
        outbox.record(2, 7, None);
        assert_eq!(slots(outbox.take()), (vec![], vec![7]));
        outbox.reset(None);
        outbox.record(2, 8, None);
        assert!(outbox.take().is_none(), "left the room");
    }
}
