//! `sotto demo` end to end: a real relay on loopback, two clients, two media engines.

use std::process::Command;

#[test]
fn the_demo_delivers_clear_speech_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["demo", "--keep"])
        .arg(dir.path())
        .output()
        .expect("sotto runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = stdout
        .lines()
        .find(|line| line.starts_with("result"))
        .expect("a result line");
    let correlation: f64 = result
        .split("correlation ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|number| number.parse().ok())
        .expect("a correlation figure");
    assert!(correlation >= 0.85, "{result}");
    assert!(stdout.contains("live "), "a live status line was shown");
    assert!(dir.path().join("bob-heard.wav").exists() && dir.path().join("ada-said.wav").exists());
}
