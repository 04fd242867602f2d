//! The people in our voice channel, kept from the client's roster events.

use std::collections::BTreeMap;

use sotto_net::client::ClientEvent;
use sotto_net::proto::control::Participant;

/// Who is in our voice channel, by sender slot (ourselves included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    participants: BTreeMap<u16, Participant>,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a roster event; returns the slots whose holder left or changed (their media
    /// state is stale), or none if the event is not about the roster.
    pub fn apply(&mut self, event: &ClientEvent) -> Option<Vec<u16>> {
        let mut departed = Vec::new();
        match event {
            ClientEvent::Roster { participants, .. } => {
                let next: BTreeMap<u16, Participant> =
                    participants.iter().map(|p| (p.slot, p.clone())).collect();
                departed.extend(
                    self.participants
                        .iter()
                        .filter(|(slot, old)| next.get(slot) != Some(old))
                        .map(|(slot, _)| *slot),
                );
                self.participants = next;
            }
            ClientEvent::RosterChanged { joined, left, .. } => {
                for slot in left {
                    if self.participants.remove(slot).is_some() {
                        departed.push(*slot);
                    }
                }
                for participant in joined {
                    let slot = participant.slot;
                    if let Some(old) = self.participants.insert(slot, participant.clone())
                        && old != *participant
                        && !departed.contains(&slot)
                    {
                        departed.push(slot);
                    }
                }
            }
            _ => return None,
        }
        Some(departed)
    }

    /// Forgets everyone (we left the channel or lost the connection).
    pub fn clear(&mut self) {
        self.participants.clear();
    }

    /// Everyone, by slot.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    /// The participant holding `slot`.
    pub fn get(&self, slot: u16) -> Option<&Participant> {
        self.participants.get(&slot)
    }

    /// How many are in the channel.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(slot: u16, name: &str, salt: u8) -> Participant {
        Participant {
            slot,
            member_id: u32::from(slot),
            public_key: [slot as u8; 32],
            display_name: name.into(),
            session_salt: [salt; 16],
        }
    }

    #[test]
    fn whole_rosters_and_changes_report_who_left_or_was_replaced() {
        let mut roster = Roster::new();
        let whole = ClientEvent::Roster {
            channel_id: 2,
            participants: vec![participant(0, "ada", 0), participant(1, "me", 0)],
        };
        assert_eq!(roster.apply(&whole), Some(vec![]));
        // Ada rejoins with a new salt in slot 0, Bob arrives, nobody leaves.
        let change = ClientEvent::RosterChanged {
            channel_id: 2,
            joined: vec![participant(0, "ada", 1), participant(2, "bob", 0)],
            left: vec![],
        };
        assert_eq!(roster.apply(&change), Some(vec![0]));
        let change = ClientEvent::RosterChanged {
            channel_id: 2,
            joined: vec![],
            left: vec![2, 9],
        };
        assert_eq!(roster.apply(&change), Some(vec![2]));
        let names: Vec<_> = roster
            .participants()
            .map(|p| p.display_name.as_str())
            .collect();
        assert_eq!(names, ["ada", "me"]);
        // A whole roster after a rejoin drops those no longer there.
        let whole = ClientEvent::Roster {
            channel_id: 2,
            participants: vec![participant(1, "me", 0)],
        };
        assert_eq!(roster.apply(&whole), Some(vec![0]));
        assert_eq!(roster.len(), 1);
        assert_eq!(
            roster.apply(&ClientEvent::RequestFailed {
                code: sotto_net::proto::control::ErrorCode::Internal,
                message: String::new(),
            }),
            None
        );
    }
}
