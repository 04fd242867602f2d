//! Who is here, and who is typing where: kept in memory only and passed on to members online
//! who asked for it. Nothing of it is ever stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sotto_net::proto::ControlFrame;
use sotto_net::proto::control::{MemberPresence, Presence};

/// Frames buffered for sessions that have not passed them on yet (a slow one skips some).
const FEED: usize = 1024;
/// A member's typing in one channel is passed on at most this often.
pub(crate) const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// Something to pass on: the frame, and the member it is about (who does not get it back).
pub(crate) type Ephemeral = Arc<(u32, ControlFrame)>;

/// The relay's presence book.
#[derive(Debug)]
pub(crate) struct PresenceBook {
    /// Members online who set a presence.
    set: Mutex<HashMap<u32, (Presence, String)>>,
    feed: tokio::sync::broadcast::Sender<Ephemeral>,
}

/// How `presence` looks to others.
fn as_seen(member_id: u32, presence: Presence, status: &str) -> MemberPresence {
    let invisible = presence == Presence::Invisible;
    MemberPresence {
        member_id,
        presence: if invisible {
            Presence::Offline
        } else {
            presence
        },
        // An invisible member's status would give them away.
        status: if invisible {
            String::new()
        } else {
            status.to_owned()
        },
    }
}

impl PresenceBook {
    pub(crate) fn new() -> Self {
        Self {
            set: Mutex::new(HashMap::new()),
            feed: tokio::sync::broadcast::channel(FEED).0,
        }
    }

    /// A receiver of what is to be passed on.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Ephemeral> {
        self.feed.subscribe()
    }

    /// Records a member's presence and tells the others.
    pub(crate) fn set(&self, member_id: u32, presence: Presence, status: &str) {
        self.set
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(member_id, (presence, status.to_owned()));
        let update = ControlFrame::PresenceUpdate {
            members: vec![as_seen(member_id, presence, status)],
        };
        let _ = self.feed.send(Arc::new((member_id, update)));
    }

    /// Forgets a member who went offline and tells the others (snapshots list everyone
    /// online, so everyone's leaving is news).
    pub(crate) fn gone(&self, member_id: u32) {
        self.set
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&member_id);
        let update = ControlFrame::PresenceUpdate {
            members: vec![as_seen(member_id, Presence::Offline, "")],
        };
        let _ = self.feed.send(Arc::new((member_id, update)));
    }

    /// Whether the member chose to look offline.
    pub(crate) fn is_invisible(&self, member_id: u32) -> bool {
        self.set
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&member_id)
            .is_some_and(|(presence, _)| *presence == Presence::Invisible)
    }

    /// Everyone in `online` as others see them (those who set nothing are online), but not
    /// `asking`; in pages the frame can carry.
    pub(crate) fn snapshot(&self, online: &[u32], asking: u32) -> Vec<Vec<MemberPresence>> {
        let set = self
            .set
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let everyone: Vec<MemberPresence> = online
            .iter()
            .filter(|member| **member != asking)
            .map(|member| match set.get(member) {
                Some((presence, status)) => as_seen(*member, *presence, status),
                None => as_seen(*member, Presence::Online, ""),
            })
            .collect();
        everyone
            .chunks(sotto_net::proto::control::MAX_MEMBERS_PER_PAGE)
            .map(<[MemberPresence]>::to_vec)
            .collect()
    }

    /// Passes on that `member_id` types in `channel_id`.
    pub(crate) fn typing(&self, member_id: u32, channel_id: u32) {
        let frame = ControlFrame::MemberTyping {
            channel_id,
            member_id,
        };
        let _ = self.feed.send(Arc::new((member_id, frame)));
    }
}

/// One session's typing limit: per channel, at most once per [`TYPING_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct TypingLimit {
    last: HashMap<u32, Instant>,
}

impl TypingLimit {
    /// Whether typing in `channel_id` is passed on now.
    pub(crate) fn allow(&mut self, channel_id: u32, now: Instant) -> bool {
        if self.last.len() > 64 {
            self.last
                .retain(|_, at| now.saturating_duration_since(*at) < TYPING_INTERVAL);
        }
        match self.last.get(&channel_id) {
            Some(at) if now.saturating_duration_since(*at) < TYPING_INTERVAL => false,
            _ => {
                self.last.insert(channel_id, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_members_look_offline_and_typing_is_limited() {
        let book = PresenceBook::new();
        let mut feed = book.subscribe();
        book.set(1, Presence::Invisible, "hiding");
        let Ok(update) = feed.try_recv() else {
            panic!("no update")
        };
        assert_eq!(
            update.1,
            ControlFrame::PresenceUpdate {
                members: vec![MemberPresence {
                    member_id: 1,
                    presence: Presence::Offline,
                    status: String::new(),
                }]
            }
        );
        book.set(2, Presence::DoNotDisturb, "focus");
        let pages = book.snapshot(&[1, 2, 3], 3);
        assert_eq!(pages.len(), 1);
        let seen: Vec<(u32, Presence, &str)> = pages[0]
            .iter()
            .map(|m| (m.member_id, m.presence, m.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, Presence::Offline, ""),
                (2, Presence::DoNotDisturb, "focus")
            ]
        );
        assert_eq!(book.snapshot(&[4], 9)[0][0].presence, Presence::Online);

        let mut limit = TypingLimit::default();
        let start = Instant::now();
        assert!(limit.allow(5, start));
        assert!(!limit.allow(5, start + Duration::from_millis(500)));
        assert!(limit.allow(6, start + Duration::from_millis(500)));
        assert!(limit.allow(5, start + TYPING_INTERVAL));
    }
}
