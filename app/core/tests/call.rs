//! Calls through a real relay on loopback, with real engines on files (no sound card here; the
//! files stand in for microphones and speakers, as `sotto voice --input/--output` does).

use std::path::Path;
use std::time::Duration;

use sotto_client::group::{GroupSetup, GroupState};
use sotto_client::{Call, CallError, CallEvent, CallOptions, CallStats, Session};
use sotto_media::codec::EncoderSettings;
use sotto_media::engine::{AudioSink, AudioSource, EngineClosed, EngineConfig};
use sotto_media::send::{GateMode, Profile};
use sotto_media::test_support::{ALSA_SPEECH_CLIPS, alsa_clip, correlation, envelope};
use sotto_net::client::ClientOptions;
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::ErrorCode;
use sotto_relay::RelayConfig;

mod common;
use common::{Relay, relay};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(15);

/// A member with a fresh identity and group store, in the group once `member` returns.
async fn member(link: &InviteLink, name: &str) -> Session {
    let identity = Identity::generate();
    let store = tempfile::tempdir().unwrap().keep().join("group.db");
    let group = GroupSetup::open(&store, &identity, link.secret.clone()).unwrap();
    let options = ClientOptions::new(link.clone(), identity, name, group.keys()).unwrap();
    let mut session = Session::connect(options, group, DEADLINE, |_| {})
        .await
        .unwrap();
    let waited = tokio::time::timeout(
        DEADLINE,
        session
            .group
            .wait_for(|state| matches!(state, GroupState::Member { .. })),
    )
    .await;
    assert!(
        waited.is_ok(),
        "{name} not let into the group in time: {:?}",
        session.group.state()
    );
    session
}

/// The group epoch a session stands at.
fn epoch_of(session: &Session) -> u64 {
    match session.group.state() {
        GroupState::Member { epoch, .. } => epoch,
        other => panic!("not a member: {other:?}"),
    }
}

/// Ada (owner) and Bob (member) connected and in the group, and the voice channel's id.
async fn two_members(relay: &Relay) -> (Session, Session, u32) {
    let ada = member(&relay.owner, "Ada").await;
    let invite = ada.group.create_invite(None, None).await.unwrap();
    let bob = member(&invite, "Bob").await;
    let voice = ada.voice_channels().next().unwrap().id;
    (ada, bob, voice)
}

fn engine(source: AudioSource, sink: AudioSink) -> CallOptions {
    let mut options = CallOptions::new(EngineConfig {
        source,
        sink,
        profile: Profile::Headset,
        gate: GateMode::Open,
        encoder: EncoderSettings::default(),
    });
    options.stats_interval = Duration::from_millis(100);
    options
}

fn file(path: &Path) -> AudioSource {
    AudioSource::File {
        path: path.to_owned(),
        paced: true,
    }
}

fn speech() -> Vec<f32> {
    ALSA_SPEECH_CLIPS[..2]
        .iter()
        .flat_map(|clip| alsa_clip(clip))
        .collect()
}

/// Waits for an event `pick` accepts; other events pass by.
async fn wait_for<T>(
    events: &mut mpsc::Receiver<CallEvent>,
    what: &str,
    mut pick: impl FnMut(&CallEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("the call ended while waiting for {what}"));
        if let Some(value) = pick(&event) {
            return value;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_carries_speech_and_reports_who_is_here_and_how_it_goes() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob, voice) = two_members(&relay).await;
    let dir = tempfile::tempdir().unwrap();
    let said = speech();
    sotto_media::wav::write_mono(&dir.path().join("said.wav"), &said).unwrap();
    let quiet = vec![0.0; said.len() + 48_000];
    sotto_media::wav::write_mono(&dir.path().join("quiet.wav"), &quiet).unwrap();
    let heard_path = dir.path().join("heard.wav");

    let (bob_call, mut bob_events) = Call::join(
        bob,
        voice,
        engine(
            file(&dir.path().join("quiet.wav")),
            AudioSink::File(heard_path.clone()),
        ),
    )
    .await
    .unwrap();
    // Ada rotates the group's keys every second while in the call: speech must not break at
    // the epoch changes.
    let mut ada_options = engine(file(&dir.path().join("said.wav")), AudioSink::Discard);
    ada_options.key_rotation = Duration::from_secs(1);
    let epoch_before = epoch_of(&ada);
    let (ada_call, mut ada_events) = Call::join(ada, voice, ada_options).await.unwrap();
    assert_ne!(ada_call.own_slot(), bob_call.own_slot());

    // Bob learns who is here, and his statistics show Ada speaking and packets arriving.
    let names = wait_for(&mut bob_events, "both in the roster", |event| match event {
        CallEvent::Participants(people) if people.len() == 2 => {
            let mut names: Vec<_> = people.iter().map(|p| p.display_name.clone()).collect();
            names.sort();
            Some(names)
        }
        _ => None,
    })
    .await;
    assert_eq!(names, ["Ada", "Bob"]);
    let ada_slot = ada_call.own_slot();
    let heard_speaking: CallStats =
        wait_for(&mut bob_events, "Ada speaking", |event| match event {
            CallEvent::Stats(stats) if stats.meters.speaking.get(&ada_slot) == Some(&true) => {
                Some(stats.clone())
            }
            _ => None,
        })
        .await;
    assert!(heard_speaking.connection.datagrams_received > 0);
    let sending: CallStats = wait_for(&mut ada_events, "Ada's stats", |event| match event {
        CallEvent::Stats(stats) if stats.bytes_sent > 0 => Some(stats.clone()),
        _ => None,
    })
    .await;
    assert!(sending.sent_kbps() > 1.0, "{}", sending.sent_kbps());

    // Ada's file ends; the call says so, and both stop cleanly with their sessions back.
    wait_for(&mut ada_events, "the end of Ada's file", |event| {
        matches!(event, CallEvent::SourceEnded).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ada, ada_result) = ada_call.stop().await;
    let (mut bob, bob_result) = bob_call.stop().await;
    ada_result.unwrap();
    bob_result.unwrap();
    let rotations = epoch_of(&ada) - epoch_before;
    println!("call: the group's keys rotated {rotations} times during the call");
    assert!(rotations >= 2, "{rotations} rotations");
    let target = epoch_of(&ada);
    tokio::time::timeout(
        DEADLINE,
        bob.group.wait_for(
            |state| matches!(state, GroupState::Member { epoch, .. } if *epoch == target),
        ),
    )
    .await
    .expect("Bob follows every epoch")
    .unwrap();

    // What Bob heard is what Ada said.
    let heard = sotto_media::wav::read_mono(&heard_path).unwrap();
    let (said_envelope, heard_envelope) = (envelope(&said), envelope(&heard));
    let best = (0..40)
        .map(|lag| {
            correlation(
                &said_envelope,
                heard_envelope.get(lag..).unwrap_or_default(),
            )
        })
        .fold(f64::MIN, f64::max);
    println!("call: Bob heard Ada with envelope correlation {best:.2}");
    assert!(best > 0.8, "{best}");

    // The sessions still work after the call.
    assert!(ada.group.create_invite(None, Some(1)).await.is_ok());
    assert!(bob.client.stats().connected);
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_gives_the_session_back() {
    let relay = relay(RelayConfig {
        max_voice_participants: 1,
        ..RelayConfig::default()
    })
    .await;
    let (ada, bob, voice) = two_members(&relay).await;
    let dir = tempfile::tempdir().unwrap();
    sotto_media::wav::write_mono(&dir.path().join("quiet.wav"), &[0.0; 48_000]).unwrap();
    let quiet = || engine(file(&dir.path().join("quiet.wav")), AudioSink::Discard);
    let (ada_call, _ada_events) = Call::join(ada, voice, quiet()).await.unwrap();
    let failure = Call::join(bob, voice, quiet()).await.unwrap_err();
    let CallError::Refused { code, message } = &failure.error else {
        panic!("expected a refusal, got {}", failure.error)
    };
    assert_eq!(*code, ErrorCode::ChannelFull);
    assert!(message.contains("full"), "{message}");
    // Bob's session is intact: once Ada leaves, he gets in.
    let (_ada, result) = ada_call.stop().await;
    result.unwrap();
    let (bob_call, _bob_events) = Call::join(failure.session, voice, quiet()).await.unwrap();
    let (_, result) = bob_call.stop().await;
    result.unwrap();
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_failure_ends_the_call_with_its_reason() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, _bob, voice) = two_members(&relay).await;
    let dir = tempfile::tempdir().unwrap();
    sotto_media::wav::write_mono(&dir.path().join("short.wav"), &[0.0; 9_600]).unwrap();
    // A real failure: the recording cannot be written, because its directory does not exist.
    let unwritable = dir.path().join("missing").join("heard.wav");
    let (call, mut events) = Call::join(
        ada,
        voice,
        engine(
            file(&dir.path().join("short.wav")),
            AudioSink::File(unwritable),
        ),
    )
    .await
    .unwrap();
    let error = wait_for(&mut events, "the call to end", |event| match event {
        CallEvent::Ended(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(&*error, CallError::EngineClosed(EngineClosed::Failed(message)) if message.contains("heard.wav")),
        "{error}"
    );
    let (session, result) = call.stop().await;
    assert!(result.is_err(), "stop reports the failure too");
    assert!(
        session.client.stats().connected,
        "the connection is unaffected"
    );
    relay.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_change_during_a_call_without_leaving_it() {
    let relay = relay(RelayConfig::default()).await;
    let (ada, bob, voice) = two_members(&relay).await;
    let dir = tempfile::tempdir().unwrap();
    sotto_media::wav::write_mono(&dir.path().join("quiet.wav"), &vec![0.0; 48_000 * 20]).unwrap();
    sotto_media::wav::write_mono(&dir.path().join("said.wav"), &speech()).unwrap();
    let (bob_call, mut bob_events) = Call::join(
        bob,
        voice,
        engine(file(&dir.path().join("quiet.wav")), AudioSink::Discard),
    )
    .await
    .unwrap();
    // Ada starts on a silent "microphone", then switches to one that speaks.
    let (mut ada_call, _ada_events) = Call::join(
        ada,
        voice,
        engine(file(&dir.path().join("quiet.wav")), AudioSink::Discard),
    )
    .await
    .unwrap();
    let ada_slot = ada_call.own_slot();
    let speaking = EngineConfig {
        source: file(&dir.path().join("said.wav")),
        ..engine(file(&dir.path().join("quiet.wav")), AudioSink::Discard).engine
    };
    // Muted before the switch, and still muted after it: the new engine keeps the settings.
    ada_call.controls().set_muted(true);
    tokio::task::block_in_place(|| ada_call.change_devices(speaking)).unwrap();
    assert_eq!(
        ada_call.own_slot(),
        ada_slot,
        "still in the channel, same slot"
    );
    for _ in 0..10 {
        let stats = wait_for(&mut bob_events, "Bob's stats", |event| match event {
            CallEvent::Stats(stats) => Some(stats.clone()),
            _ => None,
        })
        .await;
        assert_ne!(
            stats.meters.speaking.get(&ada_slot),
            Some(&true),
            "a muted Ada is not heard"
        );
    }
    ada_call.controls().set_muted(false);
    wait_for(
        &mut bob_events,
        "Ada speaking after the switch",
        |event| match event {
            CallEvent::Stats(stats) if stats.meters.speaking.get(&ada_slot) == Some(&true) => {
                Some(())
            }
            _ => None,
        },
    )
    .await;
    let (_, result) = ada_call.stop().await;
    result.unwrap();
    let (_, result) = bob_call.stop().await;
    result.unwrap();
    relay.handle.shutdown().await;
}
