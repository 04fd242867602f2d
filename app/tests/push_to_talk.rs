//! Push-to-talk on a real X server (Xvfb): A talks continuously but is heard only while the
//! key is held; the key is pressed and released through XTEST (`xdotool`), as a keyboard would.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use common::*;

/// A private Xvfb display, stopped on drop.
struct XServer {
    child: Child,
    display: String,
}

impl XServer {
    fn start() -> Self {
        assert!(
            Path::new("/usr/bin/Xvfb").exists() && Path::new("/usr/bin/xdotool").exists(),
            "Xvfb or xdotool is not installed: run `bash .ci/install-deps`"
        );
        let number = (60..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free display number");
        let display = format!(":{number}");
        let server = Self {
            child: Command::new("Xvfb")
                .args([&display, "-screen", "0", "640x480x24", "-nolisten", "tcp"])
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb starts"),
            display,
        };
        let socket = format!("/tmp/.X11-unix/X{number}");
        for _ in 0..100 {
            if Path::new(&socket).exists() {
                return server;
            }
            sleep(Duration::from_millis(50));
        }
        panic!("Xvfb did not come up on {}", server.display);
    }

    fn key(&self, action: &str, key: &str) {
        let status = Command::new("xdotool")
            .args([action, key])
            .env("DISPLAY", &self.display)
            .status()
            .unwrap();
        assert!(status.success(), "xdotool {action} {key} failed");
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds of `signal` in 10 ms frames louder than -40 dBFS.
fn active_seconds(signal: &[f32]) -> f64 {
    let loud = signal
        .chunks(480)
        .filter(|frame| {
            let power = frame.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / 480.0;
            10.0 * power.max(1e-12).log10() > -40.0
        })
        .count();
    loud as f64 / 100.0
}

#[test]
fn a_is_heard_only_while_the_key_is_held() {
    let x = XServer::start();
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let (_host, link) = start_host(&dir.path().join("relay"), &address, &address);
    let (ada, bob) = (dir.path().join("ada"), dir.path().join("bob"));
    join(&ada, &link.unwrap(), "Ada");
    let invite = String::from_utf8(sotto(&ada, &["invite"]).stdout).unwrap();
    join(&bob, invite.trim(), "Bob");
    let_in(&ada);

    // Eight recordings back to back: A talks for about eleven seconds.
    let speech = alsa_speech(&ALL_CLIPS, 0);
    let said_active = active_seconds(&speech);
    let (said, quiet, heard) = (
        dir.path().join("said.wav"),
        dir.path().join("quiet.wav"),
        dir.path().join("heard.wav"),
    );
    write(&said, &speech);
    write(&quiet, &vec![0.0; speech.len() + 60 * 48_000]);
    let listener = Command::new(SOTTO)
        .args(["voice", "--no-aec", "--input", quiet.to_str().unwrap()])
        .args(["--output", heard.to_str().unwrap()])
        .env("SOTTO_DATA_DIR", &bob)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut speaker = Command::new(SOTTO)
        .args([
            "voice",
            "--no-aec",
            "--ptt",
            "space",
            "--input",
            said.to_str().unwrap(),
            "--output",
            dir.path().join("ada-heard.wav").to_str().unwrap(),
        ])
        .env("SOTTO_DATA_DIR", &ada)
        .env("DISPLAY", &x.display)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(speaker.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let ready = line.contains("push-to-talk: hold space");
        seen.push(line);
        if ready {
            break;
        }
    }
    assert!(
        seen.iter().any(|line| line.contains("audio clock origin")),
        "A did not join: {seen:?}"
    );
    // A talks from the start; the key is held for two seconds in the middle.
    sleep(Duration::from_millis(3_000));
    x.key("keydown", "space");
    sleep(Duration::from_millis(2_000));
    x.key("keyup", "space");
    let speaker_rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(speaker.wait().unwrap().success(), "{speaker_rest:?}");
    sleep(Duration::from_millis(1_500));
    let listener = interrupt(listener);
    assert!(listener.status.success());

    let heard_active = active_seconds(&read(&heard));
    println!(
        "A spoke for {said_active:.1} s (frames over -40 dBFS); the key was held 2.0 s; B heard {heard_active:.2} s"
    );
    let talking_lines = speaker_rest
        .iter()
        .filter(|line| line.starts_with("status") && line.contains("you: talking"))
        .count();
    println!("A's status showed \"talking\" on {talking_lines} of its lines (every 0.5 s)");
    assert!(said_active > 5.0, "the clip is mostly speech");
    // Held 2.0 s, plus the 0.1 s release hangover; speech has pauses, so somewhat less (with
    // voice activity instead, B would hear all of A's 5–6 s).
    assert!(
        (0.8..=2.3).contains(&heard_active),
        "B heard {heard_active:.2} s of A"
    );
    assert!(
        (1..=6).contains(&talking_lines),
        "talking shown on {talking_lines} status lines"
    );
}
