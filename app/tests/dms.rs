//! Conversations on the command line, end to end: `sotto dm` starts one (its own MLS group),
//! `@name` names it wherever a channel goes, only its members see it, and the relay's files
//! hold none of its words.

mod common;

use common::*;

#[test]
fn direct_messages_reach_only_their_members_and_the_relay_reads_nothing() {
    let server = Server::start(&["Ada", "Bob", "Cy"]);
    let (ada, bob, cy) = (&server.members[0], &server.members[1], &server.members[2]);
    let canary = "canary-dm-7f31 for Bob only";

    let said = stdout_of(sotto(ada, &["dm", "bob", canary]));
    assert_eq!(said.trim(), "Sent to @Bob (message 1).");
    let said = stdout_of(sotto(bob, &["send", "@ada", "got it"]));
    assert_eq!(
        said.trim(),
        "Sent to @Ada (message 2).",
        "the same conversation"
    );

    let history = stdout_of(sotto(bob, &["history", "@Ada"]));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(lines[0].ends_with(&format!("Ada: {canary}")), "{history}");
    assert!(lines[1].ends_with("Bob: got it"), "{history}");

    // A group conversation is another conversation, with its own group.
    let said = stdout_of(sotto(ada, &["dm", "bob,cy", "welcome, both"]));
    assert_eq!(said.trim(), "Sent to @Bob, Cy (message 1).");
    sotto(cy, &["react", "@ada,bob", "1", "👋"]);
    let listed = stdout_of(sotto(bob, &["dms"]));
    assert!(listed.contains("  @Ada\n"), "{listed}");
    assert!(
        listed.contains("  @Ada, Cy  1 unread"),
        "a reaction is not a message: {listed}"
    );

    // Cy is in one of them only: his listing, history and search never show the other.
    let listed = stdout_of(sotto(cy, &["dms"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("@Ada, Bob"), "{listed}");
    let found = stdout_of(sotto(cy, &["search", "canary"]));
    assert_eq!(found.trim(), "Nothing found.");
    let found = stdout_of(sotto(bob, &["search", "canary"]));
    assert!(found.starts_with("@Ada  "), "{found}");
    let history = stdout_of(sotto(cy, &["history", "@Ada,Bob"]));
    assert!(history.contains("Ada: welcome, both"), "{history}");
    assert!(history.contains("👋 1"), "{history}");

    // Read receipts: off unless switched on, per person and conversation.
    let history = stdout_of(sotto(ada, &["history", "@bob"]));
    assert!(!history.contains('✓'), "no receipts yet: {history}");
    let said = stdout_of(sotto(bob, &["receipts", "@ada", "on"]));
    assert!(said.starts_with("Read receipts in @Ada are on"), "{said}");
    let history = stdout_of(sotto(ada, &["history", "@bob"]));
    assert!(history.ends_with("      ✓ Seen by Bob\n"), "{history}");
    sotto(ada, &["dm", "bob", "one more"]);
    let history = stdout_of(sotto(ada, &["history", "@bob"]));
    assert!(
        history.ends_with("      ✓ Bob has read up to message 1\n"),
        "{history}"
    );
    sotto(bob, &["history", "@ada"]);
    let history = stdout_of(sotto(ada, &["history", "@bob"]));
    assert!(history.ends_with("      ✓ Seen by Bob\n"), "{history}");
    sotto(bob, &["receipts", "@ada", "off"]);
    sotto(ada, &["dm", "bob", "and another"]);
    sotto(bob, &["history", "@ada"]);
    let history = stdout_of(sotto(ada, &["history", "@bob"]));
    assert!(
        history.contains("Bob has read up to message") && !history.contains("Seen by"),
        "switched off, Bob sends no more: {history}"
    );
    // Ada never switched hers on: Bob sees nothing of her reading.
    let said = stdout_of(sotto(bob, &["receipts", "@ada"]));
    assert!(said.starts_with("Read receipts in @Ada are off"), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");

    // Live, as a bot would use it: a line typed is sent to the conversation.
    let live = sotto_with_input(bob, &["dm", "ada", "--json"], "typed live\n");
    assert!(live.status.success());
    let events = String::from_utf8(live.stdout).unwrap();
    assert!(
        events.contains(r#""channel":"@Ada","event":"ready""#)
            || events.contains(r#""event":"ready","channel":"@Ada""#),
        "{events}"
    );
    let history = stdout_of(sotto(ada, &["history", "@bob"]));
    assert!(history.contains("Bob: typed live"), "{history}");

    // In a conversation its opener is the admin: Ada pins, Bob cannot.
    let refused = try_sotto(bob, &["pin", "@ada", "1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only an admin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    sotto(ada, &["pin", "@bob", "1"]);
    let pins = stdout_of(sotto(bob, &["pins", "@ada"]));
    assert!(pins.contains(canary), "{pins}");

    // Naming yourself or nobody is explained.
    let refused = try_sotto(ada, &["dm", "ada", "hi"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("`ada` is you"), "{why}");
    let refused = try_sotto(ada, &["dm", "nobody-here", "hi"]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("no member is called `nobody-here`"), "{why}");

    assert_relay_holds_none(&server, &[canary, "welcome, both", "got it"]);
}
