//! The rules on plain facts, without MLS.

use super::*;
use crate::group::admission::{InviteGrant, InviteSecret};
use crate::identity::Identity;

const GROUP: &[u8] = b"g";
const NOW: u64 = 1_000;

struct World {
    admin: Identity,
    member: Identity,
    members: Vec<PublicKey>,
    admins: AdminList,
}

fn world() -> World {
    let admin = Identity::generate();
    let member = Identity::generate();
    let members = vec![admin.public_key(), member.public_key()];
    let admins = AdminList::new([admin.public_key()]).unwrap();
    World {
        admin,
        member,
        members,
        admins,
    }
}

fn facts<'a>(world: &'a World, committer: PublicKey, aad: &'a [u8]) -> CommitFacts<'a> {
    CommitFacts {
        group_id: GROUP,
        now_unix: NOW,
        committer: Some(committer),
        members_before: &world.members,
        admins_before: &world.admins,
        adds: Vec::new(),
        removes: Vec::new(),
        admins_after: None,
        unsupported: None,
        authenticated_data: aad,
    }
}

fn add(key: PublicKey, reference: &[u8]) -> AddFacts {
    AddFacts {
        key_package_ref: reference.to_vec(),
        identity: key.to_vec(),
        signature_key: key.to_vec(),
    }
}

#[test]
fn only_members_commit_and_unused_proposals_are_refused() {
    let world = world();
    let mut outsider = facts(&world, [9; 32], &[]);
    assert_eq!(check_commit(&outsider), Err(PolicyViolation::NotFromMember));
    outsider.committer = None;
    assert_eq!(check_commit(&outsider), Err(PolicyViolation::NotFromMember));
    let mut psk = facts(&world, world.admin.public_key(), &[]);
    psk.unsupported = Some("pre-shared key");
    assert_eq!(
        check_commit(&psk),
        Err(PolicyViolation::Unsupported("pre-shared key"))
    );
    assert_eq!(
        check_commit(&facts(&world, world.member.public_key(), &[])),
        Ok(())
    );
}

#[test]
fn adds_need_an_admin_or_a_valid_proof_from_a_members_invite() {
    let world = world();
    let joiner = [5u8; 32];
    let mut by_admin = facts(&world, world.admin.public_key(), &[]);
    by_admin.adds.push(add(joiner, b"ref"));
    assert_eq!(check_commit(&by_admin), Ok(()));

    let mut without_proof = facts(&world, world.member.public_key(), &[]);
    without_proof.adds.push(add(joiner, b"ref"));
    assert_eq!(
        check_commit(&without_proof),
        Err(PolicyViolation::AddWithoutProof)
    );

    let secret = InviteSecret::generate();
    let grant = InviteGrant::sign(&world.admin, GROUP, &secret, NOW + 10).unwrap();
    let aad = JoinProof::encode_all(&[JoinProof::new(&secret, grant.clone(), b"ref")]);
    let mut with_proof = facts(&world, world.member.public_key(), &aad);
    with_proof.adds.push(add(joiner, b"ref"));
    assert_eq!(check_commit(&with_proof), Ok(()));

    // The proof covers one KeyPackage only.
    let mut other_package = with_proof.clone();
    other_package.adds = vec![add(joiner, b"other")];
    assert_eq!(
        check_commit(&other_package),
        Err(PolicyViolation::AddWithoutProof)
    );

    let mut expired = with_proof.clone();
    expired.now_unix = NOW + 10;
    assert_eq!(check_commit(&expired), Err(PolicyViolation::InviteExpired));

    // An invite made by someone outside the group admits no one.
    let outsider = Identity::generate();
    let grant = InviteGrant::sign(&outsider, GROUP, &secret, NOW + 10).unwrap();
    let aad = JoinProof::encode_all(&[JoinProof::new(&secret, grant, b"ref")]);
    let mut foreign = facts(&world, world.member.public_key(), &aad);
    foreign.adds.push(add(joiner, b"ref"));
    assert_eq!(
        check_commit(&foreign),
        Err(PolicyViolation::InviterNotMember)
    );

    // An invite for another group does not transfer.
    let grant = InviteGrant::sign(&world.admin, b"other group", &secret, NOW + 10).unwrap();
    let aad = JoinProof::encode_all(&[JoinProof::new(&secret, grant, b"ref")]);
    let mut elsewhere = facts(&world, world.member.public_key(), &aad);
    elsewhere.adds.push(add(joiner, b"ref"));
    assert_eq!(
        check_commit(&elsewhere),
        Err(PolicyViolation::ProofForAnotherGroup)
    );

    let mut garbage = facts(&world, world.member.public_key(), b"\x01\x00");
    garbage.adds.push(add(joiner, b"ref"));
    assert_eq!(check_commit(&garbage), Err(PolicyViolation::MalformedProof));
}

#[test]
fn added_identities_must_be_new_and_sign_with_their_own_key() {
    let world = world();
    let mut existing = facts(&world, world.admin.public_key(), &[]);
    existing.adds.push(add(world.member.public_key(), b"ref"));
    assert_eq!(check_commit(&existing), Err(PolicyViolation::AlreadyMember));

    let mut twice = facts(&world, world.admin.public_key(), &[]);
    twice.adds = vec![add([5; 32], b"a"), add([5; 32], b"b")];
    assert_eq!(check_commit(&twice), Err(PolicyViolation::AlreadyMember));

    let mut mismatch = facts(&world, world.admin.public_key(), &[]);
    mismatch.adds.push(AddFacts {
        key_package_ref: b"ref".to_vec(),
        identity: vec![5; 32],
        signature_key: vec![6; 32],
    });
    assert_eq!(
        check_commit(&mismatch),
        Err(PolicyViolation::IdentityMismatch)
    );
}

#[test]
fn removals_need_an_admin_or_the_leavers_own_proposal() {
    let world = world();
    let member = world.member.public_key();
    let admin = world.admin.public_key();
    let mut by_admin = facts(&world, admin, &[]);
    by_admin.removes.push(RemoveFacts {
        removed: member,
        proposer: Some(admin),
    });
    assert_eq!(check_commit(&by_admin), Ok(()));

    let mut by_member = facts(&world, member, &[]);
    by_member.removes.push(RemoveFacts {
        removed: admin,
        proposer: Some(member),
    });
    assert_eq!(
        check_commit(&by_member),
        Err(PolicyViolation::RemoveByNonAdmin)
    );

    // The member commits the admin's own request to leave.
    by_member.removes[0].proposer = Some(admin);
    assert_eq!(check_commit(&by_member), Ok(()));
}

#[test]
fn only_admins_change_the_admin_list_and_only_to_members() {
    let world = world();
    let member = world.member.public_key();
    let admin = world.admin.public_key();
    let both = AdminList::new([admin, member]).unwrap();

    let mut by_member = facts(&world, member, &[]);
    by_member.admins_after = Some(both.clone());
    assert_eq!(
        check_commit(&by_member),
        Err(PolicyViolation::AdminChangeByNonAdmin)
    );

    let mut by_admin = facts(&world, admin, &[]);
    by_admin.admins_after = Some(both);
    assert_eq!(check_commit(&by_admin), Ok(()));

    by_admin.admins_after = Some(AdminList::default());
    assert_eq!(check_commit(&by_admin), Err(PolicyViolation::BadAdminList));
    by_admin.admins_after = Some(AdminList::new([[7; 32]]).unwrap());
    assert_eq!(check_commit(&by_admin), Err(PolicyViolation::BadAdminList));

    // An admin who removes a member cannot keep them on the list.
    by_admin.admins_after = Some(AdminList::new([admin, member]).unwrap());
    by_admin.removes.push(RemoveFacts {
        removed: member,
        proposer: Some(admin),
    });
    assert_eq!(check_commit(&by_admin), Err(PolicyViolation::BadAdminList));
}
