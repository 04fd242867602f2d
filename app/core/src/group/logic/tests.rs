//! The member's decisions, driven frame by frame. The relay here is a test double built on the
//! real delivery-service checks (`DeliveryGroup`): the relay itself, with its store, is tested
//! against real clients in `tests/group.rs` and in the relay's crate.

use std::collections::HashMap;

use sotto_net::group::{DeliveryGroup, InviteGrant, InviteSecret, server_group_id};
use sotto_net::proto::control::{ChannelInfo, ChannelKind};

use super::*;

const SERVER: u32 = 1;

fn channels() -> Vec<ChannelInfo> {
    vec![ChannelInfo {
        id: 2,
        name: "voice".into(),
        kind: ChannelKind::Voice,
        position: 0,
        category: String::new(),
        topic: String::new(),
    }]
}

/// A member's logic with the disk it writes to.
struct Device {
    identity: Identity,
    logic: GroupLogic,
    disk: HashMap<Vec<u8>, Zeroizing<Vec<u8>>>,
    pending: Option<(u64, Vec<u8>)>,
    facts: HashMap<&'static str, Vec<u8>>,
    /// KeyPackage uploads and claims, kept apart from the group traffic the relay double
    /// answers.
    key_package_frames: Vec<ControlFrame>,
    /// Whether KeyPackage queries are answered with "plenty stored" at once.
    relay_holds_key_packages: bool,
}

impl Device {
    fn new(identity: Identity, invite: Option<InviteSecret>) -> Self {
        Self {
            logic: GroupLogic::new(identity.clone(), GroupProvider::new(), invite),
            identity,
            disk: HashMap::new(),
            pending: None,
            facts: HashMap::new(),
            key_package_frames: Vec::new(),
            relay_holds_key_packages: true,
        }
    }

    /// Writes what the logic changed, then returns the frames it sends.
    fn flush(&mut self) -> Vec<ControlFrame> {
        let (delta, changes) = self.logic.take_changes();
        for key in delta.deletes {
            self.disk.remove(&key);
        }
        self.disk.extend(delta.upserts);
        for change in changes {
            match change {
                StoreChange::PendingCommit { commit, .. } => self.pending = commit,
                StoreChange::Fact { name, value, .. } => match value {
                    Some(value) => {
                        self.facts.insert(name, value);
                    }
                    None => {
                        self.facts.remove(name);
                    }
                },
                StoreChange::InviteSecret { .. } | StoreChange::TextSecret { .. } => {}
            }
        }
        let (key_packages, mut group): (Vec<_>, Vec<_>) =
            std::iter::from_fn(|| self.logic.poll_transmit()).partition(|frame| {
                matches!(
                    frame,
                    ControlFrame::UploadKeyPackages { .. } | ControlFrame::ClaimKeyPackage { .. }
                )
            });
        if self.relay_holds_key_packages {
            // This relay double holds plenty of our KeyPackages: it says so to each query.
            for frame in key_packages {
                if let ControlFrame::UploadKeyPackages { .. } = frame {
                    self.logic.handle(ControlFrame::KeyPackagesStored {
                        available: KEY_PACKAGE_TARGET,
                        last_resort: true,
                    });
                    group.extend(self.flush());
                }
            }
        } else {
            self.key_package_frames.extend(key_packages);
        }
        group
    }

    fn handle(&mut self, frame: ControlFrame) -> Vec<ControlFrame> {
        self.logic.handle(frame);
        self.flush()
    }

    /// The process dies; a new one starts from what is on disk and reconnects.
    fn restart(&mut self) -> Vec<ControlFrame> {
        let provider = GroupProvider::restore(self.disk.clone());
        self.logic = GroupLogic::new(self.identity.clone(), provider, None);
        let stored = StoredGroup {
            pending_commit: self.pending.clone(),
            invite: None,
            facts: self
                .facts
                .iter()
                .map(|(name, value)| (name.to_string(), Zeroizing::new(value.clone())))
                .collect(),
        };
        self.logic.connected(SERVER, &channels(), stored);
        self.flush()
    }

    fn events(&mut self) -> Vec<LogicEvent> {
        std::iter::from_fn(|| self.logic.poll_event()).collect()
    }
}

fn group_id() -> Vec<u8> {
    server_group_id(SERVER)
}

/// The relay double: checks commits and keeps one per epoch, as the relay's store does.
#[derive(Default)]
struct Relay {
    group: Option<DeliveryGroup>,
    commits: Vec<Vec<u8>>,
}

impl Relay {
    fn status(&self, grant: Option<Vec<u8>>) -> ControlFrame {
        ControlFrame::GroupStatus {
            group_id: group_id(),
            epoch: self.group.as_ref().map(DeliveryGroup::epoch),
            grant,
        }
    }

    /// Takes a member's frame; returns the answer to the sender.
    fn take(&mut self, sender: &Identity, frame: ControlFrame) -> Option<ControlFrame> {
        match frame {
            ControlFrame::GroupCreate { group_info, .. } => {
                self.group = Some(
                    DeliveryGroup::from_group_info(&group_info, &sender.public_key()).unwrap(),
                );
                Some(self.status(None))
            }
            ControlFrame::GroupCommit { epoch, commit, .. } => {
                let group = self.group.as_mut().unwrap();
                match group.check_commit(&commit, unix_now()) {
                    Ok(checked) => {
                        group.merge(checked).unwrap();
                        self.commits.push(commit);
                        Some(ControlFrame::CommitAccepted {
                            group_id: group_id(),
                            epoch,
                        })
                    }
                    Err(error) => Some(ControlFrame::GroupRefused {
                        group_id: group_id(),
                        epoch,
                        current_epoch: group.epoch(),
                        reason: error.to_string(),
                    }),
                }
            }
            _ => None,
        }
    }

    /// The commit that ended `epoch`, as the relay hands it out.
    fn message(&self, epoch: u64) -> ControlFrame {
        ControlFrame::GroupMessage {
            group_id: group_id(),
            epoch,
            message: self.commits[epoch as usize].clone(),
        }
    }
}

/// The owner's device, with the group created and stored at the relay.
fn owner(relay: &mut Relay) -> Device {
    let mut ada = Device::new(Identity::generate(), None);
    ada.logic
        .connected(SERVER, &channels(), StoredGroup::default());
    assert!(matches!(
        ada.flush()[..],
        [ControlFrame::GroupSync { epoch: None, .. }]
    ));
    let create = ada.handle(relay.status(None));
    let answer = relay
        .take(&ada.identity, create.into_iter().next().unwrap())
        .unwrap();
    assert!(ada.handle(answer).is_empty());
    assert!(matches!(
        ada.logic.state(),
        GroupState::Member { epoch: 0, .. }
    ));
    ada
}

#[test]
fn a_commit_the_relay_accepted_while_we_were_down_is_merged_after_the_restart() {
    let mut relay = Relay::default();
    let mut ada = owner(&mut relay);
    ada.logic.self_update().unwrap();
    let sent = ada.flush();
    assert!(
        ada.pending.is_some(),
        "the commit is on disk before it is sent"
    );
    // The relay stores it, but Ada dies before hearing so.
    relay.take(&ada.identity, sent.into_iter().next().unwrap());

    let sync = ada.restart();
    assert!(matches!(
        sync[..],
        [ControlFrame::GroupSync { epoch: Some(0), .. }]
    ));
    assert!(ada.logic.is_busy());
    // The relay hands back what she missed (her own commit), then its status.
    assert!(ada.handle(relay.message(0)).is_empty());
    ada.handle(relay.status(None));
    assert_eq!(ada.logic.epoch(), Some(1));
    assert_eq!(ada.pending, None);
    assert!(!ada.logic.is_busy());
    assert!(
        ada.events()
            .iter()
            .any(|event| matches!(event, LogicEvent::EpochChanged { epoch: 1, .. })),
        "keys follow the merged epoch"
    );
}

#[test]
fn a_commit_the_relay_never_got_is_dropped_after_the_restart_and_work_goes_on() {
    let mut relay = Relay::default();
    let mut ada = owner(&mut relay);
    ada.logic.self_update().unwrap();
    let _lost = ada.flush();
    ada.restart();
    ada.handle(relay.status(None));
    assert_eq!(ada.logic.epoch(), Some(0));
    assert_eq!(ada.pending, None, "the lost commit is forgotten");
    assert!(!ada.logic.is_busy());
    ada.logic.self_update().unwrap();
    let sent = ada.flush();
    let answer = relay
        .take(&ada.identity, sent.into_iter().next().unwrap())
        .unwrap();
    ada.handle(answer);
    assert_eq!(ada.logic.epoch(), Some(1));
}

#[test]
fn a_joiner_is_admitted_by_a_member_and_a_withheld_commit_is_asked_for_again() {
    let mut relay = Relay::default();
    let mut ada = owner(&mut relay);
    let secret = InviteSecret::generate();
    let grant = InviteGrant::sign(&ada.identity, &group_id(), &secret, unix_now() + 600).unwrap();

    let mut bob = Device::new(Identity::generate(), Some(secret));
    bob.logic
        .connected(SERVER, &channels(), StoredGroup::default());
    bob.flush();
    let join = bob.handle(relay.status(Some(grant.encode())));
    let [ControlFrame::JoinGroup { request, .. }] = &join[..] else {
        panic!("expected a join request, got {join:?}")
    };
    bob.handle(ControlFrame::JoinPending {
        group_id: group_id(),
        members_online: 1,
    });
    assert_eq!(
        bob.logic.state(),
        &GroupState::WaitingToBeLetIn { members_online: 1 }
    );

    // Ada admits him: the commit carries the Welcome.
    let welcome = admit_through(&mut relay, &mut ada, request);
    let after_join = bob.handle(ControlFrame::GroupWelcome {
        group_id: group_id(),
        welcome,
    });
    assert!(matches!(
        after_join[..],
        [ControlFrame::GroupSync { epoch: Some(1), .. }]
    ));
    assert_eq!(bob.logic.epoch(), Some(1));
    let codes = |device: &Device| match device.logic.state() {
        GroupState::Member { privacy_code, .. } => privacy_code.clone(),
        other => panic!("not a member: {other:?}"),
    };
    assert_eq!(codes(&ada), codes(&bob));

    // Two commits later, the relay hands Bob only the second one.
    for _ in 0..2 {
        ada.logic.self_update().unwrap();
        let sent = ada.flush();
        let answer = relay
            .take(&ada.identity, sent.into_iter().next().unwrap())
            .unwrap();
        ada.handle(answer);
    }
    bob.events();
    let asked = bob.handle(relay.message(2));
    assert!(matches!(
        asked[..],
        [ControlFrame::GroupSync { epoch: Some(1), .. }]
    ));
    assert!(
        bob.events().iter().any(
            |event| matches!(event, LogicEvent::Problem(message) if message.contains("skipped a commit"))
        ),
        "Bob says the relay withheld a commit"
    );
    assert_eq!(bob.logic.epoch(), Some(1), "nothing applied out of order");
    // Given what it missed, Bob catches up.
    bob.handle(relay.message(1));
    bob.handle(relay.message(2));
    assert_eq!(bob.logic.epoch(), Some(3));
    assert_eq!(codes(&ada), codes(&bob));
}

/// Sends what `device` committed to the relay and hands it the answer.
fn commit_through(relay: &mut Relay, device: &mut Device, sent: Vec<ControlFrame>) {
    let [commit @ ControlFrame::GroupCommit { .. }] = &sent[..] else {
        panic!("expected a commit, got {sent:?}")
    };
    let answer = relay.take(&device.identity, commit.clone()).unwrap();
    device.handle(answer);
}

/// `admitter` lets in whoever sent `request`; returns the Welcome of the accepted commit.
fn admit_through(relay: &mut Relay, admitter: &mut Device, request: &[u8]) -> Vec<u8> {
    let sent = admitter.handle(ControlFrame::JoinRequested {
        group_id: group_id(),
        request: request.to_vec(),
    });
    let [ControlFrame::GroupCommit { welcome, .. }] = &sent[..] else {
        panic!("expected a commit, got {sent:?}")
    };
    let welcome = welcome.clone().expect("an Add comes with its Welcome");
    commit_through(relay, admitter, sent);
    welcome
}

fn problems(device: &mut Device) -> Vec<String> {
    device
        .events()
        .into_iter()
        .filter_map(|event| match event {
            LogicEvent::Problem(message) => Some(message),
            _ => None,
        })
        .collect()
}

#[test]
fn keys_rotate_after_seven_days_or_a_thousand_messages_also_across_a_restart() {
    let mut relay = Relay::default();
    let mut ada = owner(&mut relay);
    let start = unix_now();

    ada.logic.tick(start + ROTATE_AFTER_SECS - 60);
    assert!(ada.flush().is_empty(), "not due yet");
    // The clock is kept on disk: a restart does not reset it.
    ada.restart();
    ada.handle(relay.status(None));
    ada.logic.tick(start + ROTATE_AFTER_SECS + 1);
    let sent = ada.flush();
    commit_through(&mut relay, &mut ada, sent);
    assert_eq!(ada.logic.epoch(), Some(1));
    assert!(ada.events().contains(&LogicEvent::CommitSettled {
        purpose: Purpose::Rotation,
        outcome: Ok(()),
    }));
    ada.logic.tick(start + ROTATE_AFTER_SECS + 2);
    assert!(ada.flush().is_empty(), "rotated just now");

    // A thousand messages bring the next rotation forward.
    let now = unix_now();
    ada.logic.note_sent(ROTATE_AFTER_MESSAGES - 1);
    ada.logic.tick(now);
    assert!(ada.flush().is_empty());
    ada.logic.note_sent(1);
    assert!(ada.logic.rotation_due(now));
    assert!(
        ada.flush().is_empty(),
        "the count is saved; the commit waits for a tick"
    );
    ada.restart();
    ada.handle(relay.status(None));
    ada.logic.tick(now);
    let sent = ada.flush();
    commit_through(&mut relay, &mut ada, sent);
    assert_eq!(ada.logic.epoch(), Some(2));
    assert!(!ada.logic.rotation_due(now));
}

#[test]
fn a_swapped_grant_and_an_unasked_welcome_are_refused_and_said() {
    let mut relay = Relay::default();
    let mut ada = owner(&mut relay);
    let secret = InviteSecret::generate();
    let mut bob = Device::new(Identity::generate(), Some(secret.clone()));
    bob.logic
        .connected(SERVER, &channels(), StoredGroup::default());
    bob.flush();
    bob.events();

    // The relay hands Bob a grant for another invite: he sends no request and says why.
    let other = InviteGrant::sign(
        &ada.identity,
        &group_id(),
        &InviteSecret::generate(),
        unix_now() + 600,
    )
    .unwrap();
    assert!(bob.handle(relay.status(Some(other.encode()))).is_empty());
    assert!(
        problems(&mut bob)
            .iter()
            .any(|p| p.contains("does not hold"))
    );

    // A grant signed for another group is refused the same way.
    let elsewhere =
        InviteGrant::sign(&ada.identity, b"sotto/server/99", &secret, unix_now() + 600).unwrap();
    assert!(
        bob.handle(relay.status(Some(elsewhere.encode())))
            .is_empty()
    );
    assert!(
        problems(&mut bob)
            .iter()
            .any(|p| p.contains("does not hold"))
    );

    // A Welcome he never asked for (Ada admitting someone else) is not taken.
    let carol_secret = InviteSecret::generate();
    let grant =
        InviteGrant::sign(&ada.identity, &group_id(), &carol_secret, unix_now() + 600).unwrap();
    let mut carol = Device::new(Identity::generate(), Some(carol_secret));
    carol
        .logic
        .connected(SERVER, &channels(), StoredGroup::default());
    carol.flush();
    let join = carol.handle(relay.status(Some(grant.encode())));
    let [ControlFrame::JoinGroup { request, .. }] = &join[..] else {
        panic!("expected a join request, got {join:?}")
    };
    let welcome = admit_through(&mut relay, &mut ada, request);
    bob.handle(ControlFrame::GroupWelcome {
        group_id: group_id(),
        welcome: welcome.clone(),
    });
    assert_eq!(bob.logic.epoch(), None);
    assert!(
        problems(&mut bob)
            .iter()
            .any(|p| p.contains("never asked for"))
    );

    // Carol, who asked, is let in; her inviter is forgotten once she is in.
    carol.handle(ControlFrame::GroupWelcome {
        group_id: group_id(),
        welcome,
    });
    assert_eq!(carol.logic.epoch(), Some(1));
    assert!(!carol.facts.contains_key(FACT_INVITER));
    assert!(carol.facts.contains_key(FACT_ROTATION));
}

#[test]
fn key_packages_are_topped_up_once_per_connection_and_an_admin_adds_from_one() {
    let mut relay = Relay::default();
    let mut ada = owner(&mut relay);
    // Di joined the server with a link that carries no invite secret.
    let mut di = Device::new(Identity::generate(), None);
    di.relay_holds_key_packages = false;
    di.logic
        .connected(SERVER, &channels(), StoredGroup::default());
    di.flush();
    di.handle(relay.status(None));
    assert_eq!(di.logic.state(), &GroupState::NoInvite);
    let query = di.key_package_frames.remove(0);
    assert_eq!(
        query,
        ControlFrame::UploadKeyPackages {
            key_packages: Vec::new(),
            last_resort: None
        }
    );
    // The relay holds 2: Di makes 8 more and a last-resort one, and no more on this connection.
    di.handle(ControlFrame::KeyPackagesStored {
        available: 2,
        last_resort: false,
    });
    let Some(ControlFrame::UploadKeyPackages {
        key_packages,
        last_resort: Some(_),
    }) = di.key_package_frames.pop()
    else {
        panic!("no upload")
    };
    assert_eq!(key_packages.len(), 8);
    assert!(
        !di.disk.is_empty(),
        "their private keys are on disk before they go out"
    );
    di.handle(ControlFrame::KeyPackagesStored {
        available: 2,
        last_resort: true,
    });
    assert!(di.key_package_frames.is_empty());

    // Ada (an admin) adds Di from one of them.
    ada.relay_holds_key_packages = false;
    ada.logic.add(di.identity.public_key()).unwrap();
    ada.flush();
    assert_eq!(
        ada.key_package_frames.pop(),
        Some(ControlFrame::ClaimKeyPackage {
            member: di.identity.public_key()
        })
    );
    let sent = ada.handle(ControlFrame::KeyPackageClaimed {
        member: di.identity.public_key(),
        key_package: Some(key_packages[0].clone()),
    });
    let [ControlFrame::GroupCommit { welcome, .. }] = &sent[..] else {
        panic!("expected a commit, got {sent:?}")
    };
    let welcome = welcome.clone().unwrap();
    commit_through(&mut relay, &mut ada, sent);
    assert!(ada.events().contains(&LogicEvent::CommitSettled {
        purpose: Purpose::Add,
        outcome: Ok(()),
    }));
    di.handle(ControlFrame::GroupWelcome {
        group_id: group_id(),
        welcome,
    });
    assert_eq!(di.logic.epoch(), Some(1));

    // A member the relay holds nothing for cannot be added, and Ada hears why.
    ada.logic.add([7; 32]).unwrap();
    ada.flush();
    ada.handle(ControlFrame::KeyPackageClaimed {
        member: [7; 32],
        key_package: None,
    });
    assert!(ada.events().iter().any(|event| matches!(
        event,
        LogicEvent::CommitSettled { purpose: Purpose::Add, outcome: Err(why) } if why.contains("no KeyPackage")
    )));
    // Non-admins cannot add.
    assert!(matches!(
        di.logic.add([8; 32]),
        Err(GroupError::NotAdmin(_))
    ));
}

/// A conversation's logic for `identity`, over its own provider, connected and synced at
/// `relay_epoch`.
fn conversation_member(
    identity: &Identity,
    provider: Arc<GroupProvider>,
    info: &ConversationInfo,
    relay_epoch: u64,
) -> (GroupLogic, Vec<ControlFrame>) {
    let mut logic = GroupLogic::for_conversation(identity.clone(), provider, info.clone());
    logic.connected(SERVER, &channels(), StoredGroup::default());
    let mut sent: Vec<ControlFrame> = std::iter::from_fn(|| logic.poll_transmit()).collect();
    logic.handle(ControlFrame::GroupStatus {
        group_id: info.group_id.clone(),
        epoch: Some(relay_epoch),
        grant: None,
    });
    sent.extend(std::iter::from_fn(|| logic.poll_transmit()));
    (logic, sent)
}

#[test]
fn a_conversations_opener_adds_everyone_and_a_welcome_must_come_from_the_opener() {
    let (ada, bob, cy) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let group_id = sotto_net::group::new_conversation_group_id();
    let info = ConversationInfo {
        id: 40,
        group_id: group_id.clone(),
        creator: ada.public_key(),
        members: vec![ada.public_key(), bob.public_key(), cy.public_key()],
    };
    let ada_provider = Arc::new(GroupProvider::new());
    Group::create(&ada_provider, &ada, &group_id).unwrap();
    let (mut ada_logic, sent) = conversation_member(&ada, ada_provider, &info, 0);
    // No KeyPackage upload from a conversation's logic; a claim for the first one missing.
    assert!(matches!(sent[0], ControlFrame::GroupSync { .. }));
    assert_eq!(
        sent[1..],
        [ControlFrame::ClaimKeyPackage {
            member: bob.public_key()
        }]
    );
    assert!(!ada_logic.conversation_ready());

    // Bob's KeyPackage comes: Ada commits his Add with a Welcome.
    let bob_provider = Arc::new(GroupProvider::new());
    let (bob_package, _) = Group::key_package(&bob_provider, &bob, false).unwrap();
    ada_logic.handle(ControlFrame::KeyPackageClaimed {
        member: bob.public_key(),
        key_package: Some(bob_package),
    });
    let Some(ControlFrame::GroupCommit {
        epoch: 0,
        welcome: Some(welcome),
        ..
    }) = ada_logic.poll_transmit()
    else {
        panic!("no commit adding Bob")
    };
    ada_logic.handle(ControlFrame::CommitAccepted {
        group_id: group_id.clone(),
        epoch: 0,
    });
    // Then Cy, who has no KeyPackage at the relay: said, and not asked again and again.
    assert_eq!(
        ada_logic.poll_transmit(),
        Some(ControlFrame::ClaimKeyPackage {
            member: cy.public_key()
        })
    );
    ada_logic.handle(ControlFrame::KeyPackageClaimed {
        member: cy.public_key(),
        key_package: None,
    });
    assert_eq!(ada_logic.poll_transmit(), None);
    assert_eq!(ada_logic.unreachable(), [cy.public_key()]);
    assert!(!ada_logic.conversation_ready());

    // Bob, added: waits without an invite, then takes the Welcome into a group Ada is in.
    let (mut bob_logic, _) = conversation_member(&bob, bob_provider, &info, 1);
    assert_eq!(bob_logic.state(), &GroupState::NoInvite);
    bob_logic.handle(ControlFrame::GroupWelcome {
        group_id: group_id.clone(),
        welcome,
    });
    assert!(matches!(
        bob_logic.state(),
        GroupState::Member { epoch: 1, .. }
    ));
    assert_eq!(
        bob_logic.text_secret(40).map(|(epoch, _)| epoch),
        Some(1),
        "Bob seals with the conversation's own key"
    );

    // A Welcome into a group of the same id that Ada is not in (a relay's own) is refused.
    let mallory = Identity::generate();
    let mallory_provider = GroupProvider::new();
    let mut fake = Group::create(&mallory_provider, &mallory, &group_id).unwrap();
    let cy_provider = Arc::new(GroupProvider::new());
    let (cy_package, _) = Group::key_package(&cy_provider, &cy, false).unwrap();
    let outgoing = fake
        .add_member(&mallory_provider, &mallory, &cy.public_key(), &cy_package)
        .unwrap();
    let (mut cy_logic, _) = conversation_member(&cy, cy_provider, &info, 1);
    cy_logic.handle(ControlFrame::GroupWelcome {
        group_id,
        welcome: outgoing.welcome.unwrap(),
    });
    assert_eq!(cy_logic.state(), &GroupState::NoInvite);
    let problems: Vec<String> = std::iter::from_fn(|| cy_logic.poll_event())
        .filter_map(|event| match event {
            LogicEvent::Problem(message) => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        problems
            .iter()
            .any(|problem| problem.contains("refused the Welcome")),
        "{problems:?}"
    );
}
