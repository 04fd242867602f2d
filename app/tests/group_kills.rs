//! The encryption group survives SIGKILL: of a client in the middle of a commit, and of the
//! relay while commits are in flight. Afterwards nobody is forked off (every member shows the
//! same epoch and privacy code) and the group keeps working. Also: leaving a server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A server hosted by `sotto host`, with `names` joined and let into its group.
struct Server {
    dir: tempfile::TempDir,
    relay_data: PathBuf,
    address: String,
    host: Host,
    members: Vec<PathBuf>,
}

impl Server {
    fn start(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let address = free_address();
        let relay_data = dir.path().join("relay");
        let (host, owner_link) = start_host(&relay_data, &address, &address);
        let mut members: Vec<PathBuf> = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let profile = dir.path().join(name.to_lowercase());
            if index == 0 {
                join(&profile, owner_link.as_deref().unwrap(), name);
            } else {
                let invite = String::from_utf8(sotto(&members[0], &["invite"]).stdout).unwrap();
                join(&profile, invite.trim(), name);
                let_in(&members[0]);
            }
            members.push(profile);
        }
        Self {
            dir,
            relay_data,
            address,
            host,
            members,
        }
    }

    fn kill_and_restart_relay(&mut self) {
        self.host.0.kill().unwrap(); // SIGKILL
        self.host.0.wait().unwrap();
        self.host = start_host(&self.relay_data, &self.address, &self.address).0;
    }
}

/// `sotto` on `profile`, success or not.
fn try_sotto(profile: &Path, args: &[&str]) -> Output {
    Command::new(SOTTO)
        .args(args)
        .env("SOTTO_DATA_DIR", profile)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
        .output()
        .expect("sotto runs")
}

/// The epoch and privacy code `sotto members` shows for `profile`.
fn epoch_and_code(profile: &Path) -> (u64, String) {
    let output = sotto(profile, &["members"]);
    let warnings = String::from_utf8_lossy(&output.stderr);
    if !warnings.is_empty() {
        println!("sotto members for {}: {warnings}", profile.display());
    }
    let listing = String::from_utf8(output.stdout).unwrap();
    let header = listing.lines().next().unwrap_or_default();
    let epoch = header
        .split("epoch ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or_else(|| panic!("no epoch in {listing:?}"));
    let code = header
        .split("privacy code ")
        .nth(1)
        .unwrap_or_else(|| panic!("no privacy code in {listing:?}"))
        .to_owned();
    (epoch, code)
}

/// Every member shows the same epoch and privacy code; returns them.
fn converged(members: &[PathBuf]) -> (u64, String) {
    let views: Vec<(u64, String)> = members.iter().map(|m| epoch_and_code(m)).collect();
    assert!(
        views.windows(2).all(|pair| pair[0] == pair[1]),
        "members disagree (a fork): {views:?}"
    );
    views[0].clone()
}

#[test]
fn a_client_killed_in_the_middle_of_its_commit_neither_forks_nor_blocks_the_group() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    let (start_epoch, _) = converged(&server.members);

    // Ada rotates her keys and is killed at a spread of moments: before connecting, while
    // connecting, with the commit written but not sent, sent but not answered, accepted...
    let mut kills = 0;
    // (A rekey takes some tens of milliseconds on loopback.)
    let tries = 16;
    for delay_ms in (0..tries).map(|try_index| try_index * 5) {
        let mut rekey = Command::new(SOTTO)
            .arg("rekey")
            .env("SOTTO_DATA_DIR", ada)
            .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if rekey.try_wait().unwrap().is_none() {
            kills += 1;
        }
        rekey.kill().unwrap(); // SIGKILL (a no-op if it had finished)
        rekey.wait().unwrap();
    }
    let (epoch, _) = converged(&server.members);
    println!(
        "{kills} of {tries} rekeys killed before they finished; the group went from epoch \
         {start_epoch} to {epoch} and both members agree"
    );
    assert!(kills >= 6, "too few rekeys were killed mid-way ({kills})");

    // The group still works: each can rotate, and they agree after.
    sotto(ada, &["rekey"]);
    sotto(bob, &["rekey"]);
    let (after, _) = converged(&server.members);
    assert_eq!(after, epoch + 2);
}

#[test]
fn the_relay_killed_while_commits_are_in_flight_loses_none_and_members_converge() {
    let mut server = Server::start(&["Ada", "Bob", "Cy"]);

    // Ada and Bob rotate their keys over and over, racing each other for epochs; the relay
    // is killed and restarted in the middle of it.
    let rotate = |profile: PathBuf| {
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(6);
            let (mut done, mut failed) = (0, 0);
            while Instant::now() < until {
                if try_sotto(&profile, &["rekey"]).status.success() {
                    done += 1;
                } else {
                    failed += 1;
                }
            }
            (done, failed)
        })
    };
    let ada_loop = rotate(server.members[0].clone());
    let bob_loop = rotate(server.members[1].clone());
    std::thread::sleep(Duration::from_millis(2_500));
    server.kill_and_restart_relay();
    let (ada_done, ada_failed) = ada_loop.join().unwrap();
    let (bob_done, bob_failed) = bob_loop.join().unwrap();
    println!(
        "rotations: Ada {ada_done} done, {ada_failed} failed; Bob {bob_done} done, \
         {bob_failed} failed (across a relay SIGKILL)"
    );
    assert!(ada_done + bob_done >= 2, "hardly any rotation went through");

    // Every member, including Cy who slept through it all, ends on the same epoch; each
    // acknowledged rotation is in it.
    let (epoch, _) = converged(&server.members);
    assert!(
        epoch >= (ada_done + bob_done) as u64,
        "epoch {epoch} lost some of the {} acknowledged rotations",
        ada_done + bob_done
    );
    sotto(&server.members[2], &["rekey"]);
    assert_eq!(converged(&server.members).0, epoch + 1);
    drop(server.dir);
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
