//! The code the device callbacks run never allocates: a counting global allocator watches it
//! move audio through full, empty and partly filled rings, at several buffer sizes and formats.

// A global allocator is the one place a test needs `unsafe`: it forwards to the system
// allocator and only counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sotto_media::device::IoCounters;
use sotto_media::device::callbacks::{capture, playback};

struct CountingAllocator;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `work` and returns how many allocations it made.
fn allocations_during(work: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|count| count.set(0));
    WATCHING.with(|watching| watching.set(true));
    work();
    WATCHING.with(|watching| watching.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn capture_and_playback_callbacks_never_allocate() {
    let counters = IoCounters::default();
    let (mut producer, mut consumer) = rtrb::RingBuffer::<f32>::new(2_048);
    // Buffers as devices hand them over: odd sizes, mono and stereo, float and integer.
    let stereo_f32 = vec![0.25f32; 2 * 441];
    let mono_i16 = vec![1_000i16; 480];
    let mut out_stereo_f32 = vec![0.0f32; 2 * 256];
    let mut out_mono_i16 = vec![0i16; 1_024];

    let count = allocations_during(|| {
        for _ in 0..10 {
            // Fills the ring past capacity: overruns are counted, not allocated for.
            for _ in 0..3 {
                capture(&stereo_f32, 2, &mut producer, &counters);
                capture(&mono_i16, 1, &mut producer, &counters);
            }
            // Drains it past empty: underruns are filled with silence.
            for _ in 0..3 {
                playback(&mut out_stereo_f32, 2, &mut consumer, &counters);
                playback(&mut out_mono_i16, 1, &mut consumer, &counters);
            }
        }
    });
    assert_eq!(count, 0, "the callbacks allocated {count} times");
    let stats = (
        counters.overruns.load(std::sync::atomic::Ordering::Relaxed),
        counters
            .underruns
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(
        stats.0 > 0 && stats.1 > 0,
        "both edge cases were exercised: {stats:?}"
    );
    // The allocator does see allocations when they happen.
    assert_eq!(allocations_during(|| drop(vec![1u8; 16])), 2);
}
