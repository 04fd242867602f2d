//! Roles, channel overrides, slow mode, and the audit log they write to.
//!
//! Every change is decided inside the transaction that makes it: the role book is read in the
//! transaction, the change is checked against it with `sotto_net::roles`, and the change and
//! its audit entry commit together. Two admins racing cannot both slip past a check.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::control::{ErrorCode, MAX_ASSIGNMENTS, MAX_OVERRIDES, MAX_ROLES};
use sotto_net::roles::{
    AuditAction, AuditEntry, ChannelOverride, Permissions, Rank, Role, RoleBook, RoleChange,
    RoleRefusal, builtin,
};

use super::{Store, StoreError, to_u32};

/// Longest slow mode: six hours.
pub const MAX_SLOW_MODE_SECS: u32 = 6 * 3600;
/// Longest role name, in characters.
pub const MAX_ROLE_NAME_CHARS: usize = 32;

/// A request the relay refused, with the code and words to answer it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// For programs.
    pub code: ErrorCode,
    /// For people: what happened and what to do.
    pub reason: String,
}

impl Refused {
    pub(crate) fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl From<RoleRefusal> for Refused {
    fn from(refusal: RoleRefusal) -> Self {
        Self::new(ErrorCode::Forbidden, refusal.to_string())
    }
}

/// Creates the built-in roles of `server_id` that it lacks.
pub(crate) fn seed_builtin_roles(
    connection: &Connection,
    server_id: i64,
) -> Result<(), StoreError> {
    for (name, permissions, position) in [
        (
            builtin::MEMBER,
            Permissions::MEMBER_DEFAULT,
            builtin::MEMBER_POSITION,
        ),
        (
            builtin::MODERATOR,
            Permissions::MODERATOR_DEFAULT,
            builtin::MODERATOR_POSITION,
        ),
        (
            builtin::ADMIN,
            Permissions::ADMIN_DEFAULT,
            builtin::ADMIN_POSITION,
        ),
    ] {
        connection.execute(
            "INSERT INTO roles (server_id, name, permissions, position, builtin)
             VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT (server_id, name) DO NOTHING",
            params![server_id, name, permissions.bits() as i64, position],
        )?;
    }
    Ok(())
}

/// Reads everything that decides permissions on `server_id`.
pub(crate) fn load_book(
    connection: &Connection,
    server_id: u32,
    now_unix: u64,
) -> Result<RoleBook, StoreError> {
    let owner: Option<i64> = connection
        .query_row(
            "SELECT member_id FROM memberships WHERE server_id = ?1 AND role = 'owner'
             ORDER BY member_id LIMIT 1",
            [server_id],
            |row| row.get(0),
        )
        .optional()?;
    let mut roles = connection.prepare_cached(
        "SELECT id, name, permissions, position, builtin FROM roles WHERE server_id = ?1
         ORDER BY position DESC, id",
    )?;
    let roles = roles
        .query_map([server_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, bool>(4)?,
            ))
        })?
        .map(|row| {
            let (id, name, permissions, position, builtin) = row?;
            Ok(Role {
                id: to_u32(id, "role id")?,
                name,
                permissions: Permissions::from_bits(permissions as u64),
                position: u16::try_from(position)
                    .map_err(|_| StoreError::Corrupt("role position"))?,
                builtin,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let pairs = |sql: &str| -> Result<Vec<(i64, i64)>, StoreError> {
        let mut statement = connection.prepare_cached(sql)?;
        let rows = statement.query_map([server_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let assignments = pairs(
        "SELECT mr.member_id, mr.role_id FROM member_roles mr JOIN roles r ON r.id = mr.role_id
         WHERE r.server_id = ?1 ORDER BY mr.member_id, mr.role_id",
    )?
    .into_iter()
    .map(|(member, role)| Ok((to_u32(member, "member id")?, to_u32(role, "role id")?)))
    .collect::<Result<_, StoreError>>()?;
    let slow_modes = pairs(
        "SELECT id, slow_mode FROM channels WHERE server_id = ?1 AND slow_mode > 0 ORDER BY id",
    )?
    .into_iter()
    .map(|(channel, seconds)| {
        Ok((
            to_u32(channel, "channel id")?,
            to_u32(seconds, "slow mode")?,
        ))
    })
    .collect::<Result<_, StoreError>>()?;
    let timeouts =
        pairs("SELECT member_id, until FROM timeouts WHERE server_id = ?1 ORDER BY member_id")?
            .into_iter()
            .filter(|(_, until)| *until > now_unix as i64)
            .map(|(member, until)| Ok((to_u32(member, "member id")?, until as u64)))
            .collect::<Result<_, StoreError>>()?;
    let mutes = pairs(
        "SELECT member_id, muted + 2 * deafened FROM voice_mutes WHERE server_id = ?1
         ORDER BY member_id",
    )?;
    let with_bit = |bit: i64| -> Result<Vec<u32>, StoreError> {
        mutes
            .iter()
            .filter(|(_, bits)| bits & bit != 0)
            .map(|(member, _)| to_u32(*member, "member id"))
            .collect()
    };
    let mut overrides = connection.prepare_cached(
        "SELECT o.channel_id, o.role_id, o.allow, o.deny FROM channel_overrides o
         JOIN channels c ON c.id = o.channel_id WHERE c.server_id = ?1
         ORDER BY o.channel_id, o.role_id",
    )?;
    let overrides = overrides
        .query_map([server_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?
        .map(|row| {
            let (channel, role, allow, deny) = row?;
            Ok(ChannelOverride {
                channel_id: to_u32(channel, "channel id")?,
                role_id: to_u32(role, "role id")?,
                allow: Permissions::from_bits(allow as u64),
                deny: Permissions::from_bits(deny as u64),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(RoleBook {
        owner: owner
            .map(|id| to_u32(id, "member id"))
            .transpose()?
            .unwrap_or(0),
        roles,
        assignments,
        overrides,
        slow_modes,
        timeouts,
        muted: with_bit(1)?,
        deafened: with_bit(2)?,
    })
}

/// Writes an audit entry (inside the caller's transaction).
pub(crate) fn record(
    connection: &Connection,
    server_id: u32,
    actor: u32,
    action: AuditAction,
    target: &str,
    detail: &str,
    now_unix: u64,
) -> Result<(), StoreError> {
    let actor_name: String = connection
        .query_row(
            "SELECT display_name FROM members WHERE id = ?1",
            [actor],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or_else(|| "the relay".to_owned());
    connection.execute(
        "INSERT INTO audit_log (server_id, at, actor, actor_name, action, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            server_id,
            now_unix as i64,
            actor,
            actor_name,
            action.to_u8(),
            clip(target, 256),
            clip(detail, 1024)
        ],
    )?;
    Ok(())
}

/// `text` cut to at most `max` bytes on a character boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A member's display name on `server_id`, if they are a member.
pub(crate) fn member_name(
    connection: &Connection,
    server_id: u32,
    member_id: u32,
) -> Result<Option<String>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT m.display_name FROM members m JOIN memberships ms ON ms.member_id = m.id
             WHERE m.id = ?1 AND ms.server_id = ?2",
            params![member_id, server_id],
            |row| row.get(0),
        )
        .optional()?)
}

/// A channel's name with its sigil, if it is one of the server's channels (not a
/// conversation).
fn channel_label(
    connection: &Connection,
    server_id: u32,
    channel_id: u32,
) -> Result<Option<String>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT name FROM channels WHERE id = ?1 AND server_id = ?2 AND conversation = 0",
            params![channel_id, server_id],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .map(|name| format!("#{name}")))
}

fn permission_list(permissions: Permissions) -> String {
    let names = permissions.names();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl Store {
    /// Everything that decides permissions on `server_id` now.
    pub fn role_book(&self, server_id: u32, now_unix: u64) -> Result<RoleBook, StoreError> {
        self.with(|connection| load_book(connection, server_id, now_unix))
    }

    /// Makes `change` if `actor` may, with its audit entry, in one transaction; returns the
    /// role book after it.
    pub fn change_roles(
        &self,
        server_id: u32,
        actor: u32,
        change: &RoleChange,
        now_unix: u64,
    ) -> Result<Result<RoleBook, Refused>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let book = load_book(&tx, server_id, now_unix)?;
            let note = match apply_change(&tx, server_id, actor, &book, change)? {
                Ok(note) => note,
                Err(refused) => return Ok(Err(refused)),
            };
            record(
                &tx,
                server_id,
                actor,
                note.action,
                &note.target,
                &note.detail,
                now_unix,
            )?;
            let book = load_book(&tx, server_id, now_unix)?;
            tx.commit()?;
            Ok(Ok(book))
        })
    }

    /// The audit log's newest entries with ids below `before` (0: the newest), at most
    /// `limit`, newest first; and whether older ones remain.
    pub fn audit_log(
        &self,
        server_id: u32,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        self.with(|connection| {
            let before = if before == 0 { i64::MAX } else { before as i64 };
            let mut statement = connection.prepare_cached(
                "SELECT id, at, actor, actor_name, action, target, detail FROM audit_log
                 WHERE server_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let mut entries = statement
                .query_map(params![server_id, before, limit + 1], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                    ))
                })?
                .map(|row| {
                    let (id, at, actor, actor_name, action, target, detail) = row?;
                    Ok(AuditEntry {
                        id: id as u64,
                        at: at as u64,
                        actor: to_u32(actor, "actor")?,
                        actor_name,
                        action: AuditAction::from_u8(
                            u8::try_from(action)
                                .map_err(|_| StoreError::Corrupt("audit action"))?,
                        ),
                        target,
                        detail,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let more = entries.len() > limit as usize;
            entries.truncate(limit as usize);
            Ok((entries, more))
        })
    }
}

/// What an applied change writes to the audit log.
struct Note {
    action: AuditAction,
    target: String,
    detail: String,
}

fn note(action: AuditAction, target: impl Into<String>, detail: impl Into<String>) -> Note {
    Note {
        action,
        target: target.into(),
        detail: detail.into(),
    }
}

fn check_role_name(
    connection: &Connection,
    server_id: u32,
    name: &str,
    except: Option<u32>,
) -> Result<Result<(), Refused>, StoreError> {
    if name.trim() != name || name.is_empty() || name.chars().count() > MAX_ROLE_NAME_CHARS {
        return Ok(Err(Refused::new(
            ErrorCode::ProtocolViolation,
            format!(
                "a role name has 1 to {MAX_ROLE_NAME_CHARS} characters, with no space at either end"
            ),
        )));
    }
    let taken: Option<i64> = connection
        .query_row(
            "SELECT id FROM roles WHERE server_id = ?1 AND name = ?2",
            params![server_id, name],
            |row| row.get(0),
        )
        .optional()?;
    Ok(match taken {
        Some(id) if Some(id) != except.map(i64::from) => Err(Refused::new(
            ErrorCode::Forbidden,
            format!("there is already a role named \"{name}\"; pick another name"),
        )),
        _ => Ok(()),
    })
}

fn no_role(role_id: u32) -> Refused {
    Refused::new(
        ErrorCode::ProtocolViolation,
        format!("there is no role {role_id}; list them with `sotto roles`"),
    )
}

fn no_member(member_id: u32) -> Refused {
    Refused::new(
        ErrorCode::NotAMember,
        format!("member {member_id} is not on this server"),
    )
}

fn no_channel() -> Refused {
    Refused::new(ErrorCode::NoSuchChannel, "there is no such channel")
}

fn apply_change(
    tx: &Connection,
    server_id: u32,
    actor: u32,
    book: &RoleBook,
    change: &RoleChange,
) -> Result<Result<Note, Refused>, StoreError> {
    macro_rules! refuse_if {
        ($check:expr) => {
            if let Err(refused) = $check {
                return Ok(Err(refused.into()));
            }
        };
    }
    Ok(Ok(match change {
        RoleChange::Create { name, permissions } => {
            refuse_if!(book.check_permission(actor, Permissions::MANAGE_ROLES));
            refuse_if!(book.check_grant(actor, *permissions));
            refuse_if!(check_role_name(tx, server_id, name, None)?);
            if book.roles.len() >= MAX_ROLES {
                return Ok(Err(Refused::new(
                    ErrorCode::Forbidden,
                    format!("the server has {MAX_ROLES} roles, the most allowed; delete one first"),
                )));
            }
            let position = book
                .roles
                .iter()
                .filter(|role| role.position < builtin::MODERATOR_POSITION)
                .map(|role| role.position + 1)
                .max()
                .unwrap_or(1);
            if book.rank(actor) <= Rank::Role(position) {
                return Ok(Err(RoleRefusal::Outranked("a new role".to_owned()).into()));
            }
            tx.execute(
                "INSERT INTO roles (server_id, name, permissions, position, builtin)
                 VALUES (?1, ?2, ?3, ?4, 0)",
                params![server_id, name, permissions.bits() as i64, position],
            )?;
            note(
                AuditAction::RoleCreated,
                name.as_str(),
                permission_list(*permissions),
            )
        }
        RoleChange::Update {
            role_id,
            name,
            permissions,
        } => {
            let Some(role) = book.role(*role_id) else {
                return Ok(Err(no_role(*role_id)));
            };
            refuse_if!(book.check_role_change(actor, role, None));
            refuse_if!(book.check_grant(actor, permissions.without(role.permissions)));
            if role.builtin && *name != role.name {
                return Ok(Err(RoleRefusal::Builtin(role.name.clone()).into()));
            }
            refuse_if!(check_role_name(tx, server_id, name, Some(role.id))?);
            tx.execute(
                "UPDATE roles SET name = ?2, permissions = ?3 WHERE id = ?1",
                params![role.id, name, permissions.bits() as i64],
            )?;
            let renamed = if *name == role.name {
                String::new()
            } else {
                format!(" (was \"{}\")", role.name)
            };
            note(
                AuditAction::RoleUpdated,
                name.as_str(),
                format!("{}{renamed}", permission_list(*permissions)),
            )
        }
        RoleChange::Delete { role_id } => {
            let Some(role) = book.role(*role_id) else {
                return Ok(Err(no_role(*role_id)));
            };
            if role.builtin {
                return Ok(Err(RoleRefusal::Builtin(role.name.clone()).into()));
            }
            refuse_if!(book.check_role_change(actor, role, None));
            tx.execute("DELETE FROM roles WHERE id = ?1", [role.id])?;
            note(AuditAction::RoleDeleted, role.name.as_str(), "")
        }
        RoleChange::Assign { role_id, member_id } | RoleChange::Revoke { role_id, member_id } => {
            let assign = matches!(change, RoleChange::Assign { .. });
            let Some(role) = book.role(*role_id) else {
                return Ok(Err(no_role(*role_id)));
            };
            if role.name == builtin::MEMBER && role.builtin {
                return Ok(Err(Refused::new(
                    ErrorCode::Forbidden,
                    "everyone holds the \"member\" role; it cannot be given or taken",
                )));
            }
            let Some(target) = member_name(tx, server_id, *member_id)? else {
                return Ok(Err(no_member(*member_id)));
            };
            refuse_if!(book.check_role_change(actor, role, Some((*member_id, &target))));
            if assign {
                // Handing out a role hands out what it grants.
                refuse_if!(book.check_grant(actor, role.permissions));
                if book.assignments.len() >= MAX_ASSIGNMENTS {
                    return Ok(Err(Refused::new(
                        ErrorCode::Forbidden,
                        format!(
                            "the server has {MAX_ASSIGNMENTS} role assignments, the most allowed"
                        ),
                    )));
                }
            }
            let changed = if assign {
                tx.execute(
                    "INSERT INTO member_roles (member_id, role_id) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                    params![member_id, role.id],
                )?
            } else {
                tx.execute(
                    "DELETE FROM member_roles WHERE member_id = ?1 AND role_id = ?2",
                    params![member_id, role.id],
                )?
            };
            if changed == 0 {
                return Ok(Err(Refused::new(
                    ErrorCode::Forbidden,
                    if assign {
                        format!("{target} already holds the role \"{}\"", role.name)
                    } else {
                        format!("{target} does not hold the role \"{}\"", role.name)
                    },
                )));
            }
            let action = if assign {
                AuditAction::RoleAssigned
            } else {
                AuditAction::RoleRevoked
            };
            note(action, target, role.name.as_str())
        }
        RoleChange::Override(o) => {
            let Some(channel) = channel_label(tx, server_id, o.channel_id)? else {
                return Ok(Err(no_channel()));
            };
            let Some(role) = book.role(o.role_id) else {
                return Ok(Err(no_role(o.role_id)));
            };
            let in_channel = book.channel_permissions(actor, o.channel_id);
            if !in_channel.contains(Permissions::MANAGE_CHANNELS.union(Permissions::VIEW_CHANNEL)) {
                return Ok(Err(RoleRefusal::Lacks("manage-channels").into()));
            }
            if book.rank(actor) <= Rank::Role(role.position) {
                return Ok(Err(RoleRefusal::Outranked(format!(
                    "the role \"{}\"",
                    role.name
                ))
                .into()));
            }
            let allow = o.allow.intersection(Permissions::CHANNEL);
            let deny = o.deny.intersection(Permissions::CHANNEL).without(allow);
            // What the change hands out: new allows, and old denies it lifts. The actor must
            // hold all of it in this channel.
            let old = book
                .overrides
                .iter()
                .find(|old| old.channel_id == o.channel_id && old.role_id == role.id);
            let lifted = old.map_or(Permissions::NONE, |old| old.deny.without(deny));
            if let Some(missing) = allow.union(lifted).without(in_channel).names().first() {
                return Ok(Err(RoleRefusal::CannotGrant(missing).into()));
            }
            if old.is_none() && book.overrides.len() >= MAX_OVERRIDES {
                return Ok(Err(Refused::new(
                    ErrorCode::Forbidden,
                    format!(
                        "the server has {MAX_OVERRIDES} channel rules, the most allowed; clear some first"
                    ),
                )));
            }
            if allow.is_empty() && deny.is_empty() {
                tx.execute(
                    "DELETE FROM channel_overrides WHERE channel_id = ?1 AND role_id = ?2",
                    params![o.channel_id, role.id],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO channel_overrides (channel_id, role_id, allow, deny)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (channel_id, role_id) DO UPDATE
                     SET allow = excluded.allow, deny = excluded.deny",
                    params![
                        o.channel_id,
                        role.id,
                        allow.bits() as i64,
                        deny.bits() as i64
                    ],
                )?;
            }
            note(
                AuditAction::ChannelPermissions,
                format!("{channel} for {}", role.name),
                format!(
                    "allow: {}; deny: {}",
                    permission_list(allow),
                    permission_list(deny)
                ),
            )
        }
        RoleChange::SlowMode {
            channel_id,
            seconds,
        } => {
            let Some(channel) = channel_label(tx, server_id, *channel_id)? else {
                return Ok(Err(no_channel()));
            };
            if !book.may_in(actor, *channel_id, Permissions::MANAGE_CHANNELS) {
                return Ok(Err(RoleRefusal::Lacks("manage-channels").into()));
            }
            if *seconds > MAX_SLOW_MODE_SECS {
                return Ok(Err(Refused::new(
                    ErrorCode::ProtocolViolation,
                    format!("slow mode is at most {MAX_SLOW_MODE_SECS} seconds (six hours)"),
                )));
            }
            tx.execute(
                "UPDATE channels SET slow_mode = ?2 WHERE id = ?1",
                params![channel_id, seconds],
            )?;
            tx.execute(
                "DELETE FROM slow_mode_posts WHERE channel_id = ?1",
                [channel_id],
            )?;
            let detail = if *seconds == 0 {
                "off".to_owned()
            } else {
                format!("{seconds} s between messages")
            };
            note(AuditAction::SlowMode, channel, detail)
        }
    }))
}

#[cfg(test)]
mod tests;
