//! A channel's history shared with members who join later, when an admin switches it on: the
//! keys travel inside the channel's encryption, the newcomer reads what was said before, and a
//! channel that does not share keeps it sealed.

mod common;

use common::*;

#[test]
fn a_newcomer_reads_a_sharing_channels_past_and_nothing_of_the_others() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    sotto(ada, &["channel", "create", "plans"]);
    let canary = "canary-history-9c2e before Cy";
    sotto(ada, &["send", "general", canary]);
    sotto(bob, &["send", "plans", "plans stay sealed to newcomers"]);
    sotto(bob, &["react", "general", "1", "👍"]);

    // Only an admin switches it.
    let refused = try_sotto(bob, &["channel", "history", "general", "on"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("only an admin can change"), "{why}");
    let said = stdout_of(sotto(ada, &["channel", "history", "general", "on"]));
    assert!(said.starts_with("#general shares its history"), "{said}");

    // Cy joins; the next member to open #general hands him its past keys.
    let cy = server.dir.path().join("cy");
    let invite = stdout_of(sotto(ada, &["invite"]));
    join(&cy, invite.trim(), "Cy");
    let_in(ada);
    let sealed = stdout_of(sotto(&cy, &["history", "general"]));
    assert!(sealed.contains("sent before you joined"), "{sealed}");
    let opened = sotto(bob, &["history", "general"]);
    let notice = String::from_utf8_lossy(&opened.stderr);
    assert!(
        notice.contains("Shared the history of #general with 1 member(s)"),
        "{notice}"
    );
    let history = stdout_of(sotto(&cy, &["history", "general"]));
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].ends_with(&format!("Ada: {canary}")), "{history}");
    assert_eq!(
        lines[1].trim(),
        "👍 1",
        "reactions come back too: {history}"
    );
    let found = stdout_of(sotto(&cy, &["search", "canary-history"]));
    assert!(found.starts_with("#general  "), "{found}");
    // Nobody shares twice.
    let again = sotto(ada, &["history", "general"]);
    assert!(String::from_utf8_lossy(&again.stderr).is_empty());

    // #plans does not share: its past stays sealed to Cy.
    let plans = stdout_of(sotto(&cy, &["history", "plans"]));
    assert!(plans.contains("sent before you joined"), "{plans}");
    assert!(!plans.contains("plans stay sealed"), "{plans}");

    assert_relay_holds_none(&server, &[canary, "plans stay sealed"]);
}
