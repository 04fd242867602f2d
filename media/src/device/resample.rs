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
