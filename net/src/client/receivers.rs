//! The remote senders of our voice channel: their keys and replay windows.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::crypto::{KeyProvider, SenderContext};
use crate::proto::control::Participant;
use crate::proto::datagram::{HEADER_LEN, MediaHeader, MediaOpener, OpenError};
use crate::proto::replay::ReplayWindow;

/// Most key ids kept per sender (current plus a few previous epochs).
const KEYS_PER_SENDER: usize = 4;

struct RemoteSender {
    participant: Participant,
    openers: Vec<(u8, MediaOpener)>,
    windows: HashMap<(u8, u8), ReplayWindow>,
}

/// Opens datagrams from everyone in the roster.
pub(crate) struct Receivers {
    channel_id: u32,
    own_slot: Option<u16>,
    keys: Arc<dyn KeyProvider>,
    /// The key provider's generation when cached keys were last checked against it.
    generation: u64,
    senders: HashMap<u16, RemoteSender>,
}

/// An opened datagram.
pub(crate) struct Opened {
    pub(crate) header: MediaHeader,
    pub(crate) member_id: u32,
    pub(crate) payload: Bytes,
}

impl Receivers {
    pub(crate) fn new(keys: Arc<dyn KeyProvider>) -> Self {
        Self {
            channel_id: 0,
            own_slot: None,
            generation: keys.generation(),
            keys,
            senders: HashMap::new(),
        }
    }

    /// Forgets everyone (left the channel or reconnected).
    pub(crate) fn clear(&mut self) {
        self.senders.clear();
        self.own_slot = None;
    }

    pub(crate) fn set_own_slot(&mut self, channel_id: u32, slot: u16) {
        self.channel_id = channel_id;
        self.own_slot = Some(slot);
    }

    /// Applies a roster: keeps state for unchanged senders, drops departed ones, adds new ones.
    pub(crate) fn apply_roster(&mut self, channel_id: u32, participants: &[Participant]) {
        if channel_id != self.channel_id {
            self.senders.clear();
            self.channel_id = channel_id;
        }
        let mut next = HashMap::with_capacity(participants.len());
        for participant in participants {
            if Some(participant.slot) == self.own_slot {
                continue;
            }
            let sender = match self.senders.remove(&participant.slot) {
                Some(existing)
                    if existing.participant.public_key == participant.public_key
                        && existing.participant.session_salt == participant.session_salt =>
                {
                    existing
                }
                _ => RemoteSender {
                    participant: participant.clone(),
                    openers: Vec::new(),
                    windows: HashMap::new(),
                },
            };
            next.insert(participant.slot, sender);
        }
        self.senders = next;
    }

    /// Applies a roster change: departed senders are forgotten, a slot that changed hands (or
    /// whose holder rejoined with a new salt) starts afresh.
    pub(crate) fn apply_changes(&mut self, joined: &[Participant], left: &[u16]) {
        for slot in left {
            self.senders.remove(slot);
        }
        for participant in joined {
            if Some(participant.slot) == self.own_slot {
                continue;
            }
            let unchanged = self.senders.get(&participant.slot).is_some_and(|existing| {
                existing.participant.public_key == participant.public_key
                    && existing.participant.session_salt == participant.session_salt
            });
            if !unchanged {
                self.senders.insert(
                    participant.slot,
                    RemoteSender {
                        participant: participant.clone(),
                        openers: Vec::new(),
                        windows: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Authenticates, replay-checks and decrypts a datagram.
    pub(crate) fn open(&mut self, datagram: Bytes) -> Result<Opened, OpenError> {
        let header = MediaHeader::parse(&datagram)?;
        let unknown = OpenError::UnknownKey {
            sender: header.sender,
            key_id: header.key_id,
        };
        // Keys the provider retired (an epoch past its grace time) are dropped, so a removed
        // member's old key opens nothing any more.
        let generation = self.keys.generation();
        if generation != self.generation {
            let keys = &self.keys;
            for remote in self.senders.values_mut() {
                remote.openers.retain(|(id, _)| keys.holds(*id));
            }
            self.generation = generation;
        }
        let sender = self.senders.get_mut(&header.sender).ok_or(unknown)?;
        let window_key = (header.key_id, header.stream.code());
        let counter = u64::from(header.counter);
        if sender
            .windows
            .get(&window_key)
            .is_some_and(|window| !window.check(counter))
        {
            return Err(OpenError::Replayed(header.counter));
        }
        // Decrypts in place; copies only if the datagram's bytes are shared.
        let mut buffer = BytesMut::from(datagram);
        let len = match sender.openers.iter().find(|(id, _)| *id == header.key_id) {
            Some((_, opener)) => opener.open_in_place(&header, &mut buffer)?,
            None => {
                let context = SenderContext {
                    channel_id: self.channel_id,
                    public_key: sender.participant.public_key,
                    session_salt: sender.participant.session_salt,
                };
                let key = self
                    .keys
                    .media_key(&context, header.key_id)
                    .map_err(|_| unknown)?;
                let opener = MediaOpener::new(&key);
                let len = opener.open_in_place(&header, &mut buffer)?;
                // Cached only once a datagram authenticated under it: forgeries with made-up
                // key ids never evict a key in use.
                if sender.openers.len() == KEYS_PER_SENDER {
                    sender.openers.remove(0);
                }
                sender.openers.push((header.key_id, opener));
                len
            }
        };
        if !sender
            .windows
            .entry(window_key)
            .or_default()
            .commit(counter)
        {
            return Err(OpenError::Replayed(header.counter));
        }
        let payload = buffer.freeze().slice(HEADER_LEN..HEADER_LEN + len);
        Ok(Opened {
            header,
            member_id: sender.participant.member_id,
            payload,
        })
    }
}
