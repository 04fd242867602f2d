//! Opus voice encoding and decoding, with in-band FEC, DTX and packet-loss concealment.

use crate::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};

/// Largest Opus packet.
pub const MAX_PACKET_LEN: usize = 1275;

/// How much audio one packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketDuration {
    /// 10 ms: lowest latency.
    Ms10,
    /// 20 ms: less overhead per second of speech.
    Ms20,
}

impl PacketDuration {
    /// Engine frames per packet.
    pub fn frames(self) -> usize {
        match self {
            Self::Ms10 => 1,
            Self::Ms20 => 2,
        }
    }

    /// Samples per packet.
    pub fn samples(self) -> usize {
        self.frames() * FRAME_SAMPLES
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target bitrate, bits per second.
    pub bitrate: i32,
    /// Audio per packet.
    pub packet: PacketDuration,
    /// 0 (fastest) to 10 (best).
    pub complexity: i32,
    /// Expected packet loss, percent (tunes FEC).
    pub expected_loss_percent: i32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            bitrate: 32_000,
            packet: PacketDuration::Ms10,
            complexity: 8,
            expected_loss_percent: 0,
        }
    }
}

/// Why the codec failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// libopus reported an error.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A packet decoded to an unexpected length.
    #[error("opus packet holds {got} samples where {expected} were expected")]
    WrongLength {
        /// Samples decoded.
        got: usize,
        /// Samples expected.
        expected: usize,
    },
}

/// Encodes 10 ms frames into Opus packets of the configured duration.
pub struct VoiceEncoder {
    encoder: opus::Encoder,
    settings: EncoderSettings,
    pending: Vec<f32>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceEncoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl VoiceEncoder {
    /// An encoder for speech (Opus VoIP mode, in-band FEC and DTX on).
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_inband_fec(true)?;
        encoder.set_dtx(true)?;
        let mut voice = Self {
            encoder,
            settings,
            pending: Vec::with_capacity(settings.packet.samples()),
            packet: vec![0; MAX_PACKET_LEN],
        };
        voice.apply(settings)?;
        Ok(voice)
    }

    /// Changes bitrate, complexity and expected loss (not the packet duration) between frames.
    pub fn apply(&mut self, settings: EncoderSettings) -> Result<(), CodecError> {
        self.encoder
            .set_bitrate(opus::Bitrate::Bits(settings.bitrate))?;
        self.encoder
            .set_complexity(settings.complexity.clamp(0, 10))?;
        self.encoder
            .set_packet_loss_perc(settings.expected_loss_percent.clamp(0, 100))?;
        self.settings = EncoderSettings {
            packet: self.settings.packet,
            ..settings
        };
        Ok(())
    }

    /// Feeds back the loss the network reports, so FEC adapts.
    pub fn set_expected_loss(&mut self, percent: i32) -> Result<(), CodecError> {
        self.apply(EncoderSettings {
            expected_loss_percent: percent,
            ..self.settings
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Samples of look-ahead the encoder adds (delay).
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        Ok(usize::try_from(self.encoder.get_lookahead()?).unwrap_or(0))
    }

    /// Adds a frame; returns a packet once a whole packet's worth of audio is in. A packet of
    /// two bytes or fewer is DTX silence and need not be sent.
    pub fn encode(&mut self, frame: &Frame) -> Result<Option<&[u8]>, CodecError> {
        self.pending.extend_from_slice(frame);
        if self.pending.len() < self.settings.packet.samples() {
            return Ok(None);
        }
        let len = self.encoder.encode_float(&self.pending, &mut self.packet)?;
        self.pending.clear();
        Ok(Some(&self.packet[..len]))
    }
}

/// Decodes one speaker's packets, recovering losses from FEC or concealing them.
pub struct VoiceDecoder {
    decoder: opus::Decoder,
    packet: PacketDuration,
}

impl std::fmt::Debug for VoiceDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceDecoder")
            .field("packet", &self.packet)
            .finish_non_exhaustive()
    }
}

impl VoiceDecoder {
    /// A decoder for packets of `packet` duration.
    pub fn new(packet: PacketDuration) -> Result<Self, CodecError> {
        Ok(Self {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
            packet,
        })
    }

    fn check(&self, got: usize) -> Result<(), CodecError> {
        let expected = self.packet.samples();
        if got == expected {
            Ok(())
        } else {
            Err(CodecError::WrongLength { got, expected })
        }
    }

    /// Decodes a packet into `out` (one packet's samples).
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        let got = self.decoder.decode_float(packet, out, false)?;
        self.check(got)
    }

    /// Rebuilds the lost packet before `next` from the FEC data `next` carries.
    pub fn recover(&mut self, next: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
        let got = self.decoder.decode_float(next, out, true)?;
        self.check(got)
    }

    /// How many samples `packet` decodes to (its duration), without decoding it.
    pub fn packet_samples(&self, packet: &[u8]) -> Result<usize, CodecError> {
        Ok(self.decoder.get_nb_samples(packet)?)
    }

    /// Conceals a lost packet (packet-loss concealment).
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<(), CodecError> {
        let got = self.decoder.decode_float(&[], out, false)?;
        self.check(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_recovers_and_conceals_with_the_documented_lookahead() {
        let mut encoder = VoiceEncoder::new(EncoderSettings::default()).unwrap();
        assert_eq!(
            encoder.lookahead().unwrap(),
            312,
            "6.5 ms at 48 kHz in VoIP mode"
        );
        let frame: Frame = std::array::from_fn(|i| (i as f32 * 0.05).sin() * 0.3);
        let mut decoder = VoiceDecoder::new(PacketDuration::Ms10).unwrap();
        let mut out = [0.0f32; FRAME_SAMPLES];
        let first = encoder.encode(&frame).unwrap().unwrap().to_vec();
        let second = encoder.encode(&frame).unwrap().unwrap().to_vec();
        decoder.decode(&first, &mut out).unwrap();
        decoder.recover(&second, &mut out).unwrap();
        decoder.conceal(&mut out).unwrap();
        assert!(
            matches!(
                decoder.decode(&[0xff; 3], &mut out),
                Err(CodecError::Opus(_))
            ),
            "garbage is an error, not a panic"
        );
    }
}
