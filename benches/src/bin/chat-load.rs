//! `chat-load`: how fast the relay stores and delivers chat messages, on loopback, next to
//! SQLite's own insert rate measured in the same run (these machines are shared and noisy:
//! compare the ratio).
//!
//! - **Delivery**: one member posts a message every 50 ms to a channel with N members online;
//!   each message's delay from posting to its arrival at every other member (the relay stores it
//!   durably before passing it on), p50 and p99 over all (message, receiver) pairs.
//! - **Throughput**: 10 members post as fast as their acknowledgements come back (up to 32 in
//!   flight each) for a few seconds, with N members online receiving everything; messages per
//!   second acknowledged (each one its own durable transaction) and deliveries per second.
//! - **Baseline**: the same number of rows inserted into a plain SQLite table with the relay's
//!   settings (WAL, `synchronous = FULL`, one transaction each), in this process.
//!
//! Envelopes are 200 random bytes: the relay never opens them, so sealing is left out (it is
//! measured by the `seal` bench).
//!
//! Run: `cargo run --release -p sotto-benches --bin chat-load -- [--members 100] [--seconds 5]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sotto_benches::latency::{Clock, Delays};
use sotto_net::client::{Client, ClientEvent, ClientOptions};
use sotto_net::crypto::{ChannelSecret, StaticSecretKeys};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::ChannelKind;
use sotto_relay::{RelayConfig, RelayHandle};
use tokio::task::JoinSet;

const ENVELOPE: usize = 200;

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("missing value")?.parse()?),
        None => Ok(default),
    }
}

/// When each message id was posted (by the clock), and when each receiver got it.
#[derive(Default)]
struct Ledger {
    posted: HashMap<[u8; 16], u64>,
    received: Vec<([u8; 16], u64)>,
}

/// Connects a member; returns its client and the text channel's id.
async fn member(
    link: &InviteLink,
    name: &str,
) -> Result<(Client, tokio::sync::mpsc::Receiver<ClientEvent>, u32)> {
    let keys = Arc::new(StaticSecretKeys::new(ChannelSecret::from_bytes([7; 32])));
    let options = ClientOptions::new(link.clone(), Identity::generate(), name, keys)?;
    let (client, mut events) = Client::start(options)?;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(ClientEvent::Connected { channels, .. })) => {
                let text = channels
                    .iter()
                    .find(|channel| channel.kind == ChannelKind::Text)
                    .context("no text channel")?
                    .id;
                return Ok((client, events, text));
            }
            Ok(Some(_)) => {}
            _ => bail!("{name} did not connect"),
        }
    }
}

/// Rows per second SQLite takes with the relay's settings, one transaction per row.
fn sqlite_insert_rate(rows: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = rusqlite::Connection::open(dir.path().join("baseline.db"))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute_batch(
        "CREATE TABLE messages (channel_id INTEGER NOT NULL, seq INTEGER NOT NULL,
         message_id BLOB NOT NULL, envelope BLOB NOT NULL, PRIMARY KEY (channel_id, seq))",
    )?;
    let envelope = vec![7u8; ENVELOPE];
    let started = Instant::now();
    for seq in 0..rows {
        db.execute(
            "INSERT INTO messages (channel_id, seq, message_id, envelope) VALUES (1, ?1, ?2, ?3)",
            rusqlite::params![seq as i64, &rand::random::<[u8; 16]>()[..], envelope],
        )?;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let members = arg("--members", 100)?.max(2) as usize;
    let seconds = arg("--seconds", 5)?.max(1);
    let dir = tempfile::tempdir()?;
    let config = RelayConfig {
        message_rate: 1_000_000,
        message_burst: 1_000_000,
        request_rate: 10_000,
        request_burst: 10_000,
        ..RelayConfig::default()
    };
    let (relay, owner) =
        RelayHandle::spawn_on_loopback(&dir.path().join("relay"), "Load", config).await?;
    let (owner_client, owner_events, channel) = member(&owner, "owner").await?;
    let invite = owner_client.create_invite(None, None, None).await?;
    let clock = Clock::new();
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // Everyone listens and notes when each message reaches them.
    let mut clients = vec![owner_client];
    let mut listeners = JoinSet::new();
    let listen = |mut events: tokio::sync::mpsc::Receiver<ClientEvent>,
                  ledger: Arc<Mutex<Ledger>>| {
        async move {
            while let Some(event) = events.recv().await {
                if let ClientEvent::Message(message) = event {
                    let now = clock.now_nanos();
                    ledger
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .received
                        .push((message.message_id, now));
                }
            }
        }
    };
    listeners.spawn(listen(owner_events, ledger.clone()));
    for index in 1..members {
        let (client, events, _) = member(&invite, &format!("member{index}")).await?;
        listeners.spawn(listen(events, ledger.clone()));
        clients.push(client);
    }
    println!("{members} members online");

    // Delivery: one poster, a message every 50 ms.
    let poster = clients[1].clone();
    let rounds = (seconds * 20) as usize;
    for _ in 0..rounds {
        let id: [u8; 16] = rand::random();
        let at = clock.now_nanos();
        ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .posted
            .insert(id, at);
        poster.post_message(channel, id, vec![1; ENVELOPE]).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut delays, deliveries) = {
        let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        let mut delays = Delays::default();
        let received = std::mem::take(&mut ledger.received);
        for (id, at) in &received {
            if let Some(posted) = ledger.posted.get(id) {
                delays.record(at.saturating_sub(*posted));
            }
        }
        ledger.posted.clear();
        (delays, received.len())
    };
    let expected = rounds * members;
    println!(
        "delivery to {members} members: {deliveries} of {expected} arrived; p50 {:.2} ms, p99 {:.2} ms (post to arrival, stored durably first)",
        f64::from(delays.quantile(0.50)) / 1000.0,
        f64::from(delays.quantile(0.99)) / 1000.0,
    );

    // Throughput: 10 posters, 32 in flight each.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut posters = JoinSet::new();
    for poster in clients.iter().take(10) {
        let poster = poster.clone();
        posters.spawn(async move {
            let mut acknowledged = 0u64;
            let mut in_flight = JoinSet::new();
            while Instant::now() < deadline {
                while in_flight.len() < 32 {
                    let client = poster.clone();
                    in_flight.spawn(async move {
                        client
                            .post_message(channel, rand::random(), vec![2; ENVELOPE])
                            .await
                    });
                }
                if let Some(Ok(Ok(_))) = in_flight.join_next().await {
                    acknowledged += 1;
                }
            }
            while let Some(result) = in_flight.join_next().await {
                if matches!(result, Ok(Ok(_))) {
                    acknowledged += 1;
                }
            }
            acknowledged
        });
    }
    let started = Instant::now();
    let mut acknowledged = 0;
    while let Some(count) = posters.join_next().await {
        acknowledged += count?;
    }
    let took = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .received
        .len();
    let relay_rate = acknowledged as f64 / took;
    let sqlite_rate = sqlite_insert_rate(acknowledged.clamp(1_000, 20_000) as usize)?;
    println!(
        "throughput: {relay_rate:.0} messages/s stored durably and acknowledged ({:.2}x SQLite's own {sqlite_rate:.0} single-row transactions/s in this run); {:.0} deliveries/s to {members} members ({delivered} of {} arrived)",
        relay_rate / sqlite_rate,
        delivered as f64 / took,
        acknowledged as usize * members,
    );
    drop(clients);
    listeners.abort_all();
    relay.shutdown().await;
    Ok(())
}
