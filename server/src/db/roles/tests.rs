//! Roles, moderation and the audit log on a real SQLite file, with time passed in.

use sotto_net::proto::control::{ErrorCode, InviteToken};
use sotto_net::roles::{AuditAction, ChannelOverride, Moderation, Permissions, RoleChange};

use crate::db::{AdmissionError, InviteTerms, Member, PostExtras, PostOutcome, Role, Store};

const NOW: u64 = 1_800_000_000;

struct Server {
    _dir: tempfile::TempDir,
    store: Store,
    id: u32,
    invite: InviteToken,
    owner: Member,
    ann: Member,
    dan: Member,
}

/// A server with its owner Olga and two members, Ann and Dan.
fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.db")).unwrap();
    let id = store.ensure_default_server("Test").unwrap().id;
    let terms = |role| InviteTerms {
        expires_at: None,
        max_uses: None,
        role,
    };
    let owner_invite = store
        .create_invite(id, None, terms(Role::Owner), NOW)
        .unwrap();
    let invite = store
        .create_invite(id, None, terms(Role::Member), NOW)
        .unwrap();
    let admit = |key: u8, name: &str, token: &InviteToken| {
        store
            .admit(id, &[key; 32], name, Some(token), NOW)
            .unwrap()
            .unwrap()
    };
    let owner = admit(1, "Olga", &owner_invite);
    let ann = admit(2, "Ann", &invite);
    let dan = admit(3, "Dan", &invite);
    Server {
        _dir: dir,
        store,
        id,
        invite,
        owner,
        ann,
        dan,
    }
}

impl Server {
    fn change(
        &self,
        actor: &Member,
        change: RoleChange,
    ) -> Result<sotto_net::roles::RoleBook, super::Refused> {
        self.store
            .change_roles(self.id, actor.id, &change, NOW)
            .unwrap()
    }

    fn moderate(
        &self,
        actor: &Member,
        moderation: Moderation,
        now: u64,
    ) -> Result<super::super::Moderated, super::Refused> {
        self.store
            .moderate(self.id, actor.id, &moderation, now)
            .unwrap()
    }

    fn role_id(&self, name: &str) -> u32 {
        self.store
            .role_book(self.id, NOW)
            .unwrap()
            .role_named(name)
            .unwrap()
            .id
    }

    fn audit(&self) -> Vec<(AuditAction, String, String, String)> {
        let (entries, _) = self.store.audit_log(self.id, 0, 100).unwrap();
        entries
            .into_iter()
            .rev()
            .map(|entry| (entry.action, entry.actor_name, entry.target, entry.detail))
            .collect()
    }
}

#[test]
fn a_new_server_has_the_built_in_roles_and_its_owner() {
    let server = server();
    let book = server.store.role_book(server.id, NOW).unwrap();
    assert_eq!(book.owner, server.owner.id);
    let roles: Vec<_> = book
        .roles
        .iter()
        .map(|role| (role.name.as_str(), role.permissions, role.builtin))
        .collect();
    assert_eq!(
        roles,
        [
            ("admin", Permissions::ADMIN_DEFAULT, true),
            ("moderator", Permissions::MODERATOR_DEFAULT, true),
            ("member", Permissions::MEMBER_DEFAULT, true),
        ]
    );
    // Opening the store again seeds nothing twice.
    drop(book);
    let path = server._dir.path().join("relay.db");
    let again = Store::open(&path).unwrap();
    assert_eq!(again.role_book(server.id, NOW).unwrap().roles.len(), 3);
}

#[test]
fn roles_are_created_assigned_and_checked_by_rank_and_every_change_is_audited() {
    let server = server();
    let qa = server
        .change(
            &server.owner,
            RoleChange::Create {
                name: "qa".into(),
                permissions: Permissions::APPLY_TAGS.union(Permissions::MANAGE_MESSAGES),
            },
        )
        .unwrap();
    let qa_role = qa.role_named("qa").unwrap().clone();
    assert!(!qa_role.builtin);
    assert!(qa_role.position > 0 && qa_role.position < 100);
    // Ann is made admin; she hands out qa to Dan but cannot make him admin, nor touch Olga.
    let admin = server.role_id("admin");
    server
        .change(
            &server.owner,
            RoleChange::Assign {
                role_id: admin,
                member_id: server.ann.id,
            },
        )
        .unwrap();
    let book = server
        .change(
            &server.ann,
            RoleChange::Assign {
                role_id: qa_role.id,
                member_id: server.dan.id,
            },
        )
        .unwrap();
    assert!(book.may_in(server.dan.id, 1, Permissions::MANAGE_MESSAGES));
    let refused = server
        .change(
            &server.ann,
            RoleChange::Assign {
                role_id: admin,
                member_id: server.dan.id,
            },
        )
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert!(
        refused.reason.contains("ranks as high as you"),
        "{}",
        refused.reason
    );
    // Dan may not manage roles at all.
    let refused = server
        .change(
            &server.dan,
            RoleChange::Create {
                name: "mine".into(),
                permissions: Permissions::NONE,
            },
        )
        .unwrap_err();
    assert!(
        refused.reason.contains("\"roles\" permission"),
        "{}",
        refused.reason
    );
    // Names are unique; built-in roles keep theirs and stay.
    let refused = server
        .change(
            &server.owner,
            RoleChange::Create {
                name: "qa".into(),
                permissions: Permissions::NONE,
            },
        )
        .unwrap_err();
    assert!(
        refused.reason.contains("already a role named"),
        "{}",
        refused.reason
    );
    let moderator = server.role_id("moderator");
    assert!(
        server
            .change(&server.owner, RoleChange::Delete { role_id: moderator })
            .is_err()
    );
    // Deleting qa takes it from Dan.
    let book = server
        .change(
            &server.owner,
            RoleChange::Delete {
                role_id: qa_role.id,
            },
        )
        .unwrap();
    assert!(book.roles_of(server.dan.id).is_empty());
    assert_eq!(
        server.audit(),
        [
            (
                AuditAction::RoleCreated,
                "Olga".into(),
                "qa".into(),
                "tags, manage-messages".into()
            ),
            (
                AuditAction::RoleAssigned,
                "Olga".into(),
                "Ann".into(),
                "admin".into()
            ),
            (
                AuditAction::RoleAssigned,
                "Ann".into(),
                "Dan".into(),
                "qa".into()
            ),
            (
                AuditAction::RoleDeleted,
                "Olga".into(),
                "qa".into(),
                String::new()
            ),
        ]
    );
}

#[test]
fn private_channels_and_slow_mode_are_set_by_channel_managers() {
    let server = server();
    let general = server.store.channels(server.id).unwrap()[0].id;
    let member = server.role_id("member");
    let hide = RoleChange::Override(ChannelOverride {
        channel_id: general,
        role_id: member,
        allow: Permissions::NONE,
        deny: Permissions::VIEW_CHANNEL,
    });
    assert!(server.change(&server.dan, hide.clone()).is_err());
    let book = server.change(&server.owner, hide).unwrap();
    assert!(book.is_private(general));
    assert!(!book.may_in(server.dan.id, general, Permissions::VIEW_CHANNEL));
    let book = server
        .change(
            &server.owner,
            RoleChange::SlowMode {
                channel_id: general,
                seconds: 30,
            },
        )
        .unwrap();
    assert_eq!(book.slow_mode(general), 30);
    // The relay stores the slow mode interval per author, with time passed in.
    let post = |seq: u8, now_ms: u64| {
        server
            .store
            .post_message_with(
                general,
                &[seq; 16],
                server.dan.id,
                b"sealed",
                PostExtras {
                    slow_mode_secs: 30,
                    ..PostExtras::default()
                },
                now_ms,
            )
            .unwrap()
    };
    assert!(matches!(post(1, NOW * 1000), PostOutcome::Stored(_)));
    assert_eq!(
        post(2, NOW * 1000 + 10_500),
        PostOutcome::SlowMode { wait_secs: 20 }
    );
    assert!(matches!(
        post(3, NOW * 1000 + 30_000),
        PostOutcome::Stored(_)
    ));
    let audit = server.audit();
    assert_eq!(audit[0].0, AuditAction::ChannelPermissions);
    assert_eq!(audit[0].2, "#general for member");
    assert_eq!(audit[0].3, "allow: none; deny: view");
    assert_eq!(audit[1].3, "30 s between messages");
}

#[test]
fn a_banned_key_cannot_come_back_with_a_new_invite_until_unbanned() {
    let server = server();
    // A moderator may not ban; the owner may.
    let moderator = server.role_id("moderator");
    server
        .change(
            &server.owner,
            RoleChange::Assign {
                role_id: moderator,
                member_id: server.ann.id,
            },
        )
        .unwrap();
    let ban = Moderation::Ban {
        member_id: server.dan.id,
        reason: "spam".into(),
    };
    assert!(
        server
            .moderate(&server.ann, ban.clone(), NOW)
            .unwrap_err()
            .reason
            .contains("\"ban\"")
    );
    let done = server.moderate(&server.owner, ban, NOW).unwrap();
    assert_eq!(done.public_key, [3; 32]);
    assert_eq!(done.removed, Some(server.dan.id));
    assert!(!server.store.is_member(server.id, server.dan.id).unwrap());
    let fresh = server
        .store
        .create_invite(
            server.id,
            None,
            InviteTerms {
                expires_at: None,
                max_uses: None,
                role: Role::Member,
            },
            NOW,
        )
        .unwrap();
    for token in [&server.invite, &fresh] {
        assert_eq!(
            server
                .store
                .admit(server.id, &[3; 32], "Dan", Some(token), NOW)
                .unwrap(),
            Err(AdmissionError::Banned)
        );
    }
    server
        .moderate(
            &server.owner,
            Moderation::Unban {
                public_key: [3; 32],
            },
            NOW,
        )
        .unwrap();
    assert!(
        server
            .store
            .admit(server.id, &[3; 32], "Dan", Some(&fresh), NOW)
            .unwrap()
            .is_ok()
    );
    let audit = server.audit();
    let tail: Vec<_> = audit[1..]
        .iter()
        .map(|(a, by, who, why)| (*a, by.as_str(), who.as_str(), why.as_str()))
        .collect();
    // The whole key, which `sotto unban` takes.
    let dan = format!("Dan (key {})", sotto_net::invite::encode_b64(&[3; 32]));
    assert_eq!(
        tail,
        [
            (AuditAction::Ban, "Olga", dan.as_str(), "spam"),
            (AuditAction::Unban, "Olga", dan.as_str(), "")
        ]
    );
}

#[test]
fn a_timeout_ends_at_its_time_and_nobody_moderates_upwards() {
    let server = server();
    let moderator = server.role_id("moderator");
    server
        .change(
            &server.owner,
            RoleChange::Assign {
                role_id: moderator,
                member_id: server.ann.id,
            },
        )
        .unwrap();
    let timeout = |member_id| Moderation::Timeout {
        member_id,
        seconds: 600,
        reason: "cool down".into(),
    };
    let done = server
        .moderate(&server.ann, timeout(server.dan.id), NOW)
        .unwrap();
    assert_eq!(
        done.book.timed_out_until(server.dan.id, NOW),
        Some(NOW + 600)
    );
    assert_eq!(
        server
            .store
            .role_book(server.id, NOW + 599)
            .unwrap()
            .timed_out_until(server.dan.id, NOW + 599),
        Some(NOW + 600)
    );
    assert_eq!(
        server
            .store
            .role_book(server.id, NOW + 600)
            .unwrap()
            .timeouts,
        []
    );
    // Not the owner, not herself, not upwards; and not a kick (moderators may not).
    assert!(
        server
            .moderate(&server.ann, timeout(server.owner.id), NOW)
            .is_err()
    );
    assert!(
        server
            .moderate(&server.ann, timeout(server.ann.id), NOW)
            .is_err()
    );
    let kick = Moderation::Kick {
        member_id: server.dan.id,
        reason: String::new(),
    };
    assert!(
        server
            .moderate(&server.ann, kick.clone(), NOW)
            .unwrap_err()
            .reason
            .contains("\"kick\"")
    );
    assert!(
        server
            .moderate(&server.dan, timeout(server.ann.id), NOW)
            .is_err()
    );
    // A kicked member may come back with an invite, with no role left over.
    server.moderate(&server.owner, kick, NOW).unwrap();
    assert!(
        server
            .store
            .admit(server.id, &[3; 32], "Dan", Some(&server.invite), NOW)
            .unwrap()
            .is_ok()
    );
    assert_eq!(server.audit().last().unwrap().0, AuditAction::Kick);
}

#[test]
fn only_a_member_who_may_kick_commits_someone_elses_removal_from_the_server_group() {
    let server = server();
    let group = b"server-group";
    server
        .store
        .create_group(server.id, group, b"state", NOW)
        .unwrap();
    let may_remove = |committer: &Member, removed: u8| {
        server
            .store
            .may_remove_from_server_group(server.id, group, 0, committer.id, &[removed; 32], NOW)
            .unwrap()
    };
    assert!(may_remove(&server.ann, 3).unwrap_err().contains("\"kick\""));
    assert_eq!(may_remove(&server.owner, 3), Ok(()));
    // Someone no longer on the server may be removed by anyone.
    assert_eq!(may_remove(&server.ann, 9), Ok(()));
}

#[test]
fn nobody_hands_out_through_a_role_or_a_channel_rule_what_they_do_not_hold() {
    let server = server();
    let create = |name: &str, permissions| {
        server
            .change(
                &server.owner,
                RoleChange::Create {
                    name: name.into(),
                    permissions,
                },
            )
            .unwrap();
        server.role_id(name)
    };
    // "ops" can ban; "helper" (ranked above it) may manage roles, and channels, only.
    let ops = create("ops", Permissions::BAN_MEMBERS);
    let helper = create(
        "helper",
        Permissions::MANAGE_ROLES.union(Permissions::MANAGE_CHANNELS),
    );
    server
        .change(
            &server.owner,
            RoleChange::Assign {
                role_id: helper,
                member_id: server.dan.id,
            },
        )
        .unwrap();
    let refused = server
        .change(
            &server.dan,
            RoleChange::Assign {
                role_id: ops,
                member_id: server.dan.id,
            },
        )
        .unwrap_err();
    assert!(
        refused.reason.contains("cannot grant the \"ban\""),
        "{}",
        refused.reason
    );

    // A private channel: Dan manages channels but cannot see #general once it is private,
    // so he cannot open it up again; nor lift a deny of what he does not hold.
    let general = server.store.channels(server.id).unwrap()[0].id;
    let member = server.role_id("member");
    let rule = |allow, deny| {
        RoleChange::Override(ChannelOverride {
            channel_id: general,
            role_id: member,
            allow,
            deny,
        })
    };
    server
        .change(
            &server.owner,
            rule(Permissions::NONE, Permissions::VIEW_CHANNEL),
        )
        .unwrap();
    let refused = server
        .change(&server.dan, rule(Permissions::NONE, Permissions::NONE))
        .unwrap_err();
    assert!(
        refused.reason.contains("manage-channels"),
        "{}",
        refused.reason
    );
    server
        .change(
            &server.owner,
            rule(Permissions::NONE, Permissions::MANAGE_MESSAGES),
        )
        .unwrap();
    let refused = server
        .change(&server.dan, rule(Permissions::NONE, Permissions::NONE))
        .unwrap_err();
    assert!(
        refused
            .reason
            .contains("cannot grant the \"manage-messages\""),
        "{}",
        refused.reason
    );
}

#[test]
fn a_kicked_members_invites_no_longer_admit_anyone() {
    let server = server();
    let terms = InviteTerms {
        expires_at: None,
        max_uses: None,
        role: Role::Member,
    };
    let limits = crate::db::InviteLimits {
        max_active: 5,
        per_hour: 5,
    };
    let stocked = server
        .store
        .create_member_invite(server.id, server.dan.id, terms, limits, None, NOW)
        .unwrap()
        .unwrap();
    server
        .moderate(
            &server.owner,
            Moderation::Kick {
                member_id: server.dan.id,
                reason: String::new(),
            },
            NOW,
        )
        .unwrap();
    for key in [3, 9] {
        assert_eq!(
            server
                .store
                .admit(server.id, &[key; 32], "someone", Some(&stocked), NOW)
                .unwrap(),
            Err(AdmissionError::UsedUp)
        );
    }
    // No longer a member, Dan can still be banned by key: then no invite brings him back.
    let ban_key = Moderation::BanKey {
        public_key: [3; 32],
        reason: "returns as trouble".into(),
    };
    assert!(server.moderate(&server.ann, ban_key.clone(), NOW).is_err());
    server.moderate(&server.owner, ban_key, NOW).unwrap();
    assert_eq!(
        server
            .store
            .admit(server.id, &[3; 32], "Dan", Some(&server.invite), NOW)
            .unwrap(),
        Err(AdmissionError::Banned)
    );
}
