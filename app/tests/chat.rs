//! Text channels on the command line, end to end: messages sealed by their author, stored by
//! the relay as envelopes it cannot open, read by members in the group when they were sent, and
//! unreadable to a member who joined later. The relay's files hold none of the words.

mod common;

use common::*;

#[test]
fn members_read_what_was_sent_while_they_were_in_and_the_relay_reads_nothing() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    let canary = "canary-3be1c07d quietly";
    let said = String::from_utf8(sotto(ada, &["send", "general", "hello", canary]).stdout).unwrap();
    assert!(said.starts_with("Sent to #general (message 1)"), "{said}");

    // Bob sends one from standard input, with a terminal escape in it.
    let sent = sotto_with_input(
        bob,
        &["send", "#general"],
        "hi Ada \u{1b}[2J\nsecond line\n",
    );
    assert!(sent.status.success());

    let history = String::from_utf8(sotto(bob, &["history", "general"]).stdout).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].ends_with(&format!("Ada: hello {canary}")),
        "{history}"
    );
    assert!(
        lines[1].ends_with("Bob: hi Ada [2J"),
        "no escape reaches the terminal: {history}"
    );
    assert_eq!(lines[2], "    second line");
    assert!(
        lines[0].trim_start().starts_with("1  "),
        "numbered: {history}"
    );

    // Edits, reactions, replies and deletions, by the rules every member applies.
    let said =
        String::from_utf8(sotto(ada, &["edit", "general", "1", "hello,", canary]).stdout).unwrap();
    assert_eq!(said.trim(), "Edited message 1 in #general.");
    let refused = try_sotto(bob, &["edit", "general", "1", "Bob was here"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only its author can edit a message"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    sotto(bob, &["react", "general", "1", "👍"]);
    sotto(bob, &["send", "general", "--reply-to", "1", "sure"]);
    // Ada owns the server (an admin): she may delete Bob's message.
    sotto(ada, &["delete", "general", "2"]);
    let history = String::from_utf8(sotto(ada, &["history", "general"]).stdout).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].ends_with(&format!("Ada: hello, {canary}  (edited)")),
        "{history}"
    );
    assert_eq!(lines[1].trim(), "👍 1", "{history}");
    assert!(lines[2].ends_with("Bob: (deleted)"), "{history}");
    assert!(lines[3].ends_with("Bob: (re 1) sure"), "{history}");
    assert_eq!(lines.len(), 4, "{history}");

    // Cy joins later: Ada's and Bob's messages stay sealed to him; new ones he reads.
    let cy = server.dir.path().join("cy");
    let invite = String::from_utf8(sotto(ada, &["invite"]).stdout).unwrap();
    join(&cy, invite.trim(), "Cy");
    let_in(ada);
    sotto(ada, &["send", "general", "welcome, Cy"]);
    let history =
        String::from_utf8(sotto(&cy, &["history", "general", "--limit", "2"]).stdout).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].contains("sealed: sent before you joined"),
        "{history}"
    );
    assert!(lines[1].ends_with("Ada: welcome, Cy"), "{history}");

    // Search runs on each member's own copy: Bob finds Ada's words, Cy cannot (he never could
    // read them), and filters narrow it down.
    let found = String::from_utf8(sotto(bob, &["search", "CANARY-3be1"]).stdout).unwrap();
    assert_eq!(
        found.lines().filter(|line| line.starts_with('#')).count(),
        1,
        "{found}"
    );
    assert!(
        found.starts_with("#general  ") && found.contains("Ada: hello, canary"),
        "{found}"
    );
    let by_bob =
        String::from_utf8(sotto(bob, &["search", "canary", "--from", "bob"]).stdout).unwrap();
    assert_eq!(by_bob.trim(), "Nothing found.");
    let cy_found = String::from_utf8(sotto(&cy, &["search", "second", "line"]).stdout).unwrap();
    assert_eq!(cy_found.trim(), "Nothing found.");

    // The relay's files (database, WAL, certificate) and its debug log hold none of the words.
    assert_relay_holds_none(&server, &[canary, "second line", "welcome, Cy"]);

    // Markdown is drawn, never fetched; piped output carries no terminal codes.
    sotto(
        ada,
        &[
            "send",
            "general",
            "**bold** [docs](https://example.org) `x` ![px](http://tracker.example/p.png)",
        ],
    );
    let last =
        String::from_utf8(sotto(ada, &["history", "general", "--limit", "1"]).stdout).unwrap();
    assert!(
        last.trim_end().ends_with(
            "Ada: bold docs <https://example.org> `x` px <http://tracker.example/p.png>"
        ),
        "{last}"
    );
    assert!(!last.contains('\u{1b}'), "{last}");

    // A voice channel takes no messages, and says so.
    let refused = try_sotto(ada, &["send", "voice", "hello?"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no text channel \"#voice\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn threads_pins_mentions_and_unread_counts_on_the_command_line() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    sotto(ada, &["send", "general", "which release do we ship?"]);
    sotto(bob, &["send", "general", "--reply-to", "1", "the blue one"]);
    sotto(ada, &["send", "general", "unrelated: lunch?"]);
    sotto(ada, &["send", "general", "--reply-to", "2", "agreed, @bob"]);
    sotto(ada, &["send", "general", "@everyone ship it"]);

    // Bob has 4 unread, 2 of which call on him; reading the channel clears them.
    let channels = stdout_of(sotto(bob, &["channels"]));
    let general = channels
        .lines()
        .find(|line| line.contains("#general"))
        .unwrap_or_default();
    assert!(
        general.starts_with("  text   #general") && general.ends_with("  4 unread, 2 mention you"),
        "{channels}"
    );
    sotto(bob, &["history", "general"]);
    let channels = stdout_of(sotto(bob, &["channels"]));
    assert!(!channels.contains("unread"), "{channels}");

    // The thread of message 1 is the chain of replies, without the lunch question.
    let thread = stdout_of(sotto(bob, &["thread", "general", "1"]));
    let lines: Vec<&str> = thread.lines().collect();
    assert_eq!(
        lines[0], "Thread of message 1 in #general, 2 replies:",
        "{thread}"
    );
    assert!(
        lines[1].ends_with("Ada: which release do we ship?"),
        "{thread}"
    );
    assert!(lines[2].ends_with("Bob: (re 1) the blue one"), "{thread}");
    assert!(lines[3].ends_with("Ada: (re 2) agreed, @bob"), "{thread}");
    assert_eq!(lines.len(), 4, "{thread}");
    let found = stdout_of(sotto(bob, &["search", "in:thread", "blue"]));
    assert!(found.contains("Bob: (re 1) the blue one"), "{found}");
    let none = stdout_of(sotto(bob, &["search", "in:thread", "lunch"]));
    assert_eq!(none.trim(), "Nothing found.");
    let today = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    let during = format!("during:{}", &today[..10]);
    let found = stdout_of(sotto(bob, &["search", "blue", &during]));
    assert!(found.contains("the blue one"), "{found}");
    let none = stdout_of(sotto(bob, &["search", "blue", "before:2020-01-01"]));
    assert_eq!(none.trim(), "Nothing found.");
    let bad = try_sotto(bob, &["search", "blue", "after:someday"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("write it as 2026-11-29"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // Admins pin; a member is told why not.
    let refused = try_sotto(bob, &["pin", "general", "2"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only an admin can pin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let pinned = stdout_of(sotto(ada, &["pin", "general", "2"]));
    assert_eq!(pinned.trim(), "Pinned message 2 in #general.");
    let pins = stdout_of(sotto(bob, &["pins", "general"]));
    assert!(
        pins.trim_end().ends_with("Bob: (re 1) the blue one  📌"),
        "{pins}"
    );
    sotto(ada, &["pin", "general", "2", "--remove"]);
    let pins = stdout_of(sotto(bob, &["pins", "general"]));
    assert!(pins.starts_with("Nothing is pinned in #general."), "{pins}");
}

#[test]
fn the_owner_creates_renames_and_deletes_channels_on_the_command_line() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    let created = stdout_of(sotto(
        ada,
        &[
            "channel",
            "create",
            "design",
            "--category",
            "Work",
            "--topic",
            "mockups",
        ],
    ));
    assert_eq!(created.trim(), "Created the text channel #design.");
    let channels = stdout_of(sotto(bob, &["channels"]));
    assert!(
        channels.contains("  text   #design  (Work) — mockups"),
        "{channels}"
    );

    // Messages in the new channel are sealed and read like any other.
    sotto(bob, &["send", "design", "first sketch is up"]);
    let history = stdout_of(sotto(ada, &["history", "design"]));
    assert!(
        history.trim_end().ends_with("Bob: first sketch is up"),
        "{history}"
    );

    // Members without "manage-channels" may not change channels; the owner is told of a
    // clash.
    let refused = try_sotto(bob, &["channel", "rename", "design", "bobs-room"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("\"manage-channels\" permission"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let clash = try_sotto(ada, &["channel", "create", "General"]);
    assert!(
        String::from_utf8_lossy(&clash.stderr).contains("already has that name"),
        "{}",
        String::from_utf8_lossy(&clash.stderr)
    );
    let renamed = stdout_of(sotto(
        ada,
        &["channel", "rename", "design", "design-review"],
    ));
    assert_eq!(renamed.trim(), "Renamed #design to #design-review.");
    let history = stdout_of(sotto(bob, &["history", "design-review"]));
    assert!(
        history.contains("Bob: first sketch is up"),
        "kept its messages: {history}"
    );

    // Deleting asks for --yes when nobody can be asked, then takes the messages with it.
    let unconfirmed = try_sotto(ada, &["channel", "delete", "design-review"]);
    assert!(!unconfirmed.status.success());
    assert!(
        String::from_utf8_lossy(&unconfirmed.stderr).contains("add --yes"),
        "{}",
        String::from_utf8_lossy(&unconfirmed.stderr)
    );
    let deleted = stdout_of(sotto(ada, &["channel", "delete", "design-review", "--yes"]));
    assert_eq!(deleted.trim(), "Deleted #design-review.");
    let channels = stdout_of(sotto(bob, &["channels"]));
    assert!(!channels.contains("design"), "{channels}");
}
