//! Who is here and who is typing, as a front end shows it: plain state fed with the client's
//! presence and typing events and the time, and the rule for when to say we are typing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sotto_net::proto::control::{MemberPresence, Presence};

/// How long someone shows as typing after their last typing signal.
pub const TYPING_SHOWN: Duration = Duration::from_secs(6);
/// How often we repeat our own typing signal while typing.
pub const TYPING_REPEAT: Duration = Duration::from_secs(3);

/// Members' presence and who types where.
#[derive(Debug, Default)]
pub struct PresenceBook {
    members: HashMap<u32, MemberPresence>,
    typing: HashMap<(u32, u32), Instant>,
}

/// A change worth telling a person about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The member.
    pub member_id: u32,
    /// Their presence before (offline if unknown).
    pub before: Presence,
    /// Their presence and status now.
    pub now: MemberPresence,
}

impl PresenceBook {
    /// An empty book: everyone offline, nobody typing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in presence updates; returns the changes (a status changed, or the presence).
    pub fn apply(&mut self, updates: &[MemberPresence]) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        for update in updates {
            let before = self.members.get(&update.member_id).cloned();
            let known = before.is_some();
            let changed = before
                .as_ref()
                .is_none_or(|b| b.presence != update.presence || b.status != update.status);
            let before_presence = before.map_or(Presence::Offline, |b| b.presence);
            if update.presence == Presence::Offline {
                self.members.remove(&update.member_id);
                self.typing
                    .retain(|(_, member), _| *member != update.member_id);
            } else {
                self.members.insert(update.member_id, update.clone());
            }
            if changed && (known || update.presence != Presence::Offline) {
                changes.push(PresenceChange {
                    member_id: update.member_id,
                    before: before_presence,
                    now: update.clone(),
                });
            }
        }
        changes
    }

    /// A member's presence (offline when unknown) and status.
    pub fn presence_of(&self, member_id: u32) -> (Presence, &str) {
        self.members
            .get(&member_id)
            .map_or((Presence::Offline, ""), |m| (m.presence, m.status.as_str()))
    }

    /// Members not offline, by id.
    pub fn online(&self) -> Vec<&MemberPresence> {
        let mut online: Vec<&MemberPresence> = self.members.values().collect();
        online.sort_by_key(|m| m.member_id);
        online
    }

    /// `member_id` typed in `channel_id` at `now`; whether that is news (they were not shown
    /// typing there already).
    pub fn typing(&mut self, channel_id: u32, member_id: u32, now: Instant) -> bool {
        let previous = self.typing.insert((channel_id, member_id), now);
        previous.is_none_or(|at| now.saturating_duration_since(at) >= TYPING_SHOWN)
    }

    /// `member_id` posted in `channel_id`: they stopped typing there.
    pub fn posted(&mut self, channel_id: u32, member_id: u32) {
        self.typing.remove(&(channel_id, member_id));
    }

    /// Who types in `channel_id` at `now`, by member id.
    pub fn typing_in(&mut self, channel_id: u32, now: Instant) -> Vec<u32> {
        self.typing
            .retain(|_, at| now.saturating_duration_since(*at) < TYPING_SHOWN);
        let mut members: Vec<u32> = self
            .typing
            .keys()
            .filter(|(channel, _)| *channel == channel_id)
            .map(|(_, member)| *member)
            .collect();
        members.sort_unstable();
        members
    }
}

/// When to send our own typing signal: at the first keystroke, then at most every
/// [`TYPING_REPEAT`] while typing goes on; again at once after a message is sent.
#[derive(Debug, Default)]
pub struct TypingSignal {
    last: HashMap<u32, Instant>,
}

impl TypingSignal {
    /// A key was typed in `channel_id` at `now`: whether to send the signal.
    pub fn keystroke(&mut self, channel_id: u32, now: Instant) -> bool {
        match self.last.get(&channel_id) {
            Some(at) if now.saturating_duration_since(*at) < TYPING_REPEAT => false,
            _ => {
                self.last.insert(channel_id, now);
                true
            }
        }
    }

    /// A message was sent in `channel_id`.
    pub fn sent(&mut self, channel_id: u32) {
        self.last.remove(&channel_id);
    }
}

/// How a presence reads to people.
pub fn describe(presence: Presence) -> &'static str {
    match presence {
        Presence::Online => "online",
        Presence::Idle => "idle",
        Presence::DoNotDisturb => "do not disturb",
        Presence::Invisible => "invisible",
        Presence::Offline => "offline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(member_id: u32, presence: Presence, status: &str) -> MemberPresence {
        MemberPresence {
            member_id,
            presence,
            status: status.into(),
        }
    }

    #[test]
    fn presence_changes_are_reported_once_and_offline_forgets() {
        let mut book = PresenceBook::new();
        let changes = book.apply(&[seen(1, Presence::Online, ""), seen(2, Presence::Idle, "")]);
        assert_eq!(changes.len(), 2);
        assert!(
            book.apply(&[seen(1, Presence::Online, "")]).is_empty(),
            "no news"
        );
        let changes = book.apply(&[seen(1, Presence::DoNotDisturb, "focus")]);
        assert_eq!(changes[0].before, Presence::Online);
        assert_eq!(book.presence_of(1), (Presence::DoNotDisturb, "focus"));
        book.apply(&[seen(2, Presence::Offline, "")]);
        assert_eq!(book.presence_of(2), (Presence::Offline, ""));
        assert_eq!(book.online().len(), 1);
        assert!(
            book.apply(&[seen(9, Presence::Offline, "")]).is_empty(),
            "someone unknown going offline is no news"
        );
    }

    #[test]
    fn typing_shows_for_a_while_and_ends_with_a_message_or_leaving() {
        let mut book = PresenceBook::new();
        let start = Instant::now();
        assert!(book.typing(5, 1, start));
        assert!(
            !book.typing(5, 1, start + Duration::from_secs(2)),
            "still shown"
        );
        assert!(book.typing(5, 2, start));
        assert_eq!(book.typing_in(5, start + Duration::from_secs(3)), [1, 2]);
        assert_eq!(book.typing_in(6, start), Vec::<u32>::new());
        book.posted(5, 2);
        assert_eq!(book.typing_in(5, start + Duration::from_secs(3)), [1]);
        assert!(
            book.typing_in(5, start + Duration::from_secs(9)).is_empty(),
            "faded"
        );
        book.apply(&[seen(3, Presence::Online, "")]);
        book.typing(5, 3, start);
        book.apply(&[seen(3, Presence::Offline, "")]);
        assert!(book.typing_in(5, start).is_empty(), "left");

        let mut signal = TypingSignal::default();
        assert!(signal.keystroke(5, start));
        assert!(!signal.keystroke(5, start + Duration::from_secs(1)));
        assert!(signal.keystroke(5, start + TYPING_REPEAT));
        signal.sent(5);
        assert!(signal.keystroke(5, start + TYPING_REPEAT + Duration::from_millis(10)));
    }
}
