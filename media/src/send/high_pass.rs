//! A second-order Butterworth high-pass filter that removes rumble, hum and DC below speech.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use crate::frame::{Frame, SAMPLE_RATE};

/// Default corner frequency: below the lowest voice fundamentals.
pub(crate) const DEFAULT_CUTOFF_HZ: f64 = 80.0;

/// A biquad high-pass (RBJ cookbook form, Q = 1/√2), transposed direct form II.
#[derive(Debug, Clone)]
pub struct HighPass {
    b: [f64; 3],
    a: [f64; 2],
    state: [f64; 2],
    cutoff_hz: f64,
}

impl Default for HighPass {
    fn default() -> Self {
        Self::new(DEFAULT_CUTOFF_HZ)
    }
}

impl HighPass {
    /// A filter with its −3 dB corner at `cutoff_hz`.
    pub fn new(cutoff_hz: f64) -> Self {
        let omega = 2.0 * PI * cutoff_hz / f64::from(SAMPLE_RATE);
        let alpha = omega.sin() / (2.0 * FRAC_1_SQRT_2);
        let cos = omega.cos();
        let a0 = 1.0 + alpha;
        Self {
            b: [
                (1.0 + cos) / 2.0 / a0,
                -(1.0 + cos) / a0,
                (1.0 + cos) / 2.0 / a0,
            ],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            state: [0.0; 2],
            cutoff_hz,
        }
    }

    /// The corner frequency.
    pub fn cutoff_hz(&self) -> f64 {
        self.cutoff_hz
    }

    /// The analytic magnitude response at `frequency_hz` (linear).
    pub fn magnitude_at(&self, frequency_hz: f64) -> f64 {
        let omega = 2.0 * PI * frequency_hz / f64::from(SAMPLE_RATE);
        let (z1, z2) = ((-omega).cos(), (-2.0 * omega).cos());
        let (s1, s2) = ((-omega).sin(), (-2.0 * omega).sin());
        let num = (
            self.b[0] + self.b[1] * z1 + self.b[2] * z2,
            self.b[1] * s1 + self.b[2] * s2,
        );
        let den = (
            1.0 + self.a[0] * z1 + self.a[1] * z2,
            self.a[0] * s1 + self.a[1] * s2,
        );
        (num.0.hypot(num.1)) / (den.0.hypot(den.1))
    }

    /// Forgets the signal history.
    pub fn reset(&mut self) {
        self.state = [0.0; 2];
    }

    /// Filters a frame in place.
    pub fn process(&mut self, frame: &mut Frame) {
        for sample in frame.iter_mut() {
            let x = f64::from(*sample);
            let y = self.b[0] * x + self.state[0];
            self.state[0] = self.b[1] * x - self.a[0] * y + self.state[1];
            self.state[1] = self.b[2] * x - self.a[1] * y;
            *sample = y as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FRAME_SAMPLES, rms_dbfs};

    fn response_db(filter: &mut HighPass, frequency: f64) -> f64 {
        let seconds = 2;
        let mut input = Vec::new();
        let mut output = Vec::new();
        for frame_index in 0..(seconds * 100) {
            let mut frame = [0.0f32; FRAME_SAMPLES];
            for (i, sample) in frame.iter_mut().enumerate() {
                let n = (frame_index * FRAME_SAMPLES + i) as f64;
                *sample = (0.5 * (2.0 * PI * frequency * n / 48_000.0).sin()) as f32;
            }
            input.extend_from_slice(&frame);
            filter.process(&mut frame);
            output.extend_from_slice(&frame);
        }
        // Skip the first second: the filter's transient.
        rms_dbfs(&output[48_000..]) - rms_dbfs(&input[48_000..])
    }

    #[test]
    fn measured_response_matches_the_analytic_butterworth_curve() {
        for frequency in [20.0, 50.0, 80.0, 160.0, 1_000.0, 8_000.0] {
            let mut filter = HighPass::default();
            let analytic = 20.0 * filter.magnitude_at(frequency).log10();
            // Butterworth high-pass: |H| = (f/fc)^2 / sqrt(1 + (f/fc)^4), away from Nyquist.
            let ratio: f64 = frequency / DEFAULT_CUTOFF_HZ;
            let ideal = 20.0 * (ratio.powi(2) / (1.0 + ratio.powi(4)).sqrt()).log10();
            assert!(
                (analytic - ideal).abs() < 0.1,
                "{frequency} Hz: {analytic} vs {ideal}"
            );
            let measured = response_db(&mut filter, frequency);
            assert!(
                (measured - analytic).abs() < 0.2,
                "{frequency} Hz: measured {measured}, analytic {analytic}"
            );
        }
        assert!(
            (20.0 * HighPass::default().magnitude_at(80.0).log10() + 3.01).abs() < 0.05,
            "−3 dB at the corner"
        );
    }

    #[test]
    fn removes_dc() {
        let mut filter = HighPass::default();
        let mut frame = [0.25f32; FRAME_SAMPLES];
        for _ in 0..100 {
            frame = [0.25; FRAME_SAMPLES];
            filter.process(&mut frame);
        }
        assert!(rms_dbfs(&frame) < -80.0);
    }
}
