//! `file-throughput`: how fast a file moves through a relay on loopback, next to a bare QUIC
//! stream measured in the same run (these machines are shared and noisy: compare the ratio).
//!
//! - **Raw QUIC**: one stream with Sotto's transport settings, client to a server that reads to
//!   the end and answers one byte.
//! - **Upload**: [`Client::upload_blob`] to a relay in this process: the relay writes the bytes
//!   to its data directory, hashes them (SHA-256) and syncs them to disk before answering.
//! - **Download**: [`Client::download_blob`] of the same file.
//! - **Seal**: sealing the file in memory (ChaCha20-Poly1305 in 64 KiB chunks, SHA-256).
//!
//! Run: `cargo run --release -p sotto-benches --bin file-throughput -- [--mb 50] [--rounds 3]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use sotto_net::client::{BlobUpload, Client, ClientEvent, ClientOptions};
use sotto_net::crypto::{ChannelSecret, StaticSecretKeys};
use sotto_net::identity::Identity;
use sotto_net::seal::file::FileSealer;
use sotto_net::transport::{
    PinnedCertificate, TransportTuning, client_config, generate_certificate, server_config,
};
use sotto_relay::{RelayConfig, RelayHandle};

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("missing value")?.parse()?),
        None => Ok(default),
    }
}

/// Sends `bytes` on one QUIC stream to a server in this process; the time until it has them.
async fn raw_quic(bytes: &[u8]) -> Result<Duration> {
    let certificate = generate_certificate()?;
    let tuning = TransportTuning::default();
    let server = quinn::Endpoint::server(
        server_config(&certificate, &tuning)?,
        "127.0.0.1:0".parse()?,
    )?;
    let address = server.local_addr()?;
    let receiver = tokio::spawn(async move {
        let connection = server.accept().await.context("no connection")?.await?;
        let (mut send, mut recv) = connection.accept_bi().await?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        while let Some(read) = recv.read(&mut buffer).await? {
            total += read;
        }
        send.write_all(&[1]).await?;
        send.finish()?;
        let _ = send.stopped().await;
        anyhow::Ok(total)
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(client_config(
        &PinnedCertificate::new(certificate.fingerprint()),
        &tuning,
    )?);
    let connection = client.connect(address, "sotto-relay")?.await?;
    let started = Instant::now();
    let (mut send, mut recv) = connection.open_bi().await?;
    for piece in bytes.chunks(64 * 1024) {
        send.write_all(piece).await?;
    }
    send.finish()?;
    let mut ack = [0u8; 1];
    recv.read_exact(&mut ack).await?;
    let took = started.elapsed();
    if receiver.await?? != bytes.len() {
        bail!("the raw stream lost bytes");
    }
    connection.close(0u32.into(), b"done");
    Ok(took)
}

/// Upload and download times of `bytes` through a relay in this process.
async fn through_relay(bytes: &[u8]) -> Result<(Duration, Duration)> {
    let dir = tempfile::tempdir()?;
    let (relay, link) =
        RelayHandle::spawn_on_loopback(&dir.path().join("relay"), "Bench", RelayConfig::default())
            .await?;
    let keys = Arc::new(StaticSecretKeys::new(ChannelSecret::from_bytes([7; 32])));
    let options = ClientOptions::new(link, Identity::generate(), "bench", keys)?;
    let (client, mut events) = Client::start(options)?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(ClientEvent::Connected { .. })) => break,
            Ok(Some(_)) => {}
            _ => bail!("the client did not connect"),
        }
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let blob = BlobUpload {
        id: rand::random(),
        sealed_len: bytes.len() as u64,
        sealed_sha256: Sha256::digest(bytes).into(),
    };
    let started = Instant::now();
    client
        .upload_blob(&blob, &mut std::io::Cursor::new(bytes), &mut |_| {})
        .await?;
    let upload = started.elapsed();
    let mut fetched = Vec::with_capacity(bytes.len());
    let started = Instant::now();
    client
        .download_blob(&blob.id, 0, &mut fetched, &mut |_| {})
        .await?;
    let download = started.elapsed();
    if fetched != bytes {
        bail!("the download differs from the upload");
    }
    drop(client);
    relay.shutdown().await;
    Ok((upload, download))
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let megabytes = arg("--mb", 50)? as usize;
    let rounds = arg("--rounds", 3)?.max(1) as usize;
    let plaintext: Vec<u8> = (0..megabytes * 1_000_000).map(|_| rand::random()).collect();
    let started = Instant::now();
    let mut sealed = Vec::with_capacity(plaintext.len() + plaintext.len() / 1000);
    FileSealer::new(plaintext.as_slice()).seal_to(&mut sealed)?;
    let seal = mb_per_s(plaintext.len(), started.elapsed());

    let (mut raw, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let raw_took = raw_quic(&sealed).await?;
        let (up_took, down_took) = through_relay(&sealed).await?;
        println!(
            "round {}: raw QUIC {:.0} MB/s, upload {:.0} MB/s, download {:.0} MB/s",
            round + 1,
            mb_per_s(sealed.len(), raw_took),
            mb_per_s(sealed.len(), up_took),
            mb_per_s(sealed.len(), down_took),
        );
        raw.push(mb_per_s(sealed.len(), raw_took));
        up.push(mb_per_s(sealed.len(), up_took));
        down.push(mb_per_s(sealed.len(), down_took));
    }
    let (raw, up, down) = (median(raw), median(up), median(down));
    println!(
        "{megabytes} MB file, median of {rounds}: raw QUIC stream {raw:.0} MB/s; upload {up:.0} MB/s ({:.2}x raw), download {down:.0} MB/s ({:.2}x raw); sealing {seal:.0} MB/s",
        up / raw,
        down / raw,
    );
    println!("a 10 MB file uploads in {:.2} s at this rate", 10.0 / up);
    Ok(())
}
