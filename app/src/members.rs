//! `sotto members`, `sotto verify`, `sotto admit`, `sotto kick`, `sotto rekey` and `sotto
//! leave`: who is in the server's encryption group, checking them, letting in those who came
//! without an invite secret, removing them, rotating our keys, leaving.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sotto_client::group::GroupState;
use sotto_client::verification::{MemberView, Trust, member_views};
use sotto_client::{Profile, Session};
use sotto_net::client::{ClientError, ClientEvent};
use sotto_net::group::{GroupMember, SafetyNumber};
use sotto_net::invite::encode_b64;
use sotto_net::proto::control::{ListedMember, PublicKey};
use sotto_net::transport::close_code;

use crate::session;

/// How long to wait for work in flight (joiners being let in) before listing.
const SETTLE: Duration = Duration::from_secs(5);

/// A member's short id: the first 11 characters of its key in base64url.
pub(crate) fn short_id(key: &PublicKey) -> String {
    encode_b64(key)[..11].to_owned()
}

/// A session in the server's group, with its members as the front end shows them.
struct Members {
    profile: Profile,
    session: Session,
    views: Vec<MemberView>,
    /// Server members the relay lists who are not in the group yet.
    waiting: Vec<ListedMember>,
}

async fn member_session(server: Option<&str>) -> Result<Members> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    session.group.join_within(crate::GROUP_WAIT).await;
    session.group.wait_idle(SETTLE).await;
    let GroupState::Member { members, .. } = session.group.state() else {
        bail!("{}", crate::describe_group(&session.group.state()));
    };
    let (views, waiting) = views_of(&profile, &session, &members).await?;
    Ok(Members {
        profile,
        session,
        views,
        waiting,
    })
}

/// Names the group's members from the relay's list and says how far each is trusted.
async fn views_of(
    profile: &Profile,
    session: &Session,
    members: &[GroupMember],
) -> Result<(Vec<MemberView>, Vec<ListedMember>)> {
    let listed = session.client.list_members().await.unwrap_or_else(|error| {
        eprintln!("note: the relay did not list the server's members ({error}); names are missing");
        Vec::new()
    });
    Ok(member_views(
        &session.group.own_key(),
        members,
        &listed,
        &profile.verified_keys()?,
    ))
}

/// What to tell the user about members whose verified key changed; empty when none did.
fn key_change_warnings(views: &[MemberView]) -> Vec<String> {
    views
        .iter()
        .filter_map(|view| match view.trust {
            Trust::KeyChanged { verified_key } => {
                let name = view.display_name.as_deref().unwrap_or("?");
                let id = short_id(&view.public_key);
                Some(format!(
                    "{name}'s key changed since you verified it (was {}, now {id}): {name} may have \
                     reinstalled, or someone else is using the name. Compare safety numbers with \
                     `sotto verify {id}`, or accept the new key unchecked with \
                     `sotto verify {id} --accept-change`.",
                    short_id(&verified_key)
                ))
            }
            _ => None,
        })
        .collect()
}

/// Refuses to go on while a verified member's key changed (the user must look first).
pub(crate) async fn refuse_unsettled_key_changes(
    profile: &Profile,
    session: &mut Session,
) -> Result<()> {
    session.group.wait_idle(Duration::from_secs(2)).await;
    let GroupState::Member { members, .. } = session.group.state() else {
        return Ok(());
    };
    let (views, _) = views_of(profile, session, &members).await?;
    let warnings = key_change_warnings(&views);
    if warnings.is_empty() {
        return Ok(());
    }
    bail!("not joining the call: {}", warnings.join("\n"))
}

/// Asks `question` on the terminal; true for a yes.
pub(crate) fn confirm(question: &str) -> Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The one member whose id starts with `who`, or whose name is `who` (ignoring case).
fn find<'a>(members: &'a [MemberView], who: &str) -> Result<&'a MemberView> {
    find_by(
        members,
        who,
        |member| &member.public_key,
        |member| member.display_name.as_deref(),
    )
}

/// [`find`] among the relay's member list.
pub(crate) fn find_listed<'a>(members: &'a [ListedMember], who: &str) -> Result<&'a ListedMember> {
    find_by(
        members,
        who,
        |member| &member.public_key,
        |member| Some(member.display_name.as_str()),
    )
}

fn find_by<'a, T>(
    members: &'a [T],
    who: &str,
    key: impl Fn(&T) -> &PublicKey,
    name: impl Fn(&T) -> Option<&str>,
) -> Result<&'a T> {
    let by_id: Vec<_> = members
        .iter()
        .filter(|member| encode_b64(key(member)).starts_with(who))
        .collect();
    let by_name: Vec<_> = members
        .iter()
        .filter(|member| name(member).is_some_and(|name| name.eq_ignore_ascii_case(who)))
        .collect();
    match (by_id.as_slice(), by_name.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one),
        ([], []) => bail!(
            "no member is called `{who}` or has an id starting with it; `sotto members` lists them"
        ),
        ([], _) => bail!("several members are called `{who}`; give the id `sotto members` shows"),
        _ => bail!("several members' ids start with `{who}`; give more characters"),
    }
}

/// How a member shows in listings: its name (if the relay lists one) and its short id.
fn label(view: &MemberView) -> String {
    match &view.display_name {
        Some(name) => format!("{name} ({})", short_id(&view.public_key)),
        None => short_id(&view.public_key),
    }
}

/// Widest name column in listings, in characters.
const NAME_WIDTH: usize = 32;

/// `name` cut to the name column, with an ellipsis where it was cut.
fn fit(name: &str) -> String {
    if name.chars().count() <= NAME_WIDTH {
        return name.to_owned();
    }
    let mut cut: String = name.chars().take(NAME_WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// Lists the group's members with their verification state.
pub(crate) async fn list(server: Option<&str>) -> Result<()> {
    let Members {
        session,
        mut views,
        waiting,
        ..
    } = member_session(server).await?;
    // You first, then by name.
    views.sort_by_cached_key(|view| {
        (
            view.trust != Trust::Own,
            view.display_name.as_deref().map(str::to_lowercase),
        )
    });
    if let GroupState::Member {
        epoch,
        privacy_code,
        ..
    } = session.group.state()
    {
        println!(
            "{} member(s), epoch {epoch}, privacy code {privacy_code}",
            views.len()
        );
    }
    let width = views
        .iter()
        .map(|view| {
            view.display_name
                .as_deref()
                .map_or(0, |name| name.chars().count())
        })
        .max()
        .unwrap_or(0)
        .min(NAME_WIDTH);
    for view in &views {
        let mut notes = vec![match view.trust {
            Trust::Own => "you",
            Trust::Verified => "verified",
            Trust::KeyChanged { .. } => "KEY CHANGED",
            _ => "not verified",
        }];
        if view.is_admin {
            notes.push("admin");
        }
        if view.online && view.trust != Trust::Own {
            notes.push("online");
        }
        let name = fit(view.display_name.as_deref().unwrap_or("?"));
        println!(
            "  {name:<width$}  {}  ({})",
            short_id(&view.public_key),
            notes.join(", ")
        );
    }
    if !waiting.is_empty() {
        println!("Waiting to be let in (a member online admits those with a valid invite):");
        for entry in &waiting {
            let name = fit(&entry.display_name);
            println!("  {name:<width$}  {}", short_id(&entry.public_key));
        }
    }
    for warning in key_change_warnings(&views) {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// Prints the safety number shared with a member; marks it verified on confirmation, or
/// accepts a changed key without checking it.
pub(crate) async fn verify(
    server: Option<&str>,
    who: &str,
    yes: bool,
    accept_change: bool,
) -> Result<()> {
    let Members {
        profile,
        session,
        views,
        ..
    } = member_session(server).await?;
    let member = find(&views, who)?;
    if member.trust == Trust::Own {
        bail!("that is you; pick another member");
    }
    let name = member.display_name.clone().unwrap_or_default();
    if accept_change {
        let Trust::KeyChanged { .. } = member.trust else {
            bail!("{}'s key did not change; nothing to accept", label(member));
        };
        profile.forget_verified_name(&name)?;
        println!(
            "Accepted {}'s new key without checking it: it shows as not verified until you compare \
             safety numbers.",
            label(member)
        );
        return Ok(());
    }
    let own = session.group.own_key();
    let number = SafetyNumber::between(&own, &member.public_key);
    println!("Safety number with {}:", label(member));
    println!("{number}");
    println!(
        "Compare it with theirs (in person or on a call you trust). It is the same on both sides."
    );
    let confirmed = yes || confirm("Do the numbers match?")?;
    if confirmed {
        profile.mark_verified(&member.public_key, &name)?;
        println!("Marked {} as verified.", label(member));
    } else {
        println!(
            "Not marked. If the numbers differ, someone may be in the middle: do not trust this key."
        );
    }
    Ok(())
}

/// Removes a member from the server (admins only).
pub(crate) async fn kick(server: Option<&str>, who: &str) -> Result<()> {
    let Members { session, views, .. } = member_session(server).await?;
    let member = find(&views, who)?;
    if member.trust == Trust::Own {
        bail!("you cannot remove yourself; leave the server instead");
    }
    session
        .group
        .remove(vec![member.public_key])
        .await
        .with_context(|| format!("could not remove {}", label(member)))?;
    println!(
        "Removed {} from the server: it can no longer join calls or decrypt anything sent from now on.",
        label(member)
    );
    Ok(())
}

/// Lets a server member who waits into the group (admins), from its KeyPackage at the relay.
pub(crate) async fn admit(server: Option<&str>, who: &str) -> Result<()> {
    let Members {
        session, waiting, ..
    } = member_session(server).await?;
    let candidates: Vec<&ListedMember> = waiting
        .iter()
        .filter(|entry| {
            encode_b64(&entry.public_key).starts_with(who)
                || entry.display_name.eq_ignore_ascii_case(who)
        })
        .collect();
    let entry = match candidates.as_slice() {
        [one] => *one,
        [] => bail!(
            "nobody called `{who}` (or with an id starting with it) waits to be let in; \
             `sotto members` lists who waits"
        ),
        _ => bail!("several waiting members match `{who}`; give the id `sotto members` shows"),
    };
    let label = format!("{} ({})", entry.display_name, short_id(&entry.public_key));
    session
        .group
        .add(entry.public_key)
        .await
        .with_context(|| format!("could not let {label} in"))?;
    println!(
        "Let {label} into the encryption group. Compare safety numbers with them (`sotto verify \
         {}`): they came without an invite anyone can vouch for.",
        short_id(&entry.public_key)
    );
    Ok(())
}

/// Rotates our keys in the server's group now (a self-update commit).
pub(crate) async fn rekey(server: Option<&str>) -> Result<()> {
    let Members { session, .. } = member_session(server).await?;
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
    let Members {
        profile,
        mut session,
        ..
    } = member_session(server).await?;
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
