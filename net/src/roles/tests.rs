use super::*;

const OWNER: u32 = 1;
const ADMIN: u32 = 2;
const MODERATOR: u32 = 3;
const MEMBER: u32 = 4;
const HELPER: u32 = 5;
const GENERAL: u32 = 10;
const STAFF: u32 = 11;

fn role(id: u32, name: &str, permissions: Permissions, position: u16, builtin: bool) -> Role {
    Role {
        id,
        name: name.into(),
        permissions,
        position,
        builtin,
    }
}

fn book() -> RoleBook {
    RoleBook {
        owner: OWNER,
        roles: vec![
            role(1, "member", Permissions::MEMBER_DEFAULT, 0, true),
            role(2, "moderator", Permissions::MODERATOR_DEFAULT, 100, true),
            role(3, "admin", Permissions::ADMIN_DEFAULT, 200, true),
            role(4, "helper", Permissions::MANAGE_MESSAGES, 1, false),
        ],
        assignments: vec![(ADMIN, 3), (MODERATOR, 2), (HELPER, 4)],
        overrides: vec![
            // #staff is private: only moderators see it.
            ChannelOverride {
                channel_id: STAFF,
                role_id: 1,
                allow: Permissions::NONE,
                deny: Permissions::VIEW_CHANNEL,
            },
            ChannelOverride {
                channel_id: STAFF,
                role_id: 2,
                allow: Permissions::VIEW_CHANNEL,
                deny: Permissions::NONE,
            },
            // Helpers may not tag in #general.
            ChannelOverride {
                channel_id: GENERAL,
                role_id: 4,
                allow: Permissions::NONE,
                deny: Permissions::APPLY_TAGS,
            },
        ],
        slow_modes: vec![(GENERAL, 30)],
        timeouts: vec![(MEMBER, 1_000)],
        muted: Vec::new(),
        deafened: Vec::new(),
    }
}

#[test]
fn the_seed_defaults_give_each_built_in_role_its_powers() {
    let book = book();
    for (member, may_kick, may_delete_others, may_tag) in [
        (OWNER, true, true, true),
        (ADMIN, true, true, true),
        (MODERATOR, false, true, true),
        (MEMBER, false, false, true),
    ] {
        assert_eq!(
            book.may(member, Permissions::KICK_MEMBERS),
            may_kick,
            "{member}"
        );
        assert_eq!(
            book.may_in(member, GENERAL, Permissions::MANAGE_MESSAGES),
            may_delete_others,
            "{member}"
        );
        assert_eq!(
            book.may_in(member, GENERAL, Permissions::APPLY_TAGS),
            may_tag
        );
        assert!(book.may_in(member, GENERAL, Permissions::SEND_MESSAGES));
    }
}

#[test]
fn overrides_hide_private_channels_and_take_away_single_permissions() {
    let book = book();
    assert!(book.is_private(STAFF));
    assert!(!book.is_private(GENERAL));
    assert!(!book.may_in(MEMBER, STAFF, Permissions::VIEW_CHANNEL));
    assert!(book.may_in(MODERATOR, STAFF, Permissions::VIEW_CHANNEL));
    // Administrators and the owner are not bound by overrides.
    assert!(book.may_in(ADMIN, STAFF, Permissions::VIEW_CHANNEL));
    assert!(book.may_in(OWNER, STAFF, Permissions::VIEW_CHANNEL));
    assert!(!book.may_in(HELPER, GENERAL, Permissions::APPLY_TAGS));
    assert!(book.may_in(HELPER, GENERAL, Permissions::MANAGE_MESSAGES));
    assert!(book.may_in(HELPER, STAFF + 1, Permissions::APPLY_TAGS));
}

#[test]
fn moderation_needs_the_permission_and_a_higher_rank() {
    let book = book();
    assert_eq!(
        book.check_moderation(MODERATOR, MEMBER, "dan", Permissions::TIMEOUT_MEMBERS),
        Ok(())
    );
    assert_eq!(
        book.check_moderation(MODERATOR, MEMBER, "dan", Permissions::KICK_MEMBERS),
        Err(RoleRefusal::Lacks("kick"))
    );
    assert_eq!(
        book.check_moderation(MODERATOR, ADMIN, "ann", Permissions::TIMEOUT_MEMBERS),
        Err(RoleRefusal::Outranked("ann".into()))
    );
    assert_eq!(
        book.check_moderation(ADMIN, OWNER, "olga", Permissions::KICK_MEMBERS),
        Err(RoleRefusal::Owner)
    );
    assert_eq!(
        book.check_moderation(OWNER, ADMIN, "ann", Permissions::BAN_MEMBERS),
        Ok(())
    );
}

#[test]
fn roles_are_handed_out_only_below_ones_own_rank_and_never_above_ones_own_powers() {
    let mut book = book();
    let admin_role = book.role_named("admin").unwrap().clone();
    let helper = book.role_named("helper").unwrap().clone();
    assert!(
        book.check_role_change(ADMIN, &helper, Some((MEMBER, "dan")))
            .is_ok()
    );
    assert!(matches!(
        book.check_role_change(ADMIN, &admin_role, Some((MEMBER, "dan"))),
        Err(RoleRefusal::Outranked(_))
    ));
    assert!(
        book.check_role_change(OWNER, &admin_role, Some((MEMBER, "dan")))
            .is_ok()
    );
    assert_eq!(
        book.check_role_change(MODERATOR, &helper, Some((MEMBER, "dan"))),
        Err(RoleRefusal::Lacks("roles"))
    );
    // A member with the roles permission cannot give what they do not hold.
    book.roles
        .push(role(5, "lead", Permissions::MANAGE_ROLES, 50, false));
    book.assignments.push((MEMBER, 5));
    assert_eq!(
        book.check_grant(MEMBER, Permissions::BAN_MEMBERS),
        Err(RoleRefusal::CannotGrant("ban"))
    );
    assert_eq!(book.check_grant(MEMBER, Permissions::SEND_MESSAGES), Ok(()));
}

#[test]
fn timeouts_end_at_their_time_and_slow_mode_is_per_channel() {
    let book = book();
    assert_eq!(book.timed_out_until(MEMBER, 999), Some(1_000));
    assert_eq!(book.timed_out_until(MEMBER, 1_000), None);
    assert_eq!(book.timed_out_until(ADMIN, 0), None);
    assert_eq!(book.slow_mode(GENERAL), 30);
    assert_eq!(book.slow_mode(STAFF), 0);
}

#[test]
fn permission_names_round_trip_and_unknown_bits_are_dropped() {
    for (permission, name) in Permissions::NAMED {
        assert_eq!(Permissions::parse_one(name), Some(*permission));
    }
    assert_eq!(Permissions::from_bits(u64::MAX), Permissions::ALL);
    assert_eq!(
        Permissions::MEMBER_DEFAULT.names(),
        ["view", "send", "tags", "speak", "invite"]
    );
    for code in 0..=u8::MAX {
        assert_eq!(AuditAction::from_u8(code).to_u8(), code);
    }
}
