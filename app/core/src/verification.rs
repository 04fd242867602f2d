//! Who in a server's group the user verified, and whose key changed since: plain code over the
//! group's members, the relay's member list (names) and the user's verified keys.
//!
//! A key is what identifies a member; a name is only a label the relay passes on. So a "key
//! change" is a verified person's name now worn by a new key while the verified key is gone
//! from the group: the person reinstalled, or someone is pretending to be them. Either way the
//! user must look before trusting that member (front ends block calls until they have).

use sotto_net::group::GroupMember;
use sotto_net::proto::control::{ListedMember, PublicKey};

/// A key the user compared safety numbers with, and the name it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    /// The member's identity key.
    pub public_key: PublicKey,
    /// Its display name when verified.
    pub display_name: String,
}

/// How far the user can trust a member of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// This is us.
    Own,
    /// The user compared safety numbers with this key.
    Verified,
    /// Not checked yet.
    Unverified,
    /// Wears the name of a verified member whose verified key is no longer in the group.
    KeyChanged {
        /// The key the user verified under that name.
        verified_key: PublicKey,
    },
}

/// A member of the group as a front end lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The member's identity key.
    pub public_key: PublicKey,
    /// Its display name from the relay's list; none if the relay does not list it.
    pub display_name: Option<String>,
    /// Whether the group's admin list names it.
    pub is_admin: bool,
    /// Whether it is connected now (from the relay's list).
    pub online: bool,
    /// How far to trust it.
    pub trust: Trust,
}

/// The group's members with names and trust, in the group's order; then the server members
/// the relay lists who are not in the group (waiting to be let in).
pub fn member_views(
    own: &PublicKey,
    group: &[GroupMember],
    listed: &[ListedMember],
    verified: &[VerifiedKey],
) -> (Vec<MemberView>, Vec<ListedMember>) {
    let in_group = |key: &PublicKey| group.iter().any(|member| member.public_key == *key);
    let views = group
        .iter()
        .map(|member| {
            let entry = listed
                .iter()
                .find(|entry| entry.public_key == member.public_key);
            let display_name = entry.map(|entry| entry.display_name.clone());
            let trust = if member.public_key == *own {
                Trust::Own
            } else if verified.iter().any(|v| v.public_key == member.public_key) {
                Trust::Verified
            } else {
                display_name
                    .as_deref()
                    .and_then(|name| {
                        verified
                            .iter()
                            .find(|v| v.display_name == name && !in_group(&v.public_key))
                    })
                    .map_or(Trust::Unverified, |v| Trust::KeyChanged {
                        verified_key: v.public_key,
                    })
            };
            MemberView {
                public_key: member.public_key,
                display_name,
                is_admin: member.is_admin,
                online: entry.is_some_and(|entry| entry.online),
                trust,
            }
        })
        .collect();
    let waiting = listed
        .iter()
        .filter(|entry| !in_group(&entry.public_key))
        .cloned()
        .collect();
    (views, waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(key: u8, is_admin: bool) -> GroupMember {
        GroupMember {
            public_key: [key; 32],
            is_admin,
        }
    }

    fn entry(key: u8, name: &str, online: bool) -> ListedMember {
        ListedMember {
            member_id: u32::from(key),
            public_key: [key; 32],
            display_name: name.into(),
            is_owner: key == 1,
            online,
        }
    }

    fn verified(key: u8, name: &str) -> VerifiedKey {
        VerifiedKey {
            public_key: [key; 32],
            display_name: name.into(),
        }
    }

    #[test]
    fn members_carry_names_and_trust_and_joiners_wait_apart() {
        let group = [member(1, true), member(2, false), member(3, false)];
        let listed = [
            entry(1, "Ada", true),
            entry(2, "Bob", false),
            entry(3, "Cy", true),
            entry(4, "Di", true),
        ];
        let (views, waiting) = member_views(&[1; 32], &group, &listed, &[verified(2, "Robert")]);
        let summary: Vec<_> = views
            .iter()
            .map(|v| (v.display_name.as_deref(), v.is_admin, v.online, v.trust))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("Ada"), true, true, Trust::Own),
                // Verified by key, whatever the name says now.
                (Some("Bob"), false, false, Trust::Verified),
                (Some("Cy"), false, true, Trust::Unverified),
            ]
        );
        assert_eq!(waiting, [entry(4, "Di", true)]);
    }

    #[test]
    fn a_verified_name_on_a_new_key_is_a_key_change_until_the_old_key_is_back() {
        let listed = [entry(1, "Ada", true), entry(5, "Bob", true)];
        let verified = [verified(2, "Bob")];
        // Bob's verified key 2 left the group; key 5 now calls itself Bob.
        let group = [member(1, true), member(5, false)];
        let (views, _) = member_views(&[1; 32], &group, &listed, &verified);
        assert_eq!(
            views[1].trust,
            Trust::KeyChanged {
                verified_key: [2; 32]
            }
        );
        // While the verified Bob is still in the group, a second "Bob" is merely unverified.
        let group = [member(1, true), member(2, false), member(5, false)];
        let (views, _) = member_views(&[1; 32], &group, &listed, &verified);
        assert_eq!(views[2].trust, Trust::Unverified);
        // A member the relay does not list has no name, so no claim to anyone's.
        let (views, _) = member_views(
            &[1; 32],
            &[member(1, true), member(5, false)],
            &[],
            &verified,
        );
        assert_eq!(views[1].display_name, None);
        assert_eq!(views[1].trust, Trust::Unverified);
    }
}
