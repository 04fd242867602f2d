//! 1,001 members join one voice room, one after another, against the real `sotto-relay` binary:
//! everyone up to the room's limit (1,000) is admitted and stays, the next is refused with a
//! clear error, nobody is disconnected, and every member's roster converges to the room. Prints
//! the control bytes one join costs at 10, 100 and 1,000 members in the room, and the relay's
//! memory per connected member (measured, not asserted: these machines are shared and noisy).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::*;
use common::*;
use sotto_net::client::{Client, ClientEvent};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::{ChannelKind, ErrorCode};
use sotto_relay::RelayConfig;
use tokio::sync::{mpsc, oneshot, watch};

const PEOPLE: usize = 1_001;
const CONNECTING_AT_ONCE: usize = 16;
const JOINS_PER_SECOND: u32 = 50;

/// The relay's answer to one member's join: admitted, or refused with a code and message.
type JoinAnswer = Result<(), (ErrorCode, String)>;

/// A join's answer, waited for once.
enum Answer {
    Waiting(oneshot::Receiver<JoinAnswer>),
    Known(JoinAnswer),
}

async fn wait_answer(answer: &mut Answer) -> JoinAnswer {
    if let Answer::Waiting(receiver) = answer {
        let known = tokio::time::timeout(DEADLINE * 3, receiver)
            .await
            .expect("every join is answered")
            .expect("the member's task runs");
        *answer = Answer::Known(known);
    }
    match answer {
        Answer::Known(known) => known.clone(),
        Answer::Waiting(_) => unreachable!("just resolved"),
    }
}

/// Reports the answer to the member's join, then keeps its roster.
async fn follow(
    mut events: mpsc::Receiver<ClientEvent>,
    index: usize,
    answer: oneshot::Sender<JoinAnswer>,
    size: watch::Sender<usize>,
) {
    let known = loop {
        match events.recv().await {
            Some(ClientEvent::VoiceJoined { .. }) => break Ok(()),
            Some(ClientEvent::RequestFailed { code, message }) => break Err((code, message)),
            Some(ClientEvent::Stopped(error)) => panic!("member {index} stopped: {error}"),
            Some(ClientEvent::Disconnected { reason, .. }) => {
                eprintln!("crowd: member {index} lost the relay before its answer: {reason}");
            }
            Some(_) => {}
            None => return,
        }
    };
    let _ = answer.send(known);
    keep_roster(events, size).await;
}

/// A member's client; a background task keeps its roster and publishes the roster's size.
struct Member {
    client: Client,
    roster_size: watch::Receiver<usize>,
}

/// Applies roster events until the client ends; publishes the roster's size after each.
async fn keep_roster(mut events: mpsc::Receiver<ClientEvent>, size: watch::Sender<usize>) {
    let mut roster = BTreeMap::new();
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Roster { participants, .. } => {
                roster = participants.into_iter().map(|p| (p.slot, p)).collect();
            }
            ClientEvent::RosterChanged { joined, left, .. } => {
                for slot in left {
                    roster.remove(&slot);
                }
                roster.extend(joined.into_iter().map(|p| (p.slot, p)));
            }
            ClientEvent::Disconnected { reason, .. } => {
                eprintln!("crowd: a member lost the relay: {reason}");
                continue;
            }
            _ => continue,
        }
        let _ = size.send(roster.len());
    }
}

/// A connected member's client, its events, and the voice channel's id.
type Connected = (Client, mpsc::Receiver<ClientEvent>, u32);

/// Connects one member and waits until the relay admitted it.
async fn connect_member(link: InviteLink, index: usize) -> Connected {
    let mut options = options(&link, Identity::generate(), &format!("member {index:04}"));
    options.reconnect = fast_reconnect();
    let (client, mut events) = Client::start(options).unwrap();
    loop {
        match tokio::time::timeout(DEADLINE * 3, events.recv()).await {
            Ok(Some(ClientEvent::Connected { channels, .. })) => {
                let voice = channels
                    .iter()
                    .find(|channel| channel.kind == ChannelKind::Voice)
                    .expect("a voice channel")
                    .id;
                return (client, events, voice);
            }
            Ok(Some(ClientEvent::Stopped(error))) => panic!("member {index} stopped: {error}"),
            Ok(Some(_)) => {}
            _ => panic!("member {index} could not connect"),
        }
    }
}

/// Waits until the relay's control byte counter stops moving; returns its value.
async fn settled_control_bytes(metrics: std::net::SocketAddr) -> u64 {
    let mut last = metric(metrics, "sotto_control_bytes_out_total").await;
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = metric(metrics, "sotto_control_bytes_out_total").await;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_and_one_join_one_room_the_limit_holds_and_nobody_is_dropped() {
    let (_dir, data, mut owner_link) = init_data_dir();
    let (address, metrics) = relay_addresses();
    owner_link.port = address.port();
    let relay = RelayProcess::start(data.root(), address, metrics);
    let limit = RelayConfig::default().max_voice_participants;
    assert_eq!(limit, 1_000);

    // The owner makes an unlimited invite for everyone (within the owner's invite limits).
    let (owner, _owner_events, voice) = connect_member(owner_link, 0).await;
    let link = owner.create_invite(None, None, None).await.unwrap();
    let idle_rss = relay.resident_bytes();

    // Connect everyone first, a few at a time.
    let started = Instant::now();
    let mut connected = Vec::with_capacity(PEOPLE);
    let link = Arc::new(link);
    for batch in (0..PEOPLE).collect::<Vec<_>>().chunks(CONNECTING_AT_ONCE) {
        let handles: Vec<_> = batch
            .iter()
            .map(|&index| tokio::spawn(connect_member(InviteLink::clone(&link), index + 1)))
            .collect();
        for handle in handles {
            connected.push(handle.await.unwrap());
        }
    }
    let connect_time = started.elapsed();
    let connected_rss = relay.resident_bytes();

    // Then everyone joins the voice room, one after another at a steady pace, without waiting
    // for answers: members that fall behind reading their rosters are slow readers.
    let mut pace = tokio::time::interval(Duration::from_secs(1) / JOINS_PER_SECOND);
    let mut answers = Vec::with_capacity(PEOPLE);
    let mut members = Vec::with_capacity(PEOPLE);
    let mut bytes_per_join = Vec::new();
    let mut measuring = Duration::ZERO;
    let joins_started = Instant::now();
    for (index, (client, events, _)) in connected.into_iter().enumerate() {
        let measure = matches!(index, 10 | 100 | 999);
        let pause = Instant::now();
        let before = if measure {
            // Measure this join alone: everything before it answered and delivered.
            for answer in &mut answers {
                let _ = wait_answer(answer).await;
            }
            Some(settled_control_bytes(metrics).await)
        } else {
            None
        };
        pace.tick().await;
        client.join_voice(voice).await.unwrap();
        let (answer_tx, answer_rx) = oneshot::channel();
        let (size_tx, size_rx) = watch::channel(0);
        tokio::spawn(follow(events, index, answer_tx, size_tx));
        answers.push(Answer::Waiting(answer_rx));
        if let Some(before) = before {
            let _ = wait_answer(answers.last_mut().unwrap()).await;
            let after = settled_control_bytes(metrics).await;
            bytes_per_join.push((index, after - before));
            measuring += pause.elapsed();
            pace.reset();
        }
        members.push(Member {
            client,
            roster_size: size_rx,
        });
    }
    let mut admitted = 0;
    let mut refused = Vec::new();
    for answer in &mut answers {
        match wait_answer(answer).await {
            Ok(()) => admitted += 1,
            Err(refusal) => refused.push(refusal),
        }
    }
    let join_time = joins_started.elapsed() - measuring;

    // Exactly the limit was admitted; the one past it was refused, saying why.
    assert_eq!(admitted, limit);
    assert_eq!(refused.len(), PEOPLE - limit);
    let (code, message) = &refused[0];
    assert_eq!(*code, ErrorCode::ChannelFull);
    assert!(message.contains("full (1000 people)"), "{message}");

    // Everyone admitted sees the whole room, and nobody was ever disconnected.
    let mut converged = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE * 6;
    for (member, answer) in members.iter_mut().zip(&mut answers) {
        if wait_answer(answer).await.is_err() {
            continue;
        }
        tokio::time::timeout_at(deadline, member.roster_size.wait_for(|size| *size == limit))
            .await
            .expect("every roster converges to the whole room")
            .expect("the roster task runs");
        converged += 1;
    }
    assert_eq!(converged, limit);
    for member in &members {
        assert_eq!(member.client.stats().connections, 1, "nobody reconnected");
        assert!(member.client.stats().connected);
    }
    let online = metric(metrics, "sotto_members_online").await;
    assert_eq!(
        online as usize,
        PEOPLE + 1,
        "everyone stays online, the owner too"
    );
    let full_rss = relay.resident_bytes();

    println!(
        "crowd: {PEOPLE} members connected in {connect_time:.1?}; joins sent at {JOINS_PER_SECOND}/s, all answered within {join_time:.1?} ({:.0} joins/s)",
        PEOPLE as f64 / join_time.as_secs_f64()
    );
    for (index, bytes) in &bytes_per_join {
        println!("crowd: control bytes for one join with {index} in the room: {bytes}");
    }
    println!(
        "crowd: relay memory {:.1} MB idle, {:.1} MB with {} connected, {:.1} MB with {limit} in the room: {:.0} kB per connected member",
        idle_rss as f64 / 1e6,
        connected_rss as f64 / 1e6,
        PEOPLE + 1,
        full_rss as f64 / 1e6,
        (full_rss.saturating_sub(idle_rss)) as f64 / 1e3 / (PEOPLE + 1) as f64
    );
    drop(members);
    drop(owner);
}
