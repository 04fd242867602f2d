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

/// Which Opus mode carries the voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodecMode {
    /// Opus VoIP (SILK/hybrid): in-band FEC and DTX, 6.5 ms look-ahead.
    Voip,
    /// Opus restricted low delay (CELT only): 2.5 ms look-ahead, no FEC, losses concealed.
    LowDelay,
    /// With 10 ms packets, low delay while the network is clean and VoIP with FEC once the
    /// receivers report loss; with 20 ms packets, VoIP.
    #[default]
    Adaptive,
}

/// Reported loss (percent) at which the adaptive mode turns FEC on.
pub const FEC_ON_LOSS_PERCENT: i32 = 2;
/// Reported loss (percent) below which the adaptive mode goes back to low delay.
pub const FEC_OFF_LOSS_PERCENT: i32 = 1;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target bitrate, bits per second.
    pub bitrate: i32,
    /// Audio per packet.
    pub packet: PacketDuration,
    /// 0 (fastest) to 10 (best).
    pub complexity: i32,
    /// Expected packet loss, percent (tunes FEC, and picks the adaptive mode's codec).
    pub expected_loss_percent: i32,
    /// Which Opus mode to use.
    pub mode: CodecMode,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            bitrate: 32_000,
            packet: PacketDuration::Ms10,
            complexity: 8,
            expected_loss_percent: 0,
            mode: CodecMode::Adaptive,
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
    application: opus::Application,
    settings: EncoderSettings,
    pending: Vec<f32>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceEncoder")
            .field("settings", &self.settings)
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

/// The Opus application `settings` call for, given the one in use now (the adaptive mode
/// switches with hysteresis).
fn application_for(settings: EncoderSettings, now: Option<opus::Application>) -> opus::Application {
    match settings.mode {
        CodecMode::Voip => opus::Application::Voip,
        CodecMode::LowDelay => opus::Application::LowDelay,
        // 20 ms packets are a choice of bandwidth over latency: VoIP mode codes speech in
        // fewer bytes (measured: 59 against 64 kbit/s on the wire at 32 kbit/s).
        CodecMode::Adaptive if settings.packet == PacketDuration::Ms20 => opus::Application::Voip,
        CodecMode::Adaptive => {
            let loss = settings.expected_loss_percent;
            match now {
                Some(opus::Application::Voip) if loss >= FEC_OFF_LOSS_PERCENT => {
                    opus::Application::Voip
                }
                _ if loss >= FEC_ON_LOSS_PERCENT => opus::Application::Voip,
                _ => opus::Application::LowDelay,
            }
        }
    }
}

fn new_opus_encoder(application: opus::Application) -> Result<opus::Encoder, CodecError> {
    let mut encoder = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, application)?;
    if application == opus::Application::Voip {
        encoder.set_inband_fec(true)?;
    }
    encoder.set_dtx(true)?;
    Ok(encoder)
}

impl VoiceEncoder {
    /// An encoder for speech in the mode `settings` asks for (VoIP mode has in-band FEC; DTX
    /// is on in every mode).
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let application = application_for(settings, None);
        let mut voice = Self {
            encoder: new_opus_encoder(application)?,
            application,
            settings,
            pending: Vec::with_capacity(settings.packet.samples()),
            packet: vec![0; MAX_PACKET_LEN],
        };
        voice.configure(settings)?;
        Ok(voice)
    }

    /// Changes bitrate, complexity, expected loss and mode (not the packet duration) between
    /// frames. A mode switch starts a new Opus encoder: its first packet is coded on its own, so
    /// the listener's decoder follows without a dip (warming it with past audio made inter-coded
    /// packets the decoder could not follow, measured).
    pub fn apply(&mut self, settings: EncoderSettings) -> Result<(), CodecError> {
        let application = application_for(settings, Some(self.application));
        if application != self.application {
            self.encoder = new_opus_encoder(application)?;
            self.application = application;
        }
        self.configure(settings)
    }

    /// Whether packets carry in-band FEC now (VoIP mode).
    pub fn fec_active(&self) -> bool {
        self.application == opus::Application::Voip
    }

    fn configure(&mut self, settings: EncoderSettings) -> Result<(), CodecError> {
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

    /// Expects packets of `packet` duration from now on. An Opus decoder follows any packet
    /// duration by itself: a sender that changes duration keeps this decoder and its state.
    pub fn set_packet(&mut self, packet: PacketDuration) {
        self.packet = packet;
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
        let voip = EncoderSettings {
            mode: CodecMode::Voip,
            ..EncoderSettings::default()
        };
        let mut encoder = VoiceEncoder::new(voip).unwrap();
        assert_eq!(
            encoder.lookahead().unwrap(),
            312,
            "6.5 ms at 48 kHz in VoIP mode"
        );
        assert!(encoder.fec_active());
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

    /// Encodes and decodes one packet of a steady 400 Hz tone (its 120-sample period divides
    /// the frame, so frames join seamlessly); the decoded level, dBFS.
    fn decoded_levels(encoder: &mut VoiceEncoder, decoder: &mut VoiceDecoder) -> f64 {
        let frame: Frame =
            std::array::from_fn(|i| (i as f32 * std::f32::consts::TAU / 120.0).sin() * 0.3);
        let mut out = [0.0f32; FRAME_SAMPLES];
        let packet = encoder.encode(&frame).unwrap().unwrap().to_vec();
        decoder.decode(&packet, &mut out).unwrap();
        crate::frame::rms_dbfs(&out)
    }

    #[test]
    fn adaptive_mode_is_low_delay_on_a_clean_network_and_turns_fec_on_under_loss() {
        let mut encoder = VoiceEncoder::new(EncoderSettings::default()).unwrap();
        let mut decoder = VoiceDecoder::new(PacketDuration::Ms10).unwrap();
        assert_eq!(
            encoder.lookahead().unwrap(),
            120,
            "2.5 ms in low-delay mode"
        );
        assert!(!encoder.fec_active());
        let steady = (0..5)
            .map(|_| decoded_levels(&mut encoder, &mut decoder))
            .last()
            .unwrap();
        assert!((steady + 13.5).abs() < 1.0, "tone decodes at {steady} dBFS");

        encoder.set_expected_loss(FEC_ON_LOSS_PERCENT).unwrap();
        assert!(encoder.fec_active(), "loss turns FEC on");
        assert_eq!(encoder.lookahead().unwrap(), 312);
        // The same decoder follows the switch without a dip.
        for packet in 0..6 {
            let level = decoded_levels(&mut encoder, &mut decoder);
            assert!(
                (level - steady).abs() < 3.0,
                "packet {packet} after the switch: {level} dBFS"
            );
        }

        encoder.set_expected_loss(FEC_OFF_LOSS_PERCENT).unwrap();
        assert!(encoder.fec_active(), "hysteresis: 1 % keeps FEC on");
        encoder.set_expected_loss(0).unwrap();
        assert!(
            !encoder.fec_active(),
            "a clean network goes back to low delay"
        );
        for packet in 0..6 {
            let level = decoded_levels(&mut encoder, &mut decoder);
            assert!(
                (level - steady).abs() < 3.0,
                "packet {packet} after switching back: {level} dBFS"
            );
        }
    }
}
