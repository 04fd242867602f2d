//! `sotto send` and `sotto history`: a server's text channels on the command line. Messages are
//! sealed here and opened here; the relay only stores their envelopes.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sotto_client::chat::{self, ChatBody, ChatMessage};
use sotto_client::group::GroupState;
use sotto_client::{Profile, Session};
use sotto_net::proto::control::ChannelKind;

use crate::members::short_id;
use crate::session;

/// Messages read from the relay per request.
const PAGE: u16 = 100;

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

/// Prints the last `limit` messages of a channel, opened.
pub(crate) async fn history(server: Option<&str>, channel: &str, limit: usize) -> Result<()> {
    let (_profile, session, channel_id, name) = channel_session(server, channel).await?;
    let names: HashMap<u32, String> = session
        .client
        .list_members()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|member| (member.member_id, chat::printable(&member.display_name)))
        .collect();
    // The relay pages from the oldest; keep the newest `limit`.
    let mut last: std::collections::VecDeque<ChatMessage> = std::collections::VecDeque::new();
    let mut after = 0;
    loop {
        let (page, more) = chat::history(&session, channel_id, after, PAGE).await?;
        after = page.last().map_or(after, |message| message.seq);
        for message in page {
            if last.len() == limit {
                last.pop_front();
            }
            last.push_back(message);
        }
        if !more {
            break;
        }
    }
    if last.is_empty() {
        println!("No messages in #{name} yet: `sotto send {name} <text>` posts one.");
        return Ok(());
    }
    for message in &last {
        println!("{}", line(message, &names));
    }
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
