//! Automatic gain control: brings speech to a steady level, whatever the microphone.

use crate::frame::{FRAME_SAMPLES, Frame, db_to_gain, rms_dbfs};

/// Tuning of [`AutomaticGain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainSettings {
    /// Speech level to aim for, dBFS RMS.
    pub target_dbfs: f32,
    /// Most amplification, dB.
    pub max_gain_db: f32,
    /// Most attenuation (as a negative gain), dB.
    pub min_gain_db: f32,
    /// How fast gain may rise, dB per second (slow, so noise is not pumped up between words).
    pub rise_db_per_second: f32,
    /// How fast gain may fall, dB per second (fast, so a shout does not clip for long).
    pub fall_db_per_second: f32,
}

impl Default for GainSettings {
    fn default() -> Self {
        Self {
            target_dbfs: -20.0,
            max_gain_db: 30.0,
            min_gain_db: -12.0,
            rise_db_per_second: 10.0,
            fall_db_per_second: 60.0,
        }
    }
}

/// Level below which a frame is not considered speech, whatever the voice detector says.
const SPEECH_FLOOR_DBFS: f64 = -65.0;
/// Smoothing of the speech level estimate per speech frame (≈ 200 ms time constant).
const LEVEL_SMOOTHING: f64 = 0.05;
/// Samples above this are softly limited.
const LIMIT_KNEE: f32 = 0.9;

/// Adaptive gain driven by the speech level, with a soft limiter.
#[derive(Debug, Clone)]
pub struct AutomaticGain {
    settings: GainSettings,
    speech_level_dbfs: Option<f64>,
    gain_db: f32,
    enabled: bool,
}

impl Default for AutomaticGain {
    fn default() -> Self {
        Self::new(GainSettings::default())
    }
}

impl AutomaticGain {
    /// Gain control with `settings`, starting at 0 dB.
    pub fn new(settings: GainSettings) -> Self {
        Self {
            settings,
            speech_level_dbfs: None,
            gain_db: 0.0,
            enabled: true,
        }
    }

    /// Switches gain control on or off (off holds 0 dB, ramping there smoothly).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Whether gain control is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The gain applied to the last frame, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Adjusts a frame in place. `speech` says whether the frame holds voice.
    pub fn process(&mut self, frame: &mut Frame, speech: bool) {
        let level = rms_dbfs(frame);
        if self.enabled && speech && level > SPEECH_FLOOR_DBFS {
            let estimate = self.speech_level_dbfs.get_or_insert(level);
            *estimate += LEVEL_SMOOTHING * (level - *estimate);
        }
        let desired = match (self.enabled, self.speech_level_dbfs) {
            (true, Some(speech_level)) => (f64::from(self.settings.target_dbfs) - speech_level)
                .clamp(
                    f64::from(self.settings.min_gain_db),
                    f64::from(self.settings.max_gain_db),
                ) as f32,
            _ => 0.0,
        };
        let frame_seconds = FRAME_SAMPLES as f32 / crate::SAMPLE_RATE as f32;
        let step = if desired > self.gain_db {
            (desired - self.gain_db).min(self.settings.rise_db_per_second * frame_seconds)
        } else {
            (desired - self.gain_db).max(-self.settings.fall_db_per_second * frame_seconds)
        };
        let (from, to) = (db_to_gain(self.gain_db), db_to_gain(self.gain_db + step));
        self.gain_db += step;
        for (index, sample) in frame.iter_mut().enumerate() {
            let gain = from + (to - from) * (index as f32 / FRAME_SAMPLES as f32);
            *sample = soft_limit(*sample * gain);
        }
    }
}

/// Leaves samples below the knee alone and bends larger ones smoothly towards ±1.
fn soft_limit(sample: f32) -> f32 {
    let magnitude = sample.abs();
    if magnitude <= LIMIT_KNEE {
        sample
    } else {
        let headroom = 1.0 - LIMIT_KNEE;
        sample.signum() * (LIMIT_KNEE + headroom * ((magnitude - LIMIT_KNEE) / headroom).tanh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(level_dbfs: f32, frame_index: usize) -> Frame {
        // A sine's RMS is its amplitude / √2.
        let amplitude = db_to_gain(level_dbfs) * std::f32::consts::SQRT_2;
        std::array::from_fn(|i| {
            let n = (frame_index * FRAME_SAMPLES + i) as f32;
            amplitude * (2.0 * std::f32::consts::PI * 300.0 * n / 48_000.0).sin()
        })
    }

    fn settle(input_dbfs: f32, seconds: usize) -> (AutomaticGain, f64) {
        let mut agc = AutomaticGain::default();
        let mut level = 0.0;
        for index in 0..seconds * 100 {
            let mut frame = tone(input_dbfs, index);
            agc.process(&mut frame, true);
            level = rms_dbfs(&frame);
        }
        (agc, level)
    }

    #[test]
    fn quiet_speech_is_raised_to_the_target() {
        let (agc, level) = settle(-40.0, 4);
        assert!((level + 20.0).abs() < 1.0, "settled at {level} dBFS");
        assert!((agc.gain_db() - 20.0).abs() < 1.0);
    }

    #[test]
    fn loud_speech_is_lowered_quickly_and_never_clips() {
        let mut agc = AutomaticGain::default();
        let mut peak = 0.0f32;
        for index in 0..100 {
            let mut frame = tone(-2.0, index);
            agc.process(&mut frame, true);
            peak = frame.iter().fold(peak, |p, s| p.max(s.abs()));
        }
        assert!(peak <= 1.0, "the limiter holds peaks below full scale");
        // Within a second the gain has reached its floor: −2 − 12 dB.
        let mut frame = tone(-2.0, 100);
        agc.process(&mut frame, true);
        assert!(
            (rms_dbfs(&frame) + 14.0).abs() < 1.0,
            "{}",
            rms_dbfs(&frame)
        );
    }

    #[test]
    fn the_gain_is_bounded_and_noise_does_not_steer_it() {
        let (agc, _) = settle(-70.0, 6);
        assert!(agc.gain_db() <= 30.0);
        let mut agc = AutomaticGain::default();
        for index in 0..300 {
            let mut frame = tone(-45.0, index);
            agc.process(&mut frame, false);
        }
        assert_eq!(agc.gain_db(), 0.0, "non-speech frames leave the gain alone");
    }
}
