//! The admin list: who may add without an invite, remove others and change the list.
//!
//! It lives in the group context as extension [`super::ADMINS_EXTENSION`], so it changes only
//! through a commit every member checks: the relay cannot forge it.
//!
//! ```text
//! count (u16 BE) ‖ count × Ed25519 public key (32), sorted, no duplicates
//! ```

use openmls::prelude::{Extensions, GroupContext};

use super::ADMINS_EXTENSION;
use super::codec::Reader;
use crate::proto::control::PublicKey;

/// Most admins a group may list.
pub const MAX_ADMINS: usize = 256;

/// The group's admins, by identity key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminList {
    keys: Vec<PublicKey>,
}

/// Why bytes are not an admin list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminListError {
    /// Wrong length for the count it declares.
    #[error("the admin list's length does not match its count")]
    Length,
    /// More than [`MAX_ADMINS`] keys.
    #[error("the admin list has more than 256 keys")]
    TooMany,
    /// Keys not sorted or repeated.
    #[error("the admin list is not sorted or repeats a key")]
    NotCanonical,
    /// The group context has no admin list.
    #[error("the group has no admin list")]
    Missing,
}

impl AdminList {
    /// A list of these keys (sorted, duplicates dropped, at most [`MAX_ADMINS`]).
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Result<Self, AdminListError> {
        let mut keys: Vec<PublicKey> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > MAX_ADMINS {
            return Err(AdminListError::TooMany);
        }
        Ok(Self { keys })
    }

    /// Whether `key` is an admin.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.binary_search(key).is_ok()
    }

    /// The admins' keys, sorted.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 * self.keys.len());
        out.extend_from_slice(&(self.keys.len() as u16).to_be_bytes());
        for key in &self.keys {
            out.extend_from_slice(key);
        }
        out
    }

    /// Parses the wire form; only the canonical (sorted, unique) form is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, AdminListError> {
        let mut reader = Reader::new(bytes);
        let count = reader.u16().map_err(|_| AdminListError::Length)? as usize;
        if count > MAX_ADMINS {
            return Err(AdminListError::TooMany);
        }
        if reader.remaining() != count * 32 {
            return Err(AdminListError::Length);
        }
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(reader.array::<32>().map_err(|_| AdminListError::Length)?);
        }
        if keys.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(AdminListError::NotCanonical);
        }
        Ok(Self { keys })
    }

    #[cfg(feature = "member")]
    pub(crate) fn to_extension(&self) -> openmls::prelude::Extension {
        openmls::prelude::Extension::Unknown(
            ADMINS_EXTENSION,
            openmls::prelude::UnknownExtension(self.encode()),
        )
    }

    pub(crate) fn from_context(
        extensions: &Extensions<GroupContext>,
    ) -> Result<Self, AdminListError> {
        let extension = extensions
            .unknown(ADMINS_EXTENSION)
            .ok_or(AdminListError::Missing)?;
        Self::decode(&extension.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_lists_round_trip_and_only_canonical_forms_decode() {
        let list = AdminList::new([[3u8; 32], [1u8; 32], [3u8; 32]]).unwrap();
        assert_eq!(list.keys(), &[[1u8; 32], [3u8; 32]]);
        assert_eq!(AdminList::decode(&list.encode()).unwrap(), list);
        assert!(list.contains(&[3u8; 32]));
        assert!(!list.contains(&[2u8; 32]));

        let mut unsorted = vec![0, 2];
        unsorted.extend_from_slice(&[3u8; 32]);
        unsorted.extend_from_slice(&[1u8; 32]);
        assert_eq!(
            AdminList::decode(&unsorted),
            Err(AdminListError::NotCanonical)
        );
        assert_eq!(AdminList::decode(&[0, 1, 7]), Err(AdminListError::Length));
        assert_eq!(AdminList::decode(&[]), Err(AdminListError::Length));
        assert_eq!(
            AdminList::decode(&[0xff, 0xff]),
            Err(AdminListError::TooMany)
        );
    }
}
