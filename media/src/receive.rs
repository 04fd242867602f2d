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

/// One remote speaker: its jitter buffer, decoder and volume.
#[derive(Debug)]
pub struct SpeakerStream {
    jitter: JitterBuffer,
    decoder: VoiceDecoder,
    packet: PacketDuration,
    pcm: Vec<f32>,
    read: usize,
    gain: f32,
    quiet: bool,
    speaking: bool,
    rejected: u64,
}

impl SpeakerStream {
    /// A stream for packets of `packet` duration.
    pub fn new(packet: PacketDuration) -> Result<Self, CodecError> {
        let samples = packet.samples();
        Ok(Self {
            jitter: JitterBuffer::new(Duration::from_millis(10 * packet.frames() as u64)),
            decoder: VoiceDecoder::new(packet)?,
            packet,
            pcm: vec![0.0; samples],
            read: samples,
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

    /// Accepts a packet (its sender counter and Opus payload) that arrived at `now`. The
    /// speaker's packet duration is learnt from its packets; a change restarts the stream.
    /// Packets that are not Opus voice of 10 or 20 ms are dropped and counted.
    pub fn push(&mut self, seq: u32, payload: Bytes, now: Duration) {
        let duration = match self.decoder.packet_samples(&payload) {
            Ok(samples) if samples == PacketDuration::Ms10.samples() => PacketDuration::Ms10,
            Ok(samples) if samples == PacketDuration::Ms20.samples() => PacketDuration::Ms20,
            _ => {
                self.rejected += 1;
                return;
            }
        };
        if duration != self.packet {
            match VoiceDecoder::new(duration) {
                Ok(decoder) => {
                    self.decoder = decoder;
                    self.packet = duration;
                    self.jitter =
                        JitterBuffer::new(Duration::from_millis(10 * duration.frames() as u64));
                    self.pcm = vec![0.0; duration.samples()];
                    self.read = duration.samples();
                }
                Err(_) => {
                    self.rejected += 1;
                    return;
                }
            }
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
        if self.read >= self.pcm.len() {
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
        let samples = self.packet.samples();
        let pcm = &mut self.pcm[..samples];
        let decoded = match self.jitter.pop(now, self.quiet) {
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
}
