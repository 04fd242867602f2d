//! Relay forwarding cost: bursts of 100 datagrams from one sender to 10 receivers through the
//! Sotto relay (QUIC, E2EE-sized datagrams), against a plain UDP forwarder measured in the same
//! run as the baseline. Everything runs in one process on loopback, so the figure includes the
//! receivers' cost too; compare the two rows, not the absolute times. For sustained rates,
//! delay percentiles and relay CPU per forwarded datagram, run the `relay-load` binary.
//!
//! Run: `cargo bench -p sotto-benches --bench relay_forwarding`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sotto_benches::latency::{Clock, Delays};
use sotto_benches::load_client::{self, DATAGRAM_LEN};
use sotto_benches::udp_forwarder;
use sotto_net::invite::InviteLink;
use sotto_relay::db::{InviteTerms, Role};
use sotto_relay::{DataDir, InitOptions, RelayConfig, RelayHandle};
use tokio::net::UdpSocket;

const RECEIVERS: usize = 10;
const BURST: u64 = 100;

/// Waits until `counter` reaches `target`, or until it stops moving for 20 ms (a datagram lost
/// in a socket buffer); returns how many are missing.
async fn reach(counter: &AtomicU64, target: u64) -> u64 {
    let mut last = counter.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        let now = counter.load(Ordering::Relaxed);
        if now >= target {
            return 0;
        }
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_millis(20) {
            return target - now;
        }
        tokio::task::yield_now().await;
    }
}

fn relay_forwarding(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("forward_1_to_10");
    group.throughput(Throughput::Elements(BURST * RECEIVERS as u64));
    group.measurement_time(Duration::from_secs(5));

    // Baseline: plain UDP.
    let (udp_sender, udp_received) = runtime.block_on(async {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let address = socket.local_addr().unwrap();
        tokio::spawn(udp_forwarder::run(socket));
        let received = Arc::new(AtomicU64::new(0));
        let mut sender = None;
        for member in 0..=RECEIVERS as u16 {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.connect(address).await.unwrap();
            let header = [0u16.to_be_bytes(), member.to_be_bytes()].concat();
            socket.send(&header).await.unwrap();
            socket.recv(&mut [0u8; 4]).await.unwrap();
            if member == 0 {
                sender = Some(socket);
                continue;
            }
            let received = received.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 2048];
                while socket.recv(&mut buffer).await.is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        (sender.unwrap(), received)
    });
    let mut packet = vec![0u8; 4 + DATAGRAM_LEN];
    packet[..4].copy_from_slice(&[0, 0, 0, 0]);
    let mut udp_lost = 0;
    group.bench_function("baseline_plain_udp", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    let target = udp_received.load(Ordering::Relaxed) + BURST * RECEIVERS as u64;
                    for _ in 0..BURST {
                        udp_sender.send(&packet).await.unwrap();
                    }
                    udp_lost += reach(&udp_received, target).await;
                }
                start.elapsed()
            })
        })
    });

    // Sotto relay.
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("relay"));
    let report = data
        .initialize(&InitOptions {
            server_name: "bench".into(),
            public_address: "127.0.0.1:7878".into(),
        })
        .unwrap();
    let (channel, token) = {
        let opened = data.open().unwrap();
        let server = opened.store.default_server().unwrap();
        let channel = opened
            .store
            .channels(server.id)
            .unwrap()
            .into_iter()
            .find(|c| c.name == "voice")
            .unwrap()
            .id;
        let terms = InviteTerms {
            expires_at: None,
            max_uses: None,
            role: Role::Member,
        };
        (
            channel,
            opened
                .store
                .create_invite(server.id, None, terms, 0)
                .unwrap(),
        )
    };
    let (relay, sender, received) = runtime.block_on(async {
        let config = RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            datagram_rate: 10_000_000,
            datagram_burst: 1_000_000,
            ..RelayConfig::default()
        };
        let relay = RelayHandle::spawn(&data, config).await.unwrap();
        let link = InviteLink {
            token,
            port: relay.local_addr().port(),
            ..report.owner_link.clone()
        };
        let new_endpoint = || quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let config = load_client::quic_config(&link).unwrap();
        let sender = load_client::join(&new_endpoint(), config.clone(), &link, channel)
            .await
            .unwrap();
        let received = Arc::new(AtomicU64::new(0));
        for _ in 0..RECEIVERS {
            // One socket per receiver, as on separate machines.
            let member = load_client::join(&new_endpoint(), config.clone(), &link, channel)
                .await
                .unwrap();
            let sink = Arc::new(std::sync::Mutex::new(Delays::default()));
            tokio::spawn(load_client::receive(
                member.connection.clone(),
                Clock::new(),
                received.clone(),
                sink,
            ));
            std::mem::forget(member); // keep the control stream open for the whole run
        }
        (relay, sender, received)
    });
    let mut counter = 0u32;
    let mut sotto_lost = 0;
    group.bench_function("sotto_relay_quic", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    let target = received.load(Ordering::Relaxed) + BURST * RECEIVERS as u64;
                    for _ in 0..BURST {
                        let datagram = load_client::datagram(sender.slot, counter, 0);
                        counter = counter.wrapping_add(1);
                        sender
                            .connection
                            .send_datagram_wait(datagram)
                            .await
                            .unwrap();
                    }
                    sotto_lost += reach(&received, target).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    println!("datagrams lost in socket buffers: plain UDP {udp_lost}, Sotto {sotto_lost}");
    runtime.block_on(relay.shutdown());
}

criterion_group!(benches, relay_forwarding);
criterion_main!(benches);
