//! MLS group operations at 10, 100 and 1,000 members: a commit's creation and merge by the
//! committer, its processing by another member, and the relay's check of it; with one Ed25519
//! signature plus verification (the least any commit costs) as the baseline measured in the
//! same run. Commit and Welcome sizes are printed.
//!
//! Run: `cargo bench -p sotto-benches --bench mls_group`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sotto_net::group::{DeliveryGroup, Group, GroupProvider, InviteGrant, InviteSecret};
use sotto_net::identity::Identity;

const GROUP_ID: &[u8] = b"bench";
const NOW: u64 = 1_800_000_000;

struct Setup {
    founder: Identity,
    founder_provider: GroupProvider,
    founder_group: Group,
    member: Identity,
    member_provider: GroupProvider,
    member_group: Group,
    relay: DeliveryGroup,
    welcome_len: usize,
    /// Members at leaves 2, 4, 8, ...: their commits fill the tree as a group in use is.
    others: Vec<(Identity, GroupProvider, Group)>,
}

impl Setup {
    /// One commit from a member in each subtree beside the founder's path, processed by
    /// everyone: afterwards the founder's copath nodes are all filled, as in a group that has
    /// been in use, rather than blank as right after one bulk Add.
    fn warm_up(&mut self) {
        let mut committers: Vec<(Identity, GroupProvider, Group)> = Vec::new();
        committers.push((
            self.member.clone(),
            std::mem::take(&mut self.member_provider),
            std::mem::replace(&mut self.member_group, placeholder()),
        ));
        committers.append(&mut self.others);
        for index in 0..committers.len() {
            let (identity, provider, group) = &mut committers[index];
            let outgoing = group.self_update(provider, identity).unwrap();
            group.merge_pending(provider).unwrap();
            let checked = self.relay.check_commit(&outgoing.commit, NOW).unwrap();
            self.relay.merge(checked).unwrap();
            self.founder_group
                .receive(&self.founder_provider, &outgoing.commit, NOW)
                .unwrap();
            for (other, (_, provider, group)) in committers.iter_mut().enumerate() {
                if other != index {
                    group.receive(provider, &outgoing.commit, NOW).unwrap();
                }
            }
        }
        let (member, provider, group) = committers.remove(0);
        self.member = member;
        self.member_provider = provider;
        self.member_group = group;
        self.others = committers;
    }
}

/// A stand-in group to move a real one out of a struct for a moment.
fn placeholder() -> Group {
    let identity = Identity::generate();
    Group::create(&GroupProvider::new(), &identity, b"placeholder").unwrap()
}

/// A group of `size` members: the founder admits everyone else in one commit.
fn group_of(size: usize) -> Setup {
    let founder = Identity::generate();
    let founder_provider = GroupProvider::new();
    let mut founder_group = Group::create(&founder_provider, &founder, GROUP_ID).unwrap();
    let info = founder_group
        .group_info(&founder_provider, &founder)
        .unwrap();
    let mut relay = DeliveryGroup::from_group_info(&info, &founder.public_key()).unwrap();

    let secret = InviteSecret::generate();
    let grant = InviteGrant::sign(&founder, GROUP_ID, &secret, NOW + 3600).unwrap();
    // The joiners share one provider: it only stores their KeyPackages' private keys.
    // Members who will commit (leaves 1, 2, 4, 8, ...) get providers of their own.
    let shared_provider = GroupProvider::new();
    let mut active: Vec<(usize, GroupProvider)> = Vec::new();
    let joiners: Vec<Identity> = (1..size).map(|_| Identity::generate()).collect();
    let requests: Vec<_> = joiners
        .iter()
        .enumerate()
        .map(|(index, joiner)| {
            let leaf = index + 1;
            let provider = if leaf.is_power_of_two() {
                active.push((index, GroupProvider::new()));
                &active.last().unwrap().1
            } else {
                &shared_provider
            };
            Group::join_request(provider, joiner, &secret, grant.clone()).unwrap()
        })
        .collect();
    let outgoing = founder_group
        .admit(&founder_provider, &founder, &requests, NOW)
        .unwrap();
    let checked = relay.check_commit(&outgoing.commit, NOW).unwrap();
    relay.merge(checked).unwrap();
    founder_group.merge_pending(&founder_provider).unwrap();
    let welcome = outgoing.welcome.unwrap();
    let mut joined: Vec<(Identity, GroupProvider, Group)> = active
        .into_iter()
        .map(|(index, provider)| {
            let identity = joiners[index].clone();
            let group = Group::join(
                &provider,
                &identity,
                &welcome,
                GROUP_ID,
                Some(&grant.inviter),
            )
            .unwrap();
            (identity, provider, group)
        })
        .collect();
    let (member, member_provider, member_group) = joined.remove(0);
    Setup {
        founder,
        founder_provider,
        founder_group,
        member,
        member_provider,
        member_group,
        relay,
        welcome_len: welcome.len(),
        others: joined,
    }
}

fn baseline(c: &mut Criterion) {
    use ed25519_dalek::{Signer, Verifier};
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let verifying = key.verifying_key();
    let message = [0x5a_u8; 1024];
    c.bench_function("mls/baseline_ed25519_sign_verify", |b| {
        b.iter(|| {
            let signature = key.sign(black_box(&message));
            verifying.verify(&message, &signature).unwrap();
        })
    });
}

fn commits(c: &mut Criterion) {
    for size in [10usize, 100, 1000] {
        let mut setup = group_of(size);
        let cold = setup
            .founder_group
            .self_update(&setup.founder_provider, &setup.founder)
            .unwrap();
        setup
            .founder_group
            .discard_pending(&setup.founder_provider)
            .unwrap();
        setup.warm_up();
        let sample = setup
            .founder_group
            .self_update(&setup.founder_provider, &setup.founder)
            .unwrap();
        setup
            .founder_group
            .discard_pending(&setup.founder_provider)
            .unwrap();
        eprintln!(
            "mls/{size} members: self-update commit {} bytes ({} bytes right after one bulk \
             Add), Welcome for {} joiners {} bytes",
            sample.commit.len(),
            cold.commit.len(),
            size - 1,
            setup.welcome_len
        );

        let mut group = c.benchmark_group(format!("mls/{size}_members"));
        group.sample_size(10);
        group.bench_function("commit_create_and_merge", |b| {
            b.iter(|| {
                let outgoing = setup
                    .founder_group
                    .self_update(&setup.founder_provider, &setup.founder)
                    .unwrap();
                setup
                    .founder_group
                    .merge_pending(&setup.founder_provider)
                    .unwrap();
                black_box(outgoing);
            })
        });

        // Processing and checking need commits for the receiver's current epoch: commits are
        // made in setup (by a fresh committer state in step with the receiver) and consumed in
        // order.
        let mut setup = group_of(size);
        setup.warm_up();
        group.bench_function("commit_process_by_member", |b| {
            b.iter_batched(
                || {
                    let outgoing = setup
                        .member_group
                        .self_update(&setup.member_provider, &setup.member)
                        .unwrap();
                    setup
                        .member_group
                        .merge_pending(&setup.member_provider)
                        .unwrap();
                    outgoing.commit
                },
                |commit| {
                    setup
                        .founder_group
                        .receive(&setup.founder_provider, &commit, NOW)
                        .unwrap();
                },
                BatchSize::PerIteration,
            )
        });

        let mut setup = group_of(size);
        setup.warm_up();
        group.bench_function("commit_check_by_relay", |b| {
            b.iter_batched(
                || {
                    let outgoing = setup
                        .member_group
                        .self_update(&setup.member_provider, &setup.member)
                        .unwrap();
                    setup
                        .member_group
                        .merge_pending(&setup.member_provider)
                        .unwrap();
                    outgoing.commit
                },
                |commit| {
                    let checked = setup.relay.check_commit(&commit, NOW).unwrap();
                    setup.relay.merge(checked).unwrap();
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, baseline, commits);
criterion_main!(benches);
