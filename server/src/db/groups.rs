//! MLS delivery state: groups' public state, the commit of each epoch, proposals, Welcomes and
//! join requests. Which commit wins an epoch is decided here, in one transaction.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::control::PublicKey;

use super::{Store, StoreError, to_u32};

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// The server it belongs to.
    pub server_id: u32,
    /// Its current epoch.
    pub epoch: u64,
    /// Its public state (a `DeliveryGroup` snapshot).
    pub state: Vec<u8>,
}

/// A commit the relay checked, to store as the one commit of its epoch.
#[derive(Debug, Clone)]
pub struct AcceptCommit<'a> {
    /// The group.
    pub group_id: &'a [u8],
    /// The epoch the commit ends.
    pub epoch: u64,
    /// Who committed.
    pub committer: u32,
    /// The commit.
    pub message: &'a [u8],
    /// The group's public state after it.
    pub state: &'a [u8],
    /// The Welcome, for the identities it adds.
    pub welcome: Option<&'a [u8]>,
    /// Identities added.
    pub added: &'a [PublicKey],
    /// Identities removed: their server memberships end with the commit.
    pub removed: &'a [PublicKey],
    /// Now, Unix seconds.
    pub now_unix: u64,
}

/// What became of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stored: it is the commit of its epoch. Lists the member ids whose memberships ended.
    Accepted {
        /// Members removed from the server (or, for a conversation's group, from the
        /// conversation only).
        removed_members: Vec<u32>,
        /// The conversation whose group it is; none for the server's group.
        conversation: Option<u32>,
    },
    /// Another commit already ended that epoch (or the group is elsewhere); the group is at
    /// this epoch.
    Conflict {
        /// The stored epoch.
        current_epoch: u64,
    },
}

fn epoch_of(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt("group epoch"))
}

impl Store {
    /// The group `group_id`, if stored.
    pub fn group(&self, group_id: &[u8]) -> Result<Option<StoredGroup>, StoreError> {
        self.with(|connection| {
            let row: Option<(i64, i64, Vec<u8>)> = connection
                .query_row(
                    "SELECT server_id, epoch, state FROM mls_groups WHERE group_id = ?1",
                    params![group_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            row.map(|(server_id, epoch, state)| {
                Ok(StoredGroup {
                    server_id: to_u32(server_id, "server id")?,
                    epoch: epoch_of(epoch)?,
                    state,
                })
            })
            .transpose()
        })
    }

    /// Stores a new group at epoch 0; false if the server already has one.
    pub fn create_group(
        &self,
        server_id: u32,
        group_id: &[u8],
        state: &[u8],
        now_unix: u64,
    ) -> Result<bool, StoreError> {
        self.with(|connection| {
            let inserted = connection.execute(
                "INSERT INTO mls_groups (group_id, server_id, conversation_id, epoch, state, created_at)
                 VALUES (?1, ?2, NULL, 0, ?3, ?4) ON CONFLICT DO NOTHING",
                params![group_id, server_id, state, now_unix as i64],
            )?;
            Ok(inserted == 1)
        })
    }

    /// Stores `commit` as the one commit of its epoch, in one transaction with everything it
    /// implies: the group's new state and epoch, the Welcome for added members, the end of
    /// removed members' memberships, and clearing what the commit settled (their join requests,
    /// the epoch's proposals). If another commit already ended that epoch nothing changes.
    pub fn accept_commit(&self, commit: &AcceptCommit<'_>) -> Result<CommitOutcome, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (server_id, stored_epoch, conversation): (i64, i64, Option<i64>) = tx.query_row(
                "SELECT server_id, epoch, conversation_id FROM mls_groups WHERE group_id = ?1",
                params![commit.group_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            let stored_epoch = epoch_of(stored_epoch)?;
            if stored_epoch != commit.epoch {
                return Ok(CommitOutcome::Conflict {
                    current_epoch: stored_epoch,
                });
            }
            let inserted = tx.execute(
                "INSERT INTO mls_commits (group_id, epoch, committer, message, accepted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    commit.group_id,
                    commit.epoch as i64,
                    commit.committer,
                    commit.message,
                    commit.now_unix as i64
                ],
            )?;
            if inserted == 0 {
                return Ok(CommitOutcome::Conflict {
                    current_epoch: stored_epoch,
                });
            }
            tx.execute(
                "UPDATE mls_groups SET epoch = ?2, state = ?3 WHERE group_id = ?1",
                params![commit.group_id, commit.epoch as i64 + 1, commit.state],
            )?;
            tx.execute(
                "DELETE FROM mls_proposals WHERE group_id = ?1 AND epoch <= ?2",
                params![commit.group_id, commit.epoch as i64],
            )?;
            for key in commit.added {
                tx.execute(
                    "DELETE FROM mls_join_requests WHERE group_id = ?1 AND member_key = ?2",
                    params![commit.group_id, key.as_slice()],
                )?;
                if let Some(welcome) = commit.welcome {
                    tx.execute(
                        "INSERT OR REPLACE INTO mls_welcomes (group_id, member_key, epoch, message)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![
                            commit.group_id,
                            key.as_slice(),
                            commit.epoch as i64 + 1,
                            welcome
                        ],
                    )?;
                }
            }
            let mut removed_members = Vec::with_capacity(commit.removed.len());
            for key in commit.removed {
                let member: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM members WHERE public_key = ?1",
                        params![key.as_slice()],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(member) = member {
                    // Removed from a conversation's group: out of the conversation, not the
                    // server.
                    match conversation {
                        Some(conversation) => tx.execute(
                            "DELETE FROM conversation_members WHERE channel_id = ?1 AND member_id = ?2",
                            params![conversation, member],
                        )?,
                        None => {
                            // Out of the server, out of its conversations too (their openers
                            // then remove them from the conversations' groups).
                            super::moderation::end_membership(&tx, server_id, member)?;
                            0
                        }
                    };
                    removed_members.push(to_u32(member, "member id")?);
                }
                tx.execute(
                    "DELETE FROM mls_welcomes WHERE group_id = ?1 AND member_key = ?2",
                    params![commit.group_id, key.as_slice()],
                )?;
            }
            tx.commit()?;
            Ok(CommitOutcome::Accepted {
                removed_members,
                conversation: conversation
                    .map(|id| to_u32(id, "conversation id"))
                    .transpose()?,
            })
        })
    }

    /// Commits that ended epochs `from_epoch` onwards, oldest first, at most `limit`.
    pub fn commits_since(
        &self,
        group_id: &[u8],
        from_epoch: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT epoch, message FROM mls_commits
                 WHERE group_id = ?1 AND epoch >= ?2 ORDER BY epoch LIMIT ?3",
            )?;
            let rows = statement.query_map(
                params![group_id, from_epoch.min(i64::MAX as u64) as i64, limit],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )?;
            rows.map(|row| {
                let (epoch, message) = row?;
                Ok((epoch_of(epoch)?, message))
            })
            .collect()
        })
    }

    /// Stores a proposal made in `epoch` with the group state that queues it; false if the
    /// group has moved past `epoch` meanwhile.
    pub fn add_proposal(
        &self,
        group_id: &[u8],
        epoch: u64,
        proposer: &PublicKey,
        message: &[u8],
        state: &[u8],
    ) -> Result<bool, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let updated = tx.execute(
                "UPDATE mls_groups SET state = ?3 WHERE group_id = ?1 AND epoch = ?2",
                params![group_id, epoch as i64, state],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO mls_proposals (group_id, epoch, seq, proposer, message)
                 VALUES (?1, ?2,
                         (SELECT COALESCE(MAX(seq), -1) + 1 FROM mls_proposals
                          WHERE group_id = ?1 AND epoch = ?2),
                         ?3, ?4)",
                params![group_id, epoch as i64, proposer.as_slice(), message],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// The proposals of `epoch` not made by `except`, in the order they came, with their
    /// sequence numbers.
    pub fn proposals(
        &self,
        group_id: &[u8],
        epoch: u64,
        except: &PublicKey,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT seq, message FROM mls_proposals
                 WHERE group_id = ?1 AND epoch = ?2 AND proposer != ?3 ORDER BY seq",
            )?;
            let rows = statement
                .query_map(params![group_id, epoch as i64, except.as_slice()], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?;
            rows.map(|row| {
                let (seq, message) = row?;
                Ok((epoch_of(seq)?, message))
            })
            .collect()
        })
    }

    /// The Welcome waiting for `member_key`, if any.
    pub fn welcome_for(
        &self,
        group_id: &[u8],
        member_key: &PublicKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|connection| {
            Ok(connection
                .query_row(
                    "SELECT message FROM mls_welcomes WHERE group_id = ?1 AND member_key = ?2",
                    params![group_id, member_key.as_slice()],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    /// Forgets the Welcome of a member who has joined with it.
    pub fn forget_welcome(
        &self,
        group_id: &[u8],
        member_key: &PublicKey,
    ) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "DELETE FROM mls_welcomes WHERE group_id = ?1 AND member_key = ?2",
                params![group_id, member_key.as_slice()],
            )?;
            Ok(())
        })
    }

    /// Stores (or replaces) `member_key`'s request to be let into the group.
    pub fn add_join_request(
        &self,
        group_id: &[u8],
        member_key: &PublicKey,
        request: &[u8],
        now_unix: u64,
    ) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "INSERT OR REPLACE INTO mls_join_requests (group_id, member_key, request, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![group_id, member_key.as_slice(), request, now_unix as i64],
            )?;
            Ok(())
        })
    }

    /// Requests waiting to be let in, oldest first.
    pub fn join_requests(&self, group_id: &[u8]) -> Result<Vec<(PublicKey, Vec<u8>)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT member_key, request FROM mls_join_requests
                 WHERE group_id = ?1 ORDER BY created_at, member_key",
            )?;
            let rows = statement.query_map(params![group_id], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?;
            rows.map(|row| {
                let (key, request) = row?;
                let key: PublicKey = key
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("member key"))?;
                Ok((key, request))
            })
            .collect()
        })
    }

    /// The grant of the invite `member_id` was admitted with, if it carried one.
    pub fn admission_grant(
        &self,
        server_id: u32,
        member_id: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|connection| {
            Ok(connection
                .query_row(
                    "SELECT i.grant FROM memberships ms JOIN invites i ON i.id = ms.invite_id
                     WHERE ms.member_id = ?1 AND ms.server_id = ?2",
                    params![member_id, server_id],
                    |row| row.get::<_, Option<Vec<u8>>>(0),
                )
                .optional()?
                .flatten())
        })
    }
}
