//! `sotto chat <channel>`: a text channel live. Messages appear as they are posted; lines typed
//! are sent; commands (`/help`) reply, edit, react, pin, share files, set a status and say who
//! is here. With `--json`, every event is a JSON line and the same commands are read from
//! standard input, for bots and scripts.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sotto_client::chat::action::Action;
use sotto_client::chat::files::{self, Progress};
use sotto_client::chat::{self, ChatBody, ChatMessage};
use sotto_client::presence::{PresenceBook, describe};
use sotto_net::client::ClientEvent;
use sotto_net::identity::Identity;
use sotto_net::proto::control::Presence;
use tokio::io::AsyncBufReadExt;

use crate::chat::{Names, SyncedChannel, act_in, line, names, print_messages, synced_channel};

const HELP: &str = "\
Type a message and press Enter to send it. Commands:
  /reply N text      answer message N          /thread N        show message N's thread
  /edit N text       change your message N     /delete N        delete message N
  /react N emoji     react to message N        /unreact N emoji take a reaction back
  /pin N, /unpin N   pin or unpin (admins)     /pins            show pinned messages
  /upload PATH [text] share a file             /download N [PATH] save message N's file
  /status online|idle|dnd|invisible [text]     /who             who is here
  /typing            say you are typing        /quit            leave (so does Ctrl-D)";

/// Where events go: lines for people, or JSON lines.
struct Out {
    json: bool,
    channel: String,
}

impl Out {
    fn notice(&self, text: &str) {
        if self.json {
            println!("{}", json!({"event": "notice", "text": text}));
        } else {
            println!("-- {text}");
        }
    }

    /// Someone's read receipt.
    fn read(&self, who: &str, up_to: u64) {
        if self.json {
            println!(
                "{}",
                json!({"event": "read", "channel": self.channel, "member": who, "up_to": up_to})
            );
        } else {
            println!("-- {who} has read up to message {up_to}");
        }
    }

    fn error(&self, error: &anyhow::Error) {
        if self.json {
            println!(
                "{}",
                json!({"event": "error", "text": format!("{error:#}")})
            );
        } else {
            println!("!! {error:#}");
        }
    }

    fn message(&self, message: &ChatMessage, names: &Names) {
        if names.is_blocked(message) {
            // Blocked on this device: not shown, not even to a bot reading JSON.
            return;
        }
        if !self.json {
            let bell = if message.mentions_me { "🔔" } else { "" };
            println!("{bell}{}", line(message, names));
            return;
        }
        let (text, sealed) = match &message.body {
            ChatBody::Text(text) => (Some(text.as_str()), None),
            ChatBody::Unreadable(why) => (None, Some(why.as_str())),
            ChatBody::Action(_) => (None, None),
        };
        println!(
            "{}",
            json!({
                "event": "message",
                "channel": self.channel,
                "seq": message.seq,
                "author": author(message, names),
                "text": text,
                "sealed": sealed,
                "reply_to": message.reply_to,
                "forwarded_from": message.forwarded_from.map(|origin| names.of_key(&origin.author)),
                "edited": message.edited,
                "deleted": message.deleted,
                "pinned": message.pinned,
                "mentions_me": message.mentions_me,
                "reactions": message.reactions,
                "file": message.attachment.as_ref().map(|file| json!({
                    "name": file.name, "bytes": file.size, "type": file.media_type,
                    "preview_bytes": file.thumbnail.as_ref().map(Vec::len),
                })),
            })
        );
    }
}

fn author(message: &ChatMessage, names: &Names) -> String {
    names
        .get(&message.author_member)
        .cloned()
        .unwrap_or_else(|| format!("member {}", message.author_member))
}

fn name_of(member_id: u32, names: &Names) -> String {
    names
        .get(&member_id)
        .cloned()
        .unwrap_or_else(|| format!("member {member_id}"))
}

/// The live view of one channel.
struct Live {
    here: SyncedChannel,
    identity: Identity,
    names: Names,
    presence: PresenceBook,
    out: Out,
}

/// Runs `sotto chat`.
pub(crate) async fn chat(server: Option<&str>, channel: &str, json: bool) -> Result<()> {
    let here = synced_channel(server, channel).await?;
    let identity = here.profile.identity(|notice| eprintln!("{notice}"))?;
    let names = names(&here.session).await;
    let out = Out {
        json,
        channel: here.name.trim_start_matches('#').to_owned(),
    };
    let mut live = Live {
        here,
        identity,
        names,
        presence: PresenceBook::new(),
        out,
    };
    live.start().await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line.context("reading standard input")? {
                None => break,
                Some(line) => match live.command(line.trim()).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => live.out.error(&error),
                },
            },
            event = live.here.session.events.recv() => match event {
                None => bail!("the connection to the relay ended"),
                Some(event) => {
                    if let Err(error) = live.event(event).await {
                        live.out.error(&error);
                    }
                }
            },
        }
    }
    Ok(())
}

impl Live {
    /// Shows the latest messages and says we are here.
    async fn start(&mut self) -> Result<()> {
        let here = &self.here;
        let latest = here.store.latest(&here.server_name, here.channel_id, 20)?;
        if self.out.json {
            for message in &latest {
                self.out.message(message, &self.names);
            }
        } else {
            println!(
                "{} on {} — type to send, /help for commands, Ctrl-D to leave.",
                here.name, here.server_name
            );
            print_messages(&latest, &self.names);
        }
        self.mark_read()?;
        self.here
            .session
            .client
            .set_presence(Presence::Online, "")
            .await?;
        if self.out.json {
            println!("{}", json!({"event": "ready", "channel": self.out.channel}));
        }
        Ok(())
    }

    fn mark_read(&self) -> Result<()> {
        let here = &self.here;
        let last = here.store.last_seq(&here.server_name, here.channel_id)?;
        here.store
            .mark_read(&here.server_name, here.channel_id, last)?;
        Ok(())
    }

    /// Brings the channel up to date and shows what is new.
    async fn catch_up(&mut self) -> Result<()> {
        let here = &mut self.here;
        let new = chat::sync_messages(
            &here.session,
            &mut here.store,
            &here.server_name,
            here.channel_id,
        )
        .await?;
        if new
            .iter()
            .any(|message| !self.names.contains_key(&message.author_member))
        {
            self.names = names(&self.here.session).await;
        }
        for message in new {
            self.presence
                .posted(message.channel_id, message.author_member);
            let here = &self.here;
            match &message.body {
                ChatBody::Action(Action::Read { up_to }) => {
                    if message.author != Some(self.identity.public_key()) {
                        // Never past the receipt itself.
                        let up_to = (*up_to).min(message.seq);
                        self.out.read(&author(&message, &self.names), up_to);
                    }
                }
                ChatBody::Action(action) => {
                    let Some(target) = action.target() else {
                        continue;
                    };
                    // Show the message acted on as it is now.
                    if let Some(updated) =
                        here.store
                            .message(&here.server_name, here.channel_id, target)?
                    {
                        if !self.out.json {
                            let verb = match action {
                                Action::Edit { .. } => "edited",
                                Action::Delete { .. } => "deleted",
                                Action::Reaction { add: true, .. } => "reacted to",
                                Action::Reaction { add: false, .. } => "took a reaction from",
                                Action::Pin { pin: true, .. } => "pinned",
                                Action::Pin { pin: false, .. } => "unpinned",
                                _ => "changed",
                            };
                            println!(
                                "-- {} {verb} message {target}:",
                                author(&message, &self.names)
                            );
                        }
                        self.out.message(&updated, &self.names);
                    }
                }
                _ => {
                    // Reactions and files as the store holds them.
                    let shown = here
                        .store
                        .message(&here.server_name, here.channel_id, message.seq)?
                        .unwrap_or(message);
                    self.out.message(&shown, &self.names);
                }
            }
        }
        self.mark_read()?;
        crate::chat::send_receipt(&mut self.here, &self.identity).await
    }

    async fn event(&mut self, event: ClientEvent) -> Result<()> {
        match event {
            ClientEvent::Message(stored) if stored.channel_id == self.here.channel_id => {
                self.catch_up().await?;
            }
            ClientEvent::Message(stored) => {
                let channel = self
                    .here
                    .session
                    .channels
                    .iter()
                    .find(|channel| channel.id == stored.channel_id)
                    .map_or_else(|| "another channel".to_owned(), |c| format!("#{}", c.name));
                if self.out.json {
                    println!("{}", json!({"event": "unread", "channel": channel}));
                } else {
                    self.out.notice(&format!("new message in {channel}"));
                }
            }
            ClientEvent::Typing {
                channel_id,
                member_id,
            } if channel_id == self.here.channel_id
                // Shown once per spell of typing, not at every signal.
                && self.presence.typing(channel_id, member_id, Instant::now()) =>
            {
                let who = name_of(member_id, &self.names);
                if self.out.json {
                    println!("{}", json!({"event": "typing", "member": who}));
                } else {
                    println!("-- {who} is typing…");
                }
            }
            ClientEvent::Presence(members) => {
                for change in self.presence.apply(&members) {
                    if !self.names.contains_key(&change.member_id) {
                        self.names = names(&self.here.session).await;
                    }
                    let who = name_of(change.member_id, &self.names);
                    let (presence, status) = (describe(change.now.presence), &change.now.status);
                    if self.out.json {
                        println!(
                            "{}",
                            json!({
                                "event": "presence", "member": who,
                                "presence": presence, "status": status,
                            })
                        );
                    } else if status.is_empty() {
                        println!("-- {who} is {presence}");
                    } else {
                        println!("-- {who} is {presence}: {}", chat::printable(status));
                    }
                }
            }
            ClientEvent::ChannelsChanged(channels) => {
                // A conversation is not among the channels.
                let conversation = self.here.name.starts_with('@');
                match channels.iter().find(|c| c.id == self.here.channel_id) {
                    None if conversation => {}
                    None => bail!("{} was deleted", self.here.name),
                    Some(ours) if format!("#{}", ours.name) != self.here.name => {
                        let renamed = format!("#{}", ours.name);
                        self.out
                            .notice(&format!("{} is now {renamed}", self.here.name));
                        self.out.channel.clone_from(&ours.name);
                        self.here.name = renamed;
                    }
                    Some(_) => {}
                }
                self.here.session.channels = channels;
            }
            ClientEvent::Disconnected { reason, .. } => {
                self.out
                    .notice(&format!("connection lost ({reason}); reconnecting…"));
            }
            ClientEvent::Connected { .. } => {
                self.out.notice("reconnected");
                self.catch_up().await?;
            }
            ClientEvent::Stopped(error) => bail!("{error}"),
            _ => {}
        }
        Ok(())
    }

    /// Carries out one line typed; `false` to leave.
    async fn command(&mut self, line: &str) -> Result<bool> {
        if line.is_empty() {
            return Ok(true);
        }
        let Some(command) = line.strip_prefix('/') else {
            self.act(&Action::Text {
                text: line.to_owned(),
                reply_to: None,
            })
            .await?;
            return Ok(true);
        };
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim();
        let number_and_rest = || -> Result<(u64, &str)> {
            let (number, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let number = number
                .trim_start_matches('#')
                .parse()
                .with_context(|| format!("/{verb} needs a message number, as the list shows"))?;
            Ok((number, text.trim()))
        };
        match verb {
            "quit" | "exit" => return Ok(false),
            "help" => {
                if self.out.json {
                    println!("{}", json!({"event": "help", "text": HELP}));
                } else {
                    println!("{HELP}");
                }
            }
            "reply" => {
                let (target, text) = number_and_rest()?;
                self.act(&Action::Text {
                    text: text.to_owned(),
                    reply_to: Some(target),
                })
                .await?;
            }
            "edit" => {
                let (target, text) = number_and_rest()?;
                self.act(&Action::Edit {
                    target,
                    text: text.to_owned(),
                })
                .await?;
            }
            "delete" => {
                let (target, _) = number_and_rest()?;
                self.act(&Action::Delete { target }).await?;
            }
            "react" | "unreact" => {
                let (target, emoji) = number_and_rest()?;
                self.act(&Action::Reaction {
                    target,
                    emoji: emoji.to_owned(),
                    add: verb == "react",
                })
                .await?;
            }
            "pin" | "unpin" => {
                let (target, _) = number_and_rest()?;
                self.act(&Action::Pin {
                    target,
                    pin: verb == "pin",
                })
                .await?;
            }
            "thread" => {
                let (root, _) = number_and_rest()?;
                let here = &self.here;
                for message in here
                    .store
                    .thread(&here.server_name, here.channel_id, root)?
                {
                    self.out.message(&message, &self.names);
                }
            }
            "pins" => {
                let here = &self.here;
                let pins = here.store.pins(&here.server_name, here.channel_id)?;
                if pins.is_empty() {
                    self.out.notice("nothing is pinned here");
                }
                for message in pins {
                    self.out.message(&message, &self.names);
                }
            }
            "upload" => self.upload(rest).await?,
            "download" => {
                let (seq, path) = number_and_rest()?;
                self.download(seq, path).await?;
            }
            "status" => {
                let (word, status) = rest.split_once(' ').unwrap_or((rest, ""));
                let presence = match word {
                    "online" | "" => Presence::Online,
                    "idle" | "away" => Presence::Idle,
                    "dnd" | "busy" => Presence::DoNotDisturb,
                    "invisible" => Presence::Invisible,
                    other => bail!("no such status \"{other}\": online, idle, dnd or invisible"),
                };
                self.here
                    .session
                    .client
                    .set_presence(presence, status.trim())
                    .await?;
                self.out.notice(&format!("you are {}", describe(presence)));
            }
            "who" => {
                let mut here: Vec<String> = self
                    .presence
                    .online()
                    .iter()
                    .map(|member| {
                        let who = name_of(member.member_id, &self.names);
                        match (member.presence, member.status.as_str()) {
                            (Presence::Online, "") => who,
                            (presence, "") => format!("{who} ({})", describe(presence)),
                            (presence, status) => {
                                format!(
                                    "{who} ({}: {})",
                                    describe(presence),
                                    chat::printable(status)
                                )
                            }
                        }
                    })
                    .collect();
                here.sort();
                if self.out.json {
                    println!("{}", json!({"event": "who", "members": here}));
                } else if here.is_empty() {
                    println!("-- nobody else is here");
                } else {
                    println!("-- here: {}", here.join(", "));
                }
            }
            "typing" => {
                self.here
                    .session
                    .client
                    .typing(self.here.channel_id)
                    .await?;
            }
            other => bail!("no command /{other}; /help lists them"),
        }
        Ok(true)
    }

    /// Checks an action against the rules and posts it; its echo shows it.
    async fn act(&mut self, action: &Action) -> Result<()> {
        if action.target().is_some() || crate::chat::replies(action) {
            // Act on what the relay holds now.
            self.here.sync().await?;
        }
        act_in(&self.here, &self.identity, action).await?;
        Ok(())
    }

    async fn upload(&mut self, rest: &str) -> Result<()> {
        let (path, caption) = match rest.split_once(' ') {
            Some((path, caption)) => (path, caption.trim()),
            None => (rest, ""),
        };
        if path.is_empty() {
            bail!("/upload needs a file: /upload PATH [text]");
        }
        let here = &self.here;
        let json = self.out.json;
        let (posted, file) = files::share_file(
            &here.session,
            &self.identity,
            here.channel_id,
            Path::new(path),
            caption,
            &here.profile.transfers_dir(),
            &mut |progress| report(json, &progress),
        )
        .await
        .with_context(|| format!("could not share {path}"))?;
        self.out.notice(&format!(
            "shared {} as message {}",
            chat::printable(&file.name),
            posted.seq
        ));
        Ok(())
    }

    async fn download(&mut self, seq: u64, path: &str) -> Result<()> {
        let here = &self.here;
        let file = here
            .store
            .attachment(&here.server_name, here.channel_id, seq)?
            .with_context(|| format!("message {seq} carries no file you can open"))?;
        let destination = if path.is_empty() {
            crate::files::free_path(&std::env::current_dir()?, &file.name)
        } else if Path::new(path).is_dir() {
            crate::files::free_path(Path::new(path), &file.name)
        } else {
            Path::new(path).to_owned()
        };
        let json = self.out.json;
        files::fetch_file(
            &here.session,
            &file,
            &destination,
            &here.profile.transfers_dir(),
            &mut |progress| report(json, &progress),
        )
        .await
        .with_context(|| format!("could not download {}", file.name))?;
        self.out.notice(&format!(
            "saved {} to {} (SHA-256 checked)",
            chat::printable(&file.name),
            destination.display()
        ));
        Ok(())
    }
}

/// Retries are worth a line; progress is not, in a live view.
fn report(json: bool, progress: &Progress) {
    if let Progress::Retrying { why } = progress {
        if json {
            println!("{}", json!({"event": "retrying", "why": why}));
        } else {
            println!("-- {why}; trying again");
        }
    }
}
