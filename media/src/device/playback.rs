//! Speaker playback: 10 ms frames → (resample) → SPSC ring → device callback.

use std::sync::Arc;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::device::callbacks;
use crate::device::resample::RateConverter;
use crate::device::{
    DeviceError, DeviceSelector, Direction, IoCounters, IoStats, choose_config, device_name, find,
    snapshot, stream_config,
};
use crate::frame::{Frame, SAMPLE_RATE};

/// Silence queued ahead of the first frame, so the first callbacks do not underrun: 20 ms.
const PREFILL_MS: u32 = 20;

/// Most audio queued for the device before frames are dropped: 40 ms, two device periods of
/// jitter in the processing thread on top of the device's own 20 ms buffer.
pub(crate) const MAX_QUEUED_MS: usize = 40;

/// An open playback device taking the engine's frames.
pub struct PlaybackStream {
    _stream: cpal::Stream,
    producer: rtrb::Producer<f32>,
    converter: Option<RateConverter>,
    counters: Arc<IoCounters>,
    dropped: u64,
    name: String,
    rate: u32,
    channels: u16,
}

impl std::fmt::Debug for PlaybackStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackStream")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut consumer: rtrb::Consumer<f32>,
    counters: Arc<IoCounters>,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    let on_error = {
        let counters = counters.clone();
        move |_error: cpal::Error| counters.fail()
    };
    let stream = device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            callbacks::playback(data, channels, &mut consumer, &counters)
        },
        on_error,
        None,
    )?;
    Ok(stream)
}

impl PlaybackStream {
    /// Opens and starts a playback device.
    pub fn open(selector: &DeviceSelector) -> Result<Self, DeviceError> {
        let device = find(selector, Direction::Output)?;
        let supported = choose_config(&device, Direction::Output)?;
        let config = stream_config(&supported, 10);
        let rate = config.sample_rate;
        let (mut producer, consumer) = rtrb::RingBuffer::new(rate as usize / 2);
        for _ in 0..rate * PREFILL_MS / 1000 {
            let _ = producer.push(0.0);
        }
        let counters = Arc::new(IoCounters::default());
        let stream = match supported.sample_format() {
            cpal::SampleFormat::I16 => build::<i16>(&device, config, consumer, counters.clone())?,
            cpal::SampleFormat::I32 => build::<i32>(&device, config, consumer, counters.clone())?,
            cpal::SampleFormat::U16 => build::<u16>(&device, config, consumer, counters.clone())?,
            cpal::SampleFormat::U8 => build::<u8>(&device, config, consumer, counters.clone())?,
            cpal::SampleFormat::F64 => build::<f64>(&device, config, consumer, counters.clone())?,
            _ => build::<f32>(&device, config, consumer, counters.clone())?,
        };
        stream.play()?;
        let converter = (rate != SAMPLE_RATE)
            .then(|| RateConverter::new(SAMPLE_RATE, rate))
            .transpose()?;
        Ok(Self {
            _stream: stream,
            producer,
            converter,
            counters,
            dropped: 0,
            name: device_name(&device),
            rate,
            channels: config.channels,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's sample rate.
    pub fn device_rate(&self) -> u32 {
        self.rate
    }

    /// Whether the device failed (unplugged, sound server gone): reopen it.
    pub fn failure(&self) -> bool {
        self.counters.has_failed()
    }

    /// Callback counters.
    pub fn stats(&self) -> IoStats {
        snapshot(&self.counters)
    }

    /// Device samples queued and not yet played.
    pub fn queued(&self) -> usize {
        self.producer.buffer().capacity() - self.producer.slots()
    }

    /// Samples dropped because the device was behind (see [`Self::write_frame`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues a 10 ms frame for playback. While more than [`MAX_QUEUED_MS`] is already
    /// waiting (the device started late, or stalled and came back), the frame is dropped
    /// instead, so a backlog never turns into lasting delay.
    pub fn write_frame(&mut self, frame: &Frame) {
        if self.queued() > self.rate as usize * MAX_QUEUED_MS / 1000 {
            self.dropped += frame.len() as u64;
            return;
        }
        let Self {
            producer,
            converter,
            dropped,
            ..
        } = self;
        let mut queue = |samples: &[f32]| {
            for sample in samples {
                if producer.push(*sample).is_err() {
                    *dropped += 1;
                }
            }
        };
        match converter {
            Some(converter) => converter.push(frame, queue),
            None => queue(frame),
        }
    }
}
