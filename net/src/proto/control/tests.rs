use proptest::prelude::*;

use super::*;

pub(crate) fn every_frame() -> Vec<ControlFrame> {
    vec![
        ControlFrame::Hello {
            public_key: [1; 32],
            display_name: "Zoë".into(),
            invite: Some([2; 16]),
        },
        ControlFrame::Hello {
            public_key: [1; 32],
            display_name: String::new(),
            invite: None,
        },
        ControlFrame::Challenge { nonce: [3; 32] },
        ControlFrame::Authenticate { signature: [4; 64] },
        ControlFrame::Welcome {
            member_id: 7,
            server: ServerInfo {
                id: 1,
                name: "Guild".into(),
            },
            channels: vec![
                ChannelInfo {
                    id: 1,
                    name: "general".into(),
                    kind: ChannelKind::Text,
                    position: 0,
                    category: String::new(),
                    topic: "say hi".into(),
                },
                ChannelInfo {
                    id: 2,
                    name: "voice".into(),
                    kind: ChannelKind::Voice,
                    position: 1,
                    category: "Talk".into(),
                    topic: String::new(),
                },
            ],
        },
        ControlFrame::ManageChannel(ChannelChange::Create {
            name: "design".into(),
            kind: ChannelKind::Text,
            category: "Work".into(),
            topic: "mockups".into(),
        }),
        ControlFrame::ManageChannel(ChannelChange::Update {
            channel_id: 4,
            name: "design-review".into(),
            category: String::new(),
            topic: String::new(),
            position: 2,
        }),
        ControlFrame::ManageChannel(ChannelChange::Delete { channel_id: 4 }),
        ControlFrame::ChannelManaged { channel_id: 4 },
        ControlFrame::ChannelsChanged {
            channels: vec![ChannelInfo {
                id: 4,
                name: "design".into(),
                kind: ChannelKind::Text,
                position: 0,
                category: "Work".into(),
                topic: "mockups".into(),
            }],
        },
        ControlFrame::OpenConversation {
            group_id: b"sotto/conversation/0123".to_vec(),
            members: vec![[6; 32], [7; 32]],
            group_info: vec![8; 40],
        },
        ControlFrame::ListConversations,
        ControlFrame::Conversations {
            conversations: vec![ConversationInfo {
                id: 9,
                group_id: b"sotto/conversation/0123".to_vec(),
                creator: [5; 32],
                members: vec![[5; 32], [6; 32], [7; 32]],
            }],
            complete: true,
        },
        ControlFrame::Conversations {
            conversations: Vec::new(),
            complete: false,
        },
        ControlFrame::ReadRoles,
        ControlFrame::RolesManaged,
        ControlFrame::Roles(Box::new(crate::roles::RoleBook {
            owner: 1,
            roles: vec![crate::roles::Role {
                id: 3,
                name: "release captain".into(),
                permissions: crate::roles::Permissions::MODERATOR_DEFAULT,
                position: 4,
                builtin: false,
            }],
            assignments: vec![(2, 3)],
            overrides: vec![crate::roles::ChannelOverride {
                channel_id: 9,
                role_id: 3,
                allow: crate::roles::Permissions::VIEW_CHANNEL,
                deny: crate::roles::Permissions::SEND_MESSAGES,
            }],
            slow_modes: vec![(9, 30)],
            timeouts: vec![(2, 1_800_000_000)],
            muted: vec![2],
            deafened: vec![2, 5],
        })),
        ControlFrame::Roles(Box::default()),
        ControlFrame::ManageRoles(crate::roles::RoleChange::Create {
            name: "qa".into(),
            permissions: crate::roles::Permissions::APPLY_TAGS,
        }),
        ControlFrame::ManageRoles(crate::roles::RoleChange::Update {
            role_id: 4,
            name: "qa team".into(),
            permissions: crate::roles::Permissions::NONE,
        }),
        ControlFrame::ManageRoles(crate::roles::RoleChange::Delete { role_id: 4 }),
        ControlFrame::ManageRoles(crate::roles::RoleChange::Assign {
            role_id: 4,
            member_id: 8,
        }),
        ControlFrame::ManageRoles(crate::roles::RoleChange::Revoke {
            role_id: 4,
            member_id: 8,
        }),
        ControlFrame::ManageRoles(crate::roles::RoleChange::Override(
            crate::roles::ChannelOverride {
                channel_id: 1,
                role_id: 1,
                allow: crate::roles::Permissions::NONE,
                deny: crate::roles::Permissions::VIEW_CHANNEL,
            },
        )),
        ControlFrame::ManageRoles(crate::roles::RoleChange::SlowMode {
            channel_id: 1,
            seconds: 10,
        }),
        ControlFrame::Moderate(crate::roles::Moderation::Kick {
            member_id: 5,
            reason: "spam".into(),
        }),
        ControlFrame::Moderate(crate::roles::Moderation::Ban {
            member_id: 5,
            reason: String::new(),
        }),
        ControlFrame::Moderate(crate::roles::Moderation::Unban {
            public_key: [4; 32],
        }),
        ControlFrame::Moderate(crate::roles::Moderation::BanKey {
            public_key: [4; 32],
            reason: "came back as a sock puppet".into(),
        }),
        ControlFrame::Moderate(crate::roles::Moderation::Timeout {
            member_id: 5,
            seconds: 600,
            reason: "cool down".into(),
        }),
        ControlFrame::Moderate(crate::roles::Moderation::Mute {
            member_id: 5,
            muted: true,
            deafened: false,
        }),
        ControlFrame::Moderated {
            public_key: [4; 32],
        },
        ControlFrame::ReadAudit {
            before: 0,
            limit: 50,
        },
        ControlFrame::AuditLog {
            entries: vec![crate::roles::AuditEntry {
                id: 12,
                at: 1_800_000_000,
                actor: 1,
                actor_name: "Olga".into(),
                action: crate::roles::AuditAction::Ban,
                target: "Dan".into(),
                detail: "spam".into(),
            }],
            more: true,
        },
        ControlFrame::JoinVoice {
            channel_id: 2,
            session_salt: [5; 16],
        },
        ControlFrame::VoiceJoined {
            channel_id: 2,
            slot: 9,
        },
        ControlFrame::LeaveVoice,
        ControlFrame::Roster {
            channel_id: 2,
            participants: vec![Participant {
                slot: 9,
                member_id: 7,
                public_key: [6; 32],
                display_name: "ada".into(),
                session_salt: [8; 16],
            }],
        },
        ControlFrame::RosterChanged {
            channel_id: 2,
            joined: vec![Participant {
                slot: 4,
                member_id: 11,
                public_key: [3; 32],
                display_name: "bob".into(),
                session_salt: [2; 16],
            }],
            left: vec![1, 65_535],
        },
        ControlFrame::CreateInvite {
            expires_in_secs: Some(3600),
            max_uses: None,
            grant: None,
        },
        ControlFrame::CreateInvite {
            expires_in_secs: None,
            max_uses: Some(1),
            grant: Some(vec![7; 170]),
        },
        ControlFrame::GroupSync {
            group_id: b"sotto/server/1".to_vec(),
            epoch: Some(12),
        },
        ControlFrame::GroupSync {
            group_id: b"g".to_vec(),
            epoch: None,
        },
        ControlFrame::GroupStatus {
            group_id: b"g".to_vec(),
            epoch: Some(3),
            grant: Some(vec![1, 2, 3]),
        },
        ControlFrame::GroupCreate {
            group_id: b"g".to_vec(),
            group_info: vec![4; 300],
        },
        ControlFrame::GroupCommit {
            group_id: b"g".to_vec(),
            epoch: 3,
            commit: vec![5; 900],
            welcome: Some(vec![6; 2000]),
        },
        ControlFrame::CommitAccepted {
            group_id: b"g".to_vec(),
            epoch: 3,
        },
        ControlFrame::GroupRefused {
            group_id: b"g".to_vec(),
            epoch: 3,
            current_epoch: 4,
            reason: "another commit won epoch 3".into(),
        },
        ControlFrame::GroupMessage {
            group_id: b"g".to_vec(),
            epoch: 3,
            message: vec![7; 40],
        },
        ControlFrame::GroupProposal {
            group_id: b"g".to_vec(),
            proposal: vec![8; 40],
        },
        ControlFrame::GroupWelcome {
            group_id: b"g".to_vec(),
            welcome: vec![9; 40],
        },
        ControlFrame::JoinGroup {
            group_id: b"g".to_vec(),
            request: vec![10; 40],
        },
        ControlFrame::JoinRequested {
            group_id: b"g".to_vec(),
            request: vec![11; 40],
        },
        ControlFrame::JoinPending {
            group_id: b"g".to_vec(),
            members_online: 0,
        },
        ControlFrame::UploadKeyPackages {
            key_packages: vec![vec![14; 300], vec![15; 301]],
            last_resort: Some(vec![16; 302]),
        },
        ControlFrame::UploadKeyPackages {
            key_packages: Vec::new(),
            last_resort: None,
        },
        ControlFrame::KeyPackagesStored {
            available: 9,
            last_resort: true,
        },
        ControlFrame::ClaimKeyPackage { member: [17; 32] },
        ControlFrame::KeyPackageClaimed {
            member: [17; 32],
            key_package: Some(vec![18; 303]),
        },
        ControlFrame::KeyPackageClaimed {
            member: [17; 32],
            key_package: None,
        },
        ControlFrame::PostMessage {
            channel_id: 1,
            message_id: [19; 16],
            envelope: vec![20; 500],
            files: vec![],
            retracts: None,
        },
        ControlFrame::PostMessage {
            channel_id: 1,
            message_id: [21; 16],
            envelope: vec![22; 300],
            files: vec![[23; 16], [24; 16]],
            retracts: Some(7),
        },
        ControlFrame::SetPresence {
            presence: Presence::DoNotDisturb,
            status: "in a meeting".into(),
        },
        ControlFrame::PresenceUpdate {
            members: vec![
                MemberPresence {
                    member_id: 3,
                    presence: Presence::Idle,
                    status: String::new(),
                },
                MemberPresence {
                    member_id: 4,
                    presence: Presence::Offline,
                    status: "back monday".into(),
                },
            ],
        },
        ControlFrame::Typing { channel_id: 2 },
        ControlFrame::MemberTyping {
            channel_id: 2,
            member_id: 9,
        },
        ControlFrame::MessagePosted {
            channel_id: 1,
            message_id: [19; 16],
            seq: 42,
            posted_at: 1_800_000_000_123,
        },
        ControlFrame::PostRefused {
            channel_id: 2,
            message_id: [19; 16],
            code: ErrorCode::NotATextChannel,
            reason: "that is a voice channel".into(),
        },
        ControlFrame::ReadChannel {
            channel_id: 1,
            after: 40,
            limit: 100,
        },
        ControlFrame::ChannelMessages {
            channel_id: 1,
            messages: vec![StoredMessage {
                channel_id: 1,
                seq: 41,
                message_id: [21; 16],
                author: 3,
                posted_at: 1_800_000_000_000,
                envelope: vec![22; 300],
            }],
            more: false,
        },
        ControlFrame::NewMessage(StoredMessage {
            channel_id: 1,
            seq: 43,
            message_id: [23; 16],
            author: 4,
            posted_at: 1_800_000_000_999,
            envelope: vec![24; 10],
        }),
        ControlFrame::ListMembers { after: 0 },
        ControlFrame::ListMembers { after: 41 },
        ControlFrame::MemberList {
            members: vec![
                ListedMember {
                    member_id: 1,
                    public_key: [12; 32],
                    display_name: "Ada".into(),
                    is_owner: true,
                    online: false,
                },
                ListedMember {
                    member_id: 7,
                    public_key: [13; 32],
                    display_name: "Bob ❤".into(),
                    is_owner: false,
                    online: true,
                },
            ],
            more: true,
        },
        ControlFrame::MemberList {
            members: Vec::new(),
            more: false,
        },
        ControlFrame::InviteCreated {
            token: [9; 16],
            expires_at: Some(1_800_000_000),
            max_uses: Some(3),
        },
        ControlFrame::Error {
            code: ErrorCode::InviteUsedUp,
            message: "no uses left".into(),
        },
        ControlFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        },
        ControlFrame::Error {
            code: ErrorCode::Unknown(999),
            message: String::new(),
        },
        ControlFrame::Error {
            code: ErrorCode::Banned,
            message: "banned".into(),
        },
    ]
}

#[test]
fn every_frame_round_trips() {
    for frame in every_frame() {
        let bytes = frame.to_bytes().unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(
            decoder.poll_frame().unwrap(),
            Some(frame.clone()),
            "{}",
            frame.name()
        );
        assert_eq!(decoder.poll_frame().unwrap(), None);
        assert_eq!(decoder.buffered(), 0);
    }
}

#[test]
fn frames_split_anywhere_reassemble() {
    let mut stream = Vec::new();
    for frame in every_frame() {
        frame.encode(&mut stream).unwrap();
    }
    for chunk in [1, 2, 3, 7, 64, 1000] {
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.poll_frame().unwrap() {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, every_frame(), "chunk size {chunk}");
    }
}

#[test]
fn every_truncation_is_rejected_not_panicking() {
    for frame in every_frame() {
        let bytes = frame.to_bytes().unwrap();
        let body = &bytes[LENGTH_PREFIX_LEN..];
        for cut in 0..body.len() {
            assert!(
                ControlFrame::decode(&body[..cut]).is_err(),
                "{} cut at {cut}",
                frame.name()
            );
        }
    }
}

#[test]
fn oversized_length_prefix_is_rejected_before_buffering() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&(MAX_GROUP_FRAME_LEN as u32 + 1).to_be_bytes());
    assert_eq!(
        decoder.poll_frame(),
        Err(DecodeError::FrameTooLong {
            len: MAX_GROUP_FRAME_LEN + 1,
            max: MAX_GROUP_FRAME_LEN
        })
    );
    // Longer than an ordinary frame: refused once the kind byte shows it is one.
    let mut decoder = FrameDecoder::new();
    decoder.push(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
    assert_eq!(decoder.poll_frame(), Ok(None));
    decoder.push(&[PROTOCOL_VERSION, 0x01]);
    assert_eq!(
        decoder.poll_frame(),
        Err(DecodeError::FrameTooLong {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
}

#[test]
fn unknown_version_kind_and_trailing_bytes_are_rejected() {
    assert_eq!(
        ControlFrame::decode(&[2, 0x07]),
        Err(DecodeError::UnsupportedVersion(2))
    );
    assert_eq!(
        ControlFrame::decode(&[1, 0x7f]),
        Err(DecodeError::UnknownKind(0x7f))
    );
    assert_eq!(
        ControlFrame::decode(&[1, 0x07, 0]),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    assert_eq!(
        ControlFrame::decode(&[]),
        Err(DecodeError::Truncated { field: "version" })
    );
}

#[test]
fn invalid_field_values_are_rejected() {
    // Hello with a name that is not UTF-8.
    let mut body = vec![1, 0x01];
    body.extend_from_slice(&[0; 32]);
    body.extend_from_slice(&[0, 2, 0xff, 0xfe, 0]);
    assert_eq!(
        ControlFrame::decode(&body),
        Err(DecodeError::InvalidUtf8 {
            field: "display name"
        })
    );
    // Hello with a control character in the name.
    let mut body = vec![1, 0x01];
    body.extend_from_slice(&[0; 32]);
    body.extend_from_slice(&[0, 1, b'\n', 0]);
    assert_eq!(
        ControlFrame::decode(&body),
        Err(DecodeError::InvalidValue {
            field: "display name"
        })
    );
    // Hello with a bad presence byte.
    let mut body = vec![1, 0x01];
    body.extend_from_slice(&[0; 32]);
    body.extend_from_slice(&[0, 0, 2]);
    assert_eq!(
        ControlFrame::decode(&body),
        Err(DecodeError::InvalidValue { field: "invite" })
    );
    // Hello with an over-long name.
    let mut body = vec![1, 0x01];
    body.extend_from_slice(&[0; 32]);
    body.extend_from_slice(&[0x01, 0x00]);
    assert_eq!(
        ControlFrame::decode(&body),
        Err(DecodeError::FieldTooLong {
            field: "display name",
            len: 256,
            max: MAX_NAME_LEN
        })
    );
}

#[test]
fn encoding_refuses_what_decoding_would_reject() {
    let long = ControlFrame::Hello {
        public_key: [0; 32],
        display_name: "x".repeat(MAX_NAME_LEN + 1),
        invite: None,
    };
    assert!(matches!(
        long.to_bytes(),
        Err(EncodeError::FieldTooLong { .. })
    ));
    let control = ControlFrame::Error {
        code: ErrorCode::Internal,
        message: "a\u{7}b".into(),
    };
    assert_eq!(
        control.to_bytes(),
        Err(EncodeError::InvalidText { field: "message" })
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ControlFrame::decode(&bytes);
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.poll_frame() {}
    }

    #[test]
    fn mutated_frames_never_panic_and_reencode_identically(
        index in 0usize..13, position in any::<prop::sample::Index>(), value in any::<u8>()
    ) {
        let mut bytes = every_frame()[index].to_bytes().unwrap();
        let at = position.index(bytes.len() - LENGTH_PREFIX_LEN) + LENGTH_PREFIX_LEN;
        bytes[at] = value;
        if let Ok(frame) = ControlFrame::decode(&bytes[LENGTH_PREFIX_LEN..]) {
            prop_assert_eq!(frame.to_bytes().unwrap(), bytes);
        }
    }
}

#[test]
fn group_frames_may_be_larger_than_other_frames_but_not_unbounded() {
    // A Welcome for a group of a thousand members is some 360 kB.
    let big = ControlFrame::GroupWelcome {
        group_id: b"g".to_vec(),
        welcome: vec![1; 400_000],
    };
    let bytes = big.to_bytes().unwrap();
    let mut decoder = FrameDecoder::new();
    // The decoder waits for the kind byte before judging a long length prefix.
    decoder.push(&bytes[..5]);
    assert_eq!(decoder.poll_frame().unwrap(), None);
    decoder.push(&bytes[5..]);
    assert_eq!(decoder.poll_frame().unwrap(), Some(big));

    let too_big = ControlFrame::GroupWelcome {
        group_id: b"g".to_vec(),
        welcome: vec![1; MAX_GROUP_FRAME_LEN],
    };
    assert!(too_big.to_bytes().is_err());

    // The same length on an ordinary frame kind is refused as soon as its kind is known.
    let mut forged = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    forged.extend_from_slice(&[PROTOCOL_VERSION, 0x09]);
    let mut decoder = FrameDecoder::new();
    decoder.push(&forged);
    assert!(matches!(
        decoder.poll_frame(),
        Err(DecodeError::FrameTooLong { .. })
    ));
    let mut forged = ((MAX_GROUP_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    forged.extend_from_slice(&[PROTOCOL_VERSION, 0x18]);
    let mut decoder = FrameDecoder::new();
    decoder.push(&forged);
    assert!(matches!(
        decoder.poll_frame(),
        Err(DecodeError::FrameTooLong { .. })
    ));
}

#[test]
fn empty_group_ids_are_refused_both_ways() {
    let frame = ControlFrame::GroupSync {
        group_id: Vec::new(),
        epoch: None,
    };
    assert_eq!(
        frame.to_bytes(),
        Err(EncodeError::Empty { field: "group id" })
    );
    let mut bytes = vec![0, 0, 0, 7, PROTOCOL_VERSION, 0x10, 0, 0, 0, 0, 0];
    bytes[3] = (bytes.len() - 4) as u8;
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    assert_eq!(
        decoder.poll_frame(),
        Err(DecodeError::InvalidValue { field: "group id" })
    );
}

#[test]
fn member_flags_other_than_owner_and_online_are_refused() {
    let frame = ControlFrame::MemberList {
        members: vec![ListedMember {
            member_id: 1,
            public_key: [1; 32],
            display_name: "A".into(),
            is_owner: false,
            online: false,
        }],
        more: false,
    };
    let mut bytes = frame.to_bytes().unwrap();
    // The flags byte sits before the trailing `more` byte.
    let flags = bytes.len() - 2;
    bytes[flags] = 0x04;
    assert_eq!(
        ControlFrame::decode(&bytes[4..]),
        Err(DecodeError::InvalidValue {
            field: "member flags"
        })
    );
    let more = bytes.len() - 1;
    bytes[flags] = 0x03;
    bytes[more] = 2;
    assert_eq!(
        ControlFrame::decode(&bytes[4..]),
        Err(DecodeError::InvalidValue { field: "more" })
    );
}
