//! Microphone capture: device callback → SPSC ring → (resample) → 10 ms frames.

use std::sync::Arc;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::device::callbacks;
use crate::device::resample::RateConverter;
use crate::device::{
    DeviceError, DeviceSelector, Direction, IoCounters, IoStats, choose_config, device_name, find,
    snapshot, stream_config,
};
use crate::frame::{FRAME_SAMPLES, Frame, SAMPLE_RATE};

/// An open capture device delivering the engine's frames.
pub struct CaptureStream {
    _stream: cpal::Stream,
    consumer: rtrb::Consumer<f32>,
    converter: Option<RateConverter>,
    pending: Vec<f32>,
    counters: Arc<IoCounters>,
    name: String,
    rate: u32,
    channels: u16,
}

impl std::fmt::Debug for CaptureStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureStream")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut producer: rtrb::Producer<f32>,
    counters: Arc<IoCounters>,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let on_error = {
        let counters = counters.clone();
        move |_error: cpal::Error| counters.fail()
    };
    let stream = device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            callbacks::capture(data, channels, &mut producer, &counters)
        },
        on_error,
        None,
    )?;
    Ok(stream)
}

impl CaptureStream {
    /// Opens and starts a capture device.
    pub fn open(selector: &DeviceSelector) -> Result<Self, DeviceError> {
        let device = find(selector, Direction::Input)?;
        let supported = choose_config(&device, Direction::Input)?;
        let config = stream_config(&supported, 10);
        let rate = config.sample_rate;
        // One second of headroom between the callback and the processing thread.
        let (producer, consumer) = rtrb::RingBuffer::new(rate as usize);
        let counters = Arc::new(IoCounters::default());
        let stream = match supported.sample_format() {
            cpal::SampleFormat::I16 => build::<i16>(&device, config, producer, counters.clone())?,
            cpal::SampleFormat::I32 => build::<i32>(&device, config, producer, counters.clone())?,
            cpal::SampleFormat::U16 => build::<u16>(&device, config, producer, counters.clone())?,
            cpal::SampleFormat::U8 => build::<u8>(&device, config, producer, counters.clone())?,
            cpal::SampleFormat::F64 => build::<f64>(&device, config, producer, counters.clone())?,
            _ => build::<f32>(&device, config, producer, counters.clone())?,
        };
        stream.play()?;
        let converter = (rate != SAMPLE_RATE)
            .then(|| RateConverter::new(rate, SAMPLE_RATE))
            .transpose()?;
        Ok(Self {
            _stream: stream,
            consumer,
            converter,
            pending: Vec::with_capacity(8 * FRAME_SAMPLES),
            counters,
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

    /// The device's channel count.
    pub fn device_channels(&self) -> u16 {
        self.channels
    }

    /// Whether the device failed (unplugged, sound server gone): reopen it.
    pub fn failure(&self) -> bool {
        self.counters.has_failed()
    }

    /// Callback counters.
    pub fn stats(&self) -> IoStats {
        snapshot(&self.counters)
    }

    /// Takes the next 10 ms frame if the device has delivered one.
    pub fn read_frame(&mut self, out: &mut Frame) -> bool {
        let available = self.consumer.slots();
        if available > 0
            && let Ok(chunk) = self.consumer.read_chunk(available)
        {
            let (first, second) = chunk.as_slices();
            for part in [first, second] {
                match &mut self.converter {
                    Some(converter) => {
                        let pending = &mut self.pending;
                        converter.push(part, |converted| pending.extend_from_slice(converted));
                    }
                    None => self.pending.extend_from_slice(part),
                }
            }
            chunk.commit_all();
        }
        if self.pending.len() < FRAME_SAMPLES {
            return false;
        }
        out.copy_from_slice(&self.pending[..FRAME_SAMPLES]);
        self.pending.drain(..FRAME_SAMPLES);
        true
    }
}
