//! The client session on a simulated clock, fed the frames a relay would send.

use std::time::{Duration, Instant};

use super::*;

const VOICE: u32 = 2;
const OTHER_VOICE: u32 = 5;

fn participant(slot: u16, name: &str) -> Participant {
    Participant {
        slot,
        member_id: u32::from(slot) + 100,
        public_key: [slot as u8; 32],
        display_name: name.into(),
        session_salt: [slot as u8; 16],
    }
}

fn sent(session: &mut ClientSession) -> Vec<ControlFrame> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn events(session: &mut ClientSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// The roster after each roster event, as names in slot order, kept the way a front end would.
fn roster_names(events: &[SessionEvent]) -> Vec<Vec<String>> {
    let mut roster = std::collections::BTreeMap::new();
    let mut seen = Vec::new();
    for event in events {
        match event {
            SessionEvent::Roster { participants, .. } => {
                roster = participants.iter().map(|p| (p.slot, p.clone())).collect();
            }
            SessionEvent::RosterChanged { joined, left, .. } => {
                for slot in left {
                    roster.remove(slot);
                }
                for participant in joined {
                    roster.insert(participant.slot, participant.clone());
                }
            }
            _ => continue,
        }
        seen.push(roster.values().map(|p| p.display_name.clone()).collect());
    }
    seen
}

/// The relay seats us in `channel_id` with `slot`.
fn granted(session: &mut ClientSession, channel_id: u32, slot: u16) {
    session
        .handle_frame(ControlFrame::VoiceJoined { channel_id, slot })
        .unwrap();
}

fn connected_session(now: Instant) -> ClientSession {
    let mut session = ClientSession::new(Backoff::default());
    session.connected(now, [0; 16]);
    assert!(sent(&mut session).is_empty(), "nothing to rejoin yet");
    session
}

#[test]
fn a_join_is_answered_then_the_roster_arrives_whole_then_as_changes() {
    let mut session = connected_session(Instant::now());
    session.join_voice(VOICE, [7; 16]);
    assert_eq!(
        sent(&mut session),
        vec![ControlFrame::JoinVoice {
            channel_id: VOICE,
            session_salt: [7; 16]
        }]
    );
    granted(&mut session, VOICE, 1);
    session
        .handle_frame(ControlFrame::Roster {
            channel_id: VOICE,
            participants: vec![participant(0, "ada"), participant(1, "me")],
        })
        .unwrap();
    // Bob takes slot 2, Ada leaves, and Cyd takes Ada's slot, all in one coalesced change.
    session
        .handle_frame(ControlFrame::RosterChanged {
            channel_id: VOICE,
            joined: vec![participant(2, "bob"), participant(0, "cyd")],
            left: vec![0],
        })
        .unwrap();
    // A slot that leaves and is not retaken disappears.
    session
        .handle_frame(ControlFrame::RosterChanged {
            channel_id: VOICE,
            joined: vec![],
            left: vec![2, 40],
        })
        .unwrap();
    let events = events(&mut session);
    assert_eq!(
        events[0],
        SessionEvent::VoiceJoined {
            channel_id: VOICE,
            slot: 1,
            session_salt: [7; 16]
        }
    );
    assert_eq!(
        roster_names(&events),
        vec![
            vec!["ada", "me"],
            vec!["cyd", "me", "bob"],
            vec!["cyd", "me"],
        ]
    );
}

#[test]
fn answers_are_matched_to_requests_in_order() {
    let mut session = connected_session(Instant::now());
    session.join_voice(VOICE, [1; 16]);
    let invite = session.create_invite(Some(60), Some(1), None).unwrap();
    session.join_voice(OTHER_VOICE, [2; 16]);
    assert_eq!(sent(&mut session).len(), 3);
    // The first join is refused, the invite made, the second join admitted.
    session
        .handle_frame(ControlFrame::Error {
            code: ErrorCode::ChannelFull,
            message: "full".into(),
        })
        .unwrap();
    session
        .handle_frame(ControlFrame::InviteCreated {
            token: [9; 16],
            expires_at: None,
            max_uses: Some(1),
        })
        .unwrap();
    granted(&mut session, OTHER_VOICE, 0);
    assert_eq!(
        events(&mut session),
        vec![
            SessionEvent::RequestFailed {
                request: None,
                code: ErrorCode::ChannelFull,
                message: "full".into()
            },
            SessionEvent::InviteCreated {
                request: invite,
                token: [9; 16]
            },
            SessionEvent::VoiceJoined {
                channel_id: OTHER_VOICE,
                slot: 0,
                session_salt: [2; 16]
            },
        ]
    );
    assert_eq!(session.wanted_voice(), Some(OTHER_VOICE));
}

#[test]
fn answers_nobody_asked_for_are_protocol_violations() {
    let mut session = connected_session(Instant::now());
    assert_eq!(
        session.handle_frame(ControlFrame::VoiceJoined {
            channel_id: VOICE,
            slot: 0
        }),
        Err(SessionError::Unsolicited("VoiceJoined"))
    );
    session.join_voice(VOICE, [1; 16]);
    assert_eq!(
        session.handle_frame(ControlFrame::VoiceJoined {
            channel_id: OTHER_VOICE,
            slot: 0
        }),
        Err(SessionError::WrongChannel {
            asked: VOICE,
            got: OTHER_VOICE
        })
    );
    session.join_voice(VOICE, [1; 16]);
    assert_eq!(
        session.handle_frame(ControlFrame::InviteCreated {
            token: [0; 16],
            expires_at: None,
            max_uses: None
        }),
        Err(SessionError::Unsolicited("InviteCreated"))
    );
    assert_eq!(
        session.handle_frame(ControlFrame::LeaveVoice),
        Err(SessionError::Unexpected("LeaveVoice"))
    );
}

#[test]
fn rosters_of_another_channel_or_after_leaving_are_ignored() {
    let mut session = connected_session(Instant::now());
    // Before any join.
    session
        .handle_frame(ControlFrame::Roster {
            channel_id: VOICE,
            participants: vec![participant(0, "ada")],
        })
        .unwrap();
    session.join_voice(VOICE, [1; 16]);
    granted(&mut session, VOICE, 0);
    session
        .handle_frame(ControlFrame::RosterChanged {
            channel_id: OTHER_VOICE,
            joined: vec![participant(3, "stale")],
            left: vec![],
        })
        .unwrap();
    session.leave_voice();
    session
        .handle_frame(ControlFrame::RosterChanged {
            channel_id: VOICE,
            joined: vec![participant(3, "late")],
            left: vec![],
        })
        .unwrap();
    let events = events(&mut session);
    assert!(roster_names(&events).is_empty(), "{events:?}");
    assert_eq!(sent(&mut session).last(), Some(&ControlFrame::LeaveVoice));
}

#[test]
fn a_refused_join_is_not_retried_on_reconnect_but_a_granted_one_is() {
    let start = Instant::now();
    let mut session = connected_session(start);
    session.join_voice(VOICE, [1; 16]);
    session
        .handle_frame(ControlFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        })
        .unwrap();
    assert_eq!(session.wanted_voice(), None);
    session.join_voice(VOICE, [2; 16]);
    granted(&mut session, VOICE, 4);
    sent(&mut session);
    assert!(matches!(
        session.lost(start + Duration::from_secs(1), Failure::Transient),
        Reconnect::After(_)
    ));
    assert_eq!(session.wanted_voice(), Some(VOICE));
    session.connected(start + Duration::from_secs(2), [3; 16]);
    assert_eq!(
        sent(&mut session),
        vec![ControlFrame::JoinVoice {
            channel_id: VOICE,
            session_salt: [3; 16]
        }],
        "rejoins with a fresh salt"
    );
}

#[test]
fn while_disconnected_joins_are_remembered_and_invites_refused() {
    let now = Instant::now();
    let mut session = ClientSession::new(Backoff::default());
    assert_eq!(session.create_invite(None, None, None), None);
    session.join_voice(VOICE, [1; 16]);
    session.leave_voice();
    session.join_voice(OTHER_VOICE, [2; 16]);
    assert!(sent(&mut session).is_empty());
    session.connected(now, [5; 16]);
    assert_eq!(
        sent(&mut session),
        vec![ControlFrame::JoinVoice {
            channel_id: OTHER_VOICE,
            session_salt: [5; 16]
        }]
    );
}

#[test]
fn losing_the_connection_abandons_requests_in_flight() {
    let now = Instant::now();
    let mut session = connected_session(now);
    let first = session.create_invite(None, None, None).unwrap();
    let second = session.create_invite(None, None, None).unwrap();
    session.lost(now, Failure::Transient);
    assert_eq!(
        events(&mut session),
        vec![
            SessionEvent::RequestAbandoned(first),
            SessionEvent::RequestAbandoned(second)
        ]
    );
    // A late answer from the old connection finds nothing waiting.
    session.connected(now, [0; 16]);
    assert!(
        session
            .handle_frame(ControlFrame::InviteCreated {
                token: [0; 16],
                expires_at: None,
                max_uses: None
            })
            .is_err()
    );
}

#[test]
fn backoff_doubles_to_its_cap_and_resets_after_a_stable_connection() {
    let mut now = Instant::now();
    let mut session = ClientSession::new(Backoff::default());
    let mut waits = Vec::new();
    for _ in 0..7 {
        // Attempts that fail, and connections that drop at once, both keep backing off.
        session.connected(now, [0; 16]);
        match session.lost(now + Duration::from_millis(50), Failure::Transient) {
            Reconnect::After(wait) => {
                waits.push(wait.as_millis());
                now += wait + Duration::from_millis(50);
            }
            Reconnect::Stop => panic!("transient failures never stop the client"),
        }
    }
    assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
    session.connected(now, [0; 16]);
    now += STABLE_CONNECTION;
    assert_eq!(
        session.lost(now, Failure::Transient),
        Reconnect::After(Duration::from_millis(100))
    );
}

#[test]
fn permanent_failures_stop_at_once_and_suspect_ones_after_a_few_tries() {
    let now = Instant::now();
    let mut session = ClientSession::new(Backoff::default());
    assert_eq!(session.lost(now, Failure::Permanent), Reconnect::Stop);

    let mut session = ClientSession::new(Backoff::default());
    for _ in 0..SUSPECT_RETRIES {
        assert!(matches!(
            session.lost(now, Failure::Suspect),
            Reconnect::After(_)
        ));
    }
    assert_eq!(session.lost(now, Failure::Suspect), Reconnect::Stop);

    // A transient failure in between shows the relay works: the count starts again.
    let mut session = ClientSession::new(Backoff::default());
    for _ in 0..SUSPECT_RETRIES {
        session.lost(now, Failure::Suspect);
    }
    session.lost(now, Failure::Transient);
    for _ in 0..SUSPECT_RETRIES {
        assert!(matches!(
            session.lost(now, Failure::Suspect),
            Reconnect::After(_)
        ));
    }
}

#[test]
fn leaving_before_the_answer_makes_the_late_answer_change_nothing() {
    let mut session = connected_session(Instant::now());
    session.join_voice(VOICE, [1; 16]);
    session.join_voice(OTHER_VOICE, [2; 16]);
    session.leave_voice();
    session.join_voice(VOICE, [3; 16]);
    sent(&mut session);
    // The first join is granted, the second refused, both after we left: nothing happens.
    granted(&mut session, VOICE, 0);
    session
        .handle_frame(ControlFrame::Roster {
            channel_id: VOICE,
            participants: vec![participant(0, "me")],
        })
        .unwrap();
    session
        .handle_frame(ControlFrame::Error {
            code: ErrorCode::ChannelFull,
            message: "full".into(),
        })
        .unwrap();
    assert!(events(&mut session).is_empty());
    // The join made after leaving is answered as usual.
    granted(&mut session, VOICE, 2);
    assert_eq!(
        events(&mut session),
        vec![SessionEvent::VoiceJoined {
            channel_id: VOICE,
            slot: 2,
            session_salt: [3; 16]
        }]
    );
}

#[test]
fn a_refused_switch_keeps_us_in_the_channel_we_were_in() {
    let now = Instant::now();
    let mut session = connected_session(now);
    session.join_voice(VOICE, [1; 16]);
    granted(&mut session, VOICE, 0);
    session.join_voice(OTHER_VOICE, [2; 16]);
    session
        .handle_frame(ControlFrame::Error {
            code: ErrorCode::ChannelFull,
            message: "full".into(),
        })
        .unwrap();
    assert_eq!(session.wanted_voice(), Some(VOICE));
    // Rosters of the channel we are still in keep coming through.
    session
        .handle_frame(ControlFrame::RosterChanged {
            channel_id: VOICE,
            joined: vec![participant(1, "bob")],
            left: vec![],
        })
        .unwrap();
    assert_eq!(roster_names(&events(&mut session)), vec![vec!["bob"]]);
    session.lost(now, Failure::Transient);
    session.connected(now, [9; 16]);
    assert_eq!(
        sent(&mut session).last(),
        Some(&ControlFrame::JoinVoice {
            channel_id: VOICE,
            session_salt: [9; 16]
        })
    );
}
