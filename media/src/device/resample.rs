//! Rate conversion between a device and the engine, in 10 ms chunks (rubato, FFT-based).

use rubato::{FftFixedInOut, Resampler};

use crate::device::DeviceError;

/// Converts a mono stream from one rate to another. Allocates only when built.
pub(crate) struct RateConverter {
    resampler: FftFixedInOut<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl RateConverter {
    pub(crate) fn new(from: u32, to: u32) -> Result<Self, DeviceError> {
        let resampler = FftFixedInOut::new(from as usize, to as usize, (from / 100) as usize, 1)
            .map_err(|error| DeviceError::Resampler {
                rate: from.max(to),
                reason: error.to_string(),
            })?;
        let input = Vec::with_capacity(resampler.input_frames_max());
        let output = vec![0.0; resampler.output_frames_max()];
        Ok(Self {
            resampler,
            input,
            output,
        })
    }

    /// Feeds samples; every converted chunk is handed to `sink`.
    pub(crate) fn push(&mut self, samples: &[f32], mut sink: impl FnMut(&[f32])) {
        let mut rest = samples;
        while !rest.is_empty() {
            let wanted = self.resampler.input_frames_next() - self.input.len();
            let take = wanted.min(rest.len());
            self.input.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.input.len() == self.resampler.input_frames_next() {
                if let Ok((_, produced)) = self.resampler.process_into_buffer(
                    &[&self.input],
                    &mut [&mut self.output],
                    None,
                ) {
                    sink(&self.output[..produced]);
                }
                self.input.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dominant frequency by counting zero crossings (enough for a clean sine).
    fn frequency(samples: &[f32], rate: f64) -> f64 {
        let crossings = samples
            .windows(2)
            .filter(|pair| pair[0] < 0.0 && pair[1] >= 0.0)
            .count();
        crossings as f64 * rate / samples.len() as f64
    }

    #[test]
    fn converts_44_1_khz_to_48_khz_keeping_pitch_and_duration() {
        let mut converter = RateConverter::new(44_100, 48_000).unwrap();
        let input: Vec<f32> = (0..44_100)
            .map(|n| (2.0 * std::f32::consts::PI * 1_000.0 * n as f32 / 44_100.0).sin() * 0.5)
            .collect();
        let mut output = Vec::new();
        // Device-sized pieces of odd length, as callbacks deliver them.
        for piece in input.chunks(367) {
            converter.push(piece, |converted| output.extend_from_slice(converted));
        }
        // One second in, one second out, less the chunk still buffered.
        assert!(
            (47_000..=48_000).contains(&output.len()),
            "{} samples",
            output.len()
        );
        let pitch = frequency(&output[4_800..], 48_000.0);
        assert!((pitch - 1_000.0).abs() < 5.0, "{pitch} Hz");
    }

    #[test]
    fn converts_48_khz_down_to_16_khz() {
        let mut converter = RateConverter::new(48_000, 16_000).unwrap();
        let input: Vec<f32> = (0..48_000)
            .map(|n| (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 48_000.0).sin())
            .collect();
        let mut output = Vec::new();
        converter.push(&input, |converted| output.extend_from_slice(converted));
        assert!((15_000..=16_000).contains(&output.len()));
        assert!((frequency(&output[1_600..], 16_000.0) - 440.0).abs() < 5.0);
    }
}
