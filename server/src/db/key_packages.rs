//! Members' KeyPackages: several single-use ones and one last-resort one per member, handed to
//! whoever adds them to a group. A single-use KeyPackage is handed out once: taking it and
//! deleting it is one transaction.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sotto_net::proto::control::PublicKey;

use super::{Store, StoreError};

/// Most single-use KeyPackages kept per member; uploads beyond it are dropped.
pub const MAX_STORED_KEY_PACKAGES: u32 = 100;

/// A KeyPackage checked by the caller, to store.
#[derive(Debug, Clone)]
pub struct NewKeyPackage<'a> {
    /// Its KeyPackageRef (unique per member).
    pub reference: &'a [u8],
    /// The KeyPackage (an MLS message).
    pub key_package: &'a [u8],
    /// Whether it is the member's last-resort KeyPackage.
    pub last_resort: bool,
}

/// How many KeyPackages a member has stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPackageCount {
    /// Single-use ones.
    pub available: u32,
    /// Whether a last-resort one is stored.
    pub last_resort: bool,
}

impl Store {
    /// Stores `member_id`'s KeyPackages (a new last-resort one replaces the old), up to
    /// [`MAX_STORED_KEY_PACKAGES`] single-use ones; returns what is stored after.
    pub fn store_key_packages(
        &self,
        member_id: u32,
        packages: &[NewKeyPackage<'_>],
        now_unix: u64,
    ) -> Result<KeyPackageCount, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for package in packages {
                if package.last_resort {
                    tx.execute(
                        "DELETE FROM key_packages WHERE member_id = ?1 AND last_resort = 1",
                        params![member_id],
                    )?;
                } else {
                    let stored: u32 = tx.query_row(
                        "SELECT count(*) FROM key_packages WHERE member_id = ?1 AND last_resort = 0",
                        params![member_id],
                        |row| row.get(0),
                    )?;
                    if stored >= MAX_STORED_KEY_PACKAGES {
                        continue;
                    }
                }
                tx.execute(
                    "INSERT OR IGNORE INTO key_packages
                         (member_id, reference, key_package, last_resort, uploaded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        member_id,
                        package.reference,
                        package.key_package,
                        package.last_resort,
                        now_unix as i64
                    ],
                )?;
            }
            let count = count_in(&tx, member_id)?;
            tx.commit()?;
            Ok(count)
        })
    }

    /// How many KeyPackages `member_id` has stored.
    pub fn key_package_count(&self, member_id: u32) -> Result<KeyPackageCount, StoreError> {
        self.with(|connection| count_in(connection, member_id))
    }

    /// A KeyPackage of the member of `server_id` whose key is `member`: its oldest single-use
    /// one (removed, so nobody gets it twice), else its last-resort one; none if it has none or
    /// is not a member of the server.
    pub fn claim_key_package(
        &self,
        server_id: u32,
        member: &PublicKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(i64, Vec<u8>, Vec<u8>, bool)> = tx
                .query_row(
                    "SELECT k.member_id, k.reference, k.key_package, k.last_resort
                     FROM key_packages k
                     JOIN members m ON m.id = k.member_id
                     JOIN memberships ms ON ms.member_id = m.id AND ms.server_id = ?1
                     WHERE m.public_key = ?2
                     ORDER BY k.last_resort, k.uploaded_at, k.reference LIMIT 1",
                    params![server_id, member.as_slice()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .optional()?;
            let Some((member_id, reference, key_package, last_resort)) = found else {
                return Ok(None);
            };
            if !last_resort {
                tx.execute(
                    "DELETE FROM key_packages WHERE member_id = ?1 AND reference = ?2",
                    params![member_id, reference],
                )?;
            }
            tx.commit()?;
            Ok(Some(key_package))
        })
    }
}

fn count_in(
    connection: &rusqlite::Connection,
    member_id: u32,
) -> Result<KeyPackageCount, StoreError> {
    let (available, last_resort): (u32, u32) = connection.query_row(
        "SELECT coalesce(sum(last_resort = 0), 0), coalesce(sum(last_resort = 1), 0)
         FROM key_packages WHERE member_id = ?1",
        params![member_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(KeyPackageCount {
        available,
        last_resort: last_resort > 0,
    })
}
