//! `group-timing`: how fast the encryption group lets people in and cuts them off, on loopback.
//!
//! A relay runs in this process. Ada (the owner) sends a voice frame every 20 ms into the voice
//! channel the whole time, each frame carrying when it was sent.
//!
//! - **Join to first decrypted audio**: a newcomer with an invite link starts connecting; the
//!   clock stops at the first frame of Ada's it opens (it must be let into the group by Ada's
//!   client, get the Welcome, derive the epoch's keys and take a seat in the channel).
//! - **Removal to last decryptable frame**: Ada removes a member; the clock runs from her
//!   request to the send time of the last frame the removed member could still open.
//!
//! Run: `cargo run --release -p sotto-benches --bin group-timing -- [--trials 10]`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sotto_client::Session;
use sotto_client::group::{GroupSetup, GroupState};
use sotto_net::client::{ClientEvent, ClientOptions};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::StreamKind;
use sotto_relay::{RelayConfig, RelayHandle};

const DEADLINE: Duration = Duration::from_secs(15);
const FRAME_INTERVAL: Duration = Duration::from_millis(20);

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("missing value")?.parse()?),
        None => Ok(default),
    }
}

/// Connects a new identity with `link`, its group store in `dir`.
async fn connect(link: &InviteLink, name: &str, dir: &Path) -> Result<Session> {
    let identity = Identity::generate();
    let group = GroupSetup::open(
        &dir.join(format!("{name}.db")),
        &identity,
        link.secret.clone(),
    )?;
    let options = ClientOptions::new(link.clone(), identity, name, group.keys())?;
    Ok(Session::connect(options, group, DEADLINE, |_| {}).await?)
}

async fn wait_member(session: &mut Session) -> Result<()> {
    tokio::time::timeout(
        DEADLINE,
        session
            .group
            .wait_for(|state| matches!(state, GroupState::Member { .. })),
    )
    .await
    .context("not let into the group in time")??;
    Ok(())
}

async fn take_seat(session: &mut Session, channel: u32) -> Result<()> {
    session.client.join_voice(channel).await?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, session.events.recv()).await {
            Ok(Some(ClientEvent::VoiceJoined { .. })) => return Ok(()),
            Ok(Some(_)) => {}
            _ => bail!("not seated in the voice channel"),
        }
    }
}

/// Microseconds since `origin`, as a frame's payload.
fn stamp(origin: Instant) -> [u8; 8] {
    (origin.elapsed().as_micros() as u64).to_be_bytes()
}

fn stamp_of(payload: &[u8]) -> Option<Duration> {
    Some(Duration::from_micros(u64::from_be_bytes(
        payload.get(..8)?.try_into().ok()?,
    )))
}

/// Waits for the first frame from the talker; returns when it arrived.
async fn first_frame(session: &mut Session) -> Result<Instant> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, session.events.recv()).await {
            Ok(Some(ClientEvent::Media(_))) => return Ok(Instant::now()),
            Ok(Some(_)) => {}
            _ => bail!("no frame decrypted in time"),
        }
    }
}

/// The send stamps of every frame opened within `wait`.
async fn frames_within(session: &mut Session, wait: Duration) -> Vec<Duration> {
    let mut stamps = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, session.events.recv()).await {
        if let ClientEvent::Media(frame) = event {
            stamps.extend(stamp_of(&frame.payload));
        }
    }
    stamps
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: median {:.0} ms, max {:.0} ms, min {:.0} ms ({} trials)",
        ms(samples[samples.len() / 2]),
        ms(*samples.last().unwrap()),
        ms(samples[0]),
        samples.len()
    );
}

fn main() -> Result<()> {
    let trials = arg("--trials", 10)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    runtime.block_on(async {
        let (relay, owner) = RelayHandle::spawn_on_loopback(
            &dir.path().join("relay"),
            "timing",
            RelayConfig::default(),
        )
        .await?;
        let mut ada = connect(&owner, "ada", dir.path()).await?;
        wait_member(&mut ada).await?;
        let voice = ada.voice_channels().next().context("a voice channel")?.id;
        take_seat(&mut ada, voice).await?;
        let invite = ada.group.create_invite(None, None).await?;

        // Ada talks all the time.
        let origin = Instant::now();
        let talker = Arc::new(ada.client.clone());
        let sending = {
            let talker = talker.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(FRAME_INTERVAL);
                loop {
                    tick.tick().await;
                    if talker
                        .send_media(StreamKind::Voice, &stamp(origin))
                        .is_err()
                    {
                        break;
                    }
                }
            })
        };

        let mut joins = Vec::new();
        let mut cutoffs = Vec::new();
        let mut acknowledged = Vec::new();
        for trial in 0..trials {
            let started = Instant::now();
            let mut newcomer = connect(&invite, &format!("n{trial}"), dir.path()).await?;
            wait_member(&mut newcomer).await?;
            take_seat(&mut newcomer, voice).await?;
            joins.push(first_frame(&mut newcomer).await? - started);

            // Ada removes the newcomer again.
            let key = newcomer.group.own_key();
            let asked = origin.elapsed();
            ada.group.remove(vec![key]).await?;
            acknowledged.push(origin.elapsed() - asked);
            let stamps = frames_within(&mut newcomer, Duration::from_millis(1_500)).await;
            let last = stamps.into_iter().max().unwrap_or(asked);
            cutoffs.push(last.saturating_sub(asked));
        }
        sending.abort();
        println!("group-timing on loopback, {trials} trials, one frame every 20 ms:");
        summary("join to first decrypted audio", joins);
        summary("removal to last decryptable frame", cutoffs);
        summary("removal request to relay's acceptance", acknowledged);
        drop(ada);
        relay.shutdown().await;
        anyhow::Ok(())
    })
}
