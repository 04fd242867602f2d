//! The identity key: in the OS keychain when one runs (here a real GNOME Keyring on a private
//! D-Bus session), else in a mode-0600 file with a one-line warning.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// A relay hosted by a `sotto host` process, and its owner invite link.
fn relay(dir: &Path) -> (Host, String) {
    let address = free_address();
    let (host, link) = start_host(&dir.join("relay"), &address, &address);
    (host, link.unwrap())
}

#[test]
fn without_a_keychain_the_key_is_a_private_file_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, link) = relay(dir.path());
    let ada = dir.path().join("ada");
    let joined = join(&ada, &link, "Ada");
    let stderr = String::from_utf8_lossy(&joined.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning"))
        .collect();
    println!("{warnings:?}");
    assert_eq!(warnings.len(), 1, "one warning line:\n{stderr}");
    assert!(warnings[0].contains("no OS keychain") && warnings[0].contains("identity.key"));
    let key = ada.join("identity.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "identity.key mode {mode:o}");
    // The same identity signs in again (an invite needs an admitted member), without a new
    // warning.
    let invited = sotto(&ada, &["invite"]);
    assert!(String::from_utf8_lossy(&invited.stdout).starts_with("sotto://"));
    assert!(!String::from_utf8_lossy(&invited.stderr).contains("warning"));
}

#[test]
fn with_a_keychain_the_key_lives_there() {
    assert!(
        Path::new("/usr/bin/gnome-keyring-daemon").exists(),
        "GNOME Keyring is not installed: run `bash .ci/install-deps`"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_host, link) = relay(dir.path());
    let ada = dir.path().join("ada");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // A private session bus with an unlocked keyring, as a desktop login has; `sotto` joins,
    // then signs in again to make an invite, with the key read back from the keyring.
    let script = r#"
        echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        "$SOTTO" join "$LINK" --name Ada || exit 1
        "$SOTTO" invite || exit 1
    "#;
    let output = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .env("SOTTO", SOTTO)
        .env("LINK", &link)
        .env("SOTTO_DATA_DIR", &ada)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("created your identity key in the OS keychain"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        stdout.lines().any(|line| line.starts_with("sotto://")),
        "the second sign-in worked: {stdout}"
    );
    assert!(
        !ada.join("identity.key").exists(),
        "no key file when the keychain holds it"
    );

    // Without the keychain now, the profile says where its key is instead of making a new one.
    let output = Command::new(SOTTO)
        .arg("invite")
        .env("SOTTO_DATA_DIR", &ada)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stderr}");
    assert!(!output.status.success());
    assert!(stderr.contains("cannot reach the OS keychain"), "{stderr}");
    assert!(!ada.join("identity.key").exists());
}
