//! Members of a server on the command line: names, who waits to be let in, verification and
//! what happens when a verified member's key changes, and leaving.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The short id `sotto members` shows on `name`'s line.
fn id_of(listing: &str, name: &str) -> String {
    listing
        .lines()
        .find(|line| line.trim_start().starts_with(name))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{name} is not listed:\n{listing}"))
        .to_owned()
}

#[test]
fn a_verified_members_new_key_blocks_calls_until_it_is_looked_at() {
    let server = Server::start(&["Ada", "Bob"]);
    let ada = &server.members[0];
    let listing = let_in(ada);
    assert!(
        listing.contains("Ada") && listing.contains("(you, admin)"),
        "{listing}"
    );
    let old_bob = id_of(&listing, "Bob");
    // Bob's `join` may still show as online for a moment after it exits.
    assert!(
        listing.contains(&format!("{old_bob}  (not verified)"))
            || listing.contains(&format!("{old_bob}  (not verified, online)")),
        "{listing}"
    );

    // Ada compares safety numbers with Bob (by name) and marks him verified.
    let said = String::from_utf8(sotto(ada, &["verify", "bob", "--yes"]).stdout).unwrap();
    assert!(
        said.contains(&format!("Marked Bob ({old_bob}) as verified")),
        "{said}"
    );
    assert!(let_in(ada).contains(&format!("{old_bob}  (verified")));

    // Bob loses his device; a new key joins as "Bob" after the old one is removed.
    sotto(ada, &["kick", &old_bob]);
    let new_bob_profile = server.dir.path().join("new-bob");
    let invite = String::from_utf8(sotto(ada, &["invite"]).stdout).unwrap();
    join(&new_bob_profile, invite.trim(), "Bob");
    let output = sotto(ada, &["members"]);
    let listing = String::from_utf8(output.stdout).unwrap();
    let warnings = String::from_utf8(output.stderr).unwrap();
    let new_bob = id_of(&listing, "Bob");
    assert_ne!(new_bob, old_bob);
    assert!(
        listing.contains(&format!("{new_bob}  (KEY CHANGED")),
        "{listing}"
    );
    assert!(
        warnings.contains("Bob's key changed since you verified it")
            && warnings.contains(&format!("sotto verify {new_bob}")),
        "{warnings}"
    );

    // Ada's calls are blocked until she looks.
    let quiet = server.dir.path().join("quiet.wav");
    write(&quiet, &vec![0.0; 48_000]);
    let heard = server.dir.path().join("heard.wav");
    let voice_args = [
        "voice",
        "--no-aec",
        "--input",
        quiet.to_str().unwrap(),
        "--output",
        heard.to_str().unwrap(),
        "--duration",
        "1s",
    ];
    let blocked = try_sotto(ada, &voice_args);
    let said = String::from_utf8_lossy(&blocked.stderr);
    assert!(!blocked.status.success());
    assert!(
        said.contains("not joining the call: Bob's key changed"),
        "{said}"
    );

    // She accepts the new key without checking: it is merely not verified, and calls go on.
    sotto(ada, &["verify", &new_bob, "--accept-change"]);
    let listing = let_in(ada);
    assert!(
        listing.contains(&format!("{new_bob}  (not verified")),
        "{listing}"
    );
    let call = try_sotto(ada, &voice_args);
    assert!(
        call.status.success(),
        "{}",
        String::from_utf8_lossy(&call.stderr)
    );
}

#[test]
fn members_without_an_invite_secret_wait_apart_until_an_admin_admits_them() {
    let server = Server::start(&["Ada"]);
    let ada = &server.members[0];
    // Cy joins with a link the relay made, which carries no invite secret: he is on the server
    // but nobody can vouch for him in the encryption group.
    let cy = server.dir.path().join("cy");
    let invite = String::from_utf8(sotto(ada, &["invite"]).stdout).unwrap();
    let without_secret = invite.trim().split('#').next().unwrap().to_owned();
    sotto(&cy, &["join", &without_secret, "--name", "Cy"]);
    let listing = let_in(ada);
    let (members, waiting) = listing
        .split_once("Waiting to be let in")
        .unwrap_or_else(|| panic!("nobody listed as waiting:\n{listing}"));
    assert!(members.starts_with("1 member(s)"), "{listing}");
    assert!(waiting.contains("Cy"), "{listing}");

    // Cy is offline; Ada (an admin) lets him in from the KeyPackage the relay keeps for him.
    let said = String::from_utf8(sotto(ada, &["admit", "cy"]).stdout).unwrap();
    assert!(said.contains("Let Cy ("), "{said}");
    let listing = let_in(ada);
    assert!(listing.starts_with("2 member(s)"), "{listing}");
    assert!(!listing.contains("Waiting"), "{listing}");
    // When Cy comes back he is in, at the same epoch and privacy code as Ada.
    assert_eq!(epoch_and_code(&cy), epoch_and_code(ada));
    // Nobody else waits: admitting again says so.
    let again = try_sotto(ada, &["admit", "cy"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("waits to be let in"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_member_who_leaves_is_removed_by_one_online_and_forgotten_locally() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    let (epoch, _) = converged(&server.members);

    // Bob leaves while Ada is online (her `sotto members` commits his removal).
    let leaving = Command::new(SOTTO)
        .args(["leave", "--yes"])
        .env("SOTTO_DATA_DIR", bob)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let listing = let_in(ada);
    let left = leaving.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&left.stdout);
    assert!(left.status.success(), "{said}");
    assert!(said.contains("Left \"My Sotto\""), "{said}");
    assert!(listing.starts_with("1 member(s)"), "{listing}");
    assert!(epoch_and_code(ada).0 > epoch);

    let servers = String::from_utf8(sotto(bob, &["servers"]).stdout).unwrap();
    assert!(servers.contains("No servers yet"), "{servers}");
}

#[test]
fn member_ids_that_start_with_a_dash_are_taken_as_ids() {
    let server = Server::start(&["Ada"]);
    // Ids are base64url, so one in 32 starts with '-': it must not be read as an option.
    let refused = try_sotto(&server.members[0], &["verify", "-xyz"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no member is called `-xyz`"), "{said}");
}
