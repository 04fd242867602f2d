//! `relay-load`: forwarding throughput, delay and CPU of the Sotto relay on loopback, next to a
//! plain UDP forwarder measured in the same run as the baseline.
//!
//! The relay (or the baseline forwarder) runs on its own tokio runtime whose threads are named
//! `relay`, so its CPU time can be read from `/proc/self/task`; the load generator runs on a
//! separate one-thread runtime. Scenarios:
//!
//! - `fanout`: one sender to N receivers (N = 1, 10, 100) at a ladder of offered rates;
//! - `rooms`: rooms of 10 with 2 speakers each at 50 packets/s, more rooms per step.
//!
//! For the relay it also prints how many UDP packets the members sent it per forwarded datagram
//! (voice plus acknowledgements), since every packet in costs the relay a receive.
//!
//! Run: `cargo run --release -p sotto-benches --bin relay-load -- [--seconds S] [--relay-threads T]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use sotto_benches::cpu::{per_thread_cpu_seconds, thread_cpu_seconds};
use sotto_benches::latency::{Clock, Delays};
use sotto_benches::load_client::{self, LoadMember};
use sotto_benches::udp_forwarder;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::ChannelKind;
use sotto_relay::db::{InviteTerms, Role};
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// One group of members: `speakers` of them send, all of them receive the others.
struct Room {
    members: usize,
    speakers: usize,
    /// Packets per second per speaker.
    rate: f64,
}

/// What one step measured.
struct StepResult {
    offered_forwarded_per_second: f64,
    delivered_per_second: f64,
    delivered_fraction: f64,
    p50_micros: u32,
    p99_micros: u32,
    relay_cpu_seconds: f64,
    /// Each busy relay thread's CPU, percent of one core, busiest first.
    relay_thread_shares: Vec<f64>,
    load_cpu_seconds: f64,
    seconds: f64,
}

impl StepResult {
    fn print(&self, system: &str, label: &str) {
        let cpu_per_10k = if self.delivered_per_second > 0.0 {
            self.relay_cpu_seconds / (self.delivered_per_second * self.seconds / 10_000.0) * 1_000.0
        } else {
            f64::NAN
        };
        println!(
            "{system:<8} {label:<22} offered {:>9.0}/s  delivered {:>9.0}/s ({:>6.2}%)  p50 {:>6} µs  p99 {:>7} µs  relay CPU {:>5.1}% (threads {})  {:>6.2} ms CPU per 10k  (load generator CPU {:>5.1}%)",
            self.offered_forwarded_per_second,
            self.delivered_per_second,
            self.delivered_fraction * 100.0,
            self.p50_micros,
            self.p99_micros,
            self.relay_cpu_seconds / self.seconds * 100.0,
            self.relay_thread_shares
                .iter()
                .map(|share| format!("{share:.0}%"))
                .collect::<Vec<_>>()
                .join("+"),
            cpu_per_10k,
            self.load_cpu_seconds / self.seconds * 100.0,
        );
    }
}

struct Args {
    seconds: f64,
    relay_threads: usize,
    scenarios: Vec<String>,
    room_counts: Vec<usize>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        seconds: 3.0,
        relay_threads: 1,
        scenarios: vec!["fanout".into(), "rooms".into()],
        room_counts: vec![20, 50, 100, 150],
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => {
                args.seconds = iter.next().context("--seconds needs a value")?.parse()?
            }
            "--relay-threads" => {
                args.relay_threads = iter
                    .next()
                    .context("--relay-threads needs a value")?
                    .parse()?
            }
            "--scenario" => {
                args.scenarios = vec![iter.next().context("--scenario needs fanout or rooms")?]
            }
            "--rooms" => {
                let list = iter.next().context("--rooms needs a list such as 50,100")?;
                args.room_counts = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--bench" => {} // passed by `cargo bench`
            other => {
                anyhow::bail!("unknown argument {other}; see the doc comment of relay-load.rs")
            }
        }
    }
    Ok(args)
}

/// A fresh relay on `runtime` with `voice_channels` voice channels; returns it and a link.
fn start_relay(
    runtime: &Runtime,
    voice_channels: usize,
) -> Result<(tempfile::TempDir, RelayHandle, InviteLink, Vec<u32>)> {
    let dir = tempfile::tempdir()?;
    let data = DataDir::new(dir.path().join("relay"));
    let report = data.initialize(&InitOptions {
        server_name: "load".into(),
        public_address: "127.0.0.1:7878".into(),
    })?;
    let opened = data.open()?;
    let server = opened.store.default_server()?;
    let mut channels: Vec<u32> = opened
        .store
        .channels(server.id)?
        .into_iter()
        .filter(|channel| channel.kind == ChannelKind::Voice)
        .map(|channel| channel.id)
        .collect();
    while channels.len() < voice_channels {
        let name = format!("room {}", channels.len());
        channels.push(
            opened
                .store
                .create_channel(server.id, &name, ChannelKind::Voice, "load")?
                .id,
        );
    }
    let terms = InviteTerms {
        expires_at: None,
        max_uses: None,
        role: Role::Member,
    };
    let token =
        opened
            .store
            .create_invite(server.id, None, terms, sotto_relay::data_dir::unix_now())?;
    drop(opened);
    let config = RelayConfig {
        listen: "127.0.0.1:0".parse()?,
        max_connections: 50_000,
        // The load sends far more per connection than a person would.
        datagram_rate: 10_000_000,
        datagram_burst: 1_000_000,
        ..RelayConfig::default()
    };
    let handle = runtime.block_on(RelayHandle::spawn(&data, config))?;
    let link = InviteLink {
        token,
        port: handle.local_addr().port(),
        ..report.owner_link
    };
    Ok((dir, handle, link, channels))
}

/// Counters of a run, shared with every load task.
#[derive(Clone, Default)]
struct Counters {
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

/// Sends at `rate` per second through `send` until `stop`.
async fn pace(
    rate: f64,
    stop: Arc<AtomicBool>,
    sent_counter: Arc<AtomicU64>,
    mut send: impl FnMut(u32) -> bool,
) {
    // Stagger senders so they do not all fire on the same tick.
    tokio::time::sleep(Duration::from_micros(rand::random::<u64>() % 20_000)).await;
    let start = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            if send(sent as u32) {
                sent_counter.fetch_add(1, Ordering::Relaxed);
            }
            sent += 1;
        }
    }
}

/// Everything a step needs from the members, whichever system carries them.
struct Load {
    counters: Counters,
    delays: Vec<Arc<std::sync::Mutex<Delays>>>,
    /// For each speaker, how many receive what it sends.
    fanout: Vec<usize>,
    stop: Arc<AtomicBool>,
}

impl Load {
    fn new() -> Self {
        Self {
            counters: Counters::default(),
            delays: Vec::new(),
            fanout: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn delay_sink(&mut self) -> Arc<std::sync::Mutex<Delays>> {
        let sink = Arc::new(std::sync::Mutex::new(Delays::default()));
        self.delays.push(sink.clone());
        sink
    }

    /// Warms up, then counts deliveries, delays and relay CPU over `seconds`.
    fn measure(&self, load: &Runtime, seconds: f64, rate_per_sender: f64) -> StepResult {
        load.block_on(async { tokio::time::sleep(Duration::from_millis(700)).await });
        for delay in &self.delays {
            *delay.lock().unwrap() = Delays::default();
        }
        let received_before = self.counters.received.load(Ordering::Relaxed);
        let sent_before = self.counters.sent.load(Ordering::Relaxed);
        let cpu_before = thread_cpu_seconds("relay");
        let threads_before = per_thread_cpu_seconds("relay");
        let load_cpu_before = thread_cpu_seconds("load");
        let started = std::time::Instant::now();
        load.block_on(async { tokio::time::sleep(Duration::from_secs_f64(seconds)).await });
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds("relay") - cpu_before;
        let mut relay_thread_shares: Vec<f64> = per_thread_cpu_seconds("relay")
            .into_iter()
            .map(|(id, seconds)| {
                (seconds - threads_before.get(&id).copied().unwrap_or(0.0)) / elapsed * 100.0
            })
            .filter(|share| *share >= 1.0)
            .collect();
        relay_thread_shares.sort_by(|a, b| b.total_cmp(a));
        let load_cpu = thread_cpu_seconds("load") - load_cpu_before;
        let received = self.counters.received.load(Ordering::Relaxed) - received_before;
        let sent = self.counters.sent.load(Ordering::Relaxed) - sent_before;
        let mean_fanout =
            self.fanout.iter().sum::<usize>() as f64 / self.fanout.len().max(1) as f64;
        let expected = sent as f64 * mean_fanout;
        let mut all = Delays::default();
        for delay in &self.delays {
            all.merge(std::mem::take(&mut *delay.lock().unwrap()));
        }
        self.stop.store(true, Ordering::Relaxed);
        StepResult {
            offered_forwarded_per_second: rate_per_sender
                * self.fanout.iter().sum::<usize>() as f64,
            delivered_per_second: received as f64 / elapsed,
            delivered_fraction: if expected > 0.0 {
                (received as f64 / expected).min(1.0)
            } else {
                0.0
            },
            p50_micros: all.quantile(0.5),
            p99_micros: all.quantile(0.99),
            relay_cpu_seconds: cpu,
            relay_thread_shares,
            load_cpu_seconds: load_cpu,
            seconds: elapsed,
        }
    }
}

/// Runs `rooms` through the Sotto relay (QUIC, authenticated members, E2EE-sized datagrams).
fn run_sotto(
    relay_runtime: &Runtime,
    load_runtime: &Runtime,
    rooms: &[Room],
    seconds: f64,
) -> Result<StepResult> {
    let (_dir, relay, link, channels) = start_relay(relay_runtime, rooms.len())?;
    let clock = Clock::new();
    let mut load = Load::new();
    // One client socket per room, so no kernel socket buffer is shared by too many members.
    let endpoints = {
        let _guard = load_runtime.enter();
        rooms
            .iter()
            .map(|_| quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))))
            .collect::<std::io::Result<Vec<_>>>()?
    };
    let config = load_client::quic_config(&link)?;
    let members: Vec<Vec<LoadMember>> = load_runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(32));
        let mut joins = JoinSet::new();
        for (room_index, room) in rooms.iter().enumerate() {
            for member in 0..room.members {
                let (endpoint, config, link, limit) = (
                    endpoints[room_index].clone(),
                    config.clone(),
                    link.clone(),
                    limit.clone(),
                );
                let channel = channels[room_index];
                joins.spawn(async move {
                    let _permit = limit.acquire().await;
                    (
                        room_index,
                        member,
                        load_client::join(&endpoint, config, &link, channel).await,
                    )
                });
            }
        }
        let mut joined: Vec<Vec<(usize, LoadMember)>> = rooms.iter().map(|_| Vec::new()).collect();
        while let Some(result) = joins.join_next().await {
            let (room, member, joined_member) = result?;
            joined[room].push((member, joined_member?));
        }
        Ok::<_, anyhow::Error>(
            joined
                .into_iter()
                .map(|mut room| {
                    room.sort_by_key(|(index, _)| *index);
                    room.into_iter().map(|(_, member)| member).collect()
                })
                .collect(),
        )
    })?;
    for (room, room_members) in rooms.iter().zip(&members) {
        for (index, member) in room_members.iter().enumerate() {
            let sink = load.delay_sink();
            load_runtime.spawn(load_client::receive(
                member.connection.clone(),
                clock,
                load.counters.received.clone(),
                sink,
            ));
            if index < room.speakers {
                load.fanout.push(room.members - 1);
                let (connection, slot) = (member.connection.clone(), member.slot);
                load_runtime.spawn(pace(
                    room.rate,
                    load.stop.clone(),
                    load.counters.sent.clone(),
                    move |counter| {
                        connection
                            .send_datagram(load_client::datagram(slot, counter, clock.now_nanos()))
                            .is_ok()
                    },
                ));
            }
        }
    }
    let result = load.measure(load_runtime, seconds, rooms[0].rate);
    print_member_traffic(&members, result.delivered_per_second * result.seconds);
    for member in members.iter().flatten() {
        member.connection.close(0u32.into(), b"done");
    }
    load_runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    relay_runtime.block_on(relay.shutdown());
    Ok(result)
}

/// Prints how many UDP packets the members sent the relay (voice and acknowledgements alike) per
/// forwarded datagram, counted over the members' whole connections: every packet in costs the
/// relay a receive, a decryption and a connection wake-up.
fn print_member_traffic(members: &[Vec<LoadMember>], forwarded: f64) {
    let (mut packets, mut acks) = (0u64, 0u64);
    for member in members.iter().flatten() {
        let stats = member.connection.stats();
        packets += stats.udp_tx.datagrams;
        acks += stats.frame_tx.acks;
    }
    println!(
        "{:<8} members sent the relay {:.2} UDP packets ({:.2} carrying ACKs) per forwarded datagram",
        "traffic",
        packets as f64 / forwarded.max(1.0),
        acks as f64 / forwarded.max(1.0),
    );
}

/// Runs `rooms` through the plain UDP forwarder.
fn run_udp(
    relay_runtime: &Runtime,
    load_runtime: &Runtime,
    rooms: &[Room],
    seconds: f64,
) -> Result<StepResult> {
    let forwarder = {
        let _guard = relay_runtime.enter();
        let socket = Arc::new(relay_runtime.block_on(UdpSocket::bind("127.0.0.1:0"))?);
        let address = socket.local_addr()?;
        (relay_runtime.spawn(udp_forwarder::run(socket)), address)
    };
    let (task, address) = forwarder;
    let clock = Clock::new();
    let mut load = Load::new();
    for (room_index, room) in rooms.iter().enumerate() {
        for member in 0..room.members {
            let header = [
                (room_index as u16).to_be_bytes(),
                (member as u16).to_be_bytes(),
            ]
            .concat();
            let socket = load_runtime.block_on(async {
                let socket = UdpSocket::bind("127.0.0.1:0").await?;
                socket.connect(address).await?;
                socket.send(&header).await?;
                let mut ack = [0u8; 4];
                tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut ack)).await??;
                Ok::<_, anyhow::Error>(Arc::new(socket))
            })?;
            let (sink, received) = (load.delay_sink(), load.counters.received.clone());
            let receiver = socket.clone();
            load_runtime.spawn(async move {
                let mut buffer = [0u8; 2048];
                while let Ok(len) = receiver.recv(&mut buffer).await {
                    let now = clock.now_nanos();
                    received.fetch_add(1, Ordering::Relaxed);
                    if let Some(sent) = load_client::stamp(&buffer[..len], 4) {
                        sink.lock().unwrap().record(now.saturating_sub(sent));
                    }
                }
            });
            if member < room.speakers {
                load.fanout.push(room.members - 1);
                load_runtime.spawn(pace(
                    room.rate,
                    load.stop.clone(),
                    load.counters.sent.clone(),
                    move |_| {
                        let mut packet = Vec::with_capacity(4 + load_client::DATAGRAM_LEN);
                        packet.extend_from_slice(&header);
                        packet.extend_from_slice(&clock.now_nanos().to_be_bytes());
                        packet.resize(load_client::DATAGRAM_LEN, 0);
                        socket.try_send(&packet).is_ok()
                    },
                ));
            }
        }
    }
    let result = load.measure(load_runtime, seconds, rooms[0].rate);
    task.abort();
    load_runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    Ok(result)
}

fn step(
    relay_runtime: &Runtime,
    load: &Runtime,
    rooms: &[Room],
    seconds: f64,
    label: &str,
) -> Result<()> {
    let baseline = run_udp(relay_runtime, load, rooms, seconds)?;
    baseline.print("udp", label);
    let sotto = run_sotto(relay_runtime, load, rooms, seconds)?;
    sotto.print("sotto", label);
    println!(
        "{:<8} {label:<22} delivered ratio sotto/udp {:.2}, relay CPU per delivered packet sotto/udp {:.2}",
        "ratio",
        sotto.delivered_per_second / baseline.delivered_per_second.max(1.0),
        (sotto.relay_cpu_seconds / sotto.delivered_per_second.max(1.0))
            / (baseline.relay_cpu_seconds / baseline.delivered_per_second.max(1.0))
                .max(f64::MIN_POSITIVE),
    );
    Ok(())
}

/// Pins every thread `builder` starts to `cores` (when there are any).
fn pinned(
    builder: &mut tokio::runtime::Builder,
    cores: Vec<core_affinity::CoreId>,
) -> &mut tokio::runtime::Builder {
    if cores.is_empty() {
        return builder;
    }
    let next = Arc::new(AtomicU64::new(0));
    builder.on_thread_start(move || {
        let index = next.fetch_add(1, Ordering::Relaxed) as usize % cores.len();
        core_affinity::set_for_current(cores[index]);
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // With a core to spare, the load generator gets the last core to itself and the relay the
    // others, so neither's queueing shows up as the other's delay.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (relay_cores, load_cores) = if cores.len() > args.relay_threads {
        let (relay, load) = cores.split_at(cores.len() - 1);
        (relay.to_vec(), load.to_vec())
    } else {
        (Vec::new(), Vec::new())
    };
    let pinning = if load_cores.is_empty() {
        "not pinned".to_owned()
    } else {
        format!(
            "relay pinned to {} core(s), load generator to its own",
            relay_cores.len()
        )
    };
    let relay_runtime = pinned(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.relay_threads)
            .thread_name("relay")
            .enable_all(),
        relay_cores,
    )
    .build()?;
    let load = pinned(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("load")
            .enable_all(),
        load_cores,
    )
    .build()?;
    println!(
        "relay threads: {}; {pinning}; {} s per step; datagrams of {} bytes",
        args.relay_threads,
        args.seconds,
        load_client::DATAGRAM_LEN
    );
    for scenario in &args.scenarios {
        match scenario.as_str() {
            "fanout" => {
                for receivers in [1usize, 10, 100] {
                    for forwarded in [20_000.0, 45_000.0, 90_000.0, 130_000.0] {
                        let rooms = [Room {
                            members: receivers + 1,
                            speakers: 1,
                            rate: forwarded / receivers as f64,
                        }];
                        step(
                            &relay_runtime,
                            &load,
                            &rooms,
                            args.seconds,
                            &format!("1->{receivers} @{forwarded}/s"),
                        )?;
                    }
                }
            }
            "rooms" => {
                for &count in &args.room_counts {
                    let rooms: Vec<Room> = (0..count)
                        .map(|_| Room {
                            members: 10,
                            speakers: 2,
                            rate: 50.0,
                        })
                        .collect();
                    step(
                        &relay_runtime,
                        &load,
                        &rooms,
                        args.seconds,
                        &format!("{count} rooms of 10, 2 spk"),
                    )?;
                }
            }
            other => anyhow::bail!("unknown scenario {other}: use fanout or rooms"),
        }
    }
    Ok(())
}
