//! What the device callbacks run, as plain functions: public so a test can prove they never
//! allocate, lock or block.

use std::sync::atomic::Ordering;

use cpal::{FromSample, SizedSample};

use crate::device::IoCounters;

/// Moves one capture buffer (`channels` interleaved) into the ring as mono samples.
pub fn capture<T>(
    data: &[T],
    channels: usize,
    producer: &mut rtrb::Producer<f32>,
    counters: &IoCounters,
) where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = channels.max(1);
    let scale = 1.0 / channels as f32;
    counters.callbacks.fetch_add(1, Ordering::Relaxed);
    counters
        .samples
        .fetch_add((data.len() / channels) as u64, Ordering::Relaxed);
    let mut dropped = false;
    for frame in data.chunks_exact(channels) {
        let mono = frame
            .iter()
            .map(|sample| sample.to_sample::<f32>())
            .sum::<f32>()
            * scale;
        dropped |= producer.push(mono).is_err();
    }
    if dropped {
        counters.overruns.fetch_add(1, Ordering::Relaxed);
    }
}

/// Fills one playback buffer (`channels` interleaved) from the ring, with silence where it runs dry.
pub fn playback<T>(
    data: &mut [T],
    channels: usize,
    consumer: &mut rtrb::Consumer<f32>,
    counters: &IoCounters,
) where
    T: SizedSample + FromSample<f32>,
{
    let channels = channels.max(1);
    counters.callbacks.fetch_add(1, Ordering::Relaxed);
    counters
        .samples
        .fetch_add((data.len() / channels) as u64, Ordering::Relaxed);
    let mut starved = false;
    for frame in data.chunks_exact_mut(channels) {
        let sample = consumer.pop().unwrap_or_else(|_| {
            starved = true;
            0.0
        });
        frame.fill(T::from_sample(sample));
    }
    if starved {
        counters.underruns.fetch_add(1, Ordering::Relaxed);
    }
}
