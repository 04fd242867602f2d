//! `sotto members`, `sotto verify`, `sotto kick`, `sotto rekey` and `sotto leave`: who is in
//! the server's encryption group, checking them, removing them, rotating our keys, leaving.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sotto_client::group::GroupState;
use sotto_client::{Profile, Session};
use sotto_net::client::{ClientError, ClientEvent};
use sotto_net::group::{GroupMember, SafetyNumber};
use sotto_net::invite::encode_b64;
use sotto_net::proto::control::PublicKey;
use sotto_net::transport::close_code;

use crate::session;

/// How long to wait for work in flight (joiners being let in) before listing.
const SETTLE: Duration = Duration::from_secs(5);

/// A member's short id: the first 11 characters of its key in base64url.
pub(crate) fn short_id(key: &PublicKey) -> String {
    encode_b64(key)[..11].to_owned()
}

async fn member_session(server: Option<&str>) -> Result<(Profile, Session, Vec<GroupMember>)> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    session.group.join_within(crate::GROUP_WAIT).await;
    session.group.wait_idle(SETTLE).await;
    let members = match session.group.state() {
        GroupState::Member { members, .. } => members,
        other => bail!("{}", crate::describe_group(&other)),
    };
    Ok((profile, session, members))
}

/// Asks `question` on the terminal; true for a yes.
fn confirm(question: &str) -> Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The one member whose short id starts with `prefix`.
fn find<'a>(members: &'a [GroupMember], prefix: &str) -> Result<&'a GroupMember> {
    let matches: Vec<_> = members
        .iter()
        .filter(|member| encode_b64(&member.public_key).starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!("no member's id starts with `{prefix}`; `sotto members` lists them"),
        _ => bail!("several members' ids start with `{prefix}`; give more characters"),
    }
}

/// Lists the group's members with their verification state.
pub(crate) async fn list(server: Option<&str>) -> Result<()> {
    let (profile, session, members) = member_session(server).await?;
    let own = session.group.own_key();
    let verified = profile.verified_keys()?;
    if let GroupState::Member {
        epoch,
        privacy_code,
        ..
    } = session.group.state()
    {
        println!(
            "{} member(s), epoch {epoch}, privacy code {privacy_code}",
            members.len()
        );
    }
    for member in &members {
        let mut notes = Vec::new();
        if member.public_key == own {
            notes.push("you");
        } else if verified.contains(&member.public_key) {
            notes.push("verified");
        } else {
            notes.push("not verified");
        }
        if member.is_admin {
            notes.push("admin");
        }
        println!("  {}  ({})", short_id(&member.public_key), notes.join(", "));
    }
    Ok(())
}

/// Prints the safety number shared with a member; marks it verified on confirmation.
pub(crate) async fn verify(server: Option<&str>, who: &str, yes: bool) -> Result<()> {
    let (profile, session, members) = member_session(server).await?;
    let member = find(&members, who)?;
    let own = session.group.own_key();
    if member.public_key == own {
        bail!("that is you; pick another member");
    }
    let number = SafetyNumber::between(&own, &member.public_key);
    println!("Safety number with {}:", short_id(&member.public_key));
    println!("{number}");
    println!(
        "Compare it with theirs (in person or on a call you trust). It is the same on both sides."
    );
    let confirmed = yes || confirm("Do the numbers match?")?;
    if confirmed {
        profile.mark_verified(&member.public_key)?;
        println!("Marked {} as verified.", short_id(&member.public_key));
    } else {
        println!(
            "Not marked. If the numbers differ, someone may be in the middle: do not trust this key."
        );
    }
    Ok(())
}

/// Removes a member from the server (admins only).
pub(crate) async fn kick(server: Option<&str>, who: &str) -> Result<()> {
    let (_profile, session, members) = member_session(server).await?;
    let member = find(&members, who)?;
    if member.public_key == session.group.own_key() {
        bail!("you cannot remove yourself; leave the server instead");
    }
    session
        .group
        .remove(vec![member.public_key])
        .await
        .with_context(|| format!("could not remove {}", short_id(&member.public_key)))?;
    println!(
        "Removed {} from the server: it can no longer join calls or decrypt anything sent from now on.",
        short_id(&member.public_key)
    );
    Ok(())
}

/// Rotates our keys in the server's group now (a self-update commit).
pub(crate) async fn rekey(server: Option<&str>) -> Result<()> {
    let (_profile, session, _members) = member_session(server).await?;
    session
        .group
        .self_update()
        .await
        .context("could not rotate your keys; try again in a moment")?;
    if let GroupState::Member {
        epoch,
        privacy_code,
        ..
    } = session.group.state()
    {
        println!("Rotated your keys: epoch {epoch}, privacy code {privacy_code}");
    }
    Ok(())
}

/// Waits until we are out of the group: its state says so, or the relay ends our connection
/// because a commit removed us (it may do so before we read the commit).
async fn removal(session: &mut Session) -> bool {
    let mut group = session.group.clone();
    let removed_from_group = group.wait_for(|state| *state == GroupState::Removed);
    tokio::pin!(removed_from_group);
    loop {
        tokio::select! {
            state = &mut removed_from_group => return state.is_ok(),
            event = session.events.recv() => match event {
                Some(ClientEvent::Stopped(error)) => {
                    return matches!(
                        *error,
                        ClientError::ClosedByRelay { code: close_code::REFUSED, .. }
                    );
                }
                Some(_) => {}
                None => return false,
            },
        }
    }
}

/// How long `sotto leave` waits for a member to commit our removal.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// Leaves a server: asks the group to remove us and forgets the server on this device.
pub(crate) async fn leave(server: Option<&str>, yes: bool) -> Result<()> {
    let (profile, mut session, _members) = member_session(server).await?;
    let name = session.server.name.clone();
    let confirmed = yes
        || confirm(&format!(
            "Leave \"{name}\"? You will need a new invite to come back."
        ))?;
    if !confirmed {
        println!("Still in \"{name}\".");
        return Ok(());
    }
    session
        .group
        .leave()
        .await
        .context("could not ask to leave; try again in a moment")?;
    let removed = tokio::time::timeout(LEAVE_WAIT, removal(&mut session))
        .await
        .unwrap_or(false);
    profile.forget_server(&name)?;
    if removed {
        println!("Left \"{name}\": you are out of its encryption group and it is forgotten here.");
    } else {
        println!(
            "Asked to leave \"{name}\" and forgot it here. No other member is online to remove \
             you from its encryption group yet; the first who comes online does."
        );
    }
    Ok(())
}
