//! Group life cycles between members in memory, with the relay's public view alongside.

use std::time::{Duration, Instant};

use openmls::prelude::tls_codec::Serialize as _;

use super::*;
use crate::crypto::{KeyProvider, SenderContext, derive_media_key};
use crate::group::policy::PolicyViolation;
use crate::identity::Identity;
use crate::proto::control::PublicKey;

const GROUP: &[u8] = b"server:test";
const NOW: u64 = 1_800_000_000;

/// One member: identity, provider and (once in) the group.
struct Person {
    identity: Identity,
    provider: GroupProvider,
    group: Option<Group>,
}

impl Person {
    fn new() -> Self {
        Self {
            identity: Identity::generate(),
            provider: GroupProvider::new(),
            group: None,
        }
    }

    fn key(&self) -> PublicKey {
        self.identity.public_key()
    }

    fn call<R>(&mut self, f: impl FnOnce(&mut Group, &GroupProvider, &Identity) -> R) -> R {
        f(
            self.group.as_mut().expect("in the group"),
            &self.provider,
            &self.identity,
        )
    }

    fn group(&mut self) -> &mut Group {
        self.group.as_mut().expect("in the group")
    }

    fn receive(&mut self, message: &[u8]) -> Result<Received, GroupError> {
        let group = self.group.as_mut().expect("in the group");
        group.receive(&self.provider, message, NOW)
    }

    fn media_base(&self, channel: u32) -> [u8; 32] {
        *self
            .group
            .as_ref()
            .unwrap()
            .media_base(&self.provider, channel)
            .unwrap()
    }
}

/// The relay's view: checks every commit, one per epoch.
struct Relay {
    group: DeliveryGroup,
}

impl Relay {
    fn accept(&mut self, commit: &[u8]) -> Result<AcceptedCommit, DeliveryError> {
        let checked = self.group.check_commit(commit, NOW)?;
        let summary = checked.summary.clone();
        self.group.merge(checked)?;
        Ok(summary)
    }
}

fn founder() -> (Person, Relay) {
    let mut alice = Person::new();
    alice.group = Some(Group::create(&alice.provider, &alice.identity, GROUP).unwrap());
    let info = alice.call(|g, p, i| g.group_info(p, i)).unwrap();
    let relay = Relay {
        group: DeliveryGroup::from_group_info(&info, &alice.key()).unwrap(),
    };
    (alice, relay)
}

fn invite(inviter: &Person) -> (InviteSecret, InviteGrant) {
    let secret = InviteSecret::generate();
    let grant = InviteGrant::sign(&inviter.identity, GROUP, &secret, NOW + 3600).unwrap();
    (secret, grant)
}

/// `admitter` admits a new person through an invite made by `inviter`; everyone else in
/// `others` processes the commit.
fn admit(
    admitter: &mut Person,
    others: &mut [&mut Person],
    relay: &mut Relay,
    inviter_grant: (&InviteSecret, &InviteGrant),
) -> Person {
    let mut joiner = Person::new();
    let request = Group::join_request(
        &joiner.provider,
        &joiner.identity,
        inviter_grant.0,
        inviter_grant.1.clone(),
    )
    .unwrap();
    let outgoing = admitter
        .group
        .as_mut()
        .unwrap()
        .admit(&admitter.provider, &admitter.identity, &[request], NOW)
        .unwrap();
    let accepted = relay.accept(&outgoing.commit).unwrap();
    assert_eq!(accepted.added, vec![joiner.key()]);
    admitter.call(|g, p, _| g.merge_pending(p)).unwrap();
    for other in others.iter_mut() {
        let received = other.receive(&outgoing.commit).unwrap();
        assert!(
            matches!(received, Received::Commit { ref added, .. } if added == &vec![joiner.key()])
        );
    }
    joiner.group = Some(
        Group::join(
            &joiner.provider,
            &joiner.identity,
            &outgoing.welcome.unwrap(),
            GROUP,
            Some(&inviter_grant.1.inviter),
        )
        .unwrap(),
    );
    joiner
}

#[test]
fn members_admitted_by_invite_share_epoch_keys_and_privacy_codes() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    // Bob is not an admin, yet may admit someone holding Alice's invite: Alice checks the
    // proof carried in the commit.
    let mut carol = admit(&mut bob, &mut [&mut alice], &mut relay, (&secret, &grant));

    let epoch = alice.group().epoch();
    assert_eq!(epoch, 2);
    for person in [&mut bob, &mut carol] {
        assert_eq!(person.group().epoch(), epoch);
    }
    let code = alice.group().privacy_code();
    assert_eq!(bob.group().privacy_code(), code);
    assert_eq!(carol.group().privacy_code(), code);
    assert_eq!(alice.media_base(7), bob.media_base(7));
    assert_eq!(alice.media_base(7), carol.media_base(7));
    assert_ne!(alice.media_base(7), alice.media_base(8));
    assert_eq!(relay.group.epoch(), epoch);
    let mut everyone = vec![alice.key(), bob.key(), carol.key()];
    everyone.sort_unstable();
    assert_eq!(relay.group.members(), everyone);
    let members = alice.group().members();
    assert_eq!(
        members.iter().filter(|member| member.is_admin).count(),
        1,
        "only the founder is an admin"
    );
}

#[test]
fn a_removed_member_gets_no_key_of_later_epochs() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let mut carol = admit(&mut alice, &mut [&mut bob], &mut relay, (&secret, &grant));
    let base_before = carol.media_base(1);

    let outgoing = alice
        .call(|g, p, i| g.remove(p, i, &[carol.key()]))
        .unwrap();
    assert_eq!(
        relay.accept(&outgoing.commit).unwrap().removed,
        vec![carol.key()]
    );
    alice.call(|g, p, _| g.merge_pending(p)).unwrap();
    assert!(matches!(
        bob.receive(&outgoing.commit).unwrap(),
        Received::Commit { .. }
    ));
    assert_eq!(carol.receive(&outgoing.commit).unwrap(), Received::Removed);

    assert!(!carol.group().is_active());
    assert!(
        carol.call(|g, p, _| g.media_base(p, 1)).is_err() || carol.media_base(1) == base_before
    );
    let base_after = alice.media_base(1);
    assert_eq!(base_after, bob.media_base(1));
    assert_ne!(base_after, base_before);
    // Carol cannot follow the group any more.
    let update = bob.call(|g, p, i| g.self_update(p, i)).unwrap();
    relay.accept(&update.commit).unwrap();
    assert_eq!(carol.receive(&update.commit), Err(GroupError::Removed));
}

#[test]
fn a_non_admin_cannot_remove_and_forged_removals_are_refused_by_members_and_relay() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let carol = admit(&mut alice, &mut [&mut bob], &mut relay, (&secret, &grant));

    assert_eq!(
        bob.call(|g, p, i| g.remove(p, i, &[carol.key()]))
            .unwrap_err(),
        GroupError::NotAdmin("remove members")
    );
    // A modified client skips its own check and goes to openmls directly.
    let carol_leaf = bob.group().leaf_of(&carol.key()).unwrap();
    let (forged, _, _) = {
        let bob_ref = &mut bob;
        let signer = signer::IdentitySigner(&bob_ref.identity);
        bob_ref
            .group
            .as_mut()
            .unwrap()
            .mls
            .remove_members(&bob_ref.provider, &signer, &[carol_leaf])
            .unwrap()
    };
    let forged = forged.tls_serialize_detached().unwrap();
    let epoch = alice.group().epoch();
    assert_eq!(
        alice.receive(&forged),
        Err(GroupError::Refused(
            policy::PolicyViolation::RemoveByNonAdmin
        ))
    );
    assert_eq!(alice.group().epoch(), epoch, "nothing was merged");
    assert!(matches!(
        relay.accept(&forged),
        Err(DeliveryError::Invalid(reason)) if reason.contains("not an admin")
    ));
}

#[test]
fn adds_without_a_valid_proof_are_refused() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));

    // Bob (not an admin) adds Mallory, who holds no invite, straight through openmls.
    let mallory = Person::new();
    let (key_package, _) = Group::key_package(&mallory.provider, &mallory.identity, false).unwrap();
    let key_package = member::parse_key_package(&mallory.provider, &key_package).unwrap();
    let forged = {
        let bob_ref = &mut bob;
        let signer = signer::IdentitySigner(&bob_ref.identity);
        let (commit, _, _) = bob_ref
            .group
            .as_mut()
            .unwrap()
            .mls
            .add_members(&bob_ref.provider, &signer, &[key_package])
            .unwrap();
        commit.tls_serialize_detached().unwrap()
    };
    assert_eq!(
        alice.receive(&forged),
        Err(GroupError::Refused(
            policy::PolicyViolation::AddWithoutProof
        ))
    );
    assert!(relay.accept(&forged).is_err());

    // A proof made with another secret does not verify either (`join_request` refuses to
    // make one, so Mallory makes it by hand).
    let wrong_secret = InviteSecret::generate();
    let (key_package, reference) =
        Group::key_package(&mallory.provider, &mallory.identity, false).unwrap();
    let request = JoinRequest {
        key_package,
        proof: JoinProof::new(&wrong_secret, grant.clone(), &reference),
    };
    assert_eq!(
        alice
            .call(|g, p, i| g.admit(p, i, &[request], NOW))
            .unwrap_err(),
        GroupError::Refused(policy::PolicyViolation::BadProof)
    );
    // And an expired invite is refused.
    let request =
        Group::join_request(&mallory.provider, &mallory.identity, &secret, grant).unwrap();
    assert_eq!(
        alice
            .call(|g, p, i| g.admit(p, i, &[request], NOW + 7200))
            .unwrap_err(),
        GroupError::Refused(policy::PolicyViolation::InviteExpired)
    );
}

#[test]
fn a_member_who_leaves_is_removed_by_the_next_commit_even_from_a_non_admin() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let mut carol = admit(&mut alice, &mut [&mut bob], &mut relay, (&secret, &grant));

    let proposal = carol.call(|g, p, i| g.propose_leave(p, i)).unwrap();
    assert_eq!(relay.group.check_proposal(&proposal).unwrap(), carol.key());
    assert_eq!(alice.receive(&proposal).unwrap(), Received::Proposal);
    assert_eq!(bob.receive(&proposal).unwrap(), Received::Proposal);
    assert!(bob.group().has_pending_proposals());

    let outgoing = bob.call(|g, p, i| g.commit_proposals(p, i)).unwrap();
    assert_eq!(
        relay.accept(&outgoing.commit).unwrap().removed,
        vec![carol.key()]
    );
    bob.call(|g, p, _| g.merge_pending(p)).unwrap();
    assert!(
        matches!(alice.receive(&outgoing.commit).unwrap(), Received::Commit { ref removed, .. } if removed == &vec![carol.key()])
    );
    assert_eq!(carol.receive(&outgoing.commit).unwrap(), Received::Removed);
    assert_eq!(alice.group().members().len(), 2);
}

#[test]
fn two_commits_in_one_epoch_one_wins_and_the_loser_recovers() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));

    let from_alice = alice.call(|g, p, i| g.self_update(p, i)).unwrap();
    let from_bob = bob.call(|g, p, i| g.self_update(p, i)).unwrap();
    assert_eq!(from_alice.epoch, from_bob.epoch);
    relay.accept(&from_alice.commit).unwrap();
    assert!(matches!(
        relay.accept(&from_bob.commit),
        Err(DeliveryError::WrongEpoch { current: 2, got: 1 })
    ));
    alice.call(|g, p, _| g.merge_pending(p)).unwrap();
    // Bob is told his commit lost: he drops it, takes Alice's, and tries again.
    bob.call(|g, p, _| g.discard_pending(p)).unwrap();
    assert!(matches!(
        bob.receive(&from_alice.commit).unwrap(),
        Received::Commit { epoch: 2, .. }
    ));
    let retry = bob.call(|g, p, i| g.self_update(p, i)).unwrap();
    relay.accept(&retry.commit).unwrap();
    bob.call(|g, p, _| g.merge_pending(p)).unwrap();
    alice.receive(&retry.commit).unwrap();
    assert_eq!(alice.group().privacy_code(), bob.group().privacy_code());
    assert_eq!(alice.media_base(3), bob.media_base(3));
}

#[test]
fn group_state_survives_a_restart_from_the_flushed_store() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));

    let mut disk: std::collections::HashMap<Vec<u8>, zeroize::Zeroizing<Vec<u8>>> =
        std::collections::HashMap::new();
    let mut flush = |provider: &mut GroupProvider| {
        let delta = provider.take_delta();
        for key in delta.deletes {
            disk.remove(&key);
        }
        for (key, value) in delta.upserts {
            disk.insert(key, value);
        }
        disk.clone()
    };
    let saved = flush(&mut bob.provider);
    assert!(
        bob.provider.take_delta().is_empty(),
        "a second flush has nothing new"
    );
    let base = bob.media_base(5);

    // Bob's process dies; a new one loads the store.
    let provider = GroupProvider::restore(saved);
    let mut restarted = Person {
        identity: bob.identity.clone(),
        group: Some(
            Group::load(&provider, &bob.identity, GROUP)
                .unwrap()
                .unwrap(),
        ),
        provider,
    };
    assert_eq!(restarted.media_base(5), base);
    let update = alice.call(|g, p, i| g.self_update(p, i)).unwrap();
    relay.accept(&update.commit).unwrap();
    alice.call(|g, p, _| g.merge_pending(p)).unwrap();
    restarted.receive(&update.commit).unwrap();
    assert_eq!(restarted.media_base(5), alice.media_base(5));
    assert_eq!(relay.group.epoch(), restarted.group().epoch());

    // The relay's view also survives through its snapshot.
    let restored = DeliveryGroup::restore(&relay.group.snapshot(), GROUP).unwrap();
    assert_eq!(restored.epoch(), relay.group.epoch());
    assert_eq!(restored.members(), relay.group.members());
    // A damaged snapshot is refused, whichever byte is hit (openmls's store would panic on it).
    let snapshot = relay.group.snapshot();
    for at in [0, 40, snapshot.len() / 2, snapshot.len() - 1] {
        let mut damaged = snapshot.clone();
        damaged[at] ^= 0x20;
        assert!(
            DeliveryGroup::restore(&damaged, GROUP).is_err(),
            "byte {at}"
        );
    }
}

#[test]
fn media_keys_follow_epochs_and_the_previous_epoch_expires() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let sender = SenderContext {
        channel_id: 4,
        public_key: alice.key(),
        session_salt: [9; 16],
    };
    let start = Instant::now();
    let ring = MediaKeyRing::new();
    assert!(
        ring.media_key(&sender, 0).is_err(),
        "no key before an epoch is installed"
    );
    ring.install(
        alice.group().epoch(),
        [(4, alice.call(|g, p, _| g.media_base(p, 4)).unwrap())],
        start,
    );
    let old_id = ring.current_key_id();
    assert_eq!(old_id, 1);
    let old_key = ring.media_key(&sender, old_id).unwrap();
    assert_eq!(
        old_key.as_bytes(),
        derive_media_key(&bob.media_base(4), &sender, old_id).as_bytes()
    );

    let update = bob.call(|g, p, i| g.self_update(p, i)).unwrap();
    relay.accept(&update.commit).unwrap();
    bob.call(|g, p, _| g.merge_pending(p)).unwrap();
    alice.receive(&update.commit).unwrap();
    ring.install(
        alice.group().epoch(),
        [(4, alice.call(|g, p, _| g.media_base(p, 4)).unwrap())],
        start + Duration::from_secs(1),
    );
    assert_eq!(ring.current_key_id(), 2);
    assert_ne!(
        ring.media_key(&sender, 2).unwrap().as_bytes(),
        old_key.as_bytes()
    );
    ring.expire(start + Duration::from_secs(10));
    assert_eq!(
        ring.media_key(&sender, old_id).unwrap().as_bytes(),
        old_key.as_bytes(),
        "still within the grace time"
    );
    ring.expire(start + Duration::from_secs(11));
    assert!(
        ring.media_key(&sender, old_id).is_err(),
        "wiped after the grace time"
    );
    assert_eq!(ring.epochs(), (Some(2), None));
    let other_channel = SenderContext {
        channel_id: 5,
        ..sender
    };
    assert!(ring.media_key(&other_channel, 2).is_err());
}

#[test]
fn application_messages_reach_members_only() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let sealed = alice
        .call(|g, p, i| g.seal_application(p, i, b"canary-3141"))
        .unwrap();
    assert!(!sealed.windows(11).any(|window| window == b"canary-3141"));
    assert!(matches!(
        relay.group.check_commit(&sealed, NOW),
        Err(DeliveryError::Unsupported(_))
    ));
    match bob.receive(&sealed).unwrap() {
        Received::Application { sender, data } => {
            assert_eq!(sender, alice.key());
            assert_eq!(&data[..], b"canary-3141");
        }
        other => panic!("expected an application message, got {other:?}"),
    }
}

#[test]
fn the_relay_takes_key_packages_only_from_their_owner() {
    let person = Person::new();
    let (key_package, reference) =
        Group::key_package(&person.provider, &person.identity, true).unwrap();
    let info = check_key_package(&key_package, &person.key()).unwrap();
    assert!(info.last_resort);
    assert_eq!(info.reference, reference);
    assert_eq!(
        check_key_package(&key_package, &[7; 32]),
        Err(DeliveryError::WrongIdentity)
    );
    assert!(check_key_package(&key_package[..key_package.len() - 1], &person.key()).is_err());
    assert!(check_key_package(b"", &person.key()).is_err());
}

/// A sender's (key, nonce) pairs never repeat over a million frames, across epoch changes (each
/// merged commit re-keys) and restarts (a new process restores the group from the flushed store
/// and joins with a fresh salt, its counters starting at 0 again).
#[test]
fn no_key_and_nonce_pair_repeats_across_epochs_and_restarts() {
    use std::collections::HashSet;

    use crate::crypto::new_session_salt;
    use crate::proto::StreamKind;
    use crate::proto::datagram::{MediaHeader, MediaSealer};

    const FRAMES: usize = 1_000_000;
    const CHANNEL: u32 = 3;
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let streams = [StreamKind::Voice, StreamKind::Screen];
    let mut seen: HashSet<([u8; 32], u8, u32)> = HashSet::with_capacity(FRAMES);
    let mut sent = 0usize;
    let mut segment = 0usize;
    let mut out = Vec::with_capacity(64);
    let mut disk: std::collections::HashMap<Vec<u8>, zeroize::Zeroizing<Vec<u8>>> =
        std::collections::HashMap::new();
    while sent < FRAMES {
        // What is on the sender's disk after each step.
        let delta = alice.provider.take_delta();
        for key in delta.deletes {
            disk.remove(&key);
        }
        disk.extend(delta.upserts);
        // Every third segment the sender restarts: a new process restores its store.
        if segment % 3 == 2 {
            alice.provider = GroupProvider::restore(disk.clone());
            alice.group = Some(
                Group::load(&alice.provider, &alice.identity, GROUP)
                    .unwrap()
                    .unwrap(),
            );
        }
        let ring = MediaKeyRing::new();
        let group = alice.group.as_ref().unwrap();
        ring.install(
            group.epoch(),
            [(CHANNEL, group.media_base(&alice.provider, CHANNEL).unwrap())],
            Instant::now(),
        );
        let context = SenderContext {
            channel_id: CHANNEL,
            public_key: alice.key(),
            session_salt: new_session_salt(),
        };
        let key_id = ring.current_key_id();
        let key = ring.media_key(&context, key_id).unwrap();
        let mut sealer = MediaSealer::new(&key, key_id, 1);
        // Segments of varying length: 37k to 137k frames.
        let length = (37_000 + (segment * 48_611) % 100_000).min(FRAMES - sent);
        for index in 0..length {
            let stream = streams[index % 2];
            out.clear();
            let header: MediaHeader = sealer.seal(stream, &[index as u8], &mut out).unwrap();
            assert!(
                seen.insert((*key.as_bytes(), header.stream.code(), header.counter)),
                "a (key, nonce) pair repeated at frame {sent}"
            );
            sent += 1;
        }
        // A new epoch: someone commits, everyone merges.
        let update = bob.call(|g, p, i| g.self_update(p, i)).unwrap();
        relay.accept(&update.commit).unwrap();
        bob.call(|g, p, _| g.merge_pending(p)).unwrap();
        alice.receive(&update.commit).unwrap();
        segment += 1;
    }
    assert_eq!(seen.len(), FRAMES);
    assert!(segment >= 8, "{segment} segments");
}

/// Fifty joins and leaves, committed by whoever is around: every member ends in the same epoch
/// with the same privacy code, members and media keys as the others and the relay.
#[test]
fn privacy_codes_agree_after_a_churn_of_fifty_joins_and_leaves() {
    let (alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut people = vec![alice];
    for step in 0..50usize {
        let committer = step % people.len();
        let leave = people.len() > 3 && step % 3 == 2;
        if leave {
            // The newest non-founder asks to leave; someone else commits it.
            let leaver_index = people.len() - 1;
            let mut leaver = people.remove(leaver_index);
            let proposal = leaver.call(|g, p, i| g.propose_leave(p, i)).unwrap();
            relay.group.check_proposal(&proposal).unwrap();
            for person in people.iter_mut() {
                assert_eq!(person.receive(&proposal).unwrap(), Received::Proposal);
            }
            let committer = committer % people.len();
            let outgoing = people[committer]
                .call(|g, p, i| g.commit_proposals(p, i))
                .unwrap();
            relay.accept(&outgoing.commit).unwrap();
            people[committer]
                .call(|g, p, _| g.merge_pending(p))
                .unwrap();
            for (index, person) in people.iter_mut().enumerate() {
                if index != committer {
                    assert!(matches!(
                        person.receive(&outgoing.commit).unwrap(),
                        Received::Commit { .. }
                    ));
                }
            }
            assert_eq!(leaver.receive(&outgoing.commit).unwrap(), Received::Removed);
        } else {
            let (head, tail) = people.split_at_mut(committer);
            let (admitter, rest) = tail.split_first_mut().unwrap();
            let mut others: Vec<&mut Person> = head.iter_mut().chain(rest.iter_mut()).collect();
            let joiner = admit(admitter, &mut others, &mut relay, (&secret, &grant));
            people.push(joiner);
        }
    }
    let epoch = relay.group.epoch();
    let code = people[0].group().privacy_code();
    let base = people[0].media_base(9);
    let mut keys: Vec<PublicKey> = people.iter().map(Person::key).collect();
    keys.sort_unstable();
    assert_eq!(relay.group.members(), keys);
    for person in people.iter_mut() {
        assert_eq!(person.group().epoch(), epoch);
        assert_eq!(person.group().privacy_code(), code);
        assert_eq!(person.media_base(9), base);
    }
    assert_eq!(epoch, 50);
}

/// What a relay that misbehaves can try with handshake messages, and what members do.
#[test]
fn a_forging_relay_can_neither_replay_an_old_commit_nor_slip_in_a_foreign_one() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));

    // Replay: a commit already applied is refused, and nothing changes.
    let update = alice.call(|g, p, i| g.self_update(p, i)).unwrap();
    relay.accept(&update.commit).unwrap();
    alice.call(|g, p, _| g.merge_pending(p)).unwrap();
    bob.receive(&update.commit).unwrap();
    let (epoch, code) = (bob.group().epoch(), bob.group().privacy_code());
    assert!(bob.receive(&update.commit).is_err());
    assert!(
        relay.accept(&update.commit).is_err(),
        "the relay's own check refuses it too"
    );
    assert_eq!(
        (bob.group().epoch(), bob.group().privacy_code()),
        (epoch, code)
    );

    // A commit made in another group that happens to share the id and epoch: the relay (or
    // anyone) cannot pass it off as this group's.
    let mut mallory = Person::new();
    mallory.group = Some(Group::create(&mallory.provider, &mallory.identity, GROUP).unwrap());
    for _ in 0..epoch {
        mallory.call(|g, p, i| g.self_update(p, i)).unwrap();
        mallory.call(|g, p, _| g.merge_pending(p)).unwrap();
    }
    let foreign = mallory.call(|g, p, i| g.self_update(p, i)).unwrap();
    assert_eq!(foreign.epoch, epoch);
    assert!(bob.receive(&foreign.commit).is_err());
    assert!(relay.accept(&foreign.commit).is_err());
    assert_eq!(bob.group().epoch(), epoch);

    // A joiner decrypts nothing from before it joined: it holds no earlier epoch's keys.
    let before = alice.media_base(2);
    let mut cy = admit(&mut alice, &mut [&mut bob], &mut relay, (&secret, &grant));
    assert_ne!(cy.media_base(2), before);
    assert_eq!(cy.group().epoch(), epoch + 1);
    let ring = MediaKeyRing::new();
    ring.install(
        cy.group().epoch(),
        [(2, cy.call(|g, p, _| g.media_base(p, 2)).unwrap())],
        Instant::now(),
    );
    let sender = SenderContext {
        channel_id: 2,
        public_key: alice.key(),
        session_salt: [1; 16],
    };
    assert!(ring.media_key(&sender, (epoch & 0xff) as u8).is_err());
}

#[test]
fn a_joiner_refuses_a_group_the_relay_made_up_and_a_grant_for_another_invite() {
    let (alice, _relay) = founder();
    let (secret, grant) = invite(&alice);
    let bob = Person::new();
    let request =
        Group::join_request(&bob.provider, &bob.identity, &secret, grant.clone()).unwrap();

    // The relay makes its own group under the server's id and welcomes Bob into it, hoping
    // to read what he sends.
    let mut relay_member = Person::new();
    relay_member.group =
        Some(Group::create(&relay_member.provider, &relay_member.identity, GROUP).unwrap());
    // It calls openmls itself: our own `admit` would refuse the proof's foreign inviter.
    let key_package =
        super::member::parse_key_package(&relay_member.provider, &request.key_package).unwrap();
    let (_, welcome, _) = relay_member
        .call(|g, p, i| {
            g.mls
                .add_members(p, &super::signer::IdentitySigner(i), &[key_package])
        })
        .unwrap();
    let refused = Group::join(
        &bob.provider,
        &bob.identity,
        &welcome.tls_serialize_detached().unwrap(),
        GROUP,
        Some(&grant.inviter),
    );
    assert!(
        matches!(
            refused,
            Err(GroupError::Refused(PolicyViolation::InviterNotMember))
        ),
        "{refused:?}"
    );

    // A grant the relay swapped in for another invite does not make a request.
    let (_, other_grant) = invite(&alice);
    let carol = Person::new();
    let swapped = Group::join_request(&carol.provider, &carol.identity, &secret, other_grant);
    assert!(
        matches!(swapped, Err(GroupError::Refused(PolicyViolation::BadProof))),
        "{swapped:?}"
    );
}

#[test]
fn an_admin_adds_a_member_from_its_key_package_and_nobody_else_can() {
    let (mut alice, mut relay) = founder();
    let (secret, grant) = invite(&alice);
    let mut bob = admit(&mut alice, &mut [], &mut relay, (&secret, &grant));
    let mut dana = Person::new();
    let (key_package, _) = Group::key_package(&dana.provider, &dana.identity, false).unwrap();

    // Bob is no admin; nor may anyone pass off Dana's KeyPackage as Eve's.
    assert_eq!(
        bob.call(|g, p, i| g.add_member(p, i, &dana.key(), &key_package))
            .unwrap_err(),
        GroupError::NotAdmin("add members without an invite")
    );
    assert_eq!(
        alice
            .call(|g, p, i| g.add_member(p, i, &[9; 32], &key_package))
            .unwrap_err(),
        GroupError::Refused(PolicyViolation::IdentityMismatch)
    );

    let outgoing = alice
        .call(|g, p, i| g.add_member(p, i, &dana.key(), &key_package))
        .unwrap();
    let accepted = relay.accept(&outgoing.commit).unwrap();
    assert_eq!(accepted.added, vec![dana.key()]);
    alice.call(|g, p, _| g.merge_pending(p)).unwrap();
    assert!(matches!(
        bob.receive(&outgoing.commit).unwrap(),
        Received::Commit { ref added, .. } if added == &vec![dana.key()]
    ));
    dana.group = Some(
        Group::join(
            &dana.provider,
            &dana.identity,
            &outgoing.welcome.unwrap(),
            GROUP,
            None,
        )
        .unwrap(),
    );
    assert_eq!(dana.group().privacy_code(), bob.group().privacy_code());
}

#[test]
fn a_conversation_welcome_must_come_from_its_opener_and_hold_only_its_members() {
    let (ada, bob, cy) = (Person::new(), Person::new(), Person::new());
    let group_id = super::new_conversation_group_id();
    assert!(group_id.starts_with(super::CONVERSATION_GROUP_PREFIX));
    let package = |person: &Person| {
        Group::key_package(&person.provider, &person.identity, false)
            .unwrap()
            .0
    };
    let members = [ada.key(), bob.key()];

    // The relay makes a group of its own with Ada's and Bob's KeyPackages (it holds them):
    // Ada's leaf is in it, but the Welcome is not Ada's.
    let relay = Person::new();
    let mut made_up = Group::create(&relay.provider, &relay.identity, &group_id).unwrap();
    made_up
        .add_member(&relay.provider, &relay.identity, &ada.key(), &package(&ada))
        .unwrap();
    made_up.merge_pending(&relay.provider).unwrap();
    let forged = made_up
        .add_member(&relay.provider, &relay.identity, &bob.key(), &package(&bob))
        .unwrap();
    assert!(matches!(
        Group::join_conversation(
            &bob.provider,
            &bob.identity,
            &forged.welcome.unwrap(),
            &group_id,
            &ada.key(),
            &members,
        ),
        Err(GroupError::Refused(PolicyViolation::NotFromOpener))
    ));

    // Ada's own group, with Cy in it too: Bob refuses a stranger in a conversation of two.
    let mut real = Group::create(&ada.provider, &ada.identity, &group_id).unwrap();
    real.add_member(&ada.provider, &ada.identity, &cy.key(), &package(&cy))
        .unwrap();
    real.merge_pending(&ada.provider).unwrap();
    let with_stranger = real
        .add_member(&ada.provider, &ada.identity, &bob.key(), &package(&bob))
        .unwrap();
    assert!(matches!(
        Group::join_conversation(
            &bob.provider,
            &bob.identity,
            &with_stranger.welcome.unwrap(),
            &group_id,
            &ada.key(),
            &members,
        ),
        Err(GroupError::Refused(PolicyViolation::StrangerInConversation))
    ));

    // Ada's group of the two of them: taken.
    let ada_again = Person::new();
    let ada_again = Person {
        identity: ada.identity.clone(),
        ..ada_again
    };
    let mut two = Group::create(&ada_again.provider, &ada_again.identity, &group_id).unwrap();
    let welcome = two
        .add_member(
            &ada_again.provider,
            &ada_again.identity,
            &bob.key(),
            &package(&bob),
        )
        .unwrap()
        .welcome
        .unwrap();
    let joined = Group::join_conversation(
        &bob.provider,
        &bob.identity,
        &welcome,
        &group_id,
        &ada.key(),
        &members,
    )
    .unwrap();
    assert_eq!(joined.epoch(), 1);
}
