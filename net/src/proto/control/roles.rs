//! The wire form of roles, moderation and the audit log (frames 0x30 to 0x36).

use super::{DecodeError, EncodeError, MAX_CHANNELS, MAX_MESSAGE_LEN, MAX_NAME_LEN};
use super::{check_count, check_text, read_flag};
use crate::proto::wire::{Reader, Writer};
use crate::roles::{
    AuditAction, AuditEntry, ChannelOverride, Moderation, Permissions, Role, RoleBook, RoleChange,
};

/// Most roles on a server, the built-in ones included.
pub const MAX_ROLES: usize = 100;
/// Most role assignments one `Roles` frame may list.
pub const MAX_ASSIGNMENTS: usize = 50_000;
/// Most channel overrides one `Roles` frame may list.
pub const MAX_OVERRIDES: usize = 10_000;
/// Most timeouts one `Roles` frame may list.
pub const MAX_TIMEOUTS: usize = 10_000;
/// Most audit log entries in one page.
pub const MAX_AUDIT_PER_PAGE: usize = 100;
/// Longest reason for a moderation action, in UTF-8 bytes.
pub const MAX_REASON_LEN: usize = 512;

pub(super) fn check_book(book: &RoleBook) -> Result<(), EncodeError> {
    check_count("roles", book.roles.len(), MAX_ROLES)?;
    book.roles
        .iter()
        .try_for_each(|role| check_text("role name", &role.name, MAX_NAME_LEN))?;
    check_count("assignments", book.assignments.len(), MAX_ASSIGNMENTS)?;
    check_count("overrides", book.overrides.len(), MAX_OVERRIDES)?;
    check_count("slow modes", book.slow_modes.len(), MAX_CHANNELS)?;
    check_count("timeouts", book.timeouts.len(), MAX_TIMEOUTS)?;
    check_count("muted", book.muted.len(), MAX_TIMEOUTS)?;
    check_count("deafened", book.deafened.len(), MAX_TIMEOUTS)
}

pub(super) fn write_book(w: &mut Writer<'_>, book: &RoleBook) {
    w.u32(book.owner);
    w.list(&book.roles, |w, role| {
        w.u32(role.id);
        w.string(&role.name);
        w.u64(role.permissions.bits());
        w.u16(role.position);
        w.u8(u8::from(role.builtin));
    });
    w.list(&book.assignments, |w, (member, role)| {
        w.u32(*member);
        w.u32(*role);
    });
    w.list(&book.overrides, write_override);
    w.list(&book.slow_modes, |w, (channel, seconds)| {
        w.u32(*channel);
        w.u32(*seconds);
    });
    w.list(&book.timeouts, |w, (member, until)| {
        w.u32(*member);
        w.u64(*until);
    });
    w.list(&book.muted, |w, member| w.u32(*member));
    w.list(&book.deafened, |w, member| w.u32(*member));
}

pub(super) fn read_book(r: &mut Reader<'_>) -> Result<RoleBook, DecodeError> {
    Ok(RoleBook {
        owner: r.u32("owner")?,
        roles: r.list("roles", MAX_ROLES, |r| {
            Ok(Role {
                id: r.u32("role id")?,
                name: r.string("role name", MAX_NAME_LEN)?,
                permissions: Permissions::from_bits(r.u64("permissions")?),
                position: r.u16("position")?,
                builtin: read_flag(r, "built-in")?,
            })
        })?,
        assignments: r.list("assignments", MAX_ASSIGNMENTS, |r| {
            Ok((r.u32("member id")?, r.u32("role id")?))
        })?,
        overrides: r.list("overrides", MAX_OVERRIDES, read_override)?,
        slow_modes: r.list("slow modes", MAX_CHANNELS, |r| {
            Ok((r.u32("channel id")?, r.u32("seconds")?))
        })?,
        timeouts: r.list("timeouts", MAX_TIMEOUTS, |r| {
            Ok((r.u32("member id")?, r.u64("until")?))
        })?,
        muted: r.list("muted", MAX_TIMEOUTS, |r| r.u32("member id"))?,
        deafened: r.list("deafened", MAX_TIMEOUTS, |r| r.u32("member id"))?,
    })
}

fn write_override(w: &mut Writer<'_>, o: &ChannelOverride) {
    w.u32(o.channel_id);
    w.u32(o.role_id);
    w.u64(o.allow.bits());
    w.u64(o.deny.bits());
}

fn read_override(r: &mut Reader<'_>) -> Result<ChannelOverride, DecodeError> {
    Ok(ChannelOverride {
        channel_id: r.u32("channel id")?,
        role_id: r.u32("role id")?,
        allow: Permissions::from_bits(r.u64("allow")?),
        deny: Permissions::from_bits(r.u64("deny")?),
    })
}

pub(super) fn check_change(change: &RoleChange) -> Result<(), EncodeError> {
    match change {
        RoleChange::Create { name, .. } | RoleChange::Update { name, .. } => {
            if name.trim().is_empty() {
                return Err(EncodeError::Empty { field: "role name" });
            }
            check_text("role name", name, MAX_NAME_LEN)
        }
        _ => Ok(()),
    }
}

pub(super) fn write_change(w: &mut Writer<'_>, change: &RoleChange) {
    match change {
        RoleChange::Create { name, permissions } => {
            w.u8(0);
            w.string(name);
            w.u64(permissions.bits());
        }
        RoleChange::Update {
            role_id,
            name,
            permissions,
        } => {
            w.u8(1);
            w.u32(*role_id);
            w.string(name);
            w.u64(permissions.bits());
        }
        RoleChange::Delete { role_id } => {
            w.u8(2);
            w.u32(*role_id);
        }
        RoleChange::Assign { role_id, member_id } => {
            w.u8(3);
            w.u32(*role_id);
            w.u32(*member_id);
        }
        RoleChange::Revoke { role_id, member_id } => {
            w.u8(4);
            w.u32(*role_id);
            w.u32(*member_id);
        }
        RoleChange::Override(o) => {
            w.u8(5);
            write_override(w, o);
        }
        RoleChange::SlowMode {
            channel_id,
            seconds,
        } => {
            w.u8(6);
            w.u32(*channel_id);
            w.u32(*seconds);
        }
    }
}

pub(super) fn read_change(r: &mut Reader<'_>) -> Result<RoleChange, DecodeError> {
    Ok(match r.u8("role change")? {
        0 => RoleChange::Create {
            name: r.string("role name", MAX_NAME_LEN)?,
            permissions: Permissions::from_bits(r.u64("permissions")?),
        },
        1 => RoleChange::Update {
            role_id: r.u32("role id")?,
            name: r.string("role name", MAX_NAME_LEN)?,
            permissions: Permissions::from_bits(r.u64("permissions")?),
        },
        2 => RoleChange::Delete {
            role_id: r.u32("role id")?,
        },
        3 => RoleChange::Assign {
            role_id: r.u32("role id")?,
            member_id: r.u32("member id")?,
        },
        4 => RoleChange::Revoke {
            role_id: r.u32("role id")?,
            member_id: r.u32("member id")?,
        },
        5 => RoleChange::Override(read_override(r)?),
        6 => RoleChange::SlowMode {
            channel_id: r.u32("channel id")?,
            seconds: r.u32("seconds")?,
        },
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "role change",
            });
        }
    })
}

pub(super) fn check_moderation(moderation: &Moderation) -> Result<(), EncodeError> {
    match moderation {
        Moderation::Kick { reason, .. }
        | Moderation::Ban { reason, .. }
        | Moderation::BanKey { reason, .. }
        | Moderation::Timeout { reason, .. } => check_text("reason", reason, MAX_REASON_LEN),
        Moderation::Unban { .. } | Moderation::Mute { .. } => Ok(()),
    }
}

pub(super) fn write_moderation(w: &mut Writer<'_>, moderation: &Moderation) {
    match moderation {
        Moderation::Kick { member_id, reason } => {
            w.u8(0);
            w.u32(*member_id);
            w.string(reason);
        }
        Moderation::Ban { member_id, reason } => {
            w.u8(1);
            w.u32(*member_id);
            w.string(reason);
        }
        Moderation::Unban { public_key } => {
            w.u8(2);
            w.bytes(public_key);
        }
        Moderation::Timeout {
            member_id,
            seconds,
            reason,
        } => {
            w.u8(3);
            w.u32(*member_id);
            w.u32(*seconds);
            w.string(reason);
        }
        Moderation::BanKey { public_key, reason } => {
            w.u8(5);
            w.bytes(public_key);
            w.string(reason);
        }
        Moderation::Mute {
            member_id,
            muted,
            deafened,
        } => {
            w.u8(4);
            w.u32(*member_id);
            w.u8(u8::from(*muted));
            w.u8(u8::from(*deafened));
        }
    }
}

pub(super) fn read_moderation(r: &mut Reader<'_>) -> Result<Moderation, DecodeError> {
    Ok(match r.u8("moderation")? {
        0 => Moderation::Kick {
            member_id: r.u32("member id")?,
            reason: r.string("reason", MAX_REASON_LEN)?,
        },
        1 => Moderation::Ban {
            member_id: r.u32("member id")?,
            reason: r.string("reason", MAX_REASON_LEN)?,
        },
        2 => Moderation::Unban {
            public_key: r.array("public key")?,
        },
        3 => Moderation::Timeout {
            member_id: r.u32("member id")?,
            seconds: r.u32("seconds")?,
            reason: r.string("reason", MAX_REASON_LEN)?,
        },
        5 => Moderation::BanKey {
            public_key: r.array("public key")?,
            reason: r.string("reason", MAX_REASON_LEN)?,
        },
        4 => Moderation::Mute {
            member_id: r.u32("member id")?,
            muted: read_flag(r, "muted")?,
            deafened: read_flag(r, "deafened")?,
        },
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "moderation",
            });
        }
    })
}

pub(super) fn check_audit(entries: &[AuditEntry]) -> Result<(), EncodeError> {
    check_count("audit entries", entries.len(), MAX_AUDIT_PER_PAGE)?;
    entries.iter().try_for_each(|entry| {
        check_text("actor name", &entry.actor_name, MAX_NAME_LEN)?;
        check_text("target", &entry.target, MAX_NAME_LEN * 2)?;
        check_text("detail", &entry.detail, MAX_MESSAGE_LEN)
    })
}

pub(super) fn write_audit_entry(w: &mut Writer<'_>, entry: &AuditEntry) {
    w.u64(entry.id);
    w.u64(entry.at);
    w.u32(entry.actor);
    w.string(&entry.actor_name);
    w.u8(entry.action.to_u8());
    w.string(&entry.target);
    w.string(&entry.detail);
}

pub(super) fn read_audit_entry(r: &mut Reader<'_>) -> Result<AuditEntry, DecodeError> {
    Ok(AuditEntry {
        id: r.u64("entry id")?,
        at: r.u64("at")?,
        actor: r.u32("actor")?,
        actor_name: r.string("actor name", MAX_NAME_LEN)?,
        action: AuditAction::from_u8(r.u8("action")?),
        target: r.string("target", MAX_NAME_LEN * 2)?,
        detail: r.string("detail", MAX_MESSAGE_LEN)?,
    })
}
