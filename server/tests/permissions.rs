//! The permission matrix through a real relay: every built-in role and a custom one, against
//! every action the relay can check (the seed's workspace, channel and message tables, and the
//! moderation actions). What only clients can check (task tags, edits after five minutes) is
//! tested on the clients' side, in `app/core/tests/role_rules.rs`.

mod common;

use std::time::Duration;

use common::*;
use sotto_net::client::{Client, ClientError};
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::{ChannelChange, ChannelKind, ErrorCode};
use sotto_net::roles::{ChannelOverride, Moderation, Permissions, RoleBook, RoleChange};

/// The roles under test, by the name of the member who holds just that role.
const ROLES: [&str; 5] = ["owner", "admin", "moderator", "lead", "member"];

/// A relay, its owner, a member holding each role, and a private channel for moderators.
struct Matrix {
    relay: TestRelay,
    members: Vec<(&'static str, TestClient)>,
    general: u32,
    staff: u32,
}

/// The client's role book, once it has one that `ready` accepts.
async fn book_of(client: &Client, ready: impl Fn(&RoleBook) -> bool) -> RoleBook {
    let mut changes = client.roles_changes();
    let book = tokio::time::timeout(
        DEADLINE,
        changes.wait_for(|book| book.as_deref().is_some_and(&ready)),
    )
    .await
    .expect("the relay sends its role book")
    .unwrap()
    .clone();
    (*book.unwrap()).clone()
}

async fn member_id(client: &Client, name: &str) -> u32 {
    client
        .list_members()
        .await
        .unwrap()
        .into_iter()
        .find(|member| member.display_name == name)
        .unwrap_or_else(|| panic!("{name} is a member"))
        .member_id
}

/// Asks for a new text channel called `name`.
async fn create_channel(client: &Client, name: String) -> Result<u32, ClientError> {
    client
        .manage_channel(ChannelChange::Create {
            name,
            kind: ChannelKind::Text,
            category: String::new(),
            topic: String::new(),
        })
        .await
}

impl Matrix {
    async fn new() -> Self {
        let relay = start_relay().await;
        let owner = connect(&relay.owner_link, "owner").await;
        let general = text_channel(&owner);
        let book = book_of(&owner.client, |_| true).await;
        let role = |name: &str| book.role_named(name).unwrap().id;
        owner
            .client
            .manage_roles(RoleChange::Create {
                name: "lead".into(),
                permissions: Permissions::CREATE_CHANNELS,
            })
            .await
            .unwrap();
        let staff = create_channel(&owner.client, "staff".into()).await.unwrap();
        for (role_id, allow, deny) in [
            (role("member"), Permissions::NONE, Permissions::VIEW_CHANNEL),
            (
                role("moderator"),
                Permissions::VIEW_CHANNEL,
                Permissions::NONE,
            ),
        ] {
            owner
                .client
                .manage_roles(RoleChange::Override(ChannelOverride {
                    channel_id: staff,
                    role_id,
                    allow,
                    deny,
                }))
                .await
                .unwrap();
        }
        let lead = book_of(&owner.client, |book| book.role_named("lead").is_some()).await;
        let mut members = vec![("owner", owner)];
        for name in ["admin", "moderator", "lead", "member"] {
            let client = connect(&relay.member_link(None, None), name).await;
            if name != "member" {
                let id = member_id(&members[0].1.client, name).await;
                let role_id = lead.role_named(name).map_or_else(|| role(name), |r| r.id);
                members[0]
                    .1
                    .client
                    .manage_roles(RoleChange::Assign {
                        role_id,
                        member_id: id,
                    })
                    .await
                    .unwrap();
            }
            members.push((name, client));
        }
        Self {
            relay,
            members,
            general,
            staff,
        }
    }

    fn client(&self, role: &str) -> &Client {
        &self
            .members
            .iter()
            .find(|(name, _)| *name == role)
            .unwrap()
            .1
            .client
    }

    /// A new plain member to act on.
    async fn target(&self, name: &str) -> (TestClient, u32) {
        let client = connect(&self.relay.member_link(None, None), name).await;
        let id = member_id(self.client("owner"), name).await;
        (client, id)
    }
}

/// Whether the relay let it happen; a refusal must be `Forbidden` (or, for a channel one may
/// not view, `NoSuchChannel`).
fn allowed<T: std::fmt::Debug>(what: &str, role: &str, result: Result<T, ClientError>) -> bool {
    match result {
        Ok(_) => true,
        Err(ClientError::Refused {
            code: ErrorCode::Forbidden | ErrorCode::NoSuchChannel,
            message,
        }) => {
            assert!(!message.is_empty(), "{role} / {what}: a refusal says why");
            false
        }
        Err(other) => panic!("{role} / {what}: unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_do_exactly_what_the_tables_say_and_the_relay_refuses_the_rest() {
    let matrix = Matrix::new().await;
    let owner = matrix.client("owner");
    let mut seen: Vec<(&str, Vec<bool>)> = Vec::new();
    for (index, role) in ROLES.iter().enumerate() {
        let client = matrix.client(role);
        let n = u32::try_from(index).unwrap();
        let mut row = Vec::new();
        // Workspace: create channels, make invites.
        let created = create_channel(client, format!("by-{role}")).await;
        row.push(allowed("create a channel", role, created));
        row.push(allowed(
            "make an invite",
            role,
            client.create_invite(None, Some(1), None).await,
        ));
        // Channel: send, view the private one, manage (slow mode, delete).
        let posted = client
            .post_message(matrix.general, [n as u8 + 1; 16], vec![1; 64])
            .await;
        row.push(allowed("send in #general", role, posted));
        row.push(allowed(
            "read the private #staff",
            role,
            client.read_channel(matrix.staff, 0, 10).await,
        ));
        row.push(allowed(
            "set slow mode",
            role,
            client
                .manage_roles(RoleChange::SlowMode {
                    channel_id: matrix.general,
                    seconds: 0,
                })
                .await,
        ));
        let doomed = create_channel(owner, format!("doomed-{role}"))
            .await
            .unwrap();
        row.push(allowed(
            "delete a channel",
            role,
            client
                .manage_channel(ChannelChange::Delete { channel_id: doomed })
                .await,
        ));
        // Message: delete someone else's (the owner's), by posting its retraction.
        let theirs = owner
            .post_message(matrix.general, [100 + n as u8; 16], vec![2; 64])
            .await
            .unwrap();
        row.push(allowed(
            "delete another member's message",
            role,
            client
                .post_message_with(
                    matrix.general,
                    [200 + n as u8; 16],
                    vec![3; 64],
                    Vec::new(),
                    Some(theirs.seq),
                )
                .await,
        ));
        // Server: roles and the audit log.
        row.push(allowed(
            "create a role",
            role,
            client
                .manage_roles(RoleChange::Create {
                    name: format!("made-by-{role}"),
                    permissions: Permissions::NONE,
                })
                .await,
        ));
        row.push(allowed(
            "read the audit log",
            role,
            client.read_audit(0, 10).await,
        ));
        // Moderation, each on a fresh plain member.
        for (what, moderation) in [
            (
                "time out",
                Moderation::Timeout {
                    member_id: 0,
                    seconds: 60,
                    reason: String::new(),
                },
            ),
            (
                "mute in voice",
                Moderation::Mute {
                    member_id: 0,
                    muted: true,
                    deafened: false,
                },
            ),
            (
                "kick",
                Moderation::Kick {
                    member_id: 0,
                    reason: String::new(),
                },
            ),
            (
                "ban",
                Moderation::Ban {
                    member_id: 0,
                    reason: String::new(),
                },
            ),
        ] {
            let (_target, id) = matrix.target(&format!("{role}-{what}")).await;
            let moderation = match moderation {
                Moderation::Timeout {
                    seconds, reason, ..
                } => Moderation::Timeout {
                    member_id: id,
                    seconds,
                    reason,
                },
                Moderation::Mute {
                    muted, deafened, ..
                } => Moderation::Mute {
                    member_id: id,
                    muted,
                    deafened,
                },
                Moderation::Kick { reason, .. } => Moderation::Kick {
                    member_id: id,
                    reason,
                },
                Moderation::Ban { reason, .. } => Moderation::Ban {
                    member_id: id,
                    reason,
                },
                other => other,
            };
            row.push(allowed(what, role, client.moderate(moderation).await));
        }
        seen.push((role, row));
    }
    let yes = true;
    let no = false;
    // Columns: create channel, invite, send, view private, slow mode, delete channel, delete
    // others' message, create role, audit, timeout, mute, kick, ban.
    let expected: Vec<(&str, Vec<bool>)> = vec![
        (
            "owner",
            vec![
                yes, yes, yes, yes, yes, yes, yes, yes, yes, yes, yes, yes, yes,
            ],
        ),
        (
            "admin",
            vec![
                yes, yes, yes, yes, yes, yes, yes, yes, yes, yes, yes, yes, yes,
            ],
        ),
        (
            "moderator",
            vec![no, yes, yes, yes, no, no, yes, no, yes, yes, yes, no, no],
        ),
        (
            "lead",
            vec![yes, yes, yes, no, no, no, no, no, no, no, no, no, no],
        ),
        (
            "member",
            vec![no, yes, yes, no, no, no, no, no, no, no, no, no, no],
        ),
    ];
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_moderates_upwards_and_the_owner_is_out_of_reach() {
    let matrix = Matrix::new().await;
    let owner_id = member_id(matrix.client("owner"), "owner").await;
    let admin_id = member_id(matrix.client("owner"), "admin").await;
    for (actor, target) in [
        ("moderator", admin_id),
        ("admin", owner_id),
        ("moderator", owner_id),
    ] {
        let refused = matrix
            .client(actor)
            .moderate(Moderation::Timeout {
                member_id: target,
                seconds: 60,
                reason: String::new(),
            })
            .await;
        assert!(
            !allowed("time out a higher rank", actor, refused),
            "{actor}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_member_cannot_return_and_a_timed_out_one_waits_until_it_ends() {
    let matrix = Matrix::new().await;
    let moderator = matrix.client("moderator");
    let owner = matrix.client("owner");

    // A timeout: refused to send with code 23 until it ends, then sends again. (The relay's
    // clock is real here; the store's tests move time instead.)
    let (target, id) = matrix.target("dan").await;
    moderator
        .moderate(Moderation::Timeout {
            member_id: id,
            seconds: 1,
            reason: "cool down".into(),
        })
        .await
        .unwrap();
    let refused = target
        .client
        .post_message(matrix.general, [7; 16], vec![1; 32])
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Refused {
                code: ErrorCode::TimedOut,
                ..
            }
        ),
        "{refused}"
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match target
            .client
            .post_message(matrix.general, [7; 16], vec![1; 32])
            .await
        {
            Ok(_) => break,
            Err(ClientError::Refused {
                code: ErrorCode::TimedOut,
                ..
            }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("the timeout should end: {other}"),
        }
    }

    // A ban: the connection closes, and a new invite does not bring the key back.
    let identity = target.identity.clone();
    owner
        .moderate(Moderation::Ban {
            member_id: id,
            reason: "spam".into(),
        })
        .await
        .unwrap();
    let link = matrix.relay.member_link(None, None);
    let (client, mut events) = Client::start(options(&link, identity, "dan again")).unwrap();
    let stopped = tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Some(sotto_net::client::ClientEvent::Stopped(error)) => return error.to_string(),
                Some(_) => {}
                None => return String::new(),
            }
        }
    })
    .await
    .expect("the banned client stops");
    assert!(stopped.contains("banned"), "{stopped}");
    drop(client);
    let audit = owner.read_audit(0, 10).await.unwrap().0;
    assert!(audit.iter().any(|entry| entry.detail == "spam"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_muted_member_is_not_heard_and_a_deafened_one_hears_nobody() {
    let relay = start_relay().await;
    let (mut ada, mut bob) = two_in_a_call(&relay).await;
    let bob_id = member_id(&ada.client, "bob").await;
    let mute = |muted: bool, deafened: bool| Moderation::Mute {
        member_id: bob_id,
        muted,
        deafened,
    };
    // Muted: what Bob says goes nowhere (the relay drops it); Ada still reaches Bob.
    ada.client.moderate(mute(true, false)).await.unwrap();
    for _ in 0..5 {
        bob.client
            .send_media(StreamKind::Voice, b"muted words")
            .unwrap();
    }
    assert!(ada.drain_media(Duration::from_millis(300)).await.is_empty());
    ada.client.send_media(StreamKind::Voice, b"hi bob").unwrap();
    assert_eq!(&bob.next_media().await.payload[..], b"hi bob");
    // Deafened too: Bob hears nobody.
    ada.client.moderate(mute(true, true)).await.unwrap();
    ada.client
        .send_media(StreamKind::Voice, b"unheard")
        .unwrap();
    assert!(bob.drain_media(Duration::from_millis(300)).await.is_empty());
    // Lifted: both ways again.
    ada.client.moderate(mute(false, false)).await.unwrap();
    bob.client.send_media(StreamKind::Voice, b"back").unwrap();
    assert_eq!(&ada.next_media().await.payload[..], b"back");
    ada.client
        .send_media(StreamKind::Voice, b"welcome")
        .unwrap();
    assert_eq!(&bob.next_media().await.payload[..], b"welcome");
    // The voice channel turns private (members may not view it): Bob, still seated, hears
    // nothing more.
    let book = book_of(&ada.client, |_| true).await;
    ada.client
        .manage_roles(RoleChange::Override(ChannelOverride {
            channel_id: ada.voice_channel(),
            role_id: book.role_named("member").unwrap().id,
            allow: Permissions::NONE,
            deny: Permissions::VIEW_CHANNEL,
        }))
        .await
        .unwrap();
    ada.client
        .send_media(StreamKind::Voice, b"private")
        .unwrap();
    assert!(bob.drain_media(Duration::from_millis(300)).await.is_empty());
}
