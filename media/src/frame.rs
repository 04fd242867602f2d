//! The engine's audio frame and level helpers.

/// Samples per second everywhere inside the engine.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one frame: 10 ms at 48 kHz, the unit every stage processes.
pub const FRAME_SAMPLES: usize = 480;

/// One 10 ms mono frame, samples in −1…1.
pub type Frame = [f32; FRAME_SAMPLES];

/// A frame of silence.
pub const SILENCE: Frame = [0.0; FRAME_SAMPLES];

/// Mean power of `samples` (mean of squares); 0 for none.
pub fn power(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|s| f64::from(*s) * f64::from(*s))
        .sum::<f64>()
        / samples.len() as f64
}

/// RMS level of `samples` in dB relative to full scale (a full-scale sine is −3 dBFS);
/// −120 for silence.
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    power_db(power(samples))
}

/// A mean power in dB, floored at −120.
pub fn power_db(power: f64) -> f64 {
    if power <= 1e-12 {
        -120.0
    } else {
        10.0 * power.log10()
    }
}

/// The linear amplitude factor of `db` decibels.
pub fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_of_known_signals() {
        let full_scale_square = [1.0f32; FRAME_SAMPLES];
        assert!((rms_dbfs(&full_scale_square)).abs() < 1e-9);
        let sine: Vec<f32> = (0..48_000).map(|n| (n as f32 * 0.1).sin()).collect();
        assert!((rms_dbfs(&sine) + 3.01).abs() < 0.05);
        assert_eq!(rms_dbfs(&SILENCE), -120.0);
        assert!((db_to_gain(-6.0206) - 0.5).abs() < 1e-4);
    }
}
