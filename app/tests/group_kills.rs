//! The encryption group survives SIGKILL: of a client in the middle of a commit, and of the
//! relay while commits are in flight. Afterwards nobody is forked off (every member shows the
//! same epoch and privacy code) and the group keeps working.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

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
