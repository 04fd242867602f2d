//! Whatever a member sends the relay for its MLS group: handshake messages checked against a
//! real group's public state, KeyPackages, join requests, grants, admin lists and stored state.
//! No input panics, and the group's state never changes unless a commit passed every check.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sotto_net::group::{
    AdminList, DeliveryGroup, Group, GroupProvider, InviteGrant, InviteSecret, JoinRequest,
    check_key_package,
};
use sotto_net::identity::Identity;

const GROUP: &[u8] = b"sotto/server/1";
const NOW: u64 = 1_800_000_000;

/// A two-member group's public state, and a member's valid commit and KeyPackage to mutate.
struct Seed {
    state: Vec<u8>,
    commit: Vec<u8>,
    key_package: Vec<u8>,
    owner: [u8; 32],
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let owner = Identity::generate();
        let provider = GroupProvider::new();
        let mut group = Group::create(&provider, &owner, GROUP).unwrap();
        let info = group.group_info(&provider, &owner).unwrap();
        let mut relay = DeliveryGroup::from_group_info(&info, &owner.public_key()).unwrap();
        let secret = InviteSecret::generate();
        let grant = InviteGrant::sign(&owner, GROUP, &secret, NOW + 3600).unwrap();
        let joiner = Identity::generate();
        let request =
            Group::join_request(&GroupProvider::new(), &joiner, &secret, grant).unwrap();
        let outgoing = group.admit(&provider, &owner, &[request.clone()], NOW).unwrap();
        let checked = relay.check_commit(&outgoing.commit, NOW).unwrap();
        relay.merge(checked).unwrap();
        group.merge_pending(&provider).unwrap();
        let commit = group.self_update(&provider, &owner).unwrap().commit;
        Seed {
            state: relay.snapshot(),
            commit,
            key_package: request.key_package,
            owner: owner.public_key(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let seed = seed();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Half the time, mutate a valid message in place rather than start from nothing.
    let mutated = |valid: &[u8]| -> Vec<u8> {
        let mut bytes = valid.to_vec();
        for (index, byte) in rest.iter().enumerate() {
            let at = (usize::from(*byte) * 7 + index * 131) % bytes.len().max(1);
            if let Some(target) = bytes.get_mut(at) {
                *target ^= rest.get(index + 1).copied().unwrap_or(1) | 1;
            }
        }
        bytes
    };
    let mut group = DeliveryGroup::restore(&seed.state, GROUP).unwrap();
    let epoch = group.epoch();
    match selector % 8 {
        0 => {
            if let Ok(checked) = group.check_commit(rest, NOW) {
                let _ = group.merge(checked);
            }
        }
        1 => {
            // A commit whose membership tag was changed still passes here: the relay cannot
            // check that tag (its key is an epoch secret); members do.
            let candidate = mutated(&seed.commit);
            if let Ok(checked) = group.check_commit(&candidate, NOW) {
                let _ = group.merge(checked);
            } else {
                assert_eq!(group.epoch(), epoch);
            }
        }
        2 => {
            let _ = group.check_proposal(rest);
        }
        3 => {
            let _ = check_key_package(rest, &seed.owner);
            let _ = check_key_package(&mutated(&seed.key_package), &seed.owner);
        }
        4 => {
            if let Ok(request) = JoinRequest::decode(rest) {
                let _ = request.proof.verify(GROUP, NOW);
                assert_eq!(JoinRequest::decode(&request.encode()), Ok(request));
            }
        }
        5 => {
            if let Ok(grant) = InviteGrant::decode(rest) {
                let _ = grant.verify(GROUP, NOW);
                assert_eq!(InviteGrant::decode(&grant.encode()), Ok(grant));
            }
        }
        6 => {
            if let Ok(admins) = AdminList::decode(rest) {
                assert_eq!(AdminList::decode(&admins.encode()), Ok(admins));
            }
        }
        _ => {
            let _ = DeliveryGroup::restore(rest, GROUP);
            let _ = DeliveryGroup::restore(&mutated(&seed.state), GROUP);
        }
    }
});
