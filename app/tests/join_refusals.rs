//! `sotto join` refuses what can never work before creating anything or contacting a relay.

mod common;

use std::process::Command;

use common::{NO_SESSION_BUS, SOTTO};

/// A well-formed link to a port where nothing listens: the refusals must come first.
const LINK: &str = "sotto://127.0.0.1:9/join/AAAAAAAAAAAAAAAAAAAAAA?fp=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[test]
fn a_display_name_the_relay_would_refuse_is_refused_at_once() {
    for (name, why) in [
        ("", "it is empty"),
        ("tab\there", "control characters"),
        (&"a".repeat(129)[..], "129 bytes long; the most is 128"),
    ] {
        let profile = tempfile::tempdir().unwrap();
        let output = Command::new(SOTTO)
            .args(["join", LINK, "--name", name])
            .env("SOTTO_DATA_DIR", profile.path())
            .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name:?} was accepted");
        assert!(
            stderr.contains("the display name cannot be used") && stderr.contains(why),
            "{name:?}: {stderr}"
        );
        assert!(stderr.contains("--name"), "says what to do next: {stderr}");
        assert_eq!(
            std::fs::read_dir(profile.path()).unwrap().count(),
            0,
            "{name:?}: nothing created"
        );
    }
}

#[test]
fn a_link_with_a_secret_on_the_command_line_is_refused_and_nothing_is_created() {
    let profile = tempfile::tempdir().unwrap();
    let with_secret = format!("{LINK}#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let output = Command::new(SOTTO)
        .args(["join", &with_secret, "--name", "Ada"])
        .env("SOTTO_DATA_DIR", profile.path())
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("must not go on the") && stderr.contains("sotto join < link.txt"),
        "says why and what to do instead: {stderr}"
    );
    assert_eq!(std::fs::read_dir(profile.path()).unwrap().count(), 0);
}
