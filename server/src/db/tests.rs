//! Store tests on real SQLite files.

use super::*;

fn store() -> (tempfile::TempDir, Store, u32) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.db")).unwrap();
    let server = store.ensure_default_server("Test").unwrap();
    (dir, store, server.id)
}

const NOW: u64 = 1_800_000_000;

/// Changes made by the relay itself (no member), now.
const ACTING: Acting = Acting {
    member_id: 0,
    now_unix: NOW,
};

/// Admits the key `[key; 32]` as `name` with `token`.
fn admitted(store: &Store, server: u32, token: &InviteToken, key: u8, name: &str) -> Member {
    store
        .admit(server, &[key; 32], name, Some(token), NOW)
        .unwrap()
        .unwrap()
}

/// An invite for any number of members that never expires.
fn open_invite(store: &Store, server: u32) -> InviteToken {
    let terms = InviteTerms {
        expires_at: None,
        max_uses: None,
        role: Role::Member,
    };
    store.create_invite(server, None, terms, NOW).unwrap()
}

#[test]
fn default_server_has_a_text_and_a_voice_channel_once() {
    let (_dir, store, server) = store();
    assert_eq!(
        store.ensure_default_server("Other").unwrap().id,
        server,
        "idempotent"
    );
    let channels = store.channels(server).unwrap();
    let summary: Vec<_> = channels.iter().map(|c| (c.name.as_str(), c.kind)).collect();
    assert_eq!(
        summary,
        [
            ("general", ChannelKind::Text),
            ("voice", ChannelKind::Voice)
        ]
    );
}

#[test]
fn invites_admit_new_keys_within_their_terms() {
    let (_dir, store, server) = store();
    let terms = InviteTerms {
        expires_at: Some(NOW + 60),
        max_uses: Some(1),
        role: Role::Member,
    };
    let token = store.create_invite(server, None, terms, NOW).unwrap();
    let member = store
        .admit(server, &[1; 32], "ada", Some(&token), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(member.role, Role::Member);
    assert_eq!(
        store
            .admit(server, &[2; 32], "bob", Some(&token), NOW)
            .unwrap(),
        Err(AdmissionError::UsedUp)
    );
    // Known members need no invite; their display name follows them.
    let again = store
        .admit(server, &[1; 32], "Ada L.", None, NOW + 1_000)
        .unwrap()
        .unwrap();
    assert_eq!(again.id, member.id);
    assert_eq!(store.members(server).unwrap()[0].display_name, "Ada L.");

    assert_eq!(
        store.admit(server, &[3; 32], "eve", None, NOW).unwrap(),
        Err(AdmissionError::NotAMember)
    );
    assert_eq!(
        store
            .admit(server, &[3; 32], "eve", Some(&[9; 16]), NOW)
            .unwrap(),
        Err(AdmissionError::UnknownInvite)
    );
    let open = store
        .create_invite(
            server,
            None,
            InviteTerms {
                expires_at: Some(NOW + 60),
                max_uses: None,
                role: Role::Member,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(
        store
            .admit(server, &[3; 32], "eve", Some(&open), NOW + 60)
            .unwrap(),
        Err(AdmissionError::Expired)
    );
    assert!(
        store
            .admit(server, &[3; 32], "eve", Some(&open), NOW + 59)
            .unwrap()
            .is_ok()
    );
}

#[test]
fn owner_invites_make_owners() {
    let (_dir, store, server) = store();
    let token = store
        .create_invite(
            server,
            None,
            InviteTerms {
                expires_at: None,
                max_uses: Some(1),
                role: Role::Owner,
            },
            NOW,
        )
        .unwrap();
    let owner = store
        .admit(server, &[1; 32], "root", Some(&token), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(owner.role, Role::Owner);
}

#[test]
fn state_survives_reopening_and_tokens_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let token;
    {
        let store = Store::open(&path).unwrap();
        let server = store.ensure_default_server("Keep").unwrap();
        token = store
            .create_invite(
                server.id,
                None,
                InviteTerms {
                    expires_at: None,
                    max_uses: Some(2),
                    role: Role::Member,
                },
                NOW,
            )
            .unwrap();
        store
            .admit(server.id, &[1; 32], "ada", Some(&token), NOW)
            .unwrap()
            .unwrap();
        store
            .set_setting("public_address", "example.org:7878")
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let server = store.default_server().unwrap();
    assert_eq!(server.name, "Keep");
    assert_eq!(store.members(server.id).unwrap().len(), 1);
    assert_eq!(
        store.setting("public_address").unwrap().as_deref(),
        Some("example.org:7878")
    );
    // One use left.
    assert!(
        store
            .admit(server.id, &[2; 32], "bob", Some(&token), NOW)
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        store
            .admit(server.id, &[3; 32], "eve", Some(&token), NOW)
            .unwrap(),
        Err(AdmissionError::UsedUp)
    );
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(16).any(|window| window == token),
        "raw invite token on disk"
    );
}

#[test]
fn a_newer_schema_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    drop(Store::open(&path).unwrap());
    let connection = Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::SchemaTooNew { found: 99, .. }));
    assert!(error.to_string().contains("upgrade sotto-relay"));
}

#[test]
fn an_empty_database_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.db")).unwrap();
    let error = store.default_server().unwrap_err();
    assert!(error.to_string().contains("sotto-relay init"));
}

fn new_member(store: &Store, server: u32, key: u8) -> u32 {
    let invite = store
        .create_invite(
            server,
            None,
            InviteTerms {
                expires_at: None,
                max_uses: Some(1),
                role: Role::Member,
            },
            NOW,
        )
        .unwrap();
    store
        .admit(server, &[key; 32], "someone", Some(&invite), NOW)
        .unwrap()
        .unwrap()
        .id
}

#[test]
fn a_member_holds_a_bounded_number_of_invites_and_makes_a_bounded_number_per_hour() {
    let (_dir, store, server) = store();
    let member = new_member(&store, server, 1);
    let other = new_member(&store, server, 2);
    let limits = InviteLimits {
        max_active: 3,
        per_hour: 5,
    };
    let forever = InviteTerms {
        expires_at: None,
        max_uses: None,
        role: Role::Member,
    };
    let short = InviteTerms {
        expires_at: Some(NOW + 60),
        ..forever
    };
    for _ in 0..3 {
        store
            .create_member_invite(server, member, forever, limits, None, NOW)
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        store
            .create_member_invite(server, member, forever, limits, None, NOW)
            .unwrap(),
        Err(InviteLimitError::TooManyActive(3))
    );
    // Others are not affected by one member's invites.
    let other_limits = InviteLimits {
        max_active: 1,
        per_hour: 1,
    };
    assert!(
        store
            .create_member_invite(server, other, forever, other_limits, None, NOW)
            .is_ok()
    );
    // An hour later the three permanent ones still count as active.
    let later = NOW + 3601;
    assert_eq!(
        store
            .create_member_invite(server, member, short, limits, None, later)
            .unwrap(),
        Err(InviteLimitError::TooManyActive(3))
    );

    // With room for more active ones, the hourly count applies; expired ones stop counting.
    let limits = InviteLimits {
        max_active: 100,
        per_hour: 5,
    };
    for _ in 0..5 {
        store
            .create_member_invite(server, member, short, limits, None, later)
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        store
            .create_member_invite(server, member, short, limits, None, later)
            .unwrap(),
        Err(InviteLimitError::TooManyPerHour(5))
    );
    assert!(
        store
            .create_member_invite(server, member, short, limits, None, later + 3601)
            .unwrap()
            .is_ok()
    );
}

#[test]
fn the_member_list_pages_by_id() {
    let (_dir, store, server) = store();
    let token = open_invite(&store, server);
    for index in 1..=5u8 {
        admitted(&store, server, &token, index, &format!("m{index}"));
    }
    let first = store.members_after(server, 0, 2).unwrap();
    let names: Vec<_> = first.iter().map(|m| m.display_name.as_str()).collect();
    assert_eq!(names, ["m1", "m2"]);
    let rest = store.members_after(server, first[1].id, 10).unwrap();
    let names: Vec<_> = rest.iter().map(|m| m.display_name.as_str()).collect();
    assert_eq!(names, ["m3", "m4", "m5"]);
    assert!(
        store
            .members_after(server, rest[2].id, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn single_use_key_packages_are_handed_out_once_then_the_last_resort_one_again_and_again() {
    let (_dir, store, server) = store();
    let token = open_invite(&store, server);
    let bob = admitted(&store, server, &token, 2, "bob");
    let refs = [1u8, 2, 3];
    let count = store
        .store_key_packages(
            bob.id,
            &[
                NewKeyPackage {
                    reference: &refs[0..1],
                    key_package: b"once-1",
                    last_resort: false,
                },
                NewKeyPackage {
                    reference: &refs[1..2],
                    key_package: b"once-2",
                    last_resort: false,
                },
                NewKeyPackage {
                    reference: &refs[2..3],
                    key_package: b"last",
                    last_resort: true,
                },
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(
        count,
        KeyPackageCount {
            available: 2,
            last_resort: true
        }
    );
    let claim = || store.claim_key_package(server, &[2; 32]).unwrap();
    assert_eq!(claim().as_deref(), Some(&b"once-1"[..]));
    assert_eq!(claim().as_deref(), Some(&b"once-2"[..]));
    assert_eq!(claim().as_deref(), Some(&b"last"[..]));
    assert_eq!(
        claim().as_deref(),
        Some(&b"last"[..]),
        "the last resort stays"
    );
    assert_eq!(store.key_package_count(bob.id).unwrap().available, 0);
    // Strangers have none.
    assert_eq!(store.claim_key_package(server, &[7; 32]).unwrap(), None);
    // A member's pool is capped.
    let many: Vec<[u8; 2]> = (0..150u16).map(u16::to_be_bytes).collect();
    let uploads: Vec<NewKeyPackage<'_>> = many
        .iter()
        .map(|reference| NewKeyPackage {
            reference,
            key_package: b"kp",
            last_resort: false,
        })
        .collect();
    let count = store.store_key_packages(bob.id, &uploads, NOW).unwrap();
    assert_eq!(count.available, MAX_STORED_KEY_PACKAGES);
}

#[test]
fn one_commit_per_epoch_and_only_the_winners_welcome_is_ever_handed_out() {
    let (_dir, store, server) = store();
    let token = open_invite(&store, server);
    let ada = admitted(&store, server, &token, 1, "ada");
    let group: &[u8] = b"sotto/server/1";
    assert!(store.create_group(server, group, b"state-0", NOW).unwrap());
    let (bob, cy): (PublicKey, PublicKey) = ([2; 32], [3; 32]);
    let commit = |message: &'static [u8], welcome: &'static [u8], added: &'static [PublicKey]| {
        AcceptCommit {
            group_id: group,
            epoch: 0,
            committer: ada.id,
            message,
            state: b"state-1",
            welcome: Some(welcome),
            added,
            removed: &[],
            now_unix: NOW,
        }
    };
    // Before its commit is stored, nobody gets a Welcome.
    assert_eq!(store.welcome_for(group, &bob).unwrap(), None);
    assert!(matches!(
        store
            .accept_commit(&commit(b"commit-a", b"welcome-bob", &[[2; 32]]))
            .unwrap(),
        CommitOutcome::Accepted { .. }
    ));
    // A second commit for the same epoch loses, and its Welcome is never stored.
    assert_eq!(
        store
            .accept_commit(&commit(b"commit-b", b"welcome-cy", &[[3; 32]]))
            .unwrap(),
        CommitOutcome::Conflict { current_epoch: 1 }
    );
    assert_eq!(
        store.welcome_for(group, &bob).unwrap().as_deref(),
        Some(&b"welcome-bob"[..])
    );
    assert_eq!(store.welcome_for(group, &cy).unwrap(), None);
    assert_eq!(
        store.commits_since(group, 0, 10).unwrap(),
        vec![(0, b"commit-a".to_vec())]
    );
}

#[test]
fn messages_get_gapless_seqs_reposts_are_harmless_and_pages_respect_size() {
    let (_dir, store, server) = store();
    let token = open_invite(&store, server);
    let ada = admitted(&store, server, &token, 1, "ada");
    let bob = admitted(&store, server, &token, 2, "bob");
    let general = store.channels(server).unwrap()[0].id;
    let post = |id: u8, author: u32, len: usize| {
        store
            .post_message(general, &[id; 16], author, &vec![id; len], NOW * 1000)
            .unwrap()
    };
    for id in 1..=5 {
        let PostOutcome::Stored(message) = post(id, ada.id, 100) else {
            panic!("not stored")
        };
        assert_eq!(message.seq, u64::from(id));
    }
    // Posting the same id again returns where it is; another author cannot take the id.
    let PostOutcome::AlreadyStored(again) = post(3, ada.id, 100) else {
        panic!("stored twice")
    };
    assert_eq!(again.seq, 3);
    assert_eq!(post(3, bob.id, 100), PostOutcome::IdTaken);

    let (page, more) = store.messages_after(general, 0, 2, 1 << 20).unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(more);
    let (page, more) = store.messages_after(general, 2, 10, 250).unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4],
        "a page stops before passing its byte budget"
    );
    assert!(more);
    let (page, more) = store.messages_after(general, 4, 10, 1 << 20).unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [5]);
    assert!(!more);
}

#[test]
fn a_conversation_is_a_hidden_channel_with_its_own_group_and_members() {
    let (_dir, store, server) = store();
    let token = open_invite(&store, server);
    let ada = admitted(&store, server, &token, 1, "ada");
    let bob = admitted(&store, server, &token, 2, "bob");
    let cy = admitted(&store, server, &token, 3, "cy");
    assert!(
        store
            .create_group(server, b"sotto/server/1", b"state", NOW)
            .unwrap()
    );
    let channels_before = store.channels(server).unwrap();
    let group: &[u8] = b"sotto/conversation/ab";
    let everyone = [(ada.id, [1; 32]), (bob.id, [2; 32]), (cy.id, [3; 32])];
    let opened = store
        .open_conversation(&NewConversation {
            server_id: server,
            creator: (ada.id, [1; 32]),
            members: &everyone,
            group_id: group,
            state: b"conversation-state",
            now_unix: NOW,
        })
        .unwrap()
        .unwrap();
    assert_eq!(opened.members, everyone);
    // Not listed with the channels, nor can the owner rename or delete it as one.
    assert_eq!(store.channels(server).unwrap(), channels_before);
    assert_eq!(
        store
            .update_channel(server, opened.id, "x", "", "", 0, ACTING)
            .unwrap(),
        Err(ChannelRefusal::NoSuchChannel)
    );
    assert!(!store.delete_channel(server, opened.id, ACTING).unwrap());
    // Its id is never handed to a channel; the same group id cannot open another.
    let next = store
        .add_channel(server, "later", ChannelKind::Text, "", "", ACTING)
        .unwrap()
        .unwrap();
    assert!(next > opened.id);
    let again = NewConversation {
        server_id: server,
        creator: (bob.id, [2; 32]),
        members: &everyone[1..],
        group_id: group,
        state: b"s",
        now_unix: NOW,
    };
    assert_eq!(
        store.open_conversation(&again).unwrap(),
        Err(ConversationRefusal::GroupIdTaken)
    );
    // Messages go to it like to a channel.
    assert!(matches!(
        store
            .post_message(opened.id, &[9; 16], bob.id, b"sealed", NOW * 1000)
            .unwrap(),
        PostOutcome::Stored(_)
    ));
    // A removal from its group takes the member out of the conversation, not the server.
    let outcome = store
        .accept_commit(&AcceptCommit {
            group_id: group,
            epoch: 0,
            committer: ada.id,
            message: b"commit",
            state: b"state-1",
            welcome: None,
            added: &[],
            removed: &[[3; 32]],
            now_unix: NOW,
        })
        .unwrap();
    assert_eq!(
        outcome,
        CommitOutcome::Accepted {
            removed_members: vec![cy.id],
            conversation: Some(opened.id),
        }
    );
    assert_eq!(
        store.members(server).unwrap().len(),
        3,
        "cy is still a member"
    );
    let listed = store.conversations(server).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].members, everyone[..2]);
    assert_eq!(listed[0].creator, (ada.id, [1; 32]));
    // The server's own group is untouched, and still one of a kind.
    assert_eq!(store.group(b"sotto/server/1").unwrap().unwrap().epoch, 0);
    // Out of the server (its group's commit), out of every conversation in the same step.
    let outcome = store
        .accept_commit(&AcceptCommit {
            group_id: b"sotto/server/1",
            epoch: 0,
            committer: ada.id,
            message: b"kick bob",
            state: b"state-1",
            welcome: None,
            added: &[],
            removed: &[[2; 32]],
            now_unix: NOW,
        })
        .unwrap();
    assert_eq!(
        outcome,
        CommitOutcome::Accepted {
            removed_members: vec![bob.id],
            conversation: None,
        }
    );
    assert_eq!(
        store.conversations(server).unwrap()[0].members,
        everyone[..1]
    );
    assert!(
        !store
            .create_group(server, b"sotto/server/other", b"state", NOW)
            .unwrap()
    );
}

#[test]
fn upgrading_to_conversations_keeps_the_servers_group_and_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    {
        let mut connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "foreign_keys", true)
            .unwrap();
        migrations::apply_up_to(&mut connection, 7).unwrap();
        connection
            .execute_batch(
                "INSERT INTO servers (id, name) VALUES (1, 'Old');
                 INSERT INTO members (id, public_key, display_name, joined_at)
                     VALUES (1, zeroblob(32), 'ada', 0);
                 INSERT INTO mls_groups (group_id, server_id, epoch, state, created_at)
                     VALUES (x'01', 1, 1, x'aa', 0);
                 INSERT INTO mls_commits (group_id, epoch, committer, message, accepted_at)
                     VALUES (x'01', 0, 1, x'bb', 0);
                 INSERT INTO mls_welcomes (group_id, member_key, epoch, message)
                     VALUES (x'01', zeroblob(32), 1, x'cc');",
            )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let group = store.group(&[1]).unwrap().unwrap();
    assert_eq!(
        (group.server_id, group.epoch, group.state),
        (1, 1, vec![0xaa])
    );
    assert_eq!(store.commits_since(&[1], 0, 10).unwrap(), [(0, vec![0xbb])]);
    assert_eq!(store.welcome_for(&[1], &[0; 32]).unwrap(), Some(vec![0xcc]));
    // The foreign keys still hold: removing the server takes its group's rows with it.
    store
        .with(|connection| {
            connection.execute("DELETE FROM servers WHERE id = 1", [])?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.commits_since(&[1], 0, 10).unwrap(), []);
}
