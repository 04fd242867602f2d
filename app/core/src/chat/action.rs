//! What a message body means, by envelope kind: a text (maybe replying to an earlier message),
//! or an action on an earlier message (edit, delete, reaction). Plain code: parsing, encoding
//! and the rules for who may do what, which every member applies when it opens a message (the
//! relay sees none of it).
//!
//! ```text
//! kind 1  text      body = UTF-8 text
//! kind 2  reply     body = target seq (u64 BE) ‖ UTF-8 text
//! kind 3  edit      body = target seq (u64 BE) ‖ UTF-8 text (the new text)
//! kind 4  delete    body = target seq (u64 BE)
//! kind 5  reaction  body = target seq (u64 BE) ‖ add (1) or remove (0) ‖ UTF-8 emoji (1–32 bytes)
//! kind 6  file      body = file id [16] ‖ manifest [80] ‖ name (u16 BE length ‖ UTF-8, 1–255
//!                   bytes) ‖ media type (u8 length ‖ ASCII, 0–127) ‖ preview (u32 BE length,
//!                   0 for none, ‖ a JPEG of at most 48 KiB) ‖ UTF-8 text (a caption)
//! kind 7  pin       body = target seq (u64 BE) ‖ pin (1) or unpin (0)
//! kind 8  forward   body = origin channel (u32 BE) ‖ origin seq (u64 BE) ‖ origin author key
//!                   [32] ‖ origin sent at (Unix ms, u64 BE) ‖ has file (1) or not (0) ‖ [the
//!                   file, as kind 6 without its caption] ‖ UTF-8 text (the original's)
//! kind 9  read      body = seq (u64 BE): its author has read the conversation up to there (a
//!                   read receipt, sent only by those who switched them on)
//! kind 10 history   body = share (1) or not (0): whether members who join later get this
//!         sharing   channel's past text keys (admins only)
//! kind 11 history   body = recipient count (u16 BE) ‖ recipients' keys [32] × count ‖ key
//!         keys      count (u16 BE) ‖ (epoch (u64 BE) ‖ text secret [32]) × count: this
//!                   channel's past text secrets, for members who joined later
//! ```
//!
//! History keys are sealed like any message of the channel, in the epoch they are sent in:
//! every member then can open them, which is the point (a channel that shares its history
//! shares it with everyone in it). The recipients listed are only whom the sender meant them
//! for, so others do not share them again.
//!
//! A file's manifest holds the key of its sealed bytes, which the relay stores under the file
//! id: the message is what lets members open the file.

use sotto_net::seal::file::{FileManifest, MANIFEST_LEN, decode_manifest};

use super::thumbnail::{MAX_THUMBNAIL_LEN, is_jpeg};
use zeroize::Zeroizing;

/// The envelope kind of a plain text.
pub const KIND_TEXT: u8 = 1;
/// A text replying to an earlier message.
pub const KIND_REPLY: u8 = 2;
/// New text for an earlier message.
pub const KIND_EDIT: u8 = 3;
/// An earlier message taken back.
pub const KIND_DELETE: u8 = 4;
/// A reaction added to or removed from an earlier message.
pub const KIND_REACTION: u8 = 5;
/// A file shared, with a caption.
pub const KIND_FILE: u8 = 6;
/// An earlier message pinned to, or unpinned from, its channel.
pub const KIND_PIN: u8 = 7;
/// A message passed on from another channel (or this one).
pub const KIND_FORWARD: u8 = 8;
/// A read receipt: its author read the conversation up to a message.
pub const KIND_READ: u8 = 9;
/// Whether members who join later get the channel's past text keys.
pub const KIND_HISTORY_SHARING: u8 = 10;
/// The channel's past text keys, for members who joined later.
pub const KIND_HISTORY_KEYS: u8 = 11;

/// Most recipients one history-keys message names.
pub const MAX_HISTORY_RECIPIENTS: usize = 500;
/// Most past epochs one history-keys message carries (the latest ones).
pub const MAX_HISTORY_EPOCHS: usize = 1000;

/// A channel's past text secrets, by epoch (wiped when dropped; never printed).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PastKeys(pub Vec<(u64, Zeroizing<[u8; 32]>)>);

impl std::fmt::Debug for PastKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PastKeys({} epochs)", self.0.len())
    }
}

/// Where a forwarded message came from, as its forwarder tells it (not signed by its author).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The channel it was posted in.
    pub channel_id: u32,
    /// Its place there.
    pub seq: u64,
    /// Who wrote it.
    pub author: [u8; 32],
    /// When they sent it (their clock, Unix ms).
    pub sent_at_ms: u64,
}

/// Longest file name, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Longest media type, in bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 127;

/// How long after posting its author may still edit or delete a message (ms): 5 minutes.
pub const EDIT_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Longest reaction, in bytes (an emoji with modifiers).
pub const MAX_REACTION_LEN: usize = 32;

/// A message body, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A text, replying to `reply_to` if set.
    Text {
        /// The text.
        text: String,
        /// The seq of the message it answers.
        reply_to: Option<u64>,
    },
    /// New text for the message at `target`.
    Edit {
        /// The edited message's seq.
        target: u64,
        /// Its new text.
        text: String,
    },
    /// The message at `target` is taken back.
    Delete {
        /// The deleted message's seq.
        target: u64,
    },
    /// A reaction to the message at `target`.
    Reaction {
        /// The message's seq.
        target: u64,
        /// The emoji.
        emoji: String,
        /// Added (else removed).
        add: bool,
    },
    /// The message at `target` pinned (or unpinned).
    Pin {
        /// The message's seq.
        target: u64,
        /// Pinned (else unpinned).
        pin: bool,
    },
    /// A file, with a caption.
    File {
        /// The file.
        file: Attachment,
        /// The caption (may be empty).
        text: String,
    },
    /// A message passed on: its text and file, and where it came from.
    Forward {
        /// The original.
        origin: Origin,
        /// Its file, if it had one.
        file: Option<Attachment>,
        /// Its text.
        text: String,
    },
    /// A read receipt: its author has read up to message `up_to`.
    Read {
        /// The last message read.
        up_to: u64,
    },
    /// Whether members who join later get the channel's past text keys (admins).
    HistorySharing {
        /// Shared (else not).
        share: bool,
    },
    /// The channel's past text keys, for members who joined later.
    HistoryKeys {
        /// Whom they are meant for.
        recipients: Vec<[u8; 32]>,
        /// The keys, by epoch.
        keys: PastKeys,
    },
}

/// A file a message carries: where the relay keeps its sealed bytes, and the manifest that
/// opens them.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The stored file's id.
    pub blob_id: [u8; 16],
    /// The encoded manifest (it holds the file's key: never log it).
    pub manifest: Zeroizing<Vec<u8>>,
    /// The file's name, as the sender's device had it (no directories, no control characters).
    pub name: String,
    /// Its media type, e.g. `image/png` (may be empty).
    pub media_type: String,
    /// Its length before sealing, in bytes.
    pub size: u64,
    /// A small JPEG preview, for images.
    pub thumbnail: Option<Vec<u8>>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// The manifest, decoded.
    pub fn manifest(&self) -> Result<FileManifest, ActionError> {
        decode_manifest(&self.manifest).map_err(|_| ActionError::Malformed)
    }
}

/// Whether `name` may stand as a shared file's name: 1–255 bytes, no control characters, no
/// directory separators, not `.` or `..`.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME_LEN
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        && name != "."
        && name != ".."
}

/// A file's description at the start of `body`, and the bytes after it.
fn parse_file_head(body: &[u8]) -> Result<(Attachment, &[u8]), ActionError> {
    let (blob_id, rest) = body.split_at_checked(16).ok_or(ActionError::Malformed)?;
    let (manifest, rest) = rest
        .split_at_checked(MANIFEST_LEN)
        .ok_or(ActionError::Malformed)?;
    let size = decode_manifest(manifest)
        .map_err(|_| ActionError::Malformed)?
        .plaintext_len();
    let (name_len, rest) = rest.split_at_checked(2).ok_or(ActionError::Malformed)?;
    let name_len = usize::from(u16::from_be_bytes([name_len[0], name_len[1]]));
    let (name, rest) = rest
        .split_at_checked(name_len)
        .ok_or(ActionError::Malformed)?;
    let name = text_of(name)?;
    if !valid_file_name(&name) {
        return Err(ActionError::Malformed);
    }
    let (media_len, rest) = rest.split_first().ok_or(ActionError::Malformed)?;
    let (media_type, rest) = rest
        .split_at_checked(usize::from(*media_len))
        .ok_or(ActionError::Malformed)?;
    let media_type = text_of(media_type)?;
    if media_type.len() > MAX_MEDIA_TYPE_LEN
        || !media_type
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"')
    {
        return Err(ActionError::Malformed);
    }
    let (preview_len, rest) = rest.split_at_checked(4).ok_or(ActionError::Malformed)?;
    let preview_len =
        u32::from_be_bytes(preview_len.try_into().map_err(|_| ActionError::Malformed)?) as usize;
    if preview_len > MAX_THUMBNAIL_LEN {
        return Err(ActionError::Malformed);
    }
    let (preview, rest) = rest
        .split_at_checked(preview_len)
        .ok_or(ActionError::Malformed)?;
    if !preview.is_empty() && !is_jpeg(preview) {
        return Err(ActionError::Malformed);
    }
    let file = Attachment {
        blob_id: blob_id.try_into().map_err(|_| ActionError::Malformed)?,
        manifest: Zeroizing::new(manifest.to_vec()),
        name,
        media_type,
        size,
        thumbnail: (!preview.is_empty()).then(|| preview.to_vec()),
    };
    Ok((file, rest))
}

fn encode_file_head(file: &Attachment, body: &mut Vec<u8>) {
    body.extend_from_slice(&file.blob_id);
    body.extend_from_slice(&file.manifest);
    let name_len = u16::try_from(file.name.len()).unwrap_or(u16::MAX);
    body.extend_from_slice(&name_len.to_be_bytes());
    body.extend_from_slice(file.name.as_bytes());
    body.push(u8::try_from(file.media_type.len()).unwrap_or(u8::MAX));
    body.extend_from_slice(file.media_type.as_bytes());
    let preview = file.thumbnail.as_deref().unwrap_or_default();
    body.extend_from_slice(
        &u32::try_from(preview.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(preview);
}

fn parse_file(body: &[u8]) -> Result<Action, ActionError> {
    let (file, caption) = parse_file_head(body)?;
    Ok(Action::File {
        file,
        text: text_of(caption)?,
    })
}

fn parse_forward(body: &[u8]) -> Result<Action, ActionError> {
    let (channel_id, rest) = body.split_at_checked(4).ok_or(ActionError::Malformed)?;
    let (seq, rest) = split_target(rest)?;
    let (author, rest) = rest.split_at_checked(32).ok_or(ActionError::Malformed)?;
    let (sent_at, rest) = rest.split_at_checked(8).ok_or(ActionError::Malformed)?;
    let (has_file, rest) = rest.split_first().ok_or(ActionError::Malformed)?;
    let (file, text) = match has_file {
        0 => (None, rest),
        1 => {
            let (file, rest) = parse_file_head(rest)?;
            (Some(file), rest)
        }
        _ => return Err(ActionError::Malformed),
    };
    Ok(Action::Forward {
        origin: Origin {
            channel_id: u32::from_be_bytes(
                channel_id.try_into().map_err(|_| ActionError::Malformed)?,
            ),
            seq,
            author: author.try_into().map_err(|_| ActionError::Malformed)?,
            sent_at_ms: u64::from_be_bytes(sent_at.try_into().map_err(|_| ActionError::Malformed)?),
        },
        file,
        text: text_of(text)?,
    })
}

/// Why a body is not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// A kind this version does not know.
    #[error("a kind of message this version does not show")]
    UnknownKind,
    /// The body does not fit its kind.
    #[error("a malformed message")]
    Malformed,
}

fn parse_history_keys(body: &[u8]) -> Result<Action, ActionError> {
    fn count(bytes: &[u8]) -> Result<(usize, &[u8]), ActionError> {
        let (count, rest) = bytes.split_at_checked(2).ok_or(ActionError::Malformed)?;
        Ok((usize::from(u16::from_be_bytes([count[0], count[1]])), rest))
    }
    let (recipient_count, rest) = count(body)?;
    if recipient_count > MAX_HISTORY_RECIPIENTS {
        return Err(ActionError::Malformed);
    }
    let (listed, rest) = rest
        .split_at_checked(recipient_count * 32)
        .ok_or(ActionError::Malformed)?;
    let recipients = listed
        .chunks_exact(32)
        .map(|key| key.try_into().map_err(|_| ActionError::Malformed))
        .collect::<Result<Vec<[u8; 32]>, _>>()?;
    let (key_count, rest) = count(rest)?;
    if key_count > MAX_HISTORY_EPOCHS || rest.len() != key_count * 40 {
        return Err(ActionError::Malformed);
    }
    let keys = rest
        .chunks_exact(40)
        .map(|entry| {
            let (epoch, secret) = entry.split_at(8);
            let epoch = u64::from_be_bytes(epoch.try_into().map_err(|_| ActionError::Malformed)?);
            let secret: [u8; 32] = secret.try_into().map_err(|_| ActionError::Malformed)?;
            Ok((epoch, Zeroizing::new(secret)))
        })
        .collect::<Result<Vec<_>, ActionError>>()?;
    Ok(Action::HistoryKeys {
        recipients,
        keys: PastKeys(keys),
    })
}

fn split_target(body: &[u8]) -> Result<(u64, &[u8]), ActionError> {
    let (target, rest) = body.split_at_checked(8).ok_or(ActionError::Malformed)?;
    let target = u64::from_be_bytes(target.try_into().map_err(|_| ActionError::Malformed)?);
    if target == 0 {
        return Err(ActionError::Malformed);
    }
    Ok((target, rest))
}

fn text_of(bytes: &[u8]) -> Result<String, ActionError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ActionError::Malformed)
}

impl Action {
    /// Reads a body of envelope kind `kind`.
    pub fn parse(kind: u8, body: &[u8]) -> Result<Self, ActionError> {
        match kind {
            KIND_TEXT => Ok(Self::Text {
                text: text_of(body)?,
                reply_to: None,
            }),
            KIND_REPLY => {
                let (target, text) = split_target(body)?;
                Ok(Self::Text {
                    text: text_of(text)?,
                    reply_to: Some(target),
                })
            }
            KIND_EDIT => {
                let (target, text) = split_target(body)?;
                Ok(Self::Edit {
                    target,
                    text: text_of(text)?,
                })
            }
            KIND_DELETE => {
                let (target, rest) = split_target(body)?;
                if !rest.is_empty() {
                    return Err(ActionError::Malformed);
                }
                Ok(Self::Delete { target })
            }
            KIND_REACTION => {
                let (target, rest) = split_target(body)?;
                let (add, emoji) = rest.split_first().ok_or(ActionError::Malformed)?;
                let emoji = text_of(emoji)?;
                let add = match add {
                    1 => true,
                    0 => false,
                    _ => return Err(ActionError::Malformed),
                };
                if emoji.is_empty()
                    || emoji.len() > MAX_REACTION_LEN
                    || emoji.chars().any(char::is_control)
                {
                    return Err(ActionError::Malformed);
                }
                Ok(Self::Reaction { target, emoji, add })
            }
            KIND_FILE => parse_file(body),
            KIND_HISTORY_SHARING => match body {
                [share @ (0 | 1)] => Ok(Self::HistorySharing { share: *share == 1 }),
                _ => Err(ActionError::Malformed),
            },
            KIND_HISTORY_KEYS => parse_history_keys(body),
            KIND_READ => {
                let (up_to, rest) = split_target(body)?;
                if !rest.is_empty() {
                    return Err(ActionError::Malformed);
                }
                Ok(Self::Read { up_to })
            }
            KIND_FORWARD => parse_forward(body),
            KIND_PIN => {
                let (target, rest) = split_target(body)?;
                match rest {
                    [1] => Ok(Self::Pin { target, pin: true }),
                    [0] => Ok(Self::Pin { target, pin: false }),
                    _ => Err(ActionError::Malformed),
                }
            }
            _ => Err(ActionError::UnknownKind),
        }
    }

    /// The envelope kind and body.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            Self::Text {
                text,
                reply_to: None,
            } => (KIND_TEXT, text.as_bytes().to_vec()),
            Self::Text {
                text,
                reply_to: Some(target),
            } => (
                KIND_REPLY,
                [&target.to_be_bytes()[..], text.as_bytes()].concat(),
            ),
            Self::Edit { target, text } => (
                KIND_EDIT,
                [&target.to_be_bytes()[..], text.as_bytes()].concat(),
            ),
            Self::Delete { target } => (KIND_DELETE, target.to_be_bytes().to_vec()),
            Self::Read { up_to } => (KIND_READ, up_to.to_be_bytes().to_vec()),
            Self::HistorySharing { share } => (KIND_HISTORY_SHARING, vec![u8::from(*share)]),
            Self::HistoryKeys { recipients, keys } => {
                let mut body = Vec::with_capacity(4 + recipients.len() * 32 + keys.0.len() * 40);
                body.extend_from_slice(&(recipients.len() as u16).to_be_bytes());
                for recipient in recipients {
                    body.extend_from_slice(recipient);
                }
                body.extend_from_slice(&(keys.0.len() as u16).to_be_bytes());
                for (epoch, secret) in &keys.0 {
                    body.extend_from_slice(&epoch.to_be_bytes());
                    body.extend_from_slice(secret.as_slice());
                }
                (KIND_HISTORY_KEYS, body)
            }
            Self::Reaction { target, emoji, add } => (
                KIND_REACTION,
                [
                    &target.to_be_bytes()[..],
                    &[u8::from(*add)],
                    emoji.as_bytes(),
                ]
                .concat(),
            ),
            Self::Pin { target, pin } => (
                KIND_PIN,
                [&target.to_be_bytes()[..], &[u8::from(*pin)]].concat(),
            ),
            Self::File { file, text } => {
                let mut body = Vec::with_capacity(160 + file.name.len() + text.len());
                encode_file_head(file, &mut body);
                body.extend_from_slice(text.as_bytes());
                (KIND_FILE, body)
            }
            Self::Forward { origin, file, text } => {
                let mut body = Vec::with_capacity(220 + text.len());
                body.extend_from_slice(&origin.channel_id.to_be_bytes());
                body.extend_from_slice(&origin.seq.to_be_bytes());
                body.extend_from_slice(&origin.author);
                body.extend_from_slice(&origin.sent_at_ms.to_be_bytes());
                match file {
                    Some(file) => {
                        body.push(1);
                        encode_file_head(file, &mut body);
                    }
                    None => body.push(0),
                }
                body.extend_from_slice(text.as_bytes());
                (KIND_FORWARD, body)
            }
        }
    }

    /// The earlier message this acts on (edits, deletions and reactions).
    pub fn target(&self) -> Option<u64> {
        match self {
            Self::Text { .. }
            | Self::File { .. }
            | Self::Forward { .. }
            | Self::Read { .. }
            | Self::HistorySharing { .. }
            | Self::HistoryKeys { .. } => None,
            Self::Edit { target, .. }
            | Self::Delete { target }
            | Self::Reaction { target, .. }
            | Self::Pin { target, .. } => Some(*target),
        }
    }
}

/// What the rules need to know about the message acted on and the one acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionFacts {
    /// Whether the actor wrote the target message.
    pub actor_is_author: bool,
    /// Whether the actor is an admin of the group.
    pub actor_is_admin: bool,
    /// When the relay stored the target (Unix ms).
    pub target_posted_at_ms: u64,
    /// When the relay stored the action (Unix ms): the relay's clock, not the actor's.
    pub action_posted_at_ms: u64,
    /// Whether the target was deleted already.
    pub target_deleted: bool,
}

/// Why an action is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Only the author edits a message.
    #[error("only its author can edit a message")]
    NotTheAuthor,
    /// The author's 5 minutes are over (admins may still delete).
    #[error("a message can be edited or deleted only within 5 minutes of sending it")]
    TooLate,
    /// Nobody else may delete it.
    #[error("only its author (within 5 minutes) or an admin can delete a message")]
    NotAllowed,
    /// Only admins pin.
    #[error("only an admin can pin or unpin messages")]
    NotAnAdmin,
    /// The target is deleted.
    #[error("that message was deleted")]
    Deleted,
}

/// Whether `action` may be applied to its target: the author edits and deletes within 5
/// minutes of posting; admins delete any message at any time; anyone reacts to a message that
/// is still there.
pub fn permitted(action: &Action, facts: &ActionFacts) -> Result<(), Refusal> {
    if facts.target_deleted {
        return Err(Refusal::Deleted);
    }
    let within_window = facts
        .action_posted_at_ms
        .saturating_sub(facts.target_posted_at_ms)
        <= EDIT_WINDOW_MS;
    match action {
        Action::Text { .. }
        | Action::File { .. }
        | Action::Forward { .. }
        | Action::Read { .. }
        | Action::HistoryKeys { .. }
        | Action::Reaction { .. } => Ok(()),
        Action::HistorySharing { .. } if facts.actor_is_admin => Ok(()),
        Action::HistorySharing { .. } => Err(Refusal::NotAnAdmin),
        // Channel admins may edit their own messages at any time (the seed's message table).
        Action::Edit { .. } => match (facts.actor_is_author, within_window || facts.actor_is_admin)
        {
            (false, _) => Err(Refusal::NotTheAuthor),
            (true, false) => Err(Refusal::TooLate),
            (true, true) => Ok(()),
        },
        Action::Pin { .. } if facts.actor_is_admin => Ok(()),
        Action::Pin { .. } => Err(Refusal::NotAnAdmin),
        Action::Delete { .. } => {
            if facts.actor_is_admin {
                Ok(())
            } else if !facts.actor_is_author {
                Err(Refusal::NotAllowed)
            } else if within_window {
                Ok(())
            } else {
                Err(Refusal::TooLate)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(author: bool, admin: bool, after_ms: u64) -> ActionFacts {
        ActionFacts {
            actor_is_author: author,
            actor_is_admin: admin,
            target_posted_at_ms: 1_000_000,
            action_posted_at_ms: 1_000_000 + after_ms,
            target_deleted: false,
        }
    }

    #[test]
    fn every_action_round_trips_and_malformed_bodies_are_refused() {
        let actions = [
            Action::Text {
                text: "hi".into(),
                reply_to: None,
            },
            Action::Text {
                text: "yes!".into(),
                reply_to: Some(3),
            },
            Action::Edit {
                target: 3,
                text: "fixed".into(),
            },
            Action::Delete { target: 9 },
            Action::Read { up_to: 12 },
            Action::HistorySharing { share: true },
            Action::HistoryKeys {
                recipients: vec![[3; 32], [4; 32]],
                keys: PastKeys(vec![
                    (0, Zeroizing::new([7; 32])),
                    (5, Zeroizing::new([8; 32])),
                ]),
            },
            Action::Reaction {
                target: 9,
                emoji: "👍🏽".into(),
                add: true,
            },
            Action::Pin {
                target: 4,
                pin: false,
            },
            Action::Forward {
                origin: Origin {
                    channel_id: 3,
                    seq: 12,
                    author: [5; 32],
                    sent_at_ms: 1_800_000_000_000,
                },
                file: None,
                text: "ship it".into(),
            },
        ];
        for action in actions {
            let (kind, body) = action.encode();
            assert_eq!(Action::parse(kind, &body), Ok(action));
        }
        assert_eq!(Action::parse(12, b""), Err(ActionError::UnknownKind));
        assert_eq!(
            Action::parse(KIND_READ, &[0; 9]),
            Err(ActionError::Malformed)
        );
        assert_eq!(
            Action::parse(KIND_HISTORY_SHARING, &[2]),
            Err(ActionError::Malformed)
        );
        // Counts that run past the body, or bytes left over.
        assert_eq!(
            Action::parse(KIND_HISTORY_KEYS, &[0, 2, 0]),
            Err(ActionError::Malformed)
        );
        assert_eq!(
            Action::parse(KIND_HISTORY_KEYS, &[0, 0, 0, 1, 9]),
            Err(ActionError::Malformed)
        );
        assert_eq!(
            Action::parse(KIND_HISTORY_KEYS, &[0xff, 0xff]),
            Err(ActionError::Malformed)
        );
        assert_eq!(
            Action::parse(KIND_EDIT, b"short"),
            Err(ActionError::Malformed)
        );
        assert_eq!(
            Action::parse(KIND_DELETE, &[0; 8]),
            Err(ActionError::Malformed),
            "seqs start at 1"
        );
        let mut reaction = 5u64.to_be_bytes().to_vec();
        reaction.extend([1, 0x1b]);
        assert_eq!(
            Action::parse(KIND_REACTION, &reaction),
            Err(ActionError::Malformed),
            "no control characters"
        );
        let mut reaction = 5u64.to_be_bytes().to_vec();
        reaction.push(2);
        reaction.extend("x".as_bytes());
        assert_eq!(
            Action::parse(KIND_REACTION, &reaction),
            Err(ActionError::Malformed)
        );
    }

    fn sample_file(name: &str, media_type: &str) -> Attachment {
        let manifest = sotto_net::seal::file::FileSealer::new(&b"sotto"[..])
            .seal_to(std::io::sink())
            .unwrap();
        Attachment {
            blob_id: [4; 16],
            manifest: Zeroizing::new(sotto_net::seal::file::encode_manifest(&manifest).to_vec()),
            name: name.into(),
            media_type: media_type.into(),
            size: 5,
            thumbnail: Some(vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]),
        }
    }

    #[test]
    fn files_round_trip_and_bad_names_or_manifests_are_refused() {
        let share = Action::File {
            file: sample_file("plan.txt", "text/plain"),
            text: "the plan".into(),
        };
        let (kind, body) = share.encode();
        assert_eq!(kind, KIND_FILE);
        assert_eq!(Action::parse(kind, &body), Ok(share.clone()));
        let Action::File { file, .. } = &share else {
            unreachable!()
        };
        let passed_on = Action::Forward {
            origin: Origin {
                channel_id: 1,
                seq: 2,
                author: [6; 32],
                sent_at_ms: 7,
            },
            file: Some(file.clone()),
            text: "the plan".into(),
        };
        let (kind, body) = passed_on.encode();
        assert_eq!(Action::parse(kind, &body), Ok(passed_on));
        let mut not_jpeg = sample_file("x.png", "image/png");
        not_jpeg.thumbnail = Some(b"<svg onload=...>".to_vec());
        let (_, body) = Action::File {
            file: not_jpeg,
            text: String::new(),
        }
        .encode();
        assert_eq!(
            Action::parse(KIND_FILE, &body),
            Err(ActionError::Malformed),
            "previews are JPEGs only"
        );
        assert!(
            !format!("{share:?}").contains("manifest"),
            "the key stays out of logs"
        );
        for bad_name in ["", "../x", "a/b", "a\\b", "bell\u{7}", ".."] {
            let (_, body) = Action::File {
                file: sample_file(bad_name, ""),
                text: String::new(),
            }
            .encode();
            assert_eq!(
                Action::parse(KIND_FILE, &body),
                Err(ActionError::Malformed),
                "{bad_name:?}"
            );
        }
        let (_, body) = Action::File {
            file: sample_file("x", "text/\"quoted\""),
            text: String::new(),
        }
        .encode();
        assert_eq!(Action::parse(KIND_FILE, &body), Err(ActionError::Malformed));
        let mut broken = share.encode().1;
        broken[16] = 9; // manifest version
        assert_eq!(
            Action::parse(KIND_FILE, &broken),
            Err(ActionError::Malformed)
        );
        assert_eq!(
            Action::parse(KIND_FILE, &broken[..50]),
            Err(ActionError::Malformed)
        );
    }

    #[test]
    fn the_author_edits_and_deletes_for_five_minutes_and_admins_delete_always() {
        let edit = Action::Edit {
            target: 1,
            text: "x".into(),
        };
        let delete = Action::Delete { target: 1 };
        let minute = 60_000;
        assert_eq!(permitted(&edit, &facts(true, false, 4 * minute)), Ok(()));
        assert_eq!(permitted(&edit, &facts(true, false, 5 * minute)), Ok(()));
        assert_eq!(
            permitted(&edit, &facts(true, false, 5 * minute + 1)),
            Err(Refusal::TooLate)
        );
        assert_eq!(
            permitted(&edit, &facts(false, true, 0)),
            Err(Refusal::NotTheAuthor),
            "admins do not put words in others' mouths"
        );
        assert_eq!(
            permitted(&edit, &facts(true, true, 600 * minute)),
            Ok(()),
            "channel admins edit their own at any time"
        );
        assert_eq!(permitted(&delete, &facts(true, false, minute)), Ok(()));
        assert_eq!(
            permitted(&delete, &facts(true, false, 6 * minute)),
            Err(Refusal::TooLate)
        );
        assert_eq!(
            permitted(&delete, &facts(false, true, 600 * minute)),
            Ok(())
        );
        assert_eq!(
            permitted(&delete, &facts(false, false, 0)),
            Err(Refusal::NotAllowed)
        );
        let reaction = Action::Reaction {
            target: 1,
            emoji: "🎉".into(),
            add: true,
        };
        assert_eq!(
            permitted(&reaction, &facts(false, false, 900 * minute)),
            Ok(())
        );
        let pin = Action::Pin {
            target: 1,
            pin: true,
        };
        assert_eq!(permitted(&pin, &facts(false, true, 900 * minute)), Ok(()));
        assert_eq!(
            permitted(&pin, &facts(true, false, 0)),
            Err(Refusal::NotAnAdmin)
        );
        let gone = ActionFacts {
            target_deleted: true,
            ..facts(true, true, 0)
        };
        assert_eq!(permitted(&reaction, &gone), Err(Refusal::Deleted));
    }
}
