//! Voice activity: RNNoise's voice probability, checked against a tracked noise floor.
//!
//! RNNoise alone takes some steady, speech-band noise (fans, rumble) for voice. Speech rises
//! well above the background between syllables; steady noise does not. So a frame counts as
//! voice only if the network says so *and* it stands out from the noise floor, which is tracked
//! by minimum statistics: it follows the level down at once and creeps up slowly.

/// dB a voice frame must stand above the noise floor.
const ABOVE_FLOOR_DB: f64 = 6.0;
/// How fast the floor estimate may rise, dB per 10 ms frame (2 dB/s).
const FLOOR_RISE_DB: f64 = 0.02;
/// Factor applied to the probability of frames that do not stand out.
const BURIED_FACTOR: f32 = 0.2;

/// Tracks the noise floor and turns RNNoise probabilities into voice scores.
#[derive(Debug, Clone, Default)]
pub struct VoiceDetector {
    floor_db: Option<f64>,
}

impl VoiceDetector {
    /// A detector that has heard nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current noise-floor estimate, dBFS.
    pub fn noise_floor_dbfs(&self) -> Option<f64> {
        self.floor_db
    }

    /// The voice score (0…1) of a frame at `level_dbfs` that RNNoise rated `probability`.
    pub fn score(&mut self, level_dbfs: f64, probability: f32) -> f32 {
        let floor = match self.floor_db {
            Some(floor) if level_dbfs >= floor => floor + FLOOR_RISE_DB,
            _ => level_dbfs,
        };
        self.floor_db = Some(floor);
        if level_dbfs >= floor + ABOVE_FLOOR_DB {
            probability
        } else {
            probability * BURIED_FACTOR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_noise_is_buried_and_speech_over_it_is_not() {
        let mut detector = VoiceDetector::new();
        for _ in 0..200 {
            assert!(
                detector.score(-40.0, 0.9) < 0.5,
                "steady noise, however speech-like, is not voice"
            );
        }
        assert!(
            detector.score(-26.0, 0.9) >= 0.5,
            "speech standing out of the noise is voice"
        );
        assert!((detector.noise_floor_dbfs().unwrap() + 40.0).abs() < 5.0);
    }
}
