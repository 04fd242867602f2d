//! Voice rooms: who is in which voice channel, their sender slots, and the fan-out list.
//!
//! Joins and leaves take a lock and publish a fresh immutable peer list; the datagram path
//! only loads that list (`ArcSwap`), so forwarding never waits on a lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sotto_net::proto::control::{ControlFrame, Participant, PublicKey, SessionSalt};
use tokio::sync::mpsc;

/// Where a member's control frames go: the writer of its control stream.
pub type ControlSender = mpsc::Sender<ControlFrame>;

/// One receiver in a room's fan-out list.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its sender slot.
    pub slot: u16,
    /// Its QUIC connection.
    pub connection: quinn::Connection,
}

#[derive(Debug)]
struct Seat {
    participant: Participant,
    connection: quinn::Connection,
    control: ControlSender,
}

/// One voice channel's live state.
#[derive(Debug)]
pub struct Room {
    channel_id: u32,
    seats: Mutex<BTreeMap<u16, Seat>>,
    peers: ArcSwap<Vec<Peer>>,
}

/// A member's place in a room, returned by [`VoiceRooms::join`].
#[derive(Debug, Clone)]
pub struct Membership {
    /// The room.
    pub room: Arc<Room>,
    /// The member's sender slot in it.
    pub slot: u16,
}

/// Someone joining a room.
#[derive(Debug, Clone)]
pub struct Joiner {
    /// Member id.
    pub member_id: u32,
    /// Identity key.
    pub public_key: PublicKey,
    /// Display name.
    pub display_name: String,
    /// Salt for this join's media keys.
    pub session_salt: SessionSalt,
    /// Its connection, for datagrams.
    pub connection: quinn::Connection,
    /// Its control-stream writer, for roster updates.
    pub control: ControlSender,
}

/// Why a join failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// All 65,536 slots are taken.
    #[error("the voice channel is full")]
    Full,
}

impl Room {
    fn new(channel_id: u32) -> Self {
        Self {
            channel_id,
            seats: Mutex::new(BTreeMap::new()),
            peers: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The voice channel.
    pub fn channel_id(&self) -> u32 {
        self.channel_id
    }

    /// Everyone the datagram path forwards to.
    pub fn peers(&self) -> arc_swap::Guard<Arc<Vec<Peer>>> {
        self.peers.load()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Seat>> {
        self.seats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the peer list and pushes the roster to every participant.
    fn publish(&self, seats: &BTreeMap<u16, Seat>) {
        let peers = seats.values().map(|seat| Peer {
            slot: seat.participant.slot,
            connection: seat.connection.clone(),
        });
        self.peers.store(Arc::new(peers.collect()));
        let roster = ControlFrame::Roster {
            channel_id: self.channel_id,
            participants: seats
                .values()
                .map(|seat| seat.participant.clone())
                .collect(),
        };
        for seat in seats.values() {
            if seat.control.try_send(roster.clone()).is_err() {
                // A member that cannot take a roster update is hopelessly behind: drop it; its
                // client reconnects and receives a fresh roster.
                seat.connection.close(
                    sotto_net::transport::close_code::PROTOCOL_VIOLATION.into(),
                    b"control backlog",
                );
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// All voice rooms of the relay.
#[derive(Debug, Default)]
pub struct VoiceRooms {
    rooms: Mutex<HashMap<u32, Arc<Room>>>,
}

impl VoiceRooms {
    /// No rooms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seats `joiner` in `channel_id` with the lowest free slot and pushes the roster.
    pub fn join(&self, channel_id: u32, joiner: Joiner) -> Result<Membership, JoinError> {
        let room = {
            let mut rooms = self
                .rooms
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            rooms
                .entry(channel_id)
                .or_insert_with(|| Arc::new(Room::new(channel_id)))
                .clone()
        };
        let mut seats = room.lock();
        let slot = (0..=u16::MAX)
            .find(|slot| !seats.contains_key(slot))
            .ok_or(JoinError::Full)?;
        let participant = Participant {
            slot,
            member_id: joiner.member_id,
            public_key: joiner.public_key,
            display_name: joiner.display_name,
            session_salt: joiner.session_salt,
        };
        seats.insert(
            slot,
            Seat {
                participant,
                connection: joiner.connection,
                control: joiner.control,
            },
        );
        room.publish(&seats);
        drop(seats);
        Ok(Membership { room, slot })
    }

    /// Removes `membership`'s seat and pushes the roster to those who remain.
    pub fn leave(&self, membership: &Membership) {
        let mut seats = membership.room.lock();
        if seats.remove(&membership.slot).is_some() {
            membership.room.publish(&seats);
        }
    }

    /// How many rooms have someone in them. (Empty rooms are kept: there is at most one per
    /// voice channel, and keeping them avoids racing a join against a removal.)
    pub fn active_rooms(&self) -> usize {
        let rooms = self
            .rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        rooms.values().filter(|room| !room.is_empty()).count()
    }
}
