//! Tasks from chat on the command line: tags in messages make and move tasks, each message says
//! what its tags did, and every member's device derives the same board, also one that was
//! offline while 200 tag messages went by.

mod common;

use common::*;

#[test]
fn tags_in_chat_run_a_board_every_member_derives_alike() {
    let server = Server::start(&["Ada", "Bob", "Cy"]);
    let (ada, bob, cy) = (&server.members[0], &server.members[1], &server.members[2]);
    sotto_with_input(
        ada,
        &["send", "general"],
        "#task Write the docs\n#assignee @bob\n#priority Urgent\n",
    );
    sotto(
        bob,
        &["send", "general", "--reply-to", "1", "#status In Progress"],
    );
    sotto_with_input(
        cy,
        &["send", "general"],
        "#bug Crash on start\n#severity Critical\n",
    );
    sotto(cy, &["send", "general", "--reply-to", "3", "#status Done"]);
    sotto(cy, &["send", "general", "please #status Done"]);

    let history = stdout_of(sotto(ada, &["history", "general"]));
    for expected in [
        "      ✅ Created task 1: Write the docs",
        "      ✅ Assignee: @bob",
        "      ❌ Invalid priority. Available: High, Medium, Low",
        "      ✅ Status: In Progress",
        "      ✅ Created bug 3: Crash on start",
        "      ✅ Severity: Critical",
        "      ❌ Invalid status. Available: New, Investigating, Fixed, Verified",
    ] {
        assert!(
            history.contains(&format!("{expected}\n")),
            "{expected}:\n{history}"
        );
    }
    assert_eq!(
        history.matches('✅').count() + history.matches('❌').count(),
        7,
        "a tag inside a sentence is text: {history}"
    );

    let tasks = stdout_of(sotto(bob, &["tasks", "general", "--status", "in progress"]));
    assert_eq!(tasks.lines().count(), 1, "{tasks}");
    assert!(tasks.contains("Write the docs  @bob"), "{tasks}");
    let bugs = stdout_of(sotto(bob, &["tasks", "general", "--type", "bug"]));
    assert!(bugs.contains("New") && bugs.contains("Critical"), "{bugs}");

    // Cy is away while Ada sends 200 tag messages (100 tasks, each moved on by a reply).
    let mut script = String::new();
    for index in 0..100 {
        let seq = 6 + 2 * index;
        script.push_str(&format!("#task Chore {index}\n/reply {seq} #status Done\n"));
    }
    let sent = sotto_with_input(ada, &["chat", "general", "--json"], &script);
    assert!(sent.status.success());
    let boards: Vec<String> = [ada, bob, cy]
        .iter()
        .map(|member| stdout_of(sotto(member, &["tasks", "general"])))
        .collect();
    assert_eq!(boards[0].lines().count(), 102, "{}", boards[0]);
    assert_eq!(
        boards[0].matches(" Done ").count(),
        100,
        "every chore moved: {}",
        boards[0]
    );
    assert_eq!(boards[0], boards[1]);
    assert_eq!(boards[0], boards[2], "Cy, back, derives the same board");

    let board = stdout_of(sotto(cy, &["board", "general"]));
    println!("{board}");
    assert!(board.starts_with("Tasks in #general\n"), "{board}");
    assert!(
        board.contains("To Do (0)") && board.contains("Done (100)"),
        "{board}"
    );
    assert!(board.contains("Bugs in #general"), "{board}");
}
