//! The receive chain: per speaker, jitter buffer → Opus decode (FEC, PLC) → gain; then the mix
//! of all speakers through a soft limiter. The mix is what the speakers play, and so the echo
//! canceller's far-end reference.

use std::time::Duration;

use bytes::Bytes;

use crate::codec::{CodecError, PacketDuration, VoiceDecoder};
use crate::frame::{FRAME_SAMPLES, Frame, rms_dbfs};
use crate::jitter::{JitterBuffer, JitterStats, Playout};

/// Output below this level counts as quiet (where the jitter buffer prefers to shrink).
const QUIET_DBFS: f64 = -50.0;
/// Output above this level counts as speaking, for the speaking indicator.
const SPEAKING_DBFS: f64 = -45.0;

/// The longest packet a speaker may send, in samples.
const MAX_PACKET_SAMPLES: usize = 2 * FRAME_SAMPLES;

/// A speaker's recent packet durations: the jitter buffer's unit of time. A sender may change
/// its packet duration, or mix 10 and 20 ms packets; the buffer then measures delays in their
/// average, and changes its unit only when the average moves by a quarter frame or settles.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    /// One bit per recent packet, newest lowest: set for a 20 ms packet.
    long_packets: u16,
    /// The unit the jitter buffer uses now.
    unit: Duration,
}

impl Cadence {
    /// Packets the average covers (the bits of `long_packets`).
    const WINDOW: u32 = u16::BITS;
    /// How far the average moves before the jitter buffer follows.
    const STEP: Duration = Duration::from_micros(2_500);

    fn new(packet: PacketDuration) -> Self {
        let long_packets = if packet == PacketDuration::Ms20 {
            u16::MAX
        } else {
            0
        };
        let mut cadence = Self {
            long_packets,
            unit: Duration::ZERO,
        };
        cadence.unit = cadence.average();
        cadence
    }

    fn average(&self) -> Duration {
        let short = Duration::from_millis(10);
        short + short * self.long_packets.count_ones() / Self::WINDOW
    }

    /// Records a packet's duration; returns the jitter buffer's new unit when it should change.
    fn observe(&mut self, packet: PacketDuration) -> Option<Duration> {
        self.long_packets = (self.long_packets << 1) | u16::from(packet == PacketDuration::Ms20);
        let average = self.average();
        let settled = self.long_packets == 0 || self.long_packets == u16::MAX;
        let moved = average.abs_diff(self.unit) >= Self::STEP;
        if average != self.unit && (moved || settled) {
            self.unit = average;
            return Some(average);
        }
        None
    }
}

/// One remote speaker: its jitter buffer, decoder and volume. Both live as long as the
/// speaker: a sender that changes or mixes packet durations keeps them.
#[derive(Debug)]
pub struct SpeakerStream {
    jitter: JitterBuffer,
    decoder: VoiceDecoder,
    /// The last packet's duration: what a lost packet is concealed as.
    packet: PacketDuration,
    cadence: Cadence,
    /// Decoded audio of the last packet: `filled` samples, of which `read` are played.
    pcm: Vec<f32>,
    filled: usize,
    read: usize,
    gain: f32,
    quiet: bool,
    speaking: bool,
    rejected: u64,
}

impl SpeakerStream {
    /// A stream expecting packets of `packet` duration (others are followed as they come).
    pub fn new(packet: PacketDuration) -> Result<Self, CodecError> {
        let cadence = Cadence::new(packet);
        Ok(Self {
            jitter: JitterBuffer::new(cadence.unit),
            decoder: VoiceDecoder::new(packet)?,
            packet,
            cadence,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            filled: 0,
            read: 0,
            gain: 1.0,
            quiet: true,
            speaking: false,
            rejected: 0,
        })
    }

    /// Sets this speaker's volume (1 = unchanged).
    pub fn set_gain(&mut self, gain: f32) {
        self.gain = gain.max(0.0);
    }

    /// Whether the last frame held speech.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Jitter-buffer statistics.
    pub fn stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    /// The duration of `payload` if it is Opus voice of 10 or 20 ms.
    fn voice_duration(&self, payload: &[u8]) -> Option<PacketDuration> {
        match self.decoder.packet_samples(payload) {
            Ok(samples) if samples == PacketDuration::Ms10.samples() => Some(PacketDuration::Ms10),
            Ok(samples) if samples == PacketDuration::Ms20.samples() => Some(PacketDuration::Ms20),
            _ => None,
        }
    }

    /// Accepts a packet (its sender counter and Opus payload) that arrived at `now`. Packets
    /// of 10 and 20 ms may come in any mix; anything that is not Opus voice of 10 or 20 ms is
    /// dropped and counted.
    pub fn push(&mut self, seq: u32, payload: Bytes, now: Duration) {
        let Some(duration) = self.voice_duration(&payload) else {
            self.rejected += 1;
            return;
        };
        if let Some(unit) = self.cadence.observe(duration) {
            self.jitter.set_packet_duration(unit);
        }
        self.jitter.push(seq, payload, now);
    }

    /// Packets dropped because they were not decodable voice.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Produces this speaker's next 10 ms at `now`, added into `mix`. Returns whether the
    /// speaker contributed anything.
    pub fn mix_into(&mut self, now: Duration, mix: &mut Frame) -> Result<bool, CodecError> {
        if self.read >= self.filled {
            let active = self.refill(now)?;
            if !active {
                self.speaking = false;
                self.quiet = true;
                return Ok(false);
            }
        }
        let frame = &self.pcm[self.read..self.read + FRAME_SAMPLES];
        self.read += FRAME_SAMPLES;
        let level = rms_dbfs(frame);
        self.quiet = level < QUIET_DBFS;
        self.speaking = level > SPEAKING_DBFS;
        for (out, sample) in mix.iter_mut().zip(frame) {
            *out += sample * self.gain;
        }
        Ok(true)
    }

    fn refill(&mut self, now: Duration) -> Result<bool, CodecError> {
        let playout = self.jitter.pop(now, self.quiet);
        if let Playout::Packet { payload, .. } = &playout {
            // Lengths were checked on arrival; a lost packet is concealed as the last one was.
            self.packet = self.voice_duration(payload).unwrap_or(self.packet);
        }
        let samples = self.packet.samples();
        self.decoder.set_packet(self.packet);
        let pcm = &mut self.pcm[..samples];
        let decoded = match playout {
            Playout::Packet { payload, .. } => self.decoder.decode(&payload, pcm),
            Playout::Recover { next, .. } => self.decoder.recover(&next, pcm),
            Playout::Conceal { .. } | Playout::Stretch => self.decoder.conceal(pcm),
            Playout::Silence => return Ok(false),
        };
        if decoded.is_err() {
            // A packet that passed the length check but does not decode: conceal it instead;
            // a remote peer's bytes never stop the engine.
            self.rejected += 1;
            if self.decoder.conceal(pcm).is_err() {
                pcm.fill(0.0);
            }
        }
        self.filled = samples;
        self.read = 0;
        Ok(true)
    }
}

/// Samples above this are softly limited in the mix.
const LIMIT_KNEE: f32 = 0.8;

/// Bends samples above the knee smoothly towards ±1, so several loud speakers never clip.
pub fn soft_limit(frame: &mut Frame) {
    for sample in frame.iter_mut() {
        let magnitude = sample.abs();
        if magnitude > LIMIT_KNEE {
            let headroom = 1.0 - LIMIT_KNEE;
            *sample = sample.signum()
                * (LIMIT_KNEE + headroom * ((magnitude - LIMIT_KNEE) / headroom).tanh());
        }
    }
}

/// Mixes `speakers` for the 10 ms starting at `now` into `out` (cleared first).
pub fn mix(
    speakers: &mut [SpeakerStream],
    now: Duration,
    out: &mut Frame,
) -> Result<(), CodecError> {
    out.fill(0.0);
    for speaker in speakers.iter_mut() {
        speaker.mix_into(now, out)?;
    }
    soft_limit(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_never_exceeds_full_scale_and_leaves_normal_levels_alone() {
        let mut frame: Frame = std::array::from_fn(|i| (i as f32 / 100.0) - 2.0);
        let original = frame;
        soft_limit(&mut frame);
        assert!(frame.iter().all(|s| s.abs() <= 1.0));
        for (limited, raw) in frame.iter().zip(original) {
            if raw.abs() <= LIMIT_KNEE {
                assert_eq!(*limited, raw);
            }
        }
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;
    use crate::codec::{EncoderSettings, VoiceEncoder};

    #[test]
    fn learns_the_packet_duration_and_survives_garbage() {
        let mut encoder = VoiceEncoder::new(EncoderSettings {
            packet: PacketDuration::Ms20,
            ..EncoderSettings::default()
        })
        .unwrap();
        let frame: Frame = std::array::from_fn(|i| (i as f32 * 0.07).sin() * 0.3);
        let mut stream = SpeakerStream::new(PacketDuration::Ms10).unwrap();
        let mut seq = 0;
        let mut heard = 0;
        for tick in 0..40u64 {
            if let Some(packet) = encoder.encode(&frame).unwrap() {
                stream.push(
                    seq,
                    Bytes::copy_from_slice(packet),
                    Duration::from_millis(10 * tick),
                );
                seq += 1;
            }
            // Garbage from the network is rejected, never fatal.
            stream.push(
                1_000 + tick as u32,
                Bytes::from_static(&[0xff, 0xff, 0xff]),
                Duration::from_millis(10 * tick),
            );
            let mut mix = [0.0f32; FRAME_SAMPLES];
            if stream
                .mix_into(Duration::from_millis(10 * tick), &mut mix)
                .unwrap()
            {
                heard += 1;
            }
        }
        assert!(heard >= 30, "20 ms packets play as 10 ms frames: {heard}");
        assert_eq!(stream.rejected(), 40);
    }

    /// Opus packets of a steady 400 Hz tone whose durations alternate 10, 20, 10, 20 ms, each
    /// with the time its audio starts (a sender switching its framing every packet).
    fn alternating_packets(count: usize) -> Vec<(Duration, Bytes)> {
        let mut encoder = opus::Encoder::new(
            crate::SAMPLE_RATE,
            opus::Channels::Mono,
            opus::Application::Voip,
        )
        .unwrap();
        let tone = |n: usize| (n as f32 * std::f32::consts::TAU / 120.0).sin() * 0.3;
        let (mut sample, mut packets) = (0usize, Vec::new());
        let mut out = vec![0u8; crate::codec::MAX_PACKET_LEN];
        for index in 0..count {
            let length = if index % 2 == 0 { 480 } else { 960 };
            let pcm: Vec<f32> = (sample..sample + length).map(tone).collect();
            let len = encoder.encode_float(&pcm, &mut out).unwrap();
            packets.push((
                Duration::from_micros(sample as u64 * 1_000_000 / 48_000),
                Bytes::copy_from_slice(&out[..len]),
            ));
            sample += length;
        }
        packets
    }

    #[test]
    fn the_jitter_unit_settles_on_the_average_packet_duration() {
        let mut cadence = Cadence::new(PacketDuration::Ms10);
        let changes = (0..64)
            .filter_map(|i| {
                cadence.observe(if i % 2 == 0 {
                    PacketDuration::Ms10
                } else {
                    PacketDuration::Ms20
                })
            })
            .count();
        assert!(
            changes <= 3,
            "{changes} unit changes for alternating packets"
        );
        assert!(cadence.unit.abs_diff(Duration::from_millis(15)) < Cadence::STEP);
        // A sender that settles on 20 ms is measured in exactly 20 ms.
        for _ in 0..Cadence::WINDOW {
            cadence.observe(PacketDuration::Ms20);
        }
        assert_eq!(cadence.unit, Duration::from_millis(20));
    }

    #[test]
    fn alternating_packet_durations_keep_one_decoder_and_jitter_buffer() {
        let packets = alternating_packets(200);
        let mut stream = SpeakerStream::new(PacketDuration::Ms10).unwrap();
        let (mut next, mut ticks, mut loud) = (0, 0u32, 0u32);
        // Each packet arrives 5 ms after its audio starts; playout ticks every 10 ms.
        for tick in 0..310u64 {
            let now = Duration::from_millis(10 * tick);
            while next < packets.len() && packets[next].0 + Duration::from_millis(5) <= now {
                stream.push(next as u32, packets[next].1.clone(), now);
                next += 1;
            }
            let mut mix = [0.0f32; FRAME_SAMPLES];
            stream.mix_into(now, &mut mix).unwrap();
            // Count from 100 ms in (the decoder's start) to the last packet's audio.
            if (10..295).contains(&tick) {
                ticks += 1;
                loud += u32::from(rms_dbfs(&mix) > -20.0);
            }
        }
        let stats = stream.stats();
        println!(
            "alternating 10/20 ms: {} of 200 packets played, tone in {loud} of {ticks} frames, {stats:?}",
            stats.played
        );
        // A jitter buffer rebuilt on a duration change starts its counters afresh: one that
        // lived through the whole run has counted (nearly) every packet.
        assert!(stats.played >= 195, "{stats:?}");
        assert_eq!(stream.rejected(), 0);
        assert!(
            stats.target <= 2,
            "the mix of durations inflated the buffer: {stats:?}"
        );
        assert!(
            loud * 100 >= ticks * 97,
            "tone in only {loud} of {ticks} frames"
        );
    }
}
