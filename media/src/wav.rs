//! WAV files in and out: the engine's headless input and output.

use std::path::Path;

use crate::frame::SAMPLE_RATE;

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file could not be read or written, or is not a WAV file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: hound::Error,
    },
    /// The file's rate is not the engine's.
    #[error(
        "{path} is sampled at {rate} Hz; convert it to 48000 Hz first, e.g. `sox {path} -r 48000 out.wav`"
    )]
    SampleRate {
        /// The file.
        path: String,
        /// Its rate.
        rate: u32,
    },
}

/// Reads a 48 kHz WAV file (any sample format; channels are averaged to mono) as samples in −1…1.
pub fn read_mono(path: &Path) -> Result<Vec<f32>, WavError> {
    let name = path.display().to_string();
    let io = |source| WavError::Io {
        path: name.clone(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(io)?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE {
        return Err(WavError::SampleRate {
            path: name,
            rate: spec.sample_rate,
        });
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(io)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(io)?
        }
    };
    let channels = usize::from(spec.channels.max(1));
    Ok(interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect())
}

/// Writes mono samples as a 48 kHz 16-bit WAV file.
pub fn write_mono(path: &Path, samples: &[f32]) -> Result<(), WavError> {
    let io = |source| WavError::Io {
        path: path.display().to_string(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(io)?;
    for sample in samples {
        writer
            .write_sample((sample.clamp(-1.0, 1.0) * 32_767.0).round() as i16)
            .map_err(io)?;
    }
    writer.finalize().map_err(io)
}
