//! `sotto chat --json`, as a bot or script drives it: two members live in a channel through a
//! real relay see each other's messages, reactions, replies, typing and presence as they happen,
//! and a bad command is answered without ending the session.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(20);

fn live(profile: &std::path::Path) -> VoiceProcess {
    VoiceProcess::spawn(
        Command::new(SOTTO)
            .args(["chat", "general", "--json"])
            .env("SOTTO_DATA_DIR", profile)
            .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS)
            .stdin(Stdio::piped()),
    )
}

#[test]
fn two_members_live_in_a_channel_see_messages_reactions_typing_and_presence() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada_profile, bob_profile) = (&server.members[0], &server.members[1]);
    let mut bob = live(bob_profile);
    bob.wait_for(r#""event":"ready""#, WAIT);
    let mut ada = live(ada_profile);
    ada.wait_for(r#""event":"ready""#, WAIT);
    bob.wait_for(r#""member":"Ada","presence":"online""#, WAIT);

    // A message that calls on Bob reaches him live, marked so.
    ada.write_line("hello @Bob, ready?");
    bob.wait_for(r#""text":"hello @Bob, ready?""#, WAIT);
    let line = bob.lines_with("hello @Bob").pop().unwrap();
    assert!(line.contains(r#""mentions_me":true"#), "{line}");
    assert!(line.contains(r#""author":"Ada""#), "{line}");
    assert!(line.contains(r#""seq":1"#), "{line}");

    // Bob reacts and replies; Ada sees both as they land.
    bob.write_line("/react 1 👍");
    ada.wait_for(r#""reactions":[["👍",1]]"#, WAIT);
    bob.write_line("/reply 1 on it");
    ada.wait_for(r#""text":"on it""#, WAIT);
    let reply = ada.lines_with(r#""text":"on it""#).pop().unwrap();
    assert!(reply.contains(r#""reply_to":1"#), "{reply}");

    // Typing and status travel too (and are never stored).
    ada.write_line("/typing");
    bob.wait_for(r#""event":"typing","member":"Ada""#, WAIT);
    bob.write_line("/status dnd heads down");
    ada.wait_for(
        r#""member":"Bob","presence":"do not disturb","status":"heads down""#,
        WAIT,
    );

    // A bad command says why, and the session goes on.
    bob.write_line("/edit 999 nothing there");
    bob.wait_for("there is no message 999 here", WAIT);
    bob.write_line("/frobnicate");
    bob.wait_for("no command /frobnicate", WAIT);
    bob.write_line("still here");
    ada.wait_for(r#""text":"still here""#, WAIT);

    // Bob leaves: Ada sees him go.
    bob.write_line("/quit");
    assert!(bob.finish(), "sotto chat ends cleanly on /quit");
    ada.wait_for(r#""member":"Bob","presence":"offline""#, WAIT);
    assert!(ada.finish(), "sotto chat ends cleanly when its input ends");
}
