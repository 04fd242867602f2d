//! Voice rooms: who is in which voice channel, their sender slots, and the fan-out list.
//!
//! Joins and leaves take a lock and publish a fresh immutable peer list; the datagram path
//! only loads that list (`ArcSwap`), so forwarding never waits on a lock. The joiner gets the
//! whole roster once; everyone else gets the change, coalesced in their [`RosterOutbox`], so a
//! join or leave costs O(room size), never O(room size²), and never disconnects a slow reader.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sotto_net::proto::control::{Participant, PublicKey, SessionSalt};

use crate::roster_outbox::RosterOutbox;

/// One receiver in a room's fan-out list.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its sender slot.
    pub slot: u16,
    /// The member.
    pub member_id: u32,
    /// Its QUIC connection.
    pub connection: quinn::Connection,
}

#[derive(Debug)]
struct Seat {
    participant: Arc<Participant>,
    connection: quinn::Connection,
    outbox: Arc<RosterOutbox>,
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
    /// Everyone in the room when the member joined, the member included, by slot.
    pub roster: Vec<Participant>,
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
    /// Where its roster changes wait for its control stream.
    pub outbox: Arc<RosterOutbox>,
}

/// Why a join failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The room holds as many participants as the relay allows.
    #[error("the voice channel is full ({limit} people); try again when someone leaves")]
    Full {
        /// The relay's limit.
        limit: usize,
    },
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

    /// Publishes the fan-out list for the datagram path.
    fn publish(&self, seats: &BTreeMap<u16, Seat>) {
        let peers = seats.values().map(|seat| Peer {
            slot: seat.participant.slot,
            member_id: seat.participant.member_id,
            connection: seat.connection.clone(),
        });
        self.peers.store(Arc::new(peers.collect()));
    }

    /// Tells everyone but `slot` that `slot` now holds `holder` (none: it emptied).
    fn announce(
        seats: &BTreeMap<u16, Seat>,
        channel_id: u32,
        slot: u16,
        holder: Option<&Arc<Participant>>,
    ) {
        for seat in seats.values().filter(|seat| seat.participant.slot != slot) {
            seat.outbox.record(channel_id, slot, holder.cloned());
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// All voice rooms of the relay.
#[derive(Debug)]
pub struct VoiceRooms {
    rooms: Mutex<HashMap<u32, Arc<Room>>>,
    max_participants: usize,
}

impl VoiceRooms {
    /// No rooms yet; each will hold at most `max_participants`.
    pub fn new(max_participants: usize) -> Self {
        Self {
            rooms: Mutex::default(),
            max_participants,
        }
    }

    /// Seats `joiner` in `channel_id` with the lowest free slot and tells the others.
    ///
    /// A member already in a room passes its membership as `leaving`: it moves only if the
    /// join succeeds, so a refused join leaves it where it was.
    pub fn join(
        &self,
        channel_id: u32,
        joiner: Joiner,
        leaving: Option<&Membership>,
    ) -> Result<Membership, JoinError> {
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
        let full = JoinError::Full {
            limit: self.max_participants,
        };
        // Rejoining the same room frees our own seat first.
        let same_room = leaving.filter(|old| Arc::ptr_eq(&old.room, &room));
        let own_seat = same_room.is_some_and(|old| seats.contains_key(&old.slot));
        if seats.len() - usize::from(own_seat) >= self.max_participants {
            return Err(full);
        }
        if let Some(old) = same_room
            && seats.remove(&old.slot).is_some()
        {
            Room::announce(&seats, channel_id, old.slot, None);
        }
        let slot = (0..=u16::MAX)
            .find(|slot| !seats.contains_key(slot))
            .ok_or(full)?;
        let participant = Arc::new(Participant {
            slot,
            member_id: joiner.member_id,
            public_key: joiner.public_key,
            display_name: joiner.display_name,
            session_salt: joiner.session_salt,
        });
        Room::announce(&seats, channel_id, slot, Some(&participant));
        // From here on the joiner's outbox collects changes after the roster it is handed.
        joiner.outbox.reset(Some(channel_id));
        seats.insert(
            slot,
            Seat {
                participant,
                connection: joiner.connection,
                outbox: joiner.outbox,
            },
        );
        let roster = seats
            .values()
            .map(|seat| Participant::clone(&seat.participant))
            .collect();
        room.publish(&seats);
        drop(seats);
        if let Some(old) = leaving.filter(|old| !Arc::ptr_eq(&old.room, &room)) {
            self.leave(old);
        }
        Ok(Membership { room, slot, roster })
    }

    /// Removes `membership`'s seat and tells those who remain.
    pub fn leave(&self, membership: &Membership) {
        let room = &membership.room;
        let mut seats = room.lock();
        if let Some(seat) = seats.remove(&membership.slot) {
            seat.outbox.leave(room.channel_id);
            Room::announce(&seats, room.channel_id, membership.slot, None);
            room.publish(&seats);
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
