//! Roles and moderation on the command line, through a real relay: an owner makes roles and
//! channel rules, a moderator times someone out, slow mode holds members back, a banned member
//! stays out, and every action is in the audit log.

mod common;

use common::*;

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn owners_and_moderators_run_a_server_and_every_action_is_audited() {
    let server = Server::start(&["Olga", "Ann", "Dan", "Cy"]);
    let (olga, ann, dan, cy) = (
        &server.members[0],
        &server.members[1],
        &server.members[2],
        &server.members[3],
    );

    // Roles: a custom one, a built-in one handed out; members may not touch them.
    let created = stdout_of(sotto(
        olga,
        &[
            "role",
            "create",
            "qa",
            "--permissions",
            "tags,manage-messages",
        ],
    ));
    assert!(
        created.contains("Created the role `qa`, granting tags, manage-messages."),
        "{created}"
    );
    let given = stdout_of(sotto(olga, &["role", "assign", "moderator", "Ann"]));
    assert!(given.contains("now holds the role `moderator`"), "{given}");
    let refused = try_sotto(dan, &["role", "create", "mine"]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("\"roles\" permission"),
        "{}",
        stderr_of(&refused)
    );
    let roles = stdout_of(sotto(dan, &["roles"]));
    println!("{roles}");
    for expected in [
        "  admin (built-in)\n      grants: everything (administrator)\n      held by: nobody yet\n",
        "  moderator (built-in)\n",
        "      held by: Ann (",
        "  qa\n      grants: tags, manage-messages\n",
        "  member (built-in)\n      grants: view, send, tags, speak, invite\n      held by: everyone\n",
        "  The owner, Olga (",
    ] {
        assert!(roles.contains(expected), "{expected:?} in:\n{roles}");
    }

    // A channel rule: members may not apply task tags in #general (the owner is above rules).
    sotto(
        olga,
        &[
            "channel",
            "permissions",
            "general",
            "member",
            "--deny",
            "tags",
        ],
    );
    sotto(dan, &["send", "general", "#task Rewrite everything"]);
    sotto(olga, &["send", "general", "#task Review the rules"]);
    let tasks = stdout_of(sotto(olga, &["tasks", "general"]));
    assert!(
        tasks.contains("Review the rules") && !tasks.contains("Rewrite"),
        "{tasks}"
    );
    let history = stdout_of(sotto(cy, &["history", "general"]));
    assert!(
        history.contains("❌ You may not apply tags in this channel; ask an admin"),
        "{history}"
    );
    let rules = stdout_of(sotto(olga, &["channel", "permissions", "general"]));
    println!("{rules}");
    assert!(
        rules.contains("  member       view, send, speak\n"),
        "{rules}"
    );

    // A moderator's timeout: Dan cannot send until it is lifted.
    let timed_out = stdout_of(sotto(
        ann,
        &["timeout", "Dan", "10m", "--reason", "cool down"],
    ));
    assert!(
        timed_out.contains("cannot send or speak for 10m"),
        "{timed_out}"
    );
    let refused = try_sotto(dan, &["send", "general", "let me talk"]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("you are timed out for 10 min"),
        "{}",
        stderr_of(&refused)
    );
    sotto(ann, &["timeout", "Dan", "off"]);
    sotto(dan, &["send", "general", "thanks"]);

    // Slow mode: one message an hour for members; moderators are exempt.
    sotto(olga, &["channel", "slowmode", "general", "1h"]);
    sotto(dan, &["send", "general", "one"]);
    let refused = try_sotto(dan, &["send", "general", "two"]);
    assert!(
        stderr_of(&refused).contains("slow mode"),
        "{}",
        stderr_of(&refused)
    );
    sotto(ann, &["send", "general", "one"]);
    sotto(ann, &["send", "general", "two"]);
    sotto(olga, &["channel", "slowmode", "general", "off"]);

    // A ban: Cy is out, and stays out.
    let banned = stdout_of(sotto(olga, &["ban", "Cy", "--reason", "spam"]));
    assert!(banned.contains("Banned Cy ("), "{banned}");
    assert!(banned.contains("out of the encryption group"), "{banned}");
    let refused = try_sotto(cy, &["send", "general", "I'm back"]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("banned"),
        "{}",
        stderr_of(&refused)
    );

    // The audit log, readable by the moderator, not by a member.
    let audit = stdout_of(sotto(ann, &["audit"]));
    println!("{audit}");
    for expected in [
        "Olga: role created qa — tags, manage-messages",
        "Olga: role given Ann — moderator",
        "Olga: channel permissions #general for member — allow: none; deny: tags",
        "Ann: timeout Dan — 10 min: cool down",
        "Ann: timeout Dan — lifted",
        "Olga: slow mode #general — 3600 s between messages",
        "Olga: ban Cy (key ",
    ] {
        assert!(audit.contains(expected), "{expected:?} in:\n{audit}");
    }
    let refused = try_sotto(dan, &["audit"]);
    assert!(
        stderr_of(&refused).contains("\"audit\" permission"),
        "{}",
        stderr_of(&refused)
    );

    // Blocking is private: Ann no longer sees Dan's words; Olga still does.
    let blocked = stdout_of(sotto(ann, &["block", "Dan"]));
    assert!(blocked.contains("Blocked Dan ("), "{blocked}");
    sotto(dan, &["send", "general", "can anyone hear me"]);
    let seen_by_ann = stdout_of(sotto(ann, &["history", "general"]));
    assert!(!seen_by_ann.contains("can anyone hear me"), "{seen_by_ann}");
    assert!(
        seen_by_ann.contains("(a message from someone you blocked)"),
        "{seen_by_ann}"
    );
    assert!(stdout_of(sotto(olga, &["history", "general"])).contains("can anyone hear me"));
    assert!(stdout_of(sotto(ann, &["blocked"])).contains("  Dan ("));
    sotto(ann, &["unblock", "Dan"]);
    assert!(stdout_of(sotto(ann, &["history", "general"])).contains("can anyone hear me"));

    // An admin by role who is not an admin of the encryption group kicks Dan: the relay ends
    // his membership at once, and the group's admin removes his keys when next online.
    sotto(olga, &["role", "assign", "admin", "Ann"]);
    let kicked = stdout_of(sotto(ann, &["kick", "Dan", "--reason", "done here"]));
    assert!(kicked.contains("Removed Dan ("), "{kicked}");
    assert!(kicked.contains("until one of its admins"), "{kicked}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let members = stdout_of(sotto(olga, &["members"]));
        if !members.contains("Dan") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Dan's keys are still in the group:\n{members}"
        );
    }
}
