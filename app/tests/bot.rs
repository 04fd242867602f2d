//! The example bot (`app/examples/helper_bot.rs`, on the public SDK) joins a server like a
//! person, answers a command, reminds the channel of a task that is due, and posts what an
//! integration sends its webhook. Through a real relay, with its replies read back by members.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Where cargo put the example, next to this test's own executable.
fn helper_bot() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let built = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/helper_bot");
    assert!(
        built.exists(),
        "build the example first: cargo build -p sotto --example helper_bot"
    );
    built
}

/// Waits until `member`'s view of #general contains `needle`; that view.
fn wait_for_message(member: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let history = stdout_of(sotto(member, &["history", "general"]));
        if history.contains(needle) {
            return history;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in:\n{history}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_example_bot_answers_reminds_and_relays_a_webhook() {
    let server = Server::start(&["Olga", "Ann"]);
    let (olga, ann) = (&server.members[0], &server.members[1]);
    let bot_profile = server.dir.path().join("bot");
    let invite = String::from_utf8(sotto(olga, &["invite"]).stdout).unwrap();
    join(&bot_profile, invite.trim(), "helper");
    let_in(olga);

    let port = free_tcp_port();
    let bot = VoiceProcess::spawn(
        Command::new(helper_bot())
            .args(["--webhook", &format!("127.0.0.1:{port}")])
            .env("SOTTO_DATA_DIR", &bot_profile)
            .env("DBUS_SESSION_BUS_ADDRESS", NO_SESSION_BUS),
    );
    bot.wait_for("Ready on", Duration::from_secs(60));

    // A command, answered as a reply.
    sotto(ann, &["send", "general", "!echo hello from the bot"]);
    let history = wait_for_message(olga, "helper");
    assert!(history.contains("hello from the bot"), "{history}");

    // A task due today: one reminder, as a reply to the task.
    let today =
        humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_owned();
    sotto_with_input(
        ann,
        &["send", "general"],
        &format!("#task Ship v1\n#assignee @ann\n#due {today}\n"),
    );
    let history = wait_for_message(olga, "⏰ Reminder");
    assert!(
        history.contains(&format!("is due {today}. @ann")),
        "{history}"
    );

    // An integration posts through the webhook.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = "CI: main is green";
    write!(
        stream,
        "POST /general HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let history = wait_for_message(ann, "CI: main is green");
    println!("{history}");
    assert_eq!(
        history.matches("⏰ Reminder").count(),
        1,
        "one reminder: {history}"
    );
    // Stopped as Ctrl-C stops it (it keeps no state it could lose).
    let _ = bot.interrupt();
}
