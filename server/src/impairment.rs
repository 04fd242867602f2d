//! A UDP impairment proxy for testing: sits between clients and a relay and loses, delays,
//! reorders, duplicates and rate-limits datagrams in both directions, reproducibly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// What the proxy does to each datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Random loss, percent.
    pub loss_percent: f64,
    /// Bursty loss (Gilbert–Elliott): chance per packet of entering a loss burst, percent.
    pub burst_enter_percent: f64,
    /// Chance per packet of a burst continuing, percent.
    pub burst_stay_percent: f64,
    /// Extra delay per datagram, uniform in 0..jitter (which also reorders).
    pub jitter: Duration,
    /// Jitter stops this long after the proxy starts (the network calms); none for never.
    pub jitter_for: Option<Duration>,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Chance of sending a datagram twice, percent.
    pub duplicate_percent: f64,
    /// Bytes per second allowed through, each way; none for unlimited.
    pub bandwidth: Option<u64>,
    /// Seed of the random draws.
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss_percent: 0.0,
            burst_enter_percent: 0.0,
            burst_stay_percent: 0.0,
            jitter: Duration::ZERO,
            jitter_for: None,
            delay: Duration::ZERO,
            duplicate_percent: 0.0,
            bandwidth: None,
            seed: 1,
        }
    }
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ImpairmentStats {
    /// Datagrams received from either side.
    pub received: AtomicU64,
    /// Datagrams dropped (random, burst or bandwidth).
    pub dropped: AtomicU64,
    /// Extra copies sent.
    pub duplicated: AtomicU64,
    /// UDP payload bytes received from clients (towards the relay).
    pub bytes_upstream: AtomicU64,
    /// UDP payload bytes received from the relay (towards clients).
    pub bytes_downstream: AtomicU64,
    /// Per client: datagrams and UDP payload bytes it sent towards the relay, counting only
    /// datagrams under 1,000 bytes (media and acknowledgements; the handshake's padded packets
    /// are left out).
    pub per_client_upstream: Mutex<HashMap<SocketAddr, (u64, u64)>>,
}

/// Per-direction random state.
struct Channel {
    started: Instant,
    rng: u64,
    in_burst: bool,
    tokens: f64,
    last: Instant,
}

impl Channel {
    fn new(seed: u64) -> Self {
        Self {
            started: Instant::now(),
            rng: seed.max(1),
            in_burst: false,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The delays at which to deliver this datagram (none: dropped).
    fn decide(&mut self, impairment: &Impairment, len: usize) -> Vec<Duration> {
        if let Some(rate) = impairment.bandwidth {
            let now = Instant::now();
            self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate as f64)
                .min(rate as f64 / 10.0);
            self.last = now;
            if self.tokens < len as f64 {
                return Vec::new();
            }
            self.tokens -= len as f64;
        }
        let burst_chance = if self.in_burst {
            impairment.burst_stay_percent
        } else {
            impairment.burst_enter_percent
        };
        self.in_burst = self.unit() * 100.0 < burst_chance;
        if self.in_burst || self.unit() * 100.0 < impairment.loss_percent {
            return Vec::new();
        }
        let copies = if self.unit() * 100.0 < impairment.duplicate_percent {
            2
        } else {
            1
        };
        let calm = impairment
            .jitter_for
            .is_some_and(|limit| self.started.elapsed() >= limit);
        let jitter = if calm {
            Duration::ZERO
        } else {
            impairment.jitter
        };
        (0..copies)
            .map(|_| impairment.delay + jitter.mul_f64(self.unit()))
            .collect()
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct ImpairmentProxy {
    local_addr: SocketAddr,
    stats: Arc<ImpairmentStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ImpairmentProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn send_later(socket: Arc<UdpSocket>, bytes: Vec<u8>, to: SocketAddr, after: Duration) {
    if after.is_zero() {
        let _ = socket.try_send_to(&bytes, to);
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = socket.send_to(&bytes, to).await;
    });
}

impl ImpairmentProxy {
    /// Listens on `listen` and forwards to `upstream`, impairing both directions.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        impairment: Impairment,
    ) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(listen).await?);
        let local_addr = socket.local_addr()?;
        let stats = Arc::new(ImpairmentStats::default());
        let task = tokio::spawn(Self::run(socket, upstream, impairment, stats.clone()));
        Ok(Self {
            local_addr,
            stats,
            task,
        })
    }

    /// Where clients should send.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters.
    pub fn stats(&self) -> &ImpairmentStats {
        &self.stats
    }

    async fn run(
        socket: Arc<UdpSocket>,
        upstream: SocketAddr,
        impairment: Impairment,
        stats: Arc<ImpairmentStats>,
    ) {
        let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let outbound = Arc::new(Mutex::new(Channel::new(impairment.seed)));
        let mut buffer = vec![0u8; 65_536];
        loop {
            let Ok((len, client)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            stats.received.fetch_add(1, Ordering::Relaxed);
            stats
                .bytes_upstream
                .fetch_add(len as u64, Ordering::Relaxed);
            {
                let mut per_client = stats
                    .per_client_upstream
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let entry = per_client.entry(client).or_default();
                if len < 1_000 {
                    entry.0 += 1;
                    entry.1 += len as u64;
                }
            }
            let relay_side = match clients.get(&client) {
                Some(existing) => existing.clone(),
                None => {
                    let Ok(created) = UdpSocket::bind("127.0.0.1:0").await else {
                        continue;
                    };
                    let created = Arc::new(created);
                    clients.insert(client, created.clone());
                    // The way back: relay → this client.
                    let (back, listener, stats) = (created.clone(), socket.clone(), stats.clone());
                    let seed = impairment
                        .seed
                        .wrapping_mul(31)
                        .wrapping_add(u64::from(client.port()));
                    tokio::spawn(async move {
                        let mut channel = Channel::new(seed);
                        let mut buffer = vec![0u8; 65_536];
                        while let Ok(len) = back.recv(&mut buffer).await {
                            stats.received.fetch_add(1, Ordering::Relaxed);
                            stats
                                .bytes_downstream
                                .fetch_add(len as u64, Ordering::Relaxed);
                            let delays = channel.decide(&impairment, len);
                            record(&stats, &delays);
                            for delay in delays {
                                send_later(listener.clone(), buffer[..len].to_vec(), client, delay);
                            }
                        }
                    });
                    created
                }
            };
            let delays = outbound
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .decide(&impairment, len);
            record(&stats, &delays);
            for delay in delays {
                send_later(relay_side.clone(), buffer[..len].to_vec(), upstream, delay);
            }
        }
    }
}

fn record(stats: &ImpairmentStats, delays: &[Duration]) {
    match delays.len() {
        0 => {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        1 => {}
        _ => {
            stats.duplicated.fetch_add(1, Ordering::Relaxed);
        }
    }
}
