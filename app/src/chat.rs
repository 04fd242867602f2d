//! `sotto send` and `sotto history`: a server's text channels on the command line. Messages are
//! sealed here and opened here; the relay only stores their envelopes.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sotto_client::chat::action::{Action, Origin};
use sotto_client::chat::markdown::{self, Block};
use sotto_client::chat::store::{ChatStore, SearchQuery};
use sotto_client::chat::{self, ChatBody, ChatMessage};
use sotto_client::group::GroupState;
use sotto_client::{Profile, Session};
use sotto_net::proto::control::ChannelKind;

use crate::members::short_id;
use crate::session;

/// A session in the group, with the text channel called `name` (with or without '#'), or the
/// conversation with the members `@name[,name…]` (started if there is none yet). Returns the
/// channel's id and how to show it (`#general`, `@bob, cy`).
pub(crate) async fn channel_session(
    server: Option<&str>,
    name: &str,
) -> Result<(Profile, Session, u32, String)> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    if let Some(people) = name.strip_prefix('@') {
        let state = session.group.join_within(crate::GROUP_WAIT).await;
        if !matches!(state, GroupState::Member { .. }) {
            bail!("{}", crate::describe_group(&session.group.state()));
        }
        let (id, label) = crate::dms::conversation(&mut session, people).await?;
        return Ok((profile, session, id, label));
    }
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
    let (id, name) = (channel.id, format!("#{}", channel.name));
    let state = session.group.join_within(crate::GROUP_WAIT).await;
    session.group.wait_idle(Duration::from_secs(2)).await;
    if !matches!(state, GroupState::Member { .. }) {
        bail!("{}", crate::describe_group(&session.group.state()));
    }
    Ok((profile, session, id, name))
}

/// A channel session with this device's copy of the channel brought up to date.
pub(crate) struct SyncedChannel {
    pub(crate) profile: Profile,
    pub(crate) session: Session,
    pub(crate) channel_id: u32,
    pub(crate) name: String,
    pub(crate) store: ChatStore,
    pub(crate) server_name: String,
}

impl SyncedChannel {
    /// Brings this device's copy of the channel up to date again.
    pub(crate) async fn sync(&mut self) -> Result<()> {
        chat::sync(
            &self.session,
            &mut self.store,
            &self.server_name,
            self.channel_id,
        )
        .await?;
        Ok(())
    }
}

/// [`channel_session`], then syncs the channel into this device's store.
pub(crate) async fn synced_channel(server: Option<&str>, channel: &str) -> Result<SyncedChannel> {
    open_channel(server, channel, true).await
}

/// [`channel_session`] with this device's store, synced or not.
async fn open_channel(server: Option<&str>, channel: &str, sync: bool) -> Result<SyncedChannel> {
    let (profile, session, channel_id, name) = channel_session(server, channel).await?;
    let mut store = ChatStore::open(&profile.chat_store_path())?;
    let server_name = session.server.name.clone();
    if sync {
        chat::sync(&session, &mut store, &server_name, channel_id).await?;
        if name.starts_with('#') {
            // Members who joined since may be owed the channel's history.
            let identity = profile.identity(|notice| eprintln!("{notice}"))?;
            let shared = chat::history::share_if_due(
                &session,
                &identity,
                &mut store,
                &server_name,
                channel_id,
            )
            .await
            .with_context(|| format!("could not share the history of {name}"))?;
            if shared > 0 {
                eprintln!("Shared the history of {name} with {shared} member(s) not holding it.");
            }
        }
    }
    Ok(SyncedChannel {
        profile,
        session,
        channel_id,
        name,
        store,
        server_name,
    })
}

/// Posts a message: `words` joined, or standard input when there are none; a reply to
/// message `reply_to` if given.
pub(crate) async fn send(
    server: Option<&str>,
    channel: &str,
    words: &[String],
    reply_to: Option<u64>,
) -> Result<()> {
    let text = if words.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the message from standard input")?;
        text.trim_end().to_owned()
    } else {
        words.join(" ")
    };
    let action = Action::Text { text, reply_to };
    let (name, seq) = act(server, channel, &action).await?;
    println!("Sent to {name} (message {seq}).");
    Ok(())
}

/// Posts an edit, deletion or reaction (or a reply), after checking it against this device's
/// copy of the channel by the rules every member applies; returns the channel's name and the
/// new message's seq.
pub(crate) async fn act(
    server: Option<&str>,
    channel: &str,
    action: &Action,
) -> Result<(String, u64)> {
    // A plain message needs no copy of the channel to check against.
    let check = action.target().is_some() || replies(action);
    let here = open_channel(server, channel, check).await?;
    let identity = here.profile.identity(|notice| eprintln!("{notice}"))?;
    let seq = act_in(&here, &identity, action).await?;
    Ok((here.name, seq))
}

pub(crate) fn replies(action: &Action) -> bool {
    matches!(
        action,
        Action::Text {
            reply_to: Some(_),
            ..
        }
    )
}

/// [`act`] in a channel already open and synced; the new message's seq.
pub(crate) async fn act_in(
    here: &SyncedChannel,
    identity: &sotto_net::identity::Identity,
    action: &Action,
) -> Result<u64> {
    let name = &here.name;
    if action.target().is_some() || replies(action) {
        let is_admin = chat::channel_admins(&here.session, here.channel_id)
            .await
            .contains(&identity.public_key());
        here.store
            .check(
                &here.server_name,
                here.channel_id,
                action,
                &identity.public_key(),
                is_admin,
                chat::unix_now_ms(),
            )
            .with_context(|| format!("cannot do that in {name}"))?;
    }
    let posted = chat::post_action(&here.session, identity, here.channel_id, action)
        .await
        .with_context(|| format!("could not send to {name}"))?;
    Ok(posted.seq)
}

/// Passes message `seq` of `channel` on to the text channel `to`, with its file.
pub(crate) async fn forward(server: Option<&str>, channel: &str, seq: u64, to: &str) -> Result<()> {
    let here = synced_channel(server, channel).await?;
    let name = &here.name;
    let message = here
        .store
        .message(&here.server_name, here.channel_id, seq)?
        .filter(|message| !message.deleted)
        .with_context(|| format!("there is no message {seq} in {name} that you can read"))?;
    let (ChatBody::Text(text), Some(author), Some(sent_at_ms)) =
        (&message.body, message.author, message.sent_at_ms)
    else {
        bail!("message {seq} in {name} is sealed to you, so it cannot be forwarded");
    };
    let wanted = to.trim_start_matches('#');
    let target = here
        .session
        .channels
        .iter()
        .find(|channel| channel.name == wanted && channel.kind == ChannelKind::Text)
        .with_context(|| format!("no text channel \"#{wanted}\"; `sotto channels` lists them"))?;
    // A forward of a forward names the first author.
    let origin = message.forwarded_from.unwrap_or(Origin {
        channel_id: here.channel_id,
        seq,
        author,
        sent_at_ms,
    });
    let action = Action::Forward {
        origin,
        file: message.attachment.clone(),
        text: text.clone(),
    };
    let identity = here.profile.identity(|notice| eprintln!("{notice}"))?;
    let posted = chat::post_action(&here.session, &identity, target.id, &action)
        .await
        .with_context(|| format!("could not forward to #{wanted}"))?;
    println!(
        "Forwarded message {seq} of {name} to #{} (message {}).",
        target.name, posted.seq
    );
    Ok(())
}

/// Member names by member id, from the relay's list (cleaned for a terminal), and the keys
/// this device blocked.
pub(crate) async fn names(session: &Session) -> Names {
    let members = session.client.list_members().await.unwrap_or_default();
    let blocked = Profile::open()
        .and_then(|profile| profile.blocked_keys())
        .unwrap_or_default()
        .into_iter()
        .map(|key| key.public_key)
        .collect();
    Names {
        blocked,
        by_key: members
            .iter()
            .map(|member| (member.public_key, chat::printable(&member.display_name)))
            .collect(),
        by_member: members
            .into_iter()
            .map(|member| (member.member_id, chat::printable(&member.display_name)))
            .collect(),
    }
}

/// Members' names by member id (what it derefs to) and by identity key.
#[derive(Debug, Default, Clone)]
pub(crate) struct Names {
    by_member: HashMap<u32, String>,
    by_key: HashMap<sotto_net::proto::control::PublicKey, String>,
    /// Keys this device blocked: their messages show as hidden.
    blocked: std::collections::HashSet<sotto_net::proto::control::PublicKey>,
}

impl Names {
    /// Whether `message` is from someone this device blocked.
    pub(crate) fn is_blocked(&self, message: &ChatMessage) -> bool {
        message
            .author
            .is_some_and(|author| self.blocked.contains(&author))
    }

    /// The name of the member with identity key `key`, or its short id.
    pub(crate) fn of_key(&self, key: &sotto_net::proto::control::PublicKey) -> String {
        self.by_key
            .get(key)
            .cloned()
            .unwrap_or_else(|| short_id(key))
    }
}

impl std::ops::Deref for Names {
    type Target = HashMap<u32, String>;

    fn deref(&self) -> &Self::Target {
        &self.by_member
    }
}

/// Prints the last `limit` messages of a channel, after bringing the local copy up to date.
pub(crate) async fn history(server: Option<&str>, channel: &str, limit: u32) -> Result<()> {
    let mut here = synced_channel(server, channel).await?;
    let name = &here.name;
    let messages = here
        .store
        .latest(&here.server_name, here.channel_id, limit)?;
    if messages.is_empty() {
        println!("No messages in {name} yet: `sotto send {channel} <text>` posts one.");
        return Ok(());
    }
    // Shown: read now.
    here.store.mark_read(
        &here.server_name,
        here.channel_id,
        here.store.last_seq(&here.server_name, here.channel_id)?,
    )?;
    let names = names(&here.session).await;
    // What each message's task tags did, under it (a channel without a `#` has no board).
    if here
        .store
        .may_have_tags(&here.server_name, here.channel_id)?
    {
        let derived = crate::tasks::derive(&here, &names).await?;
        print_annotated(&messages, &names, &derived.summaries);
    } else {
        print_messages(&messages, &names);
    }
    if here.name.starts_with('@') {
        let identity = here.profile.identity(|notice| eprintln!("{notice}"))?;
        send_receipt(&mut here, &identity).await?;
        for line in receipt_lines(&here, &names, &identity.public_key())? {
            println!("{line}");
        }
    }
    Ok(())
}

/// `sotto channel history <channel> on|off`: whether a text channel's history goes to members
/// who join later (admins).
pub(crate) async fn history_sharing(
    server: Option<&str>,
    channel: &str,
    share: bool,
) -> Result<()> {
    if channel.starts_with('@') {
        bail!("a conversation keeps its history to those in it; history sharing is for channels");
    }
    let mut here = synced_channel(server, channel).await?;
    let identity = here.profile.identity(|notice| eprintln!("{notice}"))?;
    let own = identity.public_key();
    let admin = matches!(
        here.session.group.state(),
        GroupState::Member { members, .. }
            if members.iter().any(|member| member.public_key == own && member.is_admin)
    );
    let name = here.name.clone();
    if !admin {
        bail!(
            "only an admin can change whether {name} shares its history with members who join later"
        );
    }
    chat::post_action(
        &here.session,
        &identity,
        here.channel_id,
        &Action::HistorySharing { share },
    )
    .await
    .with_context(|| format!("could not change {name}"))?;
    here.sync().await?;
    if !share {
        println!(
            "{name} no longer shares its history: members who join from now on read only what is said after."
        );
        return Ok(());
    }
    let shared = chat::history::share_if_due(
        &here.session,
        &identity,
        &mut here.store,
        &here.server_name,
        here.channel_id,
    )
    .await
    .with_context(|| format!("could not share the history of {name}"))?;
    println!(
        "{name} shares its history: members who join later can read what was said before (shared with {shared} member(s) now)."
    );
    Ok(())
}

/// Sends the read receipt we owe in this conversation, if we send them there; it is brought
/// back into the store at once, so it is never owed twice.
pub(crate) async fn send_receipt(
    here: &mut SyncedChannel,
    identity: &sotto_net::identity::Identity,
) -> Result<()> {
    let own = identity.public_key();
    let Some(up_to) = here
        .store
        .receipt_due(&here.server_name, here.channel_id, &own)?
    else {
        return Ok(());
    };
    chat::post_action(
        &here.session,
        identity,
        here.channel_id,
        &Action::Read { up_to },
    )
    .await
    .context("could not send the read receipt")?;
    here.sync().await?;
    Ok(())
}

/// How far the others in a conversation have read, by their read receipts (from those who
/// send them).
pub(crate) fn receipt_lines(
    here: &SyncedChannel,
    names: &Names,
    own: &sotto_net::proto::control::PublicKey,
) -> Result<Vec<String>> {
    let mut all_seen = Vec::new();
    let mut lines = Vec::new();
    for (reader, up_to) in here.store.receipts(&here.server_name, here.channel_id)? {
        if reader == *own {
            continue;
        }
        // Everything others posted (their own messages they have seen).
        let to_read = here
            .store
            .last_from_others(&here.server_name, here.channel_id, &reader)?
            .unwrap_or(0);
        if up_to >= to_read {
            all_seen.push(names.of_key(&reader));
        } else {
            lines.push(format!(
                "      ✓ {} has read up to message {up_to}",
                names.of_key(&reader)
            ));
        }
    }
    if !all_seen.is_empty() {
        lines.insert(0, format!("      ✓ Seen by {}", all_seen.join(", ")));
    }
    Ok(lines)
}

/// Prints messages one per line (or lines), folding runs sealed for the same reason.
pub(crate) fn print_messages(messages: &[ChatMessage], names: &Names) {
    print_annotated(messages, names, &HashMap::new());
}

/// [`print_messages`], with `annotations` (say, what a message's task tags did) under the
/// messages they are for.
pub(crate) fn print_annotated(
    messages: &[ChatMessage],
    names: &Names,
    annotations: &HashMap<u64, Vec<String>>,
) {
    // Runs of messages sealed for the same reason (say, from before we joined) show as one.
    let mut index = 0;
    while index < messages.len() {
        let message = &messages[index];
        if let ChatBody::Unreadable(why) = &message.body {
            let run = messages[index..]
                .iter()
                .take_while(|m| matches!(&m.body, ChatBody::Unreadable(other) if other == why))
                .count();
            if run > 1 {
                println!(
                    "{:>4}  ({run} messages, up to {}, sealed: {why})",
                    message.seq,
                    messages[index + run - 1].seq
                );
                index += run;
                continue;
            }
        }
        if names.is_blocked(message) {
            println!("{:>4}  (a message from someone you blocked)", message.seq);
            index += 1;
            continue;
        }
        println!("{}", line(message, names));
        for note in annotations.get(&message.seq).into_iter().flatten() {
            println!("      {note}");
        }
        index += 1;
    }
}

/// Prints a thread: the message `root` and every reply down its chain.
pub(crate) async fn thread(server: Option<&str>, channel: &str, root: u64) -> Result<()> {
    let here = synced_channel(server, channel).await?;
    let name = &here.name;
    let messages = here
        .store
        .thread(&here.server_name, here.channel_id, root)?;
    if messages.first().is_none_or(|first| first.seq != root) {
        bail!("there is no message {root} in {name} that you can read");
    }
    let names = names(&here.session).await;
    let replies = messages.len() - 1;
    let noun = if replies == 1 { "reply" } else { "replies" };
    println!("Thread of message {root} in {name}, {replies} {noun}:");
    print_messages(&messages, &names);
    Ok(())
}

/// Prints a channel's pinned messages.
pub(crate) async fn pins(server: Option<&str>, channel: &str) -> Result<()> {
    let here = synced_channel(server, channel).await?;
    let name = &here.name;
    let messages = here.store.pins(&here.server_name, here.channel_id)?;
    if messages.is_empty() {
        println!("Nothing is pinned in {name}. Admins pin with `sotto pin {channel} <number>`.");
        return Ok(());
    }
    let names = names(&here.session).await;
    print_messages(&messages, &names);
    Ok(())
}

/// Lists the server's channels; text channels with their unread messages and mentions.
pub(crate) async fn channels(server: Option<&str>) -> Result<()> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let mut session = session::connect(&profile, &saved, None).await?;
    let state = session.group.join_within(crate::GROUP_WAIT).await;
    session.group.wait_idle(Duration::from_secs(2)).await;
    let in_group = matches!(state, GroupState::Member { .. });
    let server_name = session.server.name.clone();
    let mut store = ChatStore::open(&profile.chat_store_path())?;
    let me = profile
        .identity(|notice| eprintln!("{notice}"))?
        .public_key();
    println!("Channels of {}:", saved.name);
    for channel in &session.channels {
        let kind = match channel.kind {
            ChannelKind::Voice => "voice",
            _ => "text ",
        };
        let mut counts = String::new();
        if channel.kind == ChannelKind::Text && in_group {
            chat::sync(&session, &mut store, &server_name, channel.id).await?;
            let unread = store.unread(&server_name, channel.id, &me)?;
            counts = match (unread.messages, unread.mentions) {
                (0, _) => String::new(),
                (messages, 0) => format!("  {messages} unread"),
                (messages, 1) => format!("  {messages} unread, 1 mentions you"),
                (messages, mentions) => format!("  {messages} unread, {mentions} mention you"),
            };
        }
        let topic = if channel.topic.is_empty() {
            String::new()
        } else {
            format!(" — {}", chat::printable(&channel.topic))
        };
        println!(
            "  {kind}  #{}  ({}){counts}{topic}",
            channel.name, channel.category
        );
    }
    if !in_group {
        eprintln!("(unread counts show once you are in the encryption group)");
    }
    Ok(())
}

/// How long a search waits for the relay to list our conversations.
const GROUP_LIST_WAIT: Duration = Duration::from_secs(5);

/// Searches the messages of every text channel and conversation (brought up to date first) on
/// this device.
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
    let names = names(&session).await;
    let own = session.group.own_key();
    // Text channels and conversations, as they show: `#general`, `@bob`.
    let mut text_channels: Vec<(u32, String)> = session
        .channels
        .iter()
        .filter(|channel| channel.kind == ChannelKind::Text)
        .map(|channel| (channel.id, format!("#{}", channel.name)))
        .collect();
    session.group.conversations_within(GROUP_LIST_WAIT).await;
    session.group.wait_idle(GROUP_LIST_WAIT).await;
    for view in session.group.conversations() {
        if view.ready {
            text_channels.push((view.info.id, crate::dms::label(&view, &names, &own)));
        }
    }
    for (channel_id, _) in &text_channels {
        chat::sync(&session, &mut store, &server_name, *channel_id).await?;
    }
    let channel_id = match channel {
        Some(wanted) => {
            let wanted = if wanted.starts_with('@') {
                wanted.to_owned()
            } else {
                format!("#{}", wanted.trim_start_matches('#'))
            };
            let found = text_channels
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(&wanted));
            Some(
                found
                    .with_context(|| {
                        format!("no text channel or conversation \"{wanted}\" to search")
                    })?
                    .0,
            )
        }
        None => None,
    };
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
    // Filters (has:file, in:thread, after:, before:, during:) are written among the words.
    let query = SearchQuery {
        channel_id,
        author_member,
        limit,
        ..chat::query::parse_query(&words.join(" "))?
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
        println!("{channel}  {}", line(message, &names));
    }
    eprintln!(
        "{} found in {:.1} ms, on this device only",
        found.len(),
        took.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// A message's markdown for a terminal: styled with ANSI codes when standard output is one,
/// plain otherwise; quotes marked with "│ ", code blocks indented, links' addresses shown.
fn terminal_text(text: &str) -> String {
    use std::io::IsTerminal;
    let styled = std::io::stdout().is_terminal();
    let mut blocks = Vec::new();
    for block in markdown::parse(text) {
        match block {
            Block::Paragraph { quote_depth, spans } => {
                let mut out = String::new();
                for span in spans {
                    let mut codes = Vec::new();
                    if span.style.bold {
                        codes.push("1");
                    }
                    if span.style.italic {
                        codes.push("3");
                    }
                    if span.style.strike {
                        codes.push("9");
                    }
                    if span.style.code {
                        codes.push("36");
                    }
                    if styled && !codes.is_empty() {
                        out.push_str(&format!(
                            "\u{1b}[{}m{}\u{1b}[0m",
                            codes.join(";"),
                            span.text
                        ));
                    } else if span.style.code {
                        out.push_str(&format!("`{}`", span.text));
                    } else {
                        out.push_str(&span.text);
                    }
                    if let Some(link) = span.link
                        && link != span.text
                    {
                        out.push_str(&format!(" <{link}>"));
                    }
                }
                blocks.push(quoted(&out, quote_depth, ""));
            }
            Block::Code { quote_depth, text } => blocks.push(quoted(&text, quote_depth, "  ")),
        }
    }
    blocks.join("\n")
}

/// `text` with every line behind `depth` quote marks and `indent`.
fn quoted(text: &str, depth: u8, indent: &str) -> String {
    let prefix = format!("{}{indent}", "│ ".repeat(usize::from(depth)));
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One message as a line (or lines): time (UTC), author, text.
pub(crate) fn line(message: &ChatMessage, names: &Names) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(message.sent_at_ms.unwrap_or(message.posted_at_ms));
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    // "2026-11-29T17:20:01Z" → "2026-11-29 17:20"
    let stamp = format!("{} {}", &stamp[..10], &stamp[11..16]);
    let author = match (names.get(&message.author_member), &message.author) {
        (Some(name), _) => name.clone(),
        (None, Some(key)) => short_id(key),
        (None, None) => format!("member {}", message.author_member),
    };
    let reply = match (message.reply_to, &message.forwarded_from) {
        (_, Some(origin)) => format!("(forwarded from {}) ", names.of_key(&origin.author)),
        (Some(seq), None) => format!("(re {seq}) "),
        (None, None) => String::new(),
    };
    let mut out = match &message.body {
        _ if message.deleted => format!("{stamp}  {author}: (deleted)"),
        ChatBody::Text(text) => {
            format!(
                "{stamp}  {author}: {reply}{}",
                terminal_text(text).replace('\n', "\n    ")
            )
        }
        ChatBody::Unreadable(why) => format!("{stamp}  {author}: (sealed: {why})"),
        ChatBody::Action(_) => format!("{stamp}  {author}: (an edit or reaction)"),
    };
    if let Some(file) = message.attachment.as_ref().filter(|_| !message.deleted) {
        out.push_str(&format!(
            "\n    📎 {} ({})",
            chat::printable(&file.name),
            crate::files::human_size(file.size)
        ));
    }
    if message.edited && !message.deleted {
        out.push_str("  (edited)");
    }
    if message.pinned {
        out.push_str("  📌");
    }
    if !message.reactions.is_empty() {
        let reactions: Vec<String> = message
            .reactions
            .iter()
            .map(|(emoji, count)| format!("{emoji} {count}"))
            .collect();
        out.push_str(&format!("\n    {}", reactions.join("  ")));
    }
    format!("{:>4}  {out}", message.seq)
}
