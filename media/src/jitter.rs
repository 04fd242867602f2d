//! The adaptive jitter buffer: one per remote speaker. Sans-IO: arrival and playout times are
//! arguments.
//!
//! Packets are identified by their sender counter (`seq`) and each carries one packet duration
//! of audio. The playout side calls [`JitterBuffer::pop`] once per packet duration.
//!
//! - **Target depth** follows the measured spread of arrival delays: the 95th percentile of each
//!   packet's delay relative to the fastest packet of the last [`WINDOW`] packets, plus half a
//!   packet of margin, rounded up to whole packets; never less than one packet.
//! - **Growing**: when the next packet is missing and nothing newer has arrived either (it is
//!   late, not lost), playout is stretched by one concealed frame without moving on.
//! - **Shrinking**: when more than one packet above target has been buffered for
//!   [`SHRINK_AFTER`] pops in a row, one packet is skipped — preferably while the caller
//!   reports quiet output. This also absorbs a sender clock running fast; stretching absorbs one
//!   running slow.
//! - **Losses** are recovered from the next packet's FEC when it is already here, else concealed.
//!   While at least 1 % of recent packets are missing, the target holds one packet more so that
//!   the next packet is usually here.
//! - **Reordering** is absorbed by the buffer; **duplicates** and packets arriving after their
//!   turn are dropped and counted.
//! - **Talkspurts**: after [`MAX_STRETCH`] stretched frames in a row the talker has stopped
//!   (voice gate, DTX): the buffer returns to waiting and re-buffers the next talkspurt.
//! - **Counter wrap**: the sender's 32-bit counter wraps after `u32::MAX`. Counters are
//!   extended to 64 bits against the highest one seen (the nearest of the candidates, as RTP
//!   receivers do), so ordering holds across the wrap; [`Playout`] reports the sender's own
//!   32-bit counters.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

/// Packets whose delays set the target depth.
pub const WINDOW: usize = 200;
/// Pops above target before one packet is skipped.
pub const SHRINK_AFTER: u32 = 25;
/// Stretched frames in a row before the talkspurt counts as over.
pub const MAX_STRETCH: u32 = 5;
/// Most packets held; beyond this the oldest are dropped.
pub const MAX_PACKETS: usize = 64;
/// Delay samples a talkspurt needs before its own estimate replaces the previous target.
const FRESH_SAMPLES: usize = 10;
/// Largest target depth, packets.
pub const MAX_TARGET: usize = 30;
/// Where the first counter lands in the extended (64-bit) counter space: far enough from zero
/// that a packet up to 2³¹ counters older than the first still extends without underflow.
const FIRST_EXTENDED: u64 = 1 << 32;

/// The sender's 32-bit counter of an extended counter (its low 32 bits).
fn wire_seq(extended: u64) -> u32 {
    (extended & u64::from(u32::MAX)) as u32
}

/// What to play for the next packet duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet {
        /// Its counter.
        seq: u32,
        /// The Opus packet.
        payload: Bytes,
        /// A packet skipped just before it to shrink the buffer, if any.
        skipped: Option<u32>,
    },
    /// `seq` was lost: rebuild it from the FEC data in the next packet.
    Recover {
        /// The lost packet's counter.
        seq: u32,
        /// The next packet, whose FEC carries it.
        next: Bytes,
    },
    /// `seq` was lost and there is no FEC for it: conceal.
    Conceal {
        /// The lost packet's counter.
        seq: u32,
    },
    /// The next packet is late: conceal one frame and wait for it (the buffer grows).
    Stretch,
    /// Nothing to play: not started, or the talker is silent.
    Silence,
}

/// Counters and the current state, for meters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets buffered now.
    pub depth: usize,
    /// Target depth now, packets.
    pub target: usize,
    /// 95th-percentile delay spread now.
    pub jitter: Duration,
    /// Packets played.
    pub played: u64,
    /// Losses rebuilt from FEC.
    pub recovered: u64,
    /// Losses concealed.
    pub concealed: u64,
    /// Frames stretched while waiting for late packets.
    pub stretched: u64,
    /// Frames played out (concealed) after a talker stopped, before the talkspurt counted as
    /// over: not a network problem, so not in `stretched`.
    pub tails: u64,
    /// Packets skipped to shrink the buffer.
    pub skipped: u64,
    /// Packets that arrived after their turn.
    pub late: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Packets dropped because the buffer was full.
    pub overflowed: u64,
}

/// An adaptive jitter buffer for one speaker.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    packet_micros: i64,
    /// Buffered packets by extended counter.
    packets: BTreeMap<u64, (Bytes, Duration)>,
    next_seq: Option<u64>,
    /// Extended counters below this have had their turn.
    floor: Option<u64>,
    /// The highest extended counter seen: the reference new counters are extended against.
    highest: Option<u64>,
    relative_delays: VecDeque<i64>,
    /// Scratch for the percentile of `relative_delays`.
    spreads: Vec<i64>,
    /// Recently received counters, for the loss estimate.
    recent: std::collections::BTreeSet<u64>,
    /// Whether at least 1 % of recent packets went missing.
    lossy: bool,
    above_target: u32,
    stretch_run: u32,
    /// Stretched frames not yet matched by a lost packet or a skip.
    stretch_credit: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer for packets of `packet_duration`.
    pub fn new(packet_duration: Duration) -> Self {
        Self {
            packet_micros: packet_duration.as_micros().max(1) as i64,
            packets: BTreeMap::new(),
            next_seq: None,
            floor: None,
            highest: None,
            relative_delays: VecDeque::with_capacity(WINDOW),
            spreads: Vec::with_capacity(WINDOW),
            recent: std::collections::BTreeSet::new(),
            lossy: false,
            above_target: 0,
            stretch_run: 0,
            stretch_credit: 0,
            stats: JitterStats {
                target: 1,
                ..JitterStats::default()
            },
        }
    }

    /// Measures delays in packets of `packet_duration` from now on (a sender that changes or
    /// mixes packet durations). Buffered packets, counters and the target depth stay; the delay
    /// history starts afresh, as after a talkspurt, since old delays no longer compare.
    pub fn set_packet_duration(&mut self, packet_duration: Duration) {
        let micros = packet_duration.as_micros().max(1) as i64;
        if micros != self.packet_micros {
            self.packet_micros = micros;
            self.relative_delays.clear();
        }
    }

    /// Counters and state now.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            depth: self.packets.len(),
            ..self.stats
        }
    }

    /// Accepts a packet that arrived at `now`. `seq` may wrap past `u32::MAX`.
    pub fn push(&mut self, seq: u32, payload: Bytes, now: Duration) {
        let seq = self.extend(seq);
        if self.floor.is_some_and(|floor| seq < floor) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        if self.packets.len() >= MAX_PACKETS {
            self.packets.pop_first();
            self.stats.overflowed += 1;
        }
        self.packets.insert(seq, (payload, now));
        self.observe_loss(seq);
        self.observe_delay(seq, now);
    }

    /// `seq` as an extended counter: the one nearest the highest counter seen, so a counter
    /// that wrapped past `u32::MAX` lands after the ones before the wrap.
    fn extend(&mut self, seq: u32) -> u64 {
        let extended = match self.highest {
            None => FIRST_EXTENDED + u64::from(seq),
            Some(highest) => {
                let delta = seq.wrapping_sub(wire_seq(highest)) as i32;
                highest.saturating_add_signed(i64::from(delta))
            }
        };
        self.highest = Some(
            self.highest
                .map_or(extended, |highest| highest.max(extended)),
        );
        extended
    }

    /// Tracks which recent counters arrived, to estimate loss.
    fn observe_loss(&mut self, seq: u64) {
        if self.recent.len() == WINDOW {
            self.recent.pop_first();
        }
        self.recent.insert(seq);
        let (Some(&lowest), Some(&highest)) = (self.recent.first(), self.recent.last()) else {
            return;
        };
        let expected = (highest - lowest + 1) as usize;
        self.lossy =
            expected > self.recent.len() && (expected - self.recent.len()) * 100 >= expected;
    }

    fn observe_delay(&mut self, seq: u64, now: Duration) {
        // Only differences between packets count, so the offset of the extended counters
        // cancels out; saturation only guards against counters no sender reaches.
        let sent = i64::try_from(seq)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.packet_micros);
        let relative = (now.as_micros() as i64).saturating_sub(sent);
        if self.relative_delays.len() == WINDOW {
            self.relative_delays.pop_front();
        }
        self.relative_delays.push_back(relative);
        let fastest = self
            .relative_delays
            .iter()
            .copied()
            .min()
            .unwrap_or(relative);
        // Reused scratch: no allocation per packet.
        let spreads = &mut self.spreads;
        spreads.clear();
        spreads.extend(self.relative_delays.iter().map(|delay| delay - fastest));
        spreads.sort_unstable();
        let p95 = spreads[((spreads.len() - 1) as f64 * 0.95).round() as usize];
        self.stats.jitter = Duration::from_micros(p95.max(0) as u64);
        // Enough whole packets to cover the spread plus half a packet of margin for where the
        // playout tick falls; a spread under half a packet needs only the packet being played
        // (a late one stretches playout once, which grows the buffer by itself).
        let packets =
            (p95.max(0) + self.packet_micros / 2 + self.packet_micros - 1) / self.packet_micros;
        // Under loss, one more packet of depth lets a lost packet be rebuilt from the next
        // packet's FEC instead of concealed.
        let measured = (packets as usize + usize::from(self.lossy)).clamp(1, MAX_TARGET);
        // A fresh talkspurt keeps the depth learnt before until it has a few samples of its own.
        self.stats.target = if self.relative_delays.len() < FRESH_SAMPLES {
            measured.max(self.stats.target)
        } else {
            measured
        };
    }

    /// What to play for the next packet duration, at `now`. `quiet` says whether the last
    /// output was quiet, so shrinking skips a packet where it is least audible.
    pub fn pop(&mut self, now: Duration, quiet: bool) -> Playout {
        let Some(mut next) = self.next_seq.or_else(|| self.try_start(now)) else {
            return Playout::Silence;
        };
        // Frames stretched while waiting for packets that turn out lost (newer ones arrived
        // instead) already filled their time: let them stand for those packets.
        // Unless the buffer is to grow: then the stretch is the growth.
        while self.stretch_credit > 0
            && !self.packets.contains_key(&next)
            && self.packets.len() > self.stats.target
        {
            self.stretch_credit -= 1;
            self.stats.concealed += 1;
            next += 1;
            self.set_next(next);
        }
        if let Some((payload, _)) = self.packets.remove(&next) {
            self.stretch_run = 0;
            self.stats.played += 1;
            let skipped = self.maybe_shrink(next, quiet);
            if let Some(skipped_seq) = skipped {
                self.packets.remove(&skipped_seq);
            }
            self.set_next(next + 1 + u64::from(skipped.is_some()));
            return Playout::Packet {
                seq: wire_seq(next),
                payload,
                skipped: skipped.map(wire_seq),
            };
        }
        if self.packets.is_empty() {
            // Nothing newer either: the packet is late, or the talker stopped.
            self.stretch_run += 1;
            if self.stretch_run > MAX_STRETCH {
                self.end_talkspurt(next);
                return Playout::Silence;
            }
            self.stats.stretched += 1;
            self.stretch_credit += 1;
            return Playout::Stretch;
        }
        self.stretch_run = 0;
        self.set_next(next + 1);
        match self.packets.get(&(next + 1)) {
            Some((following, _)) => {
                self.stats.recovered += 1;
                Playout::Recover {
                    seq: wire_seq(next),
                    next: following.clone(),
                }
            }
            None => {
                self.stats.concealed += 1;
                Playout::Conceal {
                    seq: wire_seq(next),
                }
            }
        }
    }

    /// The talker stopped: wait for the next talkspurt, and measure its delays afresh (the
    /// counter did not advance during the silence, so old delays no longer compare).
    fn end_talkspurt(&mut self, next: u64) {
        // The stretched frames just before this were the talker stopping, not lateness.
        let run = u64::from(self.stretch_run.min(MAX_STRETCH));
        self.stats.stretched = self.stats.stretched.saturating_sub(run);
        self.stats.tails += run;
        // Whatever arrives later than this still counts as late.
        self.floor = Some(next);
        self.next_seq = None;
        self.stretch_run = 0;
        self.stretch_credit = 0;
        self.relative_delays.clear();
    }

    fn set_next(&mut self, next: u64) {
        self.next_seq = Some(next);
        self.floor = Some(next);
    }

    /// Starts a talkspurt once enough is buffered, or the oldest packet has waited long enough.
    fn try_start(&mut self, now: Duration) -> Option<u64> {
        let (&first, (_, arrived)) = self.packets.first_key_value()?;
        let waited = now.saturating_sub(*arrived).as_micros() as i64;
        let target = self.stats.target;
        if self.packets.len() >= target || waited >= (target as i64 - 1) * self.packet_micros {
            self.next_seq = Some(first);
            self.above_target = 0;
            Some(first)
        } else {
            None
        }
    }

    /// After `played` leaves the buffer: skip the following packet if the buffer has been too
    /// deep for long enough. Returns the skipped packet's extended counter.
    fn maybe_shrink(&mut self, played: u64, quiet: bool) -> Option<u64> {
        let ahead = self.packets.len();
        if ahead > self.stats.target + 1 {
            self.above_target += 1;
        } else {
            self.above_target = 0;
        }
        let patient =
            self.above_target >= SHRINK_AFTER && (quiet || self.above_target >= 4 * SHRINK_AFTER);
        let candidate = played + 1;
        if patient
            && self.packets.contains_key(&candidate)
            && self.packets.contains_key(&(candidate + 1))
        {
            self.above_target = 0;
            self.stretch_credit = self.stretch_credit.saturating_sub(1);
            self.stats.skipped += 1;
            return Some(candidate);
        }
        None
    }
}

#[cfg(test)]
mod tests;
