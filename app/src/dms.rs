//! `sotto dm` and `sotto dms`: conversations with a few members, each sealed with its own MLS
//! group. Everywhere a text channel is named, `@bob` or `@bob,cy` names the conversation with
//! exactly those members (started when first named).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use sotto_client::chat::store::ChatStore;
use sotto_client::chat::{self};
use sotto_client::group::{ConversationView, GroupActionError, GroupState};
use sotto_client::{Profile, Session};
use sotto_net::proto::control::PublicKey;

use crate::chat::{Names, names};
use crate::members::find_listed;
use crate::session;

/// How long to wait for the relay to list our conversations, and for one to be ready.
const CONVERSATION_WAIT: Duration = Duration::from_secs(10);

/// How a conversation shows: `@` and the other members' names, by name.
pub(crate) fn label(view: &ConversationView, names: &Names, own: &PublicKey) -> String {
    let mut others: Vec<String> = view
        .info
        .members
        .iter()
        .filter(|key| *key != own)
        .map(|key| names.of_key(key))
        .collect();
    others.sort_by_key(|name| name.to_lowercase());
    if others.is_empty() {
        return "@(only you)".to_owned();
    }
    format!("@{}", others.join(", "))
}

/// The conversation with exactly the members `people` names (comma-separated names or ids)
/// and us, started if there is none; its id and label, once everyone is in its group.
pub(crate) async fn conversation(session: &mut Session, people: &str) -> Result<(u32, String)> {
    let listed = session
        .client
        .list_members()
        .await
        .context("the relay did not list the server's members")?;
    let own = session.group.own_key();
    let mut others: Vec<PublicKey> = Vec::new();
    for who in people
        .split(',')
        .map(str::trim)
        .filter(|who| !who.is_empty())
    {
        let member = find_listed(&listed, who)?;
        if member.public_key == own {
            bail!("`{who}` is you; name who to write to, e.g. `sotto dm bob hello`");
        }
        if !others.contains(&member.public_key) {
            others.push(member.public_key);
        }
    }
    if others.is_empty() {
        bail!("name who to write to, e.g. `sotto dm bob hello` or `sotto dm bob,cy hello`");
    }
    let mut wanted = others.clone();
    wanted.push(own);
    wanted.sort_unstable();
    let views = session.group.conversations_within(CONVERSATION_WAIT).await;
    let existing = views
        .iter()
        .filter(|view| {
            let mut members = view.info.members.clone();
            members.sort_unstable();
            members == wanted
        })
        .map(|view| view.info.id)
        .min();
    let id = match existing {
        Some(id) => id,
        None => match session.group.open_conversation(others).await {
            Ok(info) => info.id,
            Err(GroupActionError::Refused(reason)) => {
                bail!("the relay would not start the conversation: {reason}")
            }
            Err(error) => return Err(error).context("could not start the conversation"),
        },
    };
    let names = names(session).await;
    let view = session
        .group
        .conversation_ready_within(id, CONVERSATION_WAIT)
        .await
        .context("the conversation is gone")?;
    let label = label(&view, &names, &own);
    if !view.ready {
        let opener = names.of_key(&view.info.creator);
        match &view.state {
            GroupState::Member { members, .. }
                if members
                    .iter()
                    .any(|member| !view.info.members.contains(&member.public_key)) =>
            {
                bail!(
                    "{label}: someone no longer in the conversation is still in its encryption \
                     group, so nothing is sent until {opener} removes them (when next online)"
                )
            }
            GroupState::Member { .. } => bail!(
                "{label}: {opener} has not added everyone to the conversation's encryption group \
                 yet (someone may not have connected since joining); try again later"
            ),
            _ => bail!(
                "{label}: waiting for {opener} to add you to the conversation's encryption group; \
                 try again once they are online"
            ),
        }
    }
    Ok((id, label))
}

/// `sotto receipts`: shows, or switches, whether we send read receipts in a conversation, and
/// how far the others have read.
pub(crate) async fn receipts(
    server: Option<&str>,
    conversation: &str,
    switch: Option<bool>,
) -> Result<()> {
    if !conversation.starts_with('@') {
        bail!("read receipts are for conversations: name one as `@bob` (or `@bob,cy`)");
    }
    let mut here = crate::chat::synced_channel(server, conversation).await?;
    let identity = here.profile.identity(|notice| eprintln!("{notice}"))?;
    if let Some(send) = switch {
        here.store
            .set_sends_receipts(&here.server_name, here.channel_id, send)?;
        if send {
            crate::chat::send_receipt(&mut here, &identity).await?;
        }
    }
    let on = here
        .store
        .sends_receipts(&here.server_name, here.channel_id)?;
    let name = &here.name;
    if on {
        println!(
            "Read receipts in {name} are on: the others see how far you have read. \
             `sotto receipts {conversation} off` stops them."
        );
    } else {
        println!(
            "Read receipts in {name} are off: nobody sees how far you have read. \
             `sotto receipts {conversation} on` sends them."
        );
    }
    let names = names(&here.session).await;
    for line in crate::chat::receipt_lines(&here, &names, &identity.public_key())? {
        println!("{line}");
    }
    Ok(())
}

/// `sotto dms`: the conversations we are in, with unread counts.
pub(crate) async fn list(server: Option<&str>) -> Result<()> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    let state = session.group.join_within(crate::GROUP_WAIT).await;
    if !matches!(state, GroupState::Member { .. }) {
        bail!("{}", crate::describe_group(&session.group.state()));
    }
    session.group.conversations_within(CONVERSATION_WAIT).await;
    // Joining the groups of conversations opened while we were away.
    session.group.wait_idle(CONVERSATION_WAIT).await;
    let views = session.group.conversations();
    if views.is_empty() {
        println!(
            "No conversations on {} yet: `sotto dm <member> <text>` starts one.",
            saved.name
        );
        return Ok(());
    }
    let names = names(&session).await;
    let own = session.group.own_key();
    let server_name = session.server.name.clone();
    let mut store = ChatStore::open(&profile.chat_store_path())?;
    println!("Conversations on {}:", saved.name);
    for view in &views {
        let mut counts = String::new();
        if view.ready {
            chat::sync(&session, &mut store, &server_name, view.info.id).await?;
            let unread = store.unread(&server_name, view.info.id, &own)?;
            if unread.messages > 0 {
                counts = format!("  {} unread", unread.messages);
            }
        } else {
            counts = "  (waiting for everyone to be added)".to_owned();
        }
        println!("  {}{counts}", label(view, &names, &own));
    }
    Ok(())
}
