use proptest::prelude::*;

use super::*;

const PACKET: Duration = Duration::from_millis(10);

fn payload(seq: u32) -> Bytes {
    Bytes::from(seq.to_be_bytes().to_vec())
}

#[test]
fn plays_in_order_with_a_one_packet_minimum() {
    let mut buffer = JitterBuffer::new(PACKET);
    assert_eq!(buffer.pop(Duration::ZERO, false), Playout::Silence);
    buffer.push(0, payload(0), Duration::from_millis(1));
    assert_eq!(buffer.stats().target, 1);
    assert_eq!(
        buffer.pop(Duration::from_millis(2), false),
        Playout::Packet {
            seq: 0,
            payload: payload(0),
            skipped: None
        }
    );
    buffer.push(2, payload(2), Duration::from_millis(21));
    buffer.push(1, payload(1), Duration::from_millis(22)); // reordered
    buffer.push(1, payload(1), Duration::from_millis(23)); // duplicate
    assert!(matches!(
        buffer.pop(Duration::from_millis(12), false),
        Playout::Packet { seq: 1, .. }
    ));
    assert!(matches!(
        buffer.pop(Duration::from_millis(22), false),
        Playout::Packet { seq: 2, .. }
    ));
    buffer.push(0, payload(0), Duration::from_millis(30)); // after its turn
    let stats = buffer.stats();
    assert_eq!((stats.duplicates, stats.late, stats.played), (1, 1, 3));
}

#[test]
fn recovers_from_fec_when_the_next_packet_is_here_else_conceals() {
    let mut buffer = JitterBuffer::new(PACKET);
    buffer.push(0, payload(0), Duration::ZERO);
    assert!(matches!(
        buffer.pop(Duration::ZERO, false),
        Playout::Packet { seq: 0, .. }
    ));
    buffer.push(2, payload(2), Duration::from_millis(20));
    assert_eq!(
        buffer.pop(Duration::from_millis(20), false),
        Playout::Recover {
            seq: 1,
            next: payload(2)
        }
    );
    assert!(matches!(
        buffer.pop(Duration::from_millis(30), false),
        Playout::Packet { seq: 2, .. }
    ));
    buffer.push(5, payload(5), Duration::from_millis(50));
    assert_eq!(
        buffer.pop(Duration::from_millis(40), false),
        Playout::Conceal { seq: 3 }
    );
    assert_eq!(
        buffer.pop(Duration::from_millis(50), false),
        Playout::Recover {
            seq: 4,
            next: payload(5)
        }
    );
}

#[test]
fn a_late_packet_stretches_and_a_silent_talker_ends_the_talkspurt() {
    let mut buffer = JitterBuffer::new(PACKET);
    buffer.push(0, payload(0), Duration::ZERO);
    assert!(matches!(
        buffer.pop(Duration::ZERO, false),
        Playout::Packet { seq: 0, .. }
    ));
    assert_eq!(
        buffer.pop(Duration::from_millis(10), false),
        Playout::Stretch
    );
    buffer.push(1, payload(1), Duration::from_millis(16));
    assert!(matches!(
        buffer.pop(Duration::from_millis(20), false),
        Playout::Packet { seq: 1, .. }
    ));
    for step in 0..MAX_STRETCH {
        assert_eq!(
            buffer.pop(Duration::from_millis(30 + 10 * u64::from(step)), false),
            Playout::Stretch
        );
    }
    assert_eq!(
        buffer.pop(Duration::from_millis(100), false),
        Playout::Silence
    );
    // The late packet's stretch counts against the network; the talker's tail does not.
    assert_eq!(buffer.stats().stretched, 1);
    assert_eq!(buffer.stats().tails, u64::from(MAX_STRETCH));
    // The next talkspurt starts where the talker resumes, after the depth learnt so far (packet 1
    // came 6 ms late, more than the half packet the playout tick allows for: one packet more).
    buffer.push(2, payload(2), Duration::from_millis(500));
    assert_eq!(buffer.stats().target, 2);
    assert_eq!(
        buffer.pop(Duration::from_millis(500), false),
        Playout::Silence
    );
    assert!(matches!(
        buffer.pop(Duration::from_millis(510), false),
        Playout::Packet { seq: 2, .. }
    ));
}

/// A simulated network and playout clock.
struct Scenario {
    packets: u32,
    loss: f64,
    /// Extra delay, uniform in 0..jitter_ms, per packet; `calm_after` packets later it is 0.
    jitter_ms: u64,
    calm_after: u32,
    duplicate: f64,
    drift_ppm: f64,
    seed: u64,
}

struct Outcome {
    outputs: Vec<Playout>,
    max_depth: usize,
    final_stats: JitterStats,
    target_during_jitter: usize,
}

fn run(scenario: &Scenario) -> Outcome {
    let mut rng = scenario.seed.max(1);
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    // Sender clock runs at (1 + drift) relative to the receiver's.
    let mut arrivals: Vec<(u64, u32)> = Vec::new();
    for seq in 0..scenario.packets {
        if random() < scenario.loss {
            continue;
        }
        let sent = (f64::from(seq) * 10_000.0 * (1.0 + scenario.drift_ppm * 1e-6)) as u64;
        let jitter = if seq < scenario.calm_after {
            (random() * scenario.jitter_ms as f64 * 1000.0) as u64
        } else {
            0
        };
        arrivals.push((sent + 20_000 + jitter, seq));
        if random() < scenario.duplicate {
            arrivals.push((sent + 20_000 + (random() * 30_000.0) as u64, seq));
        }
    }
    arrivals.sort_unstable();
    let mut buffer = JitterBuffer::new(PACKET);
    let mut outputs = Vec::new();
    let mut max_depth = 0;
    let mut target_during_jitter = 0;
    let end = u64::from(scenario.packets) * 10_000 + 1_000_000;
    let mut next_arrival = 0;
    // Playout ticks every 10 ms at an arbitrary phase.
    let mut tick = 3_000u64;
    while tick < end {
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= tick {
            let (at, seq) = arrivals[next_arrival];
            buffer.push(seq, payload(seq), Duration::from_micros(at));
            next_arrival += 1;
        }
        max_depth = max_depth.max(buffer.stats().depth);
        if tick / 10_000 == u64::from(scenario.calm_after) {
            target_during_jitter = buffer.stats().target;
        }
        outputs.push(buffer.pop(Duration::from_micros(tick), true));
        tick += 10_000;
    }
    Outcome {
        outputs,
        max_depth,
        final_stats: buffer.stats(),
        target_during_jitter,
    }
}

/// The counters each output accounts for, in output order.
fn accounted(outputs: &[Playout]) -> Vec<u32> {
    let mut seqs = Vec::new();
    for output in outputs {
        match output {
            Playout::Packet { seq, skipped, .. } => {
                seqs.push(*seq);
                seqs.extend(skipped);
            }
            Playout::Recover { seq, .. } | Playout::Conceal { seq } => seqs.push(*seq),
            Playout::Stretch | Playout::Silence => {}
        }
    }
    seqs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_frame_is_played_once_in_order_or_concealed(
        loss in 0.0f64..0.3,
        jitter_ms in 0u64..80,
        duplicate in 0.0f64..0.2,
        drift_ppm in -100.0f64..100.0,
        seed in 1u64..u64::MAX,
    ) {
        let scenario = Scenario { packets: 600, loss, jitter_ms, calm_after: 600, duplicate, drift_ppm, seed };
        let outcome = run(&scenario);
        let seqs = accounted(&outcome.outputs);
        // In order, each at most once.
        prop_assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "out of order or repeated: {:?}", seqs);
        // Time is conserved: every counter never accounted for is covered by a stretched or silent
        // slot after playout started.
        let first = seqs.first().copied().unwrap_or(0);
        let started = outcome.outputs.iter().position(|o| !matches!(o, Playout::Silence)).unwrap_or(0);
        let filler = outcome.outputs[started..].iter().filter(|o| matches!(o, Playout::Stretch | Playout::Silence)).count();
        let missing = (first..scenario.packets).filter(|seq| seqs.binary_search(seq).is_err()).count();
        prop_assert!(missing <= filler, "{missing} frames vanished with only {filler} filler slots");
        // Depth stays bounded by the jitter (twice the target, plus a run of stretches), not by time.
        let bound = 2 * (1 + (jitter_ms as usize).div_ceil(10)) + MAX_STRETCH as usize + 1;
        prop_assert!(outcome.max_depth <= bound, "depth {} over {bound}", outcome.max_depth);
    }
}

#[test]
fn clock_drift_of_100_ppm_is_absorbed() {
    for drift_ppm in [-100.0, 100.0] {
        let scenario = Scenario {
            packets: 12_000,
            loss: 0.0,
            jitter_ms: 5,
            calm_after: 12_000,
            duplicate: 0.0,
            drift_ppm,
            seed: 42,
        };
        let outcome = run(&scenario);
        let stats = outcome.final_stats;
        // Two minutes at 100 ppm is 12 ms: about one packet to absorb.
        assert!(
            stats.stretched + stats.skipped <= 6,
            "{drift_ppm} ppm: {stats:?}"
        );
        assert!(
            outcome.max_depth <= 4,
            "{drift_ppm} ppm: depth {}",
            outcome.max_depth
        );
        assert_eq!(stats.concealed + stats.recovered, 0);
    }
}

#[test]
fn the_target_grows_under_jitter_and_shrinks_when_the_network_calms() {
    let scenario = Scenario {
        packets: 1_500,
        loss: 0.0,
        jitter_ms: 60,
        calm_after: 700,
        duplicate: 0.0,
        drift_ppm: 0.0,
        seed: 7,
    };
    let outcome = run(&scenario);
    assert!(
        outcome.target_during_jitter >= 5,
        "target under 60 ms jitter: {}",
        outcome.target_during_jitter
    );
    assert!(
        outcome.final_stats.target <= 2,
        "target after calm: {}",
        outcome.final_stats.target
    );
    assert!(
        outcome.final_stats.skipped >= 2,
        "the buffer shrank by skipping: {:?}",
        outcome.final_stats
    );
}

/// Runs packets `first, first+1, …` (wrapping) through a buffer: each `chunk` of packets
/// arrives at once in the order `shuffles` picks (indices into the chunk), then the buffer is
/// popped once per packet, and at the end until it has nothing left. Returns every playout.
fn play_shuffled(first: u32, chunks: &[Vec<usize>]) -> Vec<Playout> {
    let mut buffer = JitterBuffer::new(PACKET);
    let mut outputs = Vec::new();
    let mut offset = 0u32;
    let mut tick = Duration::ZERO;
    for order in chunks {
        for &index in order {
            let seq = first.wrapping_add(offset + index as u32);
            buffer.push(seq, payload(seq), tick);
        }
        offset += order.len() as u32;
        for _ in 0..order.len() {
            outputs.push(buffer.pop(tick, true));
            tick += PACKET;
        }
    }
    for _ in 0..2 * MAX_PACKETS {
        outputs.push(buffer.pop(tick, true));
        tick += PACKET;
    }
    outputs
}

/// Chunks of 1 to 12 packets, each in a shuffled order.
fn shuffled_chunks() -> impl Strategy<Value = Vec<Vec<usize>>> {
    prop::collection::vec(
        (1usize..=12).prop_flat_map(|len| Just((0..len).collect::<Vec<_>>()).prop_shuffle()),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A sender whose counter passes `u32::MAX` mid-run: whatever the order within the
    /// buffer's window, every packet is played (or skipped to shrink) once, in sequence order,
    /// and exactly as a run far from the wrap plays (shifted by the counter offset).
    #[test]
    fn ordering_holds_across_the_counter_wrap(
        before_wrap in 0u32..60,
        chunks in shuffled_chunks(),
    ) {
        let first = u32::MAX - before_wrap;
        let total: usize = chunks.iter().map(Vec::len).sum();
        let expected: Vec<u32> = (0..total as u32).map(|i| first.wrapping_add(i)).collect();
        let outputs = play_shuffled(first, &chunks);
        prop_assert_eq!(accounted(&outputs), expected);
        for output in &outputs {
            if let Playout::Packet { seq, payload: bytes, .. } = output {
                prop_assert_eq!(bytes, &payload(*seq), "packet {} carries another's payload", seq);
            }
        }
        // The same packets far from the wrap play identically.
        let shift = 1_000u32.wrapping_sub(first);
        let reference: Vec<Playout> = play_shuffled(1_000, &chunks);
        let shifted: Vec<Playout> = outputs.iter().map(|output| shift_playout(output, shift)).collect();
        prop_assert_eq!(shifted, reference);
    }
}

/// `output` with its counters moved by `shift` (wrapping) and payloads re-made to match.
fn shift_playout(output: &Playout, shift: u32) -> Playout {
    match output {
        Playout::Packet { seq, skipped, .. } => Playout::Packet {
            seq: seq.wrapping_add(shift),
            payload: payload(seq.wrapping_add(shift)),
            skipped: skipped.map(|skipped| skipped.wrapping_add(shift)),
        },
        Playout::Recover { seq, .. } => Playout::Recover {
            seq: seq.wrapping_add(shift),
            next: payload(seq.wrapping_add(shift).wrapping_add(1)),
        },
        Playout::Conceal { seq } => Playout::Conceal {
            seq: seq.wrapping_add(shift),
        },
        other => other.clone(),
    }
}

#[test]
fn a_counter_passing_u32_max_plays_on_in_order() {
    let mut buffer = JitterBuffer::new(PACKET);
    let mut played = Vec::new();
    for step in 0..6u32 {
        let seq = (u32::MAX - 2).wrapping_add(step);
        let now = Duration::from_millis(10 * u64::from(step));
        buffer.push(seq, payload(seq), now);
        if let Playout::Packet { seq, .. } = buffer.pop(now, false) {
            played.push(seq);
        }
    }
    assert_eq!(played, [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, 2]);
    // A packet from before the wrap arriving now is late, not a packet far in the future.
    buffer.push(u32::MAX, payload(u32::MAX), Duration::from_millis(60));
    assert_eq!(buffer.stats().late, 1);
}
