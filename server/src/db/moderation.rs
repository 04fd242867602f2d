//! Moderation: kicks, bans, timeouts and voice mutes, each decided and recorded in the
//! audit log in one transaction.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::control::{ErrorCode, PublicKey};
use sotto_net::roles::{AuditAction, Moderation, RoleBook};

use super::roles::{Refused, load_book, member_name, record};
use super::{Store, StoreError, to_u32};

/// Longest timeout: 28 days.
pub const MAX_TIMEOUT_SECS: u32 = 28 * 24 * 3600;

/// What a moderation action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moderated {
    /// The identity key it was about.
    pub public_key: PublicKey,
    /// The member whose membership it ended (a kick or a ban of a member).
    pub removed: Option<u32>,
    /// The role book after it.
    pub book: RoleBook,
}

/// Ends `member_id`'s membership of `server_id` and everything that hangs on it: their
/// conversations on the server, roles, timeout and voice mute (inside the caller's
/// transaction).
pub(crate) fn end_membership(
    tx: &Connection,
    server_id: i64,
    member_id: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM conversation_members WHERE member_id = ?1
         AND channel_id IN (SELECT id FROM channels WHERE server_id = ?2)",
        params![member_id, server_id],
    )?;
    tx.execute(
        "DELETE FROM member_roles WHERE member_id = ?1
         AND role_id IN (SELECT id FROM roles WHERE server_id = ?2)",
        params![member_id, server_id],
    )?;
    // Invites they made would let them (or anyone they handed one to) straight back in:
    // they are used up now (kept, as memberships remember the invite they came by).
    tx.execute(
        "UPDATE invites SET max_uses = uses WHERE created_by = ?1 AND server_id = ?2",
        params![member_id, server_id],
    )?;
    for table in ["timeouts", "voice_mutes", "memberships"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE member_id = ?1 AND server_id = ?2"),
            params![member_id, server_id],
        )?;
    }
    Ok(())
}

/// Whether `public_key` is banned from `server_id`.
pub(crate) fn is_banned(
    connection: &Connection,
    server_id: u32,
    public_key: &PublicKey,
) -> Result<bool, StoreError> {
    Ok(connection
        .query_row(
            "SELECT 1 FROM bans WHERE server_id = ?1 AND public_key = ?2",
            params![server_id, public_key.as_slice()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn key_of(connection: &Connection, member_id: u32) -> Result<PublicKey, StoreError> {
    let key: Vec<u8> = connection.query_row(
        "SELECT public_key FROM members WHERE id = ?1",
        [member_id],
        |row| row.get(0),
    )?;
    key.try_into()
        .map_err(|_| StoreError::Corrupt("public key"))
}

/// Records a ban of `key` (replacing an earlier one's reason and time).
fn insert_ban(
    tx: &Connection,
    server_id: u32,
    key: &PublicKey,
    actor: u32,
    reason: &str,
    now_unix: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO bans (server_id, public_key, banned_by, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (server_id, public_key) DO UPDATE
         SET banned_by = excluded.banned_by, reason = excluded.reason, at = excluded.at",
        params![
            server_id,
            key.as_slice(),
            actor,
            reason.trim(),
            now_unix as i64
        ],
    )?;
    Ok(())
}

/// How the audit log names a banned key: its last display name, if known, and the whole key
/// (what `sotto unban` takes).
fn key_label(connection: &Connection, key: &PublicKey) -> Result<String, StoreError> {
    let name: Option<String> = connection
        .query_row(
            "SELECT display_name FROM members WHERE public_key = ?1",
            [key.as_slice()],
            |row| row.get(0),
        )
        .optional()?;
    let key = sotto_net::invite::encode_b64(key);
    Ok(match name {
        Some(name) => format!("{name} (key {key})"),
        None => format!("key {key}"),
    })
}

/// A duration for people: "10 min", "2 h", "3 d".
fn duration_words(seconds: u32) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn with_reason(what: String, reason: &str) -> String {
    if reason.trim().is_empty() {
        what
    } else if what.is_empty() {
        reason.trim().to_owned()
    } else {
        format!("{what}: {}", reason.trim())
    }
}

impl Store {
    /// Carries out `moderation` by `actor` if they may, with its audit entry, in one
    /// transaction.
    pub fn moderate(
        &self,
        server_id: u32,
        actor: u32,
        moderation: &Moderation,
        now_unix: u64,
    ) -> Result<Result<Moderated, Refused>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let book = load_book(&tx, server_id, now_unix)?;
            // A member's key is banned as that member (their rank counts).
            let as_member;
            let moderation = match moderation {
                Moderation::BanKey { public_key, reason } => {
                    let member: Option<i64> = tx
                        .query_row(
                            "SELECT m.id FROM members m JOIN memberships ms ON ms.member_id = m.id
                             WHERE m.public_key = ?1 AND ms.server_id = ?2",
                            params![public_key.as_slice(), server_id],
                            |row| row.get(0),
                        )
                        .optional()?;
                    match member {
                        Some(member_id) => {
                            as_member = Moderation::Ban {
                                member_id: to_u32(member_id, "member id")?,
                                reason: reason.clone(),
                            };
                            &as_member
                        }
                        None => moderation,
                    }
                }
                other => other,
            };
            let permission = moderation.permission();
            let target = match moderation.member_id() {
                Some(member_id) => {
                    let Some(name) = member_name(&tx, server_id, member_id)? else {
                        return Ok(Err(Refused::new(
                            ErrorCode::NotAMember,
                            format!("member {member_id} is not on this server"),
                        )));
                    };
                    if member_id == actor {
                        return Ok(Err(Refused::new(
                            ErrorCode::Forbidden,
                            "you cannot moderate yourself",
                        )));
                    }
                    if let Err(refusal) =
                        book.check_moderation(actor, member_id, &name, permission)
                    {
                        return Ok(Err(refusal.into()));
                    }
                    Some((member_id, name, key_of(&tx, member_id)?))
                }
                None => {
                    if let Err(refusal) = book.check_permission(actor, permission) {
                        return Ok(Err(refusal.into()));
                    }
                    None
                }
            };
            let mut removed = None;
            let (action, target_name, detail, public_key) = match (moderation, target) {
                (Moderation::Kick { reason, .. }, Some((member_id, name, key))) => {
                    end_membership(&tx, i64::from(server_id), i64::from(member_id))?;
                    removed = Some(member_id);
                    (AuditAction::Kick, name, with_reason(String::new(), reason), key)
                }
                (Moderation::Ban { reason, .. }, Some((member_id, _, key))) => {
                    end_membership(&tx, i64::from(server_id), i64::from(member_id))?;
                    insert_ban(&tx, server_id, &key, actor, reason, now_unix)?;
                    removed = Some(member_id);
                    let target = key_label(&tx, &key)?;
                    (AuditAction::Ban, target, with_reason(String::new(), reason), key)
                }
                (Moderation::BanKey { public_key, reason }, None) => {
                    insert_ban(&tx, server_id, public_key, actor, reason, now_unix)?;
                    let target = key_label(&tx, public_key)?;
                    (
                        AuditAction::Ban,
                        target,
                        with_reason(String::new(), reason),
                        *public_key,
                    )
                }
                (Moderation::Unban { public_key }, None) => {
                    let unbanned = tx.execute(
                        "DELETE FROM bans WHERE server_id = ?1 AND public_key = ?2",
                        params![server_id, public_key.as_slice()],
                    )?;
                    if unbanned == 0 {
                        return Ok(Err(Refused::new(
                            ErrorCode::Forbidden,
                            "that key is not banned from this server",
                        )));
                    }
                    let target = key_label(&tx, public_key)?;
                    (AuditAction::Unban, target, String::new(), *public_key)
                }
                (
                    Moderation::Timeout {
                        seconds, reason, ..
                    },
                    Some((member_id, name, key)),
                ) => {
                    if *seconds > MAX_TIMEOUT_SECS {
                        return Ok(Err(Refused::new(
                            ErrorCode::ProtocolViolation,
                            "a timeout lasts at most 28 days; ban instead",
                        )));
                    }
                    if *seconds > 0
                        && book.timed_out_until(member_id, now_unix).is_none()
                        && book.timeouts.len() >= sotto_net::proto::control::MAX_TIMEOUTS
                    {
                        return Ok(Err(Refused::new(
                            ErrorCode::Forbidden,
                            "as many members are timed out as the relay can track; try again later",
                        )));
                    }
                    let what = if *seconds == 0 {
                        tx.execute(
                            "DELETE FROM timeouts WHERE server_id = ?1 AND member_id = ?2",
                            params![server_id, member_id],
                        )?;
                        "lifted".to_owned()
                    } else {
                        tx.execute(
                            "INSERT INTO timeouts (server_id, member_id, until) VALUES (?1, ?2, ?3)
                             ON CONFLICT (server_id, member_id) DO UPDATE SET until = excluded.until",
                            params![server_id, member_id, (now_unix + u64::from(*seconds)) as i64],
                        )?;
                        duration_words(*seconds)
                    };
                    (AuditAction::Timeout, name, with_reason(what, reason), key)
                }
                (
                    Moderation::Mute {
                        muted, deafened, ..
                    },
                    Some((member_id, name, key)),
                ) => {
                    let listed = book.muted.len().max(book.deafened.len());
                    if (*muted || *deafened)
                        && !book.muted.contains(&member_id)
                        && !book.deafened.contains(&member_id)
                        && listed >= sotto_net::proto::control::MAX_TIMEOUTS
                    {
                        return Ok(Err(Refused::new(
                            ErrorCode::Forbidden,
                            "as many members are muted as the relay can track; unmute some first",
                        )));
                    }
                    if *muted || *deafened {
                        tx.execute(
                            "INSERT INTO voice_mutes (server_id, member_id, muted, deafened)
                             VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (server_id, member_id) DO UPDATE
                             SET muted = excluded.muted, deafened = excluded.deafened",
                            params![server_id, member_id, muted, deafened],
                        )?;
                    } else {
                        tx.execute(
                            "DELETE FROM voice_mutes WHERE server_id = ?1 AND member_id = ?2",
                            params![server_id, member_id],
                        )?;
                    }
                    let what = match (muted, deafened) {
                        (false, false) => "unmuted and undeafened",
                        (true, false) => "muted",
                        (false, true) => "deafened",
                        (true, true) => "muted and deafened",
                    };
                    (AuditAction::Mute, name, what.to_owned(), key)
                }
                _ => unreachable!("member_id() is some exactly for member actions"),
            };
            record(
                &tx,
                server_id,
                actor,
                action,
                &target_name,
                &detail,
                now_unix,
            )?;
            let book = load_book(&tx, server_id, now_unix)?;
            tx.commit()?;
            Ok(Ok(Moderated {
                public_key,
                removed,
                book,
            }))
        })
    }

    /// Whether `public_key` is banned from `server_id`.
    pub fn is_banned(&self, server_id: u32, public_key: &PublicKey) -> Result<bool, StoreError> {
        self.with(|connection| is_banned(connection, server_id, public_key))
    }

    /// Whether a commit by `committer` in `epoch` of the server's group may remove
    /// `removed`: they asked to leave (a proposal of theirs waits), they are no longer a
    /// member (kicked or banned), or the committer may kick them. Else why not.
    pub fn may_remove_from_server_group(
        &self,
        server_id: u32,
        group_id: &[u8],
        epoch: u64,
        committer: u32,
        removed: &PublicKey,
        now_unix: u64,
    ) -> Result<Result<(), String>, StoreError> {
        self.with(|connection| {
            let asked_to_leave = connection
                .query_row(
                    "SELECT 1 FROM mls_proposals WHERE group_id = ?1 AND epoch = ?2 AND proposer = ?3",
                    params![group_id, epoch as i64, removed.as_slice()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if asked_to_leave {
                return Ok(Ok(()));
            }
            let member: Option<(i64, String)> = connection
                .query_row(
                    "SELECT m.id, m.display_name FROM members m
                     JOIN memberships ms ON ms.member_id = m.id
                     WHERE m.public_key = ?1 AND ms.server_id = ?2",
                    params![removed.as_slice(), server_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((member_id, name)) = member else {
                return Ok(Ok(()));
            };
            let book = load_book(connection, server_id, now_unix)?;
            Ok(book
                .check_moderation(
                    committer,
                    to_u32(member_id, "member id")?,
                    &name,
                    sotto_net::roles::Permissions::KICK_MEMBERS,
                )
                .map_err(|refusal| refusal.to_string()))
        })
    }

    /// Whether `member_id` is a member of `server_id` now.
    pub fn is_member(&self, server_id: u32, member_id: u32) -> Result<bool, StoreError> {
        self.with(|connection| Ok(member_name(connection, server_id, member_id)?.is_some()))
    }

    /// The member id of `public_key` on `server_id`, if it is a member.
    pub fn member_id_of(
        &self,
        server_id: u32,
        public_key: &PublicKey,
    ) -> Result<Option<u32>, StoreError> {
        self.with(|connection| {
            connection
                .query_row(
                    "SELECT m.id FROM members m JOIN memberships ms ON ms.member_id = m.id
                     WHERE m.public_key = ?1 AND ms.server_id = ?2",
                    params![public_key.as_slice(), server_id],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?
                .map(|id| to_u32(id, "member id"))
                .transpose()
        })
    }
}
