//! The relay is killed with SIGKILL mid-call and started again: both `sotto voice` clients
//! reconnect and audio resumes without anyone doing anything.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn voice_resumes_after_the_relay_is_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let relay_data = dir.path().join("relay");
    let (mut host, owner_link) = start_host(&relay_data, &address, &address);
    let owner_link = owner_link.unwrap();

    let (ada, bob) = (dir.path().join("ada"), dir.path().join("bob"));
    join(&ada, &owner_link, "Ada");
    let invite = String::from_utf8(sotto(&ada, &["invite"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    join(&bob, &invite, "Bob");
    let_in(&ada);

    // Ada talks for ~12 s (open mic, so she sends throughout); Bob records.
    let speech = alsa_speech(&ALL_CLIPS, 2_400);
    let (said, quiet, heard) = (
        dir.path().join("said.wav"),
        dir.path().join("quiet.wav"),
        dir.path().join("heard.wav"),
    );
    write(&said, &speech);
    write(&quiet, &vec![0.0; speech.len() + 48_000]);
    let listener = Command::new(SOTTO)
        .args([
            "voice",
            "--no-aec",
            "--input",
            quiet.to_str().unwrap(),
            "--output",
            heard.to_str().unwrap(),
        ])
        .env("SOTTO_DATA_DIR", &bob)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let speaker = Command::new(SOTTO)
        .args([
            "voice",
            "--no-aec",
            "--open-mic",
            "--input",
            said.to_str().unwrap(),
            "--output",
        ])
        .arg(dir.path().join("ada-heard.wav"))
        .env("SOTTO_DATA_DIR", &ada)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // Four seconds in, SIGKILL the relay and start it again on the same data and port.
    std::thread::sleep(Duration::from_secs(4));
    host.0.kill().unwrap(); // SIGKILL
    host.0.wait().unwrap();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i128;
    let _restarted = start_host(&relay_data, &address, &address);

    let speaker = speaker.wait_with_output().unwrap();
    let listener = listener.wait_with_output().unwrap();
    let listener_out = String::from_utf8_lossy(&listener.stdout).to_string();
    assert!(
        speaker.status.success() && listener.status.success(),
        "{listener_out}"
    );
    assert!(
        listener_out.contains("reconnected"),
        "Bob never reconnected:\n{listener_out}"
    );

    // On Bob's recording, find the silence the outage left and when sound came back.
    let recorded = read(&heard);
    let levels = envelope(&recorded);
    // Bob's recording is on his audio clock: frame n is 10 ms × n after its origin.
    let outage_start = ((killed_at - clock_origin(&listener)) / 10_000) as usize;
    let resumed = levels
        .iter()
        .enumerate()
        // Skip what was already in flight and in the jitter buffer when the relay died.
        .skip(outage_start + 20)
        .find(|(_, level)| **level > 0.01)
        .map(|(frame, _)| frame)
        .expect("audio never came back after the restart");
    let silent_frames = levels[outage_start..resumed]
        .iter()
        .filter(|level| **level <= 0.01)
        .count();
    println!(
        "relay killed at {:.2} s of Bob's recording; audio back {:.2} s later ({} silent frames)",
        outage_start as f64 / 100.0,
        (resumed - outage_start) as f64 / 100.0,
        silent_frames,
    );
    // After the restart Bob hears Ada's speech again for the rest of the clip.
    let after: f64 = levels[resumed..]
        .iter()
        .filter(|level| **level > 0.01)
        .count() as f64;
    assert!(after > 200.0, "only {after} loud frames after the restart");
}
