//! `sotto send` and `sotto history`: a server's text channels on the command line. Messages are
//! sealed here and opened here; the relay only stores their envelopes.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sotto_client::chat::store::{ChatStore, SearchQuery};
use sotto_client::chat::{self, ChatBody, ChatMessage};
use sotto_client::group::GroupState;
use sotto_client::{Profile, Session};
use sotto_net::proto::control::ChannelKind;

use crate::members::short_id;
use crate::session;

/// A session in the group, with the text channel called `name` (with or without '#').
async fn channel_session(
    server: Option<&str>,
    name: &str,
) -> Result<(Profile, Session, u32, String)> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    let wanted = name.trim_start_matches('#');
    let channel = session
        .channels
        .iter()
        .find(|channel| channel.name == wanted && channel.kind == ChannelKind::Text)
        .with_context(|| {
            format!(
                "no text channel \"#{wanted}\" on {}; `sotto channels` lists them",
                saved.name
            )
        })?;
    let (id, name) = (channel.id, channel.name.clone());
    let state = session.group.join_within(crate::GROUP_WAIT).await;
    session.group.wait_idle(Duration::from_secs(2)).await;
    if !matches!(state, GroupState::Member { .. }) {
        bail!("{}", crate::describe_group(&session.group.state()));
    }
    Ok((profile, session, id, name))
}

/// Posts a message: `words` joined, or standard input when there are none.
pub(crate) async fn send(server: Option<&str>, channel: &str, words: &[String]) -> Result<()> {
    let text = if words.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the message from standard input")?;
        text.trim_end().to_owned()
    } else {
        words.join(" ")
    };
    let (profile, session, channel_id, name) = channel_session(server, channel).await?;
    let identity = profile.identity(|notice| eprintln!("{notice}"))?;
    let posted = chat::post(&session, &identity, channel_id, &text)
        .await
        .with_context(|| format!("could not send to #{name}"))?;
    println!("Sent to #{name} (message {}).", posted.seq);
    Ok(())
}

/// Member names by member id, from the relay's list (cleaned for a terminal).
async fn names(session: &Session) -> HashMap<u32, String> {
    session
        .client
        .list_members()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|member| (member.member_id, chat::printable(&member.display_name)))
        .collect()
}

/// Prints the last `limit` messages of a channel, after bringing the local copy up to date.
pub(crate) async fn history(server: Option<&str>, channel: &str, limit: u32) -> Result<()> {
    let (profile, session, channel_id, name) = channel_session(server, channel).await?;
    let mut store = ChatStore::open(&profile.chat_store_path())?;
    let server_name = session.server.name.clone();
    chat::sync(&session, &mut store, &server_name, channel_id).await?;
    let messages = store.latest(&server_name, channel_id, limit)?;
    if messages.is_empty() {
        println!("No messages in #{name} yet: `sotto send {name} <text>` posts one.");
        return Ok(());
    }
    let names = names(&session).await;
    for message in &messages {
        println!("{}", line(message, &names));
    }
    Ok(())
}

/// Searches the messages of every text channel (brought up to date first) on this device.
pub(crate) async fn search(
    server: Option<&str>,
    words: &[String],
    channel: Option<&str>,
    from: Option<&str>,
    limit: u32,
) -> Result<()> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    session.group.join_within(crate::GROUP_WAIT).await;
    session.group.wait_idle(Duration::from_secs(2)).await;
    let server_name = session.server.name.clone();
    let mut store = ChatStore::open(&profile.chat_store_path())?;
    let text_channels: Vec<(u32, String)> = session
        .channels
        .iter()
        .filter(|channel| channel.kind == ChannelKind::Text)
        .map(|channel| (channel.id, channel.name.clone()))
        .collect();
    for (channel_id, _) in &text_channels {
        chat::sync(&session, &mut store, &server_name, *channel_id).await?;
    }
    let channel_id = match channel {
        Some(wanted) => {
            let wanted = wanted.trim_start_matches('#');
            let found = text_channels.iter().find(|(_, name)| name == wanted);
            Some(
                found
                    .with_context(|| format!("no text channel \"#{wanted}\""))?
                    .0,
            )
        }
        None => None,
    };
    let names = names(&session).await;
    let author_member = match from {
        Some(who) => Some(
            names
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(who))
                .map(|(id, _)| *id)
                .with_context(|| format!("no member is called `{who}`"))?,
        ),
        None => None,
    };
    let query = SearchQuery {
        words: words.join(" "),
        channel_id,
        author_member,
        since_ms: None,
        until_ms: None,
        limit,
    };
    let started = std::time::Instant::now();
    let found = store.search(&server_name, &query)?;
    let took = started.elapsed();
    if found.is_empty() {
        println!("Nothing found.");
        return Ok(());
    }
    for message in &found {
        let channel = text_channels
            .iter()
            .find(|(id, _)| *id == message.channel_id)
            .map_or("?", |(_, name)| name.as_str());
        println!("#{channel}  {}", line(message, &names));
    }
    eprintln!(
        "{} found in {:.1} ms, on this device only",
        found.len(),
        took.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// One message as a line (or lines): time (UTC), author, text.
fn line(message: &ChatMessage, names: &HashMap<u32, String>) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(message.sent_at_ms.unwrap_or(message.posted_at_ms));
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    // "2026-11-29T17:20:01Z" → "2026-11-29 17:20"
    let stamp = format!("{} {}", &stamp[..10], &stamp[11..16]);
    let author = match (names.get(&message.author_member), &message.author) {
        (Some(name), _) => name.clone(),
        (None, Some(key)) => short_id(key),
        (None, None) => format!("member {}", message.author_member),
    };
    match &message.body {
        ChatBody::Text(text) => format!("{stamp}  {author}: {}", text.replace('\n', "\n    ")),
        ChatBody::Unreadable(why) => format!("{stamp}  {author}: (sealed: {why})"),
    }
}
