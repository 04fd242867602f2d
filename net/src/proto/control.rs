//! Control frames: the messages on a connection's bidirectional control stream.
//!
//! Every frame is `length: u32 | version: u8 | kind: u8 | body`, big-endian, where `length`
//! counts the bytes after itself and never exceeds [`MAX_FRAME_LEN`]. A frame is parsed only
//! once it is complete, and every field is bounded and validated; see `net/PROTOCOL.md`.

use crate::proto::PROTOCOL_VERSION;
use crate::proto::wire::{Reader, Writer};

/// Largest allowed value of a frame's length prefix, except for group frames.
pub const MAX_FRAME_LEN: usize = 256 * 1024;
/// Largest allowed length of a group frame (MLS handshake messages: a Welcome or a commit of a
/// group of a few thousand members).
pub const MAX_GROUP_FRAME_LEN: usize = 2 * 1024 * 1024;
/// Largest MLS message or other opaque group payload in a frame.
pub const MAX_GROUP_PAYLOAD: usize = MAX_GROUP_FRAME_LEN - 1024;
/// Longest MLS group id.
pub const MAX_GROUP_ID_LEN: usize = 64;
/// Largest invite grant.
pub const MAX_GRANT_LEN: usize = 512;
/// Largest display, server, channel or category name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Largest error message, in UTF-8 bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Most channels one `Welcome` may list.
pub const MAX_CHANNELS: usize = 1000;
/// Most participants one `Roster` may list.
pub const MAX_PARTICIPANTS: usize = 1000;
/// Most KeyPackages uploaded in one frame.
pub const MAX_KEY_PACKAGES_PER_UPLOAD: usize = 32;
/// Largest KeyPackage (an MLS message) accepted.
pub const MAX_KEY_PACKAGE_LEN: usize = 16 * 1024;
/// Largest sealed message envelope the relay stores: a text envelope with the largest body
/// (64 KiB) and its sealing; files travel apart.
pub const MAX_ENVELOPE_LEN: usize = crate::seal::text::MAX_ENVELOPE_LEN;
/// Most messages in one page of a channel's history.
pub const MAX_MESSAGES_PER_PAGE: usize = 100;
/// Most members in one page of the member list.
pub const MAX_MEMBERS_PER_PAGE: usize = 1000;
/// Most files one message may carry.
pub const MAX_FILES_PER_MESSAGE: usize = 10;
/// Most members of one conversation, its creator included.
pub const MAX_CONVERSATION_MEMBERS: usize = 10;
/// Most conversations one `Conversations` frame may list.
pub const MAX_CONVERSATIONS: usize = 1000;
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// An Ed25519 public key identifying a member.
pub type PublicKey = [u8; 32];
/// A random per-join salt from which a sender's media keys are derived.
pub type SessionSalt = [u8; 16];
/// A random invite token; the relay stores only its hash.
pub type InviteToken = [u8; 16];

/// Whether a channel carries text or voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelKind {
    /// A text channel.
    Text,
    /// A voice channel.
    Voice,
}

impl ChannelKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Text => 0,
            Self::Voice => 1,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            0 => Ok(Self::Text),
            1 => Ok(Self::Voice),
            _ => Err(DecodeError::InvalidValue {
                field: "channel kind",
            }),
        }
    }
}

/// A channel as the relay describes it to members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The relay's identifier for the channel.
    pub id: u32,
    /// Channel name, e.g. `general`.
    pub name: String,
    /// Text or voice.
    pub kind: ChannelKind,
    /// Sort order within its category, lowest first.
    pub position: u16,
    /// Category heading the channel is listed under; empty for none.
    pub category: String,
    /// What the channel is for, shown under its name; empty for none.
    pub topic: String,
}

/// A change to the server's channels (the owner's, until roles come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelChange {
    /// A new channel, listed last in its category.
    Create {
        /// Its name.
        name: String,
        /// Text or voice.
        kind: ChannelKind,
        /// Its category; empty for none.
        category: String,
        /// Its topic; empty for none.
        topic: String,
    },
    /// New name, place or topic for a channel.
    Update {
        /// The channel.
        channel_id: u32,
        /// Its name.
        name: String,
        /// Its category; empty for none.
        category: String,
        /// Its topic; empty for none.
        topic: String,
        /// Its place within the category, lowest first.
        position: u16,
    },
    /// A channel deleted, with its messages.
    Delete {
        /// The channel.
        channel_id: u32,
    },
}

/// A conversation: direct messages between a few members of a server, sealed with keys of an
/// MLS group of its own. Its messages are posted and read like a text channel's, under `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationInfo {
    /// Its channel id (shared with the server's channels: never reused).
    pub id: u32,
    /// Its MLS group.
    pub group_id: Vec<u8>,
    /// Who opened it (the group's admin, who adds everyone else).
    pub creator: PublicKey,
    /// Everyone in it, the creator included.
    pub members: Vec<PublicKey>,
}

/// The server (community) a member belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The relay's identifier for the server.
    pub id: u32,
    /// Server name.
    pub name: String,
}

/// One member present in a voice channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The sender slot the relay assigned; it appears in every media datagram this member sends.
    pub slot: u16,
    /// The member's identifier.
    pub member_id: u32,
    /// The member's identity key.
    pub public_key: PublicKey,
    /// The member's display name.
    pub display_name: String,
    /// The salt this member chose when joining; receivers derive its media keys from it.
    pub session_salt: SessionSalt,
}

/// A member of the server, as the relay's member list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// The member's identifier.
    pub member_id: u32,
    /// The member's identity key.
    pub public_key: PublicKey,
    /// The display name the member last connected with.
    pub display_name: String,
    /// Whether the member owns the server.
    pub is_owner: bool,
    /// Whether the member is connected now.
    pub online: bool,
}

/// How present a member is. `Invisible` is only ever set by a member: others see it as
/// `Offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Here.
    Online,
    /// Away from the keyboard for a while.
    Idle,
    /// Here, but not to be disturbed (no notifications).
    DoNotDisturb,
    /// Online, but shown to others as offline.
    Invisible,
    /// Not connected.
    Offline,
}

impl Presence {
    /// The value on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Online => 0,
            Self::Idle => 1,
            Self::DoNotDisturb => 2,
            Self::Invisible => 3,
            Self::Offline => 4,
        }
    }

    /// The presence a wire value stands for.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Online,
            1 => Self::Idle,
            2 => Self::DoNotDisturb,
            3 => Self::Invisible,
            4 => Self::Offline,
            _ => return None,
        })
    }
}

/// A member's presence as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPresence {
    /// The member.
    pub member_id: u32,
    /// How present (never `Invisible`).
    pub presence: Presence,
    /// Their custom status (empty for none).
    pub status: String,
}

/// A message as the relay stores and hands it out: sealed, so only members can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The text channel.
    pub channel_id: u32,
    /// Its place in the channel, from 1, with no gaps.
    pub seq: u64,
    /// The id its author chose (posting it again is harmless).
    pub message_id: [u8; 16],
    /// The author's member id (the author's signature is inside the envelope).
    pub author: u32,
    /// When the relay stored it, in Unix milliseconds.
    pub posted_at: u64,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
}

/// Why the relay refused or ended something. Codes are stable on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The peer broke the protocol (malformed or unexpected frame).
    ProtocolViolation,
    /// The peer speaks a protocol version this side does not.
    UnsupportedVersion,
    /// The identity signature did not verify.
    AuthenticationFailed,
    /// The invite token is unknown.
    InviteUnknown,
    /// The invite has expired.
    InviteExpired,
    /// The invite has no uses left.
    InviteUsedUp,
    /// The key is not a member and presented no invite.
    NotAMember,
    /// The channel does not exist.
    NoSuchChannel,
    /// The channel exists but is not a voice channel.
    NotAVoiceChannel,
    /// The member lacks the permission.
    Forbidden,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// The relay failed internally; try again later.
    Internal,
    /// Too many requests in too short a time; slow down.
    RateLimited,
    /// The voice channel holds as many people as the relay allows.
    ChannelFull,
    /// The member has as many invites as the relay allows; wait or let some expire.
    InviteLimit,
    /// The MLS group refused a handshake message (invalid, or breaks the group's rules).
    GroupRefused,
    /// The channel exists but is not a text channel.
    NotATextChannel,
    /// The message is larger than the relay allows.
    MessageTooLarge,
    /// The file is larger than the server allows.
    FileTooLarge,
    /// Another channel of the same kind has that name.
    ChannelNameTaken,
    /// No such file is stored (never uploaded, not finished, or deleted).
    NoSuchFile,
    /// The uploaded bytes do not match the announced SHA-256; upload them again.
    FileDamaged,
    /// The member is timed out: they cannot send or speak until it ends.
    TimedOut,
    /// The channel is in slow mode and the member posted too recently; wait.
    SlowMode,
    /// The identity key is banned from the server.
    Banned,
    /// A code this build does not know.
    Unknown(u16),
}

impl ErrorCode {
    /// The code's value on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::ProtocolViolation => 1,
            Self::UnsupportedVersion => 2,
            Self::AuthenticationFailed => 3,
            Self::InviteUnknown => 4,
            Self::InviteExpired => 5,
            Self::InviteUsedUp => 6,
            Self::NotAMember => 7,
            Self::NoSuchChannel => 8,
            Self::NotAVoiceChannel => 9,
            Self::Forbidden => 10,
            Self::HandshakeTimeout => 11,
            Self::Internal => 12,
            Self::RateLimited => 13,
            Self::ChannelFull => 14,
            Self::InviteLimit => 15,
            Self::GroupRefused => 16,
            Self::NotATextChannel => 17,
            Self::MessageTooLarge => 18,
            Self::FileTooLarge => 19,
            Self::NoSuchFile => 20,
            Self::FileDamaged => 21,
            Self::ChannelNameTaken => 22,
            Self::TimedOut => 23,
            Self::SlowMode => 24,
            Self::Banned => 25,
            Self::Unknown(code) => code,
        }
    }

    /// The code for a wire value.
    pub fn from_u16(code: u16) -> Self {
        match code {
            1 => Self::ProtocolViolation,
            2 => Self::UnsupportedVersion,
            3 => Self::AuthenticationFailed,
            4 => Self::InviteUnknown,
            5 => Self::InviteExpired,
            6 => Self::InviteUsedUp,
            7 => Self::NotAMember,
            8 => Self::NoSuchChannel,
            9 => Self::NotAVoiceChannel,
            10 => Self::Forbidden,
            11 => Self::HandshakeTimeout,
            12 => Self::Internal,
            13 => Self::RateLimited,
            14 => Self::ChannelFull,
            15 => Self::InviteLimit,
            16 => Self::GroupRefused,
            17 => Self::NotATextChannel,
            18 => Self::MessageTooLarge,
            19 => Self::FileTooLarge,
            20 => Self::NoSuchFile,
            21 => Self::FileDamaged,
            22 => Self::ChannelNameTaken,
            23 => Self::TimedOut,
            24 => Self::SlowMode,
            25 => Self::Banned,
            other => Self::Unknown(other),
        }
    }
}

/// Every message that travels on the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlFrame {
    /// Client → relay, first frame: who I am, and the invite that admits me if I am new.
    Hello {
        /// The member's Ed25519 identity key.
        public_key: PublicKey,
        /// The name to show others.
        display_name: String,
        /// An invite token, needed only by a key the relay does not know yet.
        invite: Option<InviteToken>,
    },
    /// Relay → client: sign this fresh nonce to prove you hold the key.
    Challenge {
        /// 32 random bytes chosen by the relay for this connection.
        nonce: [u8; 32],
    },
    /// Client → relay: the Ed25519 signature over the challenge (see [`crate::identity`]).
    Authenticate {
        /// The signature.
        signature: [u8; 64],
    },
    /// Relay → client: you are in.
    Welcome {
        /// The member's identifier.
        member_id: u32,
        /// The server the member belongs to.
        server: ServerInfo,
        /// The server's channels.
        channels: Vec<ChannelInfo>,
    },
    /// Client → relay: put me in this voice channel (leaving any other).
    JoinVoice {
        /// The voice channel.
        channel_id: u32,
        /// Fresh random salt for this join; see [`crate::crypto`].
        session_salt: SessionSalt,
    },
    /// Relay → client: you are in the voice channel and send with this slot.
    VoiceJoined {
        /// The voice channel.
        channel_id: u32,
        /// The sender slot to put in media datagrams.
        slot: u16,
    },
    /// Client → relay: take me out of my voice channel.
    LeaveVoice,
    /// Relay → client: everyone in the voice channel, sent once right after `VoiceJoined`.
    /// Later changes arrive as [`ControlFrame::RosterChanged`].
    Roster {
        /// The voice channel.
        channel_id: u32,
        /// Everyone in it, the receiver included.
        participants: Vec<Participant>,
    },
    /// Relay → client: who joined and who left our voice channel since the last roster frame.
    /// Changes are coalesced per slot: each slot appears at most once, in `joined` (the slot is
    /// now held by this participant, replacing whoever held it) or in `left` (it is now empty).
    RosterChanged {
        /// The voice channel.
        channel_id: u32,
        /// Participants who now hold these slots.
        joined: Vec<Participant>,
        /// Slots that are now empty.
        left: Vec<u16>,
    },
    /// Client → relay: make a new invite for my server.
    CreateInvite {
        /// Seconds until it expires; none for never.
        expires_in_secs: Option<u32>,
        /// How many new members it may admit; none for unlimited.
        max_uses: Option<u32>,
        /// The signed invite grant (see `sotto_net::group::InviteGrant`) the relay hands to
        /// whoever joins with this invite, so they can prove they hold its secret.
        grant: Option<Vec<u8>>,
    },
    /// Client → relay: list the server's members with ids above `after` (0 from the start).
    ListMembers {
        /// The last member id of the previous page; 0 for the first page.
        after: u32,
    },
    /// Relay → client: one page of members, by ascending id.
    MemberList {
        /// The members.
        members: Vec<ListedMember>,
        /// Whether more follow (ask again with the last id here).
        more: bool,
    },
    /// Relay → client: the invite made on request.
    InviteCreated {
        /// The token to put in the link.
        token: InviteToken,
        /// Expiry as seconds since the Unix epoch; none for never.
        expires_at: Option<u64>,
        /// How many new members it may admit; none for unlimited.
        max_uses: Option<u32>,
    },
    /// Client → relay: I hold this group at `epoch` (none: not a member yet); send what I
    /// missed.
    GroupSync {
        /// The MLS group.
        group_id: Vec<u8>,
        /// Our epoch, if we are a member.
        epoch: Option<u64>,
    },
    /// Relay → client, answering `GroupSync`: the group's epoch (none: it does not exist yet)
    /// and, for a member not yet in the group, the grant of the invite it came with. What the
    /// member missed (`GroupMessage`, `GroupWelcome`, `JoinRequested`) comes just before it.
    GroupStatus {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The group's current epoch, if it exists.
        epoch: Option<u64>,
        /// The invite grant, for a member who is not in the group yet.
        grant: Option<Vec<u8>>,
    },
    /// Client → relay: create this group (its first member, the server's owner).
    GroupCreate {
        /// The MLS group.
        group_id: Vec<u8>,
        /// Its GroupInfo with the ratchet tree (an MLS message).
        group_info: Vec<u8>,
    },
    /// Client → relay: a commit made in `epoch`, and the Welcome for the members it adds.
    GroupCommit {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The epoch the commit ends.
        epoch: u64,
        /// The commit (an MLS PublicMessage).
        commit: Vec<u8>,
        /// The Welcome for added members.
        welcome: Option<Vec<u8>>,
    },
    /// Relay → client: your commit for `epoch` is stored; merge it.
    CommitAccepted {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The epoch the commit ends.
        epoch: u64,
    },
    /// Relay → client: a group request was refused (the relay answers group requests only with
    /// this, never with `Error`). For a commit: drop it; if another commit won the epoch,
    /// `current_epoch` is past it and that commit follows as a `GroupMessage`.
    GroupRefused {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The epoch of the refused commit or proposal (0 for other requests).
        epoch: u64,
        /// The group's epoch now.
        current_epoch: u64,
        /// Why, for people.
        reason: String,
    },
    /// Relay → client: a handshake message to apply, in order: a commit that ends `epoch`, or
    /// a proposal made in `epoch`.
    GroupMessage {
        /// The MLS group.
        group_id: Vec<u8>,
        /// Its epoch.
        epoch: u64,
        /// The MLS message.
        message: Vec<u8>,
    },
    /// Client → relay: a proposal (a member asking to leave).
    GroupProposal {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The MLS message.
        proposal: Vec<u8>,
    },
    /// Relay → client: you were added; join with this Welcome.
    GroupWelcome {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The Welcome (an MLS message).
        welcome: Vec<u8>,
    },
    /// Client → relay: let me into the group (a `sotto_net::group::JoinRequest`).
    JoinGroup {
        /// The MLS group.
        group_id: Vec<u8>,
        /// The request: KeyPackage and invite proof.
        request: Vec<u8>,
    },
    /// Relay → client: someone waits to be let into the group.
    JoinRequested {
        /// The MLS group.
        group_id: Vec<u8>,
        /// Their request.
        request: Vec<u8>,
    },
    /// Relay → client: your request is stored; `members_online` members could let you in now.
    JoinPending {
        /// The MLS group.
        group_id: Vec<u8>,
        /// Members of the group online now.
        members_online: u32,
    },
    /// Client → relay: store this sealed message in a text channel.
    PostMessage {
        /// The text channel.
        channel_id: u32,
        /// The id the author chose; posting the same id again returns the stored message's
        /// place instead of storing it twice.
        message_id: [u8; 16],
        /// The sealed envelope.
        envelope: Vec<u8>,
        /// Stored files the message carries (their keys are inside the envelope); the relay
        /// keeps a file while some message carries it.
        files: Vec<crate::proto::file_stream::BlobId>,
        /// A message of the same channel this one takes back (a deletion): the relay lets go
        /// of its files. Only its author or the server's owner may.
        retracts: Option<u64>,
    },
    /// Relay → client: the message is stored durably at `seq`.
    MessagePosted {
        /// The text channel.
        channel_id: u32,
        /// The message's id.
        message_id: [u8; 16],
        /// Its place in the channel.
        seq: u64,
        /// When it was stored, in Unix milliseconds.
        posted_at: u64,
    },
    /// Relay → client: the message was not stored.
    PostRefused {
        /// The text channel.
        channel_id: u32,
        /// The message's id.
        message_id: [u8; 16],
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        reason: String,
    },
    /// Client → relay: the channel's messages after `after` (0 from the start), at most
    /// `limit` of them.
    ReadChannel {
        /// The text channel.
        channel_id: u32,
        /// The last seq the client holds.
        after: u64,
        /// The most messages wanted (the relay may send fewer).
        limit: u16,
    },
    /// Relay → client: one page of a channel's messages, by ascending seq.
    ChannelMessages {
        /// The text channel.
        channel_id: u32,
        /// The messages.
        messages: Vec<StoredMessage>,
        /// Whether more follow.
        more: bool,
    },
    /// Relay → client: a message was just stored in a text channel.
    NewMessage(StoredMessage),
    /// Client → relay: create, change or delete a channel.
    ManageChannel(ChannelChange),
    /// Relay → client: the channel change is made (the channel's id).
    ChannelManaged {
        /// The channel created, changed or deleted.
        channel_id: u32,
    },
    /// Relay → client: the server's channels changed; here they all are.
    ChannelsChanged {
        /// Every channel.
        channels: Vec<ChannelInfo>,
    },
    /// Client → relay: how present I am, and my custom status (empty for none). Never stored.
    SetPresence {
        /// Online, idle, do not disturb or invisible (not offline).
        presence: Presence,
        /// A few words about what I am up to.
        status: String,
    },
    /// Relay → client: members' presence: everyone online once after `SetPresence`, then each
    /// change.
    PresenceUpdate {
        /// The members whose presence this tells.
        members: Vec<MemberPresence>,
    },
    /// Client → relay: I am typing in this text channel (sent every few seconds while typing).
    Typing {
        /// The text channel.
        channel_id: u32,
    },
    /// Relay → client: a member is typing in a text channel.
    MemberTyping {
        /// The text channel.
        channel_id: u32,
        /// Who.
        member_id: u32,
    },
    /// Client → relay: open a conversation with these members of the server; `group_info` is
    /// its new MLS group's, with only us in it. Answered with `Conversations` (not complete)
    /// or `GroupRefused`.
    OpenConversation {
        /// The new conversation's MLS group.
        group_id: Vec<u8>,
        /// The others in it (not us).
        members: Vec<PublicKey>,
        /// The group's GroupInfo with the ratchet tree (an MLS message).
        group_info: Vec<u8>,
    },
    /// Client → relay: which conversations am I in? Answered with `Conversations` (complete).
    ListConversations,
    /// Relay → client: conversations we are in: all of them (`complete`, answering
    /// `ListConversations`), or one just opened.
    Conversations {
        /// The conversations.
        conversations: Vec<ConversationInfo>,
        /// Whether this is every conversation we are in.
        complete: bool,
    },
    /// Client → relay: send me the server's roles, overrides, slow modes and timeouts.
    /// Answered with `Roles`, which the relay also sends to everyone after each change.
    ReadRoles,
    /// Relay → client: everything that decides permissions on the server.
    Roles(Box<crate::roles::RoleBook>),
    /// Client → relay: change roles, a channel's overrides or its slow mode. Answered with
    /// `RolesManaged` or `Error`; the new book follows as `Roles` to everyone who asked.
    ManageRoles(crate::roles::RoleChange),
    /// Relay → client: the role change is made and in the audit log.
    RolesManaged,
    /// Client → relay: kick, ban, unban, time out or mute a member. Answered with `Moderated`
    /// or `Error`.
    Moderate(crate::roles::Moderation),
    /// Relay → client: the moderation action is done and in the audit log.
    Moderated {
        /// The identity key it was about.
        public_key: PublicKey,
    },
    /// Client → relay: the audit log's newest entries before `before` (0: the newest).
    ReadAudit {
        /// Entries with lower ids than this; 0 for the newest.
        before: u64,
        /// The most wanted (the relay may send fewer).
        limit: u16,
    },
    /// Relay → client: a page of the audit log, newest first.
    AuditLog {
        /// The entries.
        entries: Vec<crate::roles::AuditEntry>,
        /// Whether older entries remain.
        more: bool,
    },
    /// Client → relay: store these KeyPackages of mine, for members who add me while I am
    /// offline (an empty upload just asks how many are stored).
    UploadKeyPackages {
        /// Single-use KeyPackages (MLS messages).
        key_packages: Vec<Vec<u8>>,
        /// A last-resort KeyPackage, replacing the stored one.
        last_resort: Option<Vec<u8>>,
    },
    /// Relay → client: how many of our KeyPackages it holds now.
    KeyPackagesStored {
        /// Single-use KeyPackages stored.
        available: u32,
        /// Whether a last-resort one is stored.
        last_resort: bool,
    },
    /// Client → relay: hand me a KeyPackage of this member (to add them).
    ClaimKeyPackage {
        /// The member's identity key.
        member: PublicKey,
    },
    /// Relay → client: a KeyPackage of `member` (a single-use one, removed from the store, or
    /// the last-resort one), or none if it holds none or `member` is not on the server.
    KeyPackageClaimed {
        /// The member's identity key.
        member: PublicKey,
        /// The KeyPackage.
        key_package: Option<Vec<u8>>,
    },
    /// Either way: something was refused or failed.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

mod kind {
    pub(super) const HELLO: u8 = 0x01;
    pub(super) const CHALLENGE: u8 = 0x02;
    pub(super) const AUTHENTICATE: u8 = 0x03;
    pub(super) const WELCOME: u8 = 0x04;
    pub(super) const JOIN_VOICE: u8 = 0x05;
    pub(super) const VOICE_JOINED: u8 = 0x06;
    pub(super) const LEAVE_VOICE: u8 = 0x07;
    pub(super) const ROSTER: u8 = 0x08;
    pub(super) const CREATE_INVITE: u8 = 0x09;
    pub(super) const INVITE_CREATED: u8 = 0x0a;
    pub(super) const ERROR: u8 = 0x0b;
    pub(super) const ROSTER_CHANGED: u8 = 0x0c;
    pub(super) const LIST_MEMBERS: u8 = 0x0d;
    pub(super) const MEMBER_LIST: u8 = 0x0e;
    pub(super) const GROUP_SYNC: u8 = 0x10;
    pub(super) const GROUP_STATUS: u8 = 0x11;
    pub(super) const GROUP_CREATE: u8 = 0x12;
    pub(super) const GROUP_COMMIT: u8 = 0x13;
    pub(super) const COMMIT_ACCEPTED: u8 = 0x14;
    pub(super) const GROUP_REFUSED: u8 = 0x15;
    pub(super) const GROUP_MESSAGE: u8 = 0x16;
    pub(super) const GROUP_PROPOSAL: u8 = 0x17;
    pub(super) const GROUP_WELCOME: u8 = 0x18;
    pub(super) const JOIN_GROUP: u8 = 0x19;
    pub(super) const JOIN_REQUESTED: u8 = 0x1a;
    pub(super) const JOIN_PENDING: u8 = 0x1b;
    pub(super) const UPLOAD_KEY_PACKAGES: u8 = 0x1c;
    pub(super) const KEY_PACKAGES_STORED: u8 = 0x1d;
    pub(super) const CLAIM_KEY_PACKAGE: u8 = 0x1e;
    pub(super) const KEY_PACKAGE_CLAIMED: u8 = 0x1f;
    pub(super) const POST_MESSAGE: u8 = 0x20;
    pub(super) const MESSAGE_POSTED: u8 = 0x21;
    pub(super) const POST_REFUSED: u8 = 0x22;
    pub(super) const READ_CHANNEL: u8 = 0x23;
    pub(super) const CHANNEL_MESSAGES: u8 = 0x24;
    pub(super) const NEW_MESSAGE: u8 = 0x25;
    pub(super) const SET_PRESENCE: u8 = 0x26;
    pub(super) const PRESENCE_UPDATE: u8 = 0x27;
    pub(super) const TYPING: u8 = 0x28;
    pub(super) const MEMBER_TYPING: u8 = 0x29;
    pub(super) const MANAGE_CHANNEL: u8 = 0x2a;
    pub(super) const CHANNEL_MANAGED: u8 = 0x2b;
    pub(super) const CHANNELS_CHANGED: u8 = 0x2c;
    pub(super) const OPEN_CONVERSATION: u8 = 0x2d;
    pub(super) const LIST_CONVERSATIONS: u8 = 0x2e;
    pub(super) const CONVERSATIONS: u8 = 0x2f;
    pub(super) const READ_ROLES: u8 = 0x30;
    pub(super) const ROLES: u8 = 0x31;
    pub(super) const MANAGE_ROLES: u8 = 0x32;
    pub(super) const MODERATE: u8 = 0x33;
    pub(super) const MODERATED: u8 = 0x34;
    pub(super) const READ_AUDIT: u8 = 0x35;
    pub(super) const AUDIT_LOG: u8 = 0x36;
    pub(super) const ROLES_MANAGED: u8 = 0x37;

    /// Group frames (kinds 0x10 to 0x1f) may be up to `MAX_GROUP_FRAME_LEN` long.
    pub(super) fn is_group(kind: u8) -> bool {
        (0x10..=0x1f).contains(&kind)
    }
}

/// The largest frame allowed for a frame kind.
fn max_len_of_kind(kind: u8) -> usize {
    // Group frames carry MLS messages; a page of channel history carries many envelopes.
    if kind::is_group(kind)
        || kind == kind::CHANNEL_MESSAGES
        || kind == kind::OPEN_CONVERSATION
        || kind == kind::CONVERSATIONS
        || kind == kind::ROLES
    {
        MAX_GROUP_FRAME_LEN
    } else {
        MAX_FRAME_LEN
    }
}

/// Why bytes could not be decoded as a control frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix is larger than [`MAX_FRAME_LEN`].
    #[error("control frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is shorter than its fields need.
    #[error("control frame ends inside field `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The frame's version is not one this build speaks.
    #[error("control frame has protocol version {0}, this build speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion(u8),
    /// The frame kind byte is unknown.
    #[error("unknown control frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A string or list is longer than its limit.
    #[error("field `{field}` has length {len}, more than the limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A field holds a value outside its domain.
    #[error("field `{field}` holds an invalid value")]
    InvalidValue {
        /// The field.
        field: &'static str,
    },
    /// Bytes remain after the last field.
    #[error("{count} unexpected bytes after the last field")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or list exceeds its protocol limit.
    #[error("field `{field}` has length {len}, more than the limit of {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string contains control characters.
    #[error("field `{field}` contains control characters")]
    InvalidText {
        /// The field.
        field: &'static str,
    },
    /// A field that must not be empty is.
    #[error("field `{field}` is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// The whole frame exceeds its kind's limit.
    #[error("control frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks `text` fits in `max` UTF-8 bytes and holds no control characters, as every string
/// field of a control frame must.
pub fn validate_text(text: &str, max: usize) -> Result<(), EncodeError> {
    check_text("text", text, max)
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), EncodeError> {
    if text.len() > max {
        return Err(EncodeError::FieldTooLong {
            field,
            len: text.len(),
            max,
        });
    }
    if text.chars().any(char::is_control) {
        return Err(EncodeError::InvalidText { field });
    }
    Ok(())
}

fn check_channels(channels: &[ChannelInfo]) -> Result<(), EncodeError> {
    check_count("channels", channels.len(), MAX_CHANNELS)?;
    channels.iter().try_for_each(|c| {
        check_text("channel name", &c.name, MAX_NAME_LEN)?;
        check_text("category", &c.category, MAX_NAME_LEN)?;
        check_text("topic", &c.topic, MAX_MESSAGE_LEN)
    })
}

fn write_channel(w: &mut Writer<'_>, c: &ChannelInfo) {
    w.u32(c.id);
    w.string(&c.name);
    w.u8(c.kind.to_byte());
    w.u16(c.position);
    w.string(&c.category);
    w.string(&c.topic);
}

fn read_channel(r: &mut Reader<'_>) -> Result<ChannelInfo, DecodeError> {
    Ok(ChannelInfo {
        id: r.u32("channel id")?,
        name: r.string("channel name", MAX_NAME_LEN)?,
        kind: ChannelKind::from_byte(r.u8("channel kind")?)?,
        position: r.u16("position")?,
        category: r.string("category", MAX_NAME_LEN)?,
        topic: r.string("topic", MAX_MESSAGE_LEN)?,
    })
}

fn check_participants(participants: &[Participant]) -> Result<(), EncodeError> {
    check_count("participants", participants.len(), MAX_PARTICIPANTS)?;
    participants
        .iter()
        .try_for_each(|p| check_text("display name", &p.display_name, MAX_NAME_LEN))
}

fn check_group_id(group_id: &[u8]) -> Result<(), EncodeError> {
    if group_id.is_empty() {
        return Err(EncodeError::Empty { field: "group id" });
    }
    check_count("group id", group_id.len(), MAX_GROUP_ID_LEN)
}

fn check_count(field: &'static str, len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        return Err(EncodeError::FieldTooLong { field, len, max });
    }
    Ok(())
}

impl ControlFrame {
    /// Appends this frame, length prefix included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate()?;
        let start = out.len();
        out.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
        let mut w = Writer::new(out);
        w.u8(PROTOCOL_VERSION);
        w.u8(self.kind());
        self.write_body(&mut w);
        let len = out.len() - start - LENGTH_PREFIX_LEN;
        let max = max_len_of_kind(self.kind());
        if len > max {
            out.truncate(start);
            return Err(EncodeError::FrameTooLong { len, max });
        }
        let prefix = u32::try_from(len).expect("bounded by MAX_GROUP_FRAME_LEN");
        out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
        Ok(())
    }

    /// Encodes this frame into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes one complete frame — the bytes after the length prefix.
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let max = frame
            .get(1)
            .map_or(MAX_FRAME_LEN, |kind| max_len_of_kind(*kind));
        if frame.len() > max {
            return Err(DecodeError::FrameTooLong {
                len: frame.len(),
                max,
            });
        }
        let mut r = Reader::new(frame);
        let version = r.u8("version")?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = r.u8("kind")?;
        let decoded = Self::read_body(kind, &mut r)?;
        r.finish()?;
        Ok(decoded)
    }

    /// A short name of the frame kind, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "Hello",
            Self::Challenge { .. } => "Challenge",
            Self::Authenticate { .. } => "Authenticate",
            Self::Welcome { .. } => "Welcome",
            Self::JoinVoice { .. } => "JoinVoice",
            Self::VoiceJoined { .. } => "VoiceJoined",
            Self::LeaveVoice => "LeaveVoice",
            Self::Roster { .. } => "Roster",
            Self::RosterChanged { .. } => "RosterChanged",
            Self::CreateInvite { .. } => "CreateInvite",
            Self::InviteCreated { .. } => "InviteCreated",
            Self::ListMembers { .. } => "ListMembers",
            Self::MemberList { .. } => "MemberList",
            Self::GroupSync { .. } => "GroupSync",
            Self::GroupStatus { .. } => "GroupStatus",
            Self::GroupCreate { .. } => "GroupCreate",
            Self::GroupCommit { .. } => "GroupCommit",
            Self::CommitAccepted { .. } => "CommitAccepted",
            Self::GroupRefused { .. } => "GroupRefused",
            Self::GroupMessage { .. } => "GroupMessage",
            Self::GroupProposal { .. } => "GroupProposal",
            Self::GroupWelcome { .. } => "GroupWelcome",
            Self::JoinGroup { .. } => "JoinGroup",
            Self::JoinRequested { .. } => "JoinRequested",
            Self::JoinPending { .. } => "JoinPending",
            Self::UploadKeyPackages { .. } => "UploadKeyPackages",
            Self::KeyPackagesStored { .. } => "KeyPackagesStored",
            Self::ClaimKeyPackage { .. } => "ClaimKeyPackage",
            Self::KeyPackageClaimed { .. } => "KeyPackageClaimed",
            Self::PostMessage { .. } => "PostMessage",
            Self::MessagePosted { .. } => "MessagePosted",
            Self::PostRefused { .. } => "PostRefused",
            Self::ReadChannel { .. } => "ReadChannel",
            Self::ChannelMessages { .. } => "ChannelMessages",
            Self::NewMessage(_) => "NewMessage",
            Self::ManageChannel(_) => "ManageChannel",
            Self::ChannelManaged { .. } => "ChannelManaged",
            Self::ChannelsChanged { .. } => "ChannelsChanged",
            Self::OpenConversation { .. } => "OpenConversation",
            Self::ListConversations => "ListConversations",
            Self::Conversations { .. } => "Conversations",
            Self::ReadRoles => "ReadRoles",
            Self::Roles(_) => "Roles",
            Self::ManageRoles(_) => "ManageRoles",
            Self::RolesManaged => "RolesManaged",
            Self::Moderate(_) => "Moderate",
            Self::Moderated { .. } => "Moderated",
            Self::ReadAudit { .. } => "ReadAudit",
            Self::AuditLog { .. } => "AuditLog",
            Self::SetPresence { .. } => "SetPresence",
            Self::PresenceUpdate { .. } => "PresenceUpdate",
            Self::Typing { .. } => "Typing",
            Self::MemberTyping { .. } => "MemberTyping",
            Self::Error { .. } => "Error",
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => kind::HELLO,
            Self::Challenge { .. } => kind::CHALLENGE,
            Self::Authenticate { .. } => kind::AUTHENTICATE,
            Self::Welcome { .. } => kind::WELCOME,
            Self::JoinVoice { .. } => kind::JOIN_VOICE,
            Self::VoiceJoined { .. } => kind::VOICE_JOINED,
            Self::LeaveVoice => kind::LEAVE_VOICE,
            Self::Roster { .. } => kind::ROSTER,
            Self::RosterChanged { .. } => kind::ROSTER_CHANGED,
            Self::CreateInvite { .. } => kind::CREATE_INVITE,
            Self::InviteCreated { .. } => kind::INVITE_CREATED,
            Self::ListMembers { .. } => kind::LIST_MEMBERS,
            Self::MemberList { .. } => kind::MEMBER_LIST,
            Self::GroupSync { .. } => kind::GROUP_SYNC,
            Self::GroupStatus { .. } => kind::GROUP_STATUS,
            Self::GroupCreate { .. } => kind::GROUP_CREATE,
            Self::GroupCommit { .. } => kind::GROUP_COMMIT,
            Self::CommitAccepted { .. } => kind::COMMIT_ACCEPTED,
            Self::GroupRefused { .. } => kind::GROUP_REFUSED,
            Self::GroupMessage { .. } => kind::GROUP_MESSAGE,
            Self::GroupProposal { .. } => kind::GROUP_PROPOSAL,
            Self::GroupWelcome { .. } => kind::GROUP_WELCOME,
            Self::JoinGroup { .. } => kind::JOIN_GROUP,
            Self::JoinRequested { .. } => kind::JOIN_REQUESTED,
            Self::JoinPending { .. } => kind::JOIN_PENDING,
            Self::UploadKeyPackages { .. } => kind::UPLOAD_KEY_PACKAGES,
            Self::KeyPackagesStored { .. } => kind::KEY_PACKAGES_STORED,
            Self::ClaimKeyPackage { .. } => kind::CLAIM_KEY_PACKAGE,
            Self::KeyPackageClaimed { .. } => kind::KEY_PACKAGE_CLAIMED,
            Self::PostMessage { .. } => kind::POST_MESSAGE,
            Self::MessagePosted { .. } => kind::MESSAGE_POSTED,
            Self::PostRefused { .. } => kind::POST_REFUSED,
            Self::ReadChannel { .. } => kind::READ_CHANNEL,
            Self::ChannelMessages { .. } => kind::CHANNEL_MESSAGES,
            Self::NewMessage(_) => kind::NEW_MESSAGE,
            Self::ManageChannel(_) => kind::MANAGE_CHANNEL,
            Self::ChannelManaged { .. } => kind::CHANNEL_MANAGED,
            Self::ChannelsChanged { .. } => kind::CHANNELS_CHANGED,
            Self::OpenConversation { .. } => kind::OPEN_CONVERSATION,
            Self::ListConversations => kind::LIST_CONVERSATIONS,
            Self::Conversations { .. } => kind::CONVERSATIONS,
            Self::ReadRoles => kind::READ_ROLES,
            Self::Roles(_) => kind::ROLES,
            Self::ManageRoles(_) => kind::MANAGE_ROLES,
            Self::RolesManaged => kind::ROLES_MANAGED,
            Self::Moderate(_) => kind::MODERATE,
            Self::Moderated { .. } => kind::MODERATED,
            Self::ReadAudit { .. } => kind::READ_AUDIT,
            Self::AuditLog { .. } => kind::AUDIT_LOG,
            Self::SetPresence { .. } => kind::SET_PRESENCE,
            Self::PresenceUpdate { .. } => kind::PRESENCE_UPDATE,
            Self::Typing { .. } => kind::TYPING,
            Self::MemberTyping { .. } => kind::MEMBER_TYPING,
            Self::Error { .. } => kind::ERROR,
        }
    }

    fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Self::Hello { display_name, .. } => {
                check_text("display name", display_name, MAX_NAME_LEN)
            }
            Self::Welcome {
                server, channels, ..
            } => {
                check_text("server name", &server.name, MAX_NAME_LEN)?;
                check_channels(channels)
            }
            Self::ChannelsChanged { channels } => check_channels(channels),
            Self::Roles(book) => roles::check_book(book),
            Self::ManageRoles(change) => roles::check_change(change),
            Self::Moderate(moderation) => roles::check_moderation(moderation),
            Self::AuditLog { entries, .. } => roles::check_audit(entries),
            Self::OpenConversation {
                group_id,
                members,
                group_info,
            } => {
                check_group_id(group_id)?;
                check_count("members", members.len(), MAX_CONVERSATION_MEMBERS - 1)?;
                check_count("group info", group_info.len(), MAX_GROUP_PAYLOAD)
            }
            Self::Conversations { conversations, .. } => {
                check_count("conversations", conversations.len(), MAX_CONVERSATIONS)?;
                conversations.iter().try_for_each(|conversation| {
                    check_group_id(&conversation.group_id)?;
                    check_count(
                        "members",
                        conversation.members.len(),
                        MAX_CONVERSATION_MEMBERS,
                    )
                })
            }
            Self::ManageChannel(change) => match change {
                ChannelChange::Create {
                    name,
                    category,
                    topic,
                    ..
                }
                | ChannelChange::Update {
                    name,
                    category,
                    topic,
                    ..
                } => {
                    check_text("channel name", name, MAX_NAME_LEN)?;
                    check_text("category", category, MAX_NAME_LEN)?;
                    check_text("topic", topic, MAX_MESSAGE_LEN)
                }
                ChannelChange::Delete { .. } => Ok(()),
            },
            Self::Roster { participants, .. } => check_participants(participants),
            Self::RosterChanged { joined, left, .. } => {
                check_participants(joined)?;
                check_count("left", left.len(), MAX_PARTICIPANTS)
            }
            Self::Error { message, .. } => check_text("message", message, MAX_MESSAGE_LEN),
            Self::MemberList { members, .. } => {
                check_count("members", members.len(), MAX_MEMBERS_PER_PAGE)?;
                members
                    .iter()
                    .try_for_each(|m| check_text("display name", &m.display_name, MAX_NAME_LEN))
            }
            Self::CreateInvite { grant, .. } => {
                check_count("grant", grant.as_ref().map_or(0, Vec::len), MAX_GRANT_LEN)
            }
            Self::GroupSync { group_id, .. }
            | Self::CommitAccepted { group_id, .. }
            | Self::JoinPending { group_id, .. } => check_group_id(group_id),
            Self::GroupStatus {
                group_id, grant, ..
            } => {
                check_group_id(group_id)?;
                check_count("grant", grant.as_ref().map_or(0, Vec::len), MAX_GRANT_LEN)
            }
            Self::GroupRefused {
                group_id, reason, ..
            } => {
                check_group_id(group_id)?;
                check_text("reason", reason, MAX_MESSAGE_LEN)
            }
            Self::UploadKeyPackages {
                key_packages,
                last_resort,
            } => {
                check_count(
                    "key packages",
                    key_packages.len(),
                    MAX_KEY_PACKAGES_PER_UPLOAD,
                )?;
                key_packages
                    .iter()
                    .chain(last_resort)
                    .try_for_each(|kp| check_count("key package", kp.len(), MAX_KEY_PACKAGE_LEN))
            }
            Self::PostMessage {
                envelope, files, ..
            } => {
                check_count("envelope", envelope.len(), MAX_ENVELOPE_LEN)?;
                check_count("files", files.len(), MAX_FILES_PER_MESSAGE)
            }
            Self::PostRefused { reason, .. } => check_text("reason", reason, MAX_MESSAGE_LEN),
            Self::ChannelMessages { messages, .. } => {
                check_count("messages", messages.len(), MAX_MESSAGES_PER_PAGE)?;
                messages
                    .iter()
                    .try_for_each(|m| check_count("envelope", m.envelope.len(), MAX_ENVELOPE_LEN))
            }
            Self::NewMessage(message) => {
                check_count("envelope", message.envelope.len(), MAX_ENVELOPE_LEN)
            }
            Self::SetPresence { presence, status } => {
                if *presence == Presence::Offline {
                    return Err(EncodeError::InvalidText { field: "presence" });
                }
                check_text("status", status, MAX_NAME_LEN)
            }
            Self::PresenceUpdate { members } => {
                check_count("members", members.len(), MAX_MEMBERS_PER_PAGE)?;
                members.iter().try_for_each(|m| {
                    if m.presence == Presence::Invisible {
                        return Err(EncodeError::InvalidText { field: "presence" });
                    }
                    check_text("status", &m.status, MAX_NAME_LEN)
                })
            }
            Self::KeyPackageClaimed { key_package, .. } => check_count(
                "key package",
                key_package.as_ref().map_or(0, Vec::len),
                MAX_KEY_PACKAGE_LEN,
            ),
            Self::GroupCommit {
                group_id,
                commit,
                welcome,
                ..
            } => {
                check_group_id(group_id)?;
                check_count("commit", commit.len(), MAX_GROUP_PAYLOAD)?;
                check_count(
                    "welcome",
                    welcome.as_ref().map_or(0, Vec::len),
                    MAX_GROUP_PAYLOAD,
                )
            }
            Self::GroupCreate {
                group_id,
                group_info: payload,
            }
            | Self::GroupMessage {
                group_id,
                message: payload,
                ..
            }
            | Self::GroupProposal {
                group_id,
                proposal: payload,
            }
            | Self::GroupWelcome {
                group_id,
                welcome: payload,
            }
            | Self::JoinGroup {
                group_id,
                request: payload,
            }
            | Self::JoinRequested {
                group_id,
                request: payload,
            } => {
                check_group_id(group_id)?;
                check_count("payload", payload.len(), MAX_GROUP_PAYLOAD)
            }
            _ => Ok(()),
        }
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        match self {
            Self::Hello {
                public_key,
                display_name,
                invite,
            } => {
                w.bytes(public_key);
                w.string(display_name);
                w.optional(invite.as_ref(), |w, token| w.bytes(token));
            }
            Self::Challenge { nonce } => w.bytes(nonce),
            Self::Authenticate { signature } => w.bytes(signature),
            Self::Welcome {
                member_id,
                server,
                channels,
            } => {
                w.u32(*member_id);
                w.u32(server.id);
                w.string(&server.name);
                w.list(channels, write_channel);
            }
            Self::ChannelsChanged { channels } => w.list(channels, write_channel),
            Self::OpenConversation {
                group_id,
                members,
                group_info,
            } => {
                w.blob(group_id);
                w.list(members, |w, key| w.bytes(key));
                w.blob(group_info);
            }
            Self::ListConversations | Self::ReadRoles | Self::RolesManaged => {}
            Self::Roles(book) => roles::write_book(w, book),
            Self::ManageRoles(change) => roles::write_change(w, change),
            Self::Moderate(moderation) => roles::write_moderation(w, moderation),
            Self::Moderated { public_key } => w.bytes(public_key),
            Self::ReadAudit { before, limit } => {
                w.u64(*before);
                w.u16(*limit);
            }
            Self::AuditLog { entries, more } => {
                w.list(entries, roles::write_audit_entry);
                w.u8(u8::from(*more));
            }
            Self::Conversations {
                conversations,
                complete,
            } => {
                w.list(conversations, write_conversation);
                w.u8(u8::from(*complete));
            }
            Self::ChannelManaged { channel_id } => w.u32(*channel_id),
            Self::ManageChannel(change) => match change {
                ChannelChange::Create {
                    name,
                    kind,
                    category,
                    topic,
                } => {
                    w.u8(0);
                    w.string(name);
                    w.u8(kind.to_byte());
                    w.string(category);
                    w.string(topic);
                }
                ChannelChange::Update {
                    channel_id,
                    name,
                    category,
                    topic,
                    position,
                } => {
                    w.u8(1);
                    w.u32(*channel_id);
                    w.string(name);
                    w.string(category);
                    w.string(topic);
                    w.u16(*position);
                }
                ChannelChange::Delete { channel_id } => {
                    w.u8(2);
                    w.u32(*channel_id);
                }
            },
            Self::JoinVoice {
                channel_id,
                session_salt,
            } => {
                w.u32(*channel_id);
                w.bytes(session_salt);
            }
            Self::VoiceJoined { channel_id, slot } => {
                w.u32(*channel_id);
                w.u16(*slot);
            }
            Self::LeaveVoice => {}
            Self::Roster {
                channel_id,
                participants,
            } => {
                w.u32(*channel_id);
                w.list(participants, write_participant);
            }
            Self::RosterChanged {
                channel_id,
                joined,
                left,
            } => {
                w.u32(*channel_id);
                w.list(joined, write_participant);
                w.list(left, |w, slot| w.u16(*slot));
            }
            Self::CreateInvite {
                expires_in_secs,
                max_uses,
                grant,
            } => {
                w.optional(expires_in_secs.as_ref(), |w, v| w.u32(*v));
                w.optional(max_uses.as_ref(), |w, v| w.u32(*v));
                w.optional(grant.as_ref(), |w, v| w.blob(v));
            }
            Self::GroupSync { group_id, epoch } => {
                w.blob(group_id);
                w.optional(epoch.as_ref(), |w, v| w.u64(*v));
            }
            Self::GroupStatus {
                group_id,
                epoch,
                grant,
            } => {
                w.blob(group_id);
                w.optional(epoch.as_ref(), |w, v| w.u64(*v));
                w.optional(grant.as_ref(), |w, v| w.blob(v));
            }
            Self::GroupCommit {
                group_id,
                epoch,
                commit,
                welcome,
            } => {
                w.blob(group_id);
                w.u64(*epoch);
                w.blob(commit);
                w.optional(welcome.as_ref(), |w, v| w.blob(v));
            }
            Self::CommitAccepted { group_id, epoch } => {
                w.blob(group_id);
                w.u64(*epoch);
            }
            Self::GroupRefused {
                group_id,
                epoch,
                current_epoch,
                reason,
            } => {
                w.blob(group_id);
                w.u64(*epoch);
                w.u64(*current_epoch);
                w.string(reason);
            }
            Self::GroupMessage {
                group_id,
                epoch,
                message,
            } => {
                w.blob(group_id);
                w.u64(*epoch);
                w.blob(message);
            }
            Self::GroupCreate {
                group_id,
                group_info: payload,
            }
            | Self::GroupProposal {
                group_id,
                proposal: payload,
            }
            | Self::GroupWelcome {
                group_id,
                welcome: payload,
            }
            | Self::JoinGroup {
                group_id,
                request: payload,
            }
            | Self::JoinRequested {
                group_id,
                request: payload,
            } => {
                w.blob(group_id);
                w.blob(payload);
            }
            Self::JoinPending {
                group_id,
                members_online,
            } => {
                w.blob(group_id);
                w.u32(*members_online);
            }
            Self::UploadKeyPackages {
                key_packages,
                last_resort,
            } => {
                w.list(key_packages, |w, kp| w.blob(kp));
                w.optional(last_resort.as_ref(), |w, kp| w.blob(kp));
            }
            Self::KeyPackagesStored {
                available,
                last_resort,
            } => {
                w.u32(*available);
                w.u8(u8::from(*last_resort));
            }
            Self::ClaimKeyPackage { member } => w.bytes(member),
            Self::PostMessage {
                channel_id,
                message_id,
                envelope,
                files,
                retracts,
            } => {
                w.u32(*channel_id);
                w.bytes(message_id);
                w.blob(envelope);
                w.list(files, |w, id| w.bytes(id));
                w.optional(retracts.as_ref(), |w, seq| w.u64(*seq));
            }
            Self::MessagePosted {
                channel_id,
                message_id,
                seq,
                posted_at,
            } => {
                w.u32(*channel_id);
                w.bytes(message_id);
                w.u64(*seq);
                w.u64(*posted_at);
            }
            Self::PostRefused {
                channel_id,
                message_id,
                code,
                reason,
            } => {
                w.u32(*channel_id);
                w.bytes(message_id);
                w.u16(code.to_u16());
                w.string(reason);
            }
            Self::ReadChannel {
                channel_id,
                after,
                limit,
            } => {
                w.u32(*channel_id);
                w.u64(*after);
                w.u16(*limit);
            }
            Self::ChannelMessages {
                channel_id,
                messages,
                more,
            } => {
                w.u32(*channel_id);
                w.list(messages, write_stored_message);
                w.u8(u8::from(*more));
            }
            Self::NewMessage(message) => write_stored_message(w, message),
            Self::SetPresence { presence, status } => {
                w.u8(presence.to_u8());
                w.string(status);
            }
            Self::PresenceUpdate { members } => w.list(members, |w, m| {
                w.u32(m.member_id);
                w.u8(m.presence.to_u8());
                w.string(&m.status);
            }),
            Self::Typing { channel_id } => w.u32(*channel_id),
            Self::MemberTyping {
                channel_id,
                member_id,
            } => {
                w.u32(*channel_id);
                w.u32(*member_id);
            }
            Self::KeyPackageClaimed {
                member,
                key_package,
            } => {
                w.bytes(member);
                w.optional(key_package.as_ref(), |w, kp| w.blob(kp));
            }
            Self::ListMembers { after } => w.u32(*after),
            Self::MemberList { members, more } => {
                w.list(members, write_listed_member);
                w.u8(u8::from(*more));
            }
            Self::InviteCreated {
                token,
                expires_at,
                max_uses,
            } => {
                w.bytes(token);
                w.optional(expires_at.as_ref(), |w, v| w.u64(*v));
                w.optional(max_uses.as_ref(), |w, v| w.u32(*v));
            }
            Self::Error { code, message } => {
                w.u16(code.to_u16());
                w.string(message);
            }
        }
    }

    fn read_body(kind: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match kind {
            kind::HELLO => Self::Hello {
                public_key: r.array("public key")?,
                display_name: r.string("display name", MAX_NAME_LEN)?,
                invite: r.optional("invite", |r| r.array("invite"))?,
            },
            kind::CHALLENGE => Self::Challenge {
                nonce: r.array("nonce")?,
            },
            kind::AUTHENTICATE => Self::Authenticate {
                signature: r.array("signature")?,
            },
            kind::WELCOME => Self::Welcome {
                member_id: r.u32("member id")?,
                server: ServerInfo {
                    id: r.u32("server id")?,
                    name: r.string("server name", MAX_NAME_LEN)?,
                },
                channels: r.list("channels", MAX_CHANNELS, read_channel)?,
            },
            kind::CHANNELS_CHANGED => Self::ChannelsChanged {
                channels: r.list("channels", MAX_CHANNELS, read_channel)?,
            },
            kind::OPEN_CONVERSATION => Self::OpenConversation {
                group_id: read_group_id(r)?,
                members: r.list("members", MAX_CONVERSATION_MEMBERS - 1, |r| {
                    r.array("member")
                })?,
                group_info: r.blob("group info", MAX_GROUP_PAYLOAD)?,
            },
            kind::LIST_CONVERSATIONS => Self::ListConversations,
            kind::READ_ROLES => Self::ReadRoles,
            kind::ROLES_MANAGED => Self::RolesManaged,
            kind::ROLES => Self::Roles(Box::new(roles::read_book(r)?)),
            kind::MANAGE_ROLES => Self::ManageRoles(roles::read_change(r)?),
            kind::MODERATE => Self::Moderate(roles::read_moderation(r)?),
            kind::MODERATED => Self::Moderated {
                public_key: r.array("public key")?,
            },
            kind::READ_AUDIT => Self::ReadAudit {
                before: r.u64("before")?,
                limit: r.u16("limit")?,
            },
            kind::AUDIT_LOG => Self::AuditLog {
                entries: r.list(
                    "audit entries",
                    roles::MAX_AUDIT_PER_PAGE,
                    roles::read_audit_entry,
                )?,
                more: read_flag(r, "more")?,
            },
            kind::CONVERSATIONS => Self::Conversations {
                conversations: r.list("conversations", MAX_CONVERSATIONS, read_conversation)?,
                complete: read_flag(r, "complete")?,
            },
            kind::CHANNEL_MANAGED => Self::ChannelManaged {
                channel_id: r.u32("channel id")?,
            },
            kind::MANAGE_CHANNEL => Self::ManageChannel(match r.u8("channel change")? {
                0 => ChannelChange::Create {
                    name: r.string("channel name", MAX_NAME_LEN)?,
                    kind: ChannelKind::from_byte(r.u8("channel kind")?)?,
                    category: r.string("category", MAX_NAME_LEN)?,
                    topic: r.string("topic", MAX_MESSAGE_LEN)?,
                },
                1 => ChannelChange::Update {
                    channel_id: r.u32("channel id")?,
                    name: r.string("channel name", MAX_NAME_LEN)?,
                    category: r.string("category", MAX_NAME_LEN)?,
                    topic: r.string("topic", MAX_MESSAGE_LEN)?,
                    position: r.u16("position")?,
                },
                2 => ChannelChange::Delete {
                    channel_id: r.u32("channel id")?,
                },
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "channel change",
                    });
                }
            }),
            kind::JOIN_VOICE => Self::JoinVoice {
                channel_id: r.u32("channel id")?,
                session_salt: r.array("session salt")?,
            },
            kind::VOICE_JOINED => Self::VoiceJoined {
                channel_id: r.u32("channel id")?,
                slot: r.u16("slot")?,
            },
            kind::LEAVE_VOICE => Self::LeaveVoice,
            kind::ROSTER => Self::Roster {
                channel_id: r.u32("channel id")?,
                participants: r.list("participants", MAX_PARTICIPANTS, read_participant)?,
            },
            kind::ROSTER_CHANGED => Self::RosterChanged {
                channel_id: r.u32("channel id")?,
                joined: r.list("joined", MAX_PARTICIPANTS, read_participant)?,
                left: r.list("left", MAX_PARTICIPANTS, |r| r.u16("slot"))?,
            },
            kind::CREATE_INVITE => Self::CreateInvite {
                expires_in_secs: r.optional("expires in", |r| r.u32("expires in"))?,
                max_uses: r.optional("max uses", |r| r.u32("max uses"))?,
                grant: r.optional("grant", |r| r.blob("grant", MAX_GRANT_LEN))?,
            },
            kind::GROUP_SYNC => Self::GroupSync {
                group_id: read_group_id(r)?,
                epoch: r.optional("epoch", |r| r.u64("epoch"))?,
            },
            kind::GROUP_STATUS => Self::GroupStatus {
                group_id: read_group_id(r)?,
                epoch: r.optional("epoch", |r| r.u64("epoch"))?,
                grant: r.optional("grant", |r| r.blob("grant", MAX_GRANT_LEN))?,
            },
            kind::GROUP_CREATE => Self::GroupCreate {
                group_id: read_group_id(r)?,
                group_info: r.blob("group info", MAX_GROUP_PAYLOAD)?,
            },
            kind::GROUP_COMMIT => Self::GroupCommit {
                group_id: read_group_id(r)?,
                epoch: r.u64("epoch")?,
                commit: r.blob("commit", MAX_GROUP_PAYLOAD)?,
                welcome: r.optional("welcome", |r| r.blob("welcome", MAX_GROUP_PAYLOAD))?,
            },
            kind::COMMIT_ACCEPTED => Self::CommitAccepted {
                group_id: read_group_id(r)?,
                epoch: r.u64("epoch")?,
            },
            kind::GROUP_REFUSED => Self::GroupRefused {
                group_id: read_group_id(r)?,
                epoch: r.u64("epoch")?,
                current_epoch: r.u64("current epoch")?,
                reason: r.string("reason", MAX_MESSAGE_LEN)?,
            },
            kind::GROUP_MESSAGE => Self::GroupMessage {
                group_id: read_group_id(r)?,
                epoch: r.u64("epoch")?,
                message: r.blob("message", MAX_GROUP_PAYLOAD)?,
            },
            kind::GROUP_PROPOSAL => Self::GroupProposal {
                group_id: read_group_id(r)?,
                proposal: r.blob("proposal", MAX_GROUP_PAYLOAD)?,
            },
            kind::GROUP_WELCOME => Self::GroupWelcome {
                group_id: read_group_id(r)?,
                welcome: r.blob("welcome", MAX_GROUP_PAYLOAD)?,
            },
            kind::JOIN_GROUP => Self::JoinGroup {
                group_id: read_group_id(r)?,
                request: r.blob("request", MAX_GROUP_PAYLOAD)?,
            },
            kind::JOIN_REQUESTED => Self::JoinRequested {
                group_id: read_group_id(r)?,
                request: r.blob("request", MAX_GROUP_PAYLOAD)?,
            },
            kind::JOIN_PENDING => Self::JoinPending {
                group_id: read_group_id(r)?,
                members_online: r.u32("members online")?,
            },
            kind::UPLOAD_KEY_PACKAGES => Self::UploadKeyPackages {
                key_packages: r.list("key packages", MAX_KEY_PACKAGES_PER_UPLOAD, |r| {
                    r.blob("key package", MAX_KEY_PACKAGE_LEN)
                })?,
                last_resort: r.optional("last resort", |r| {
                    r.blob("key package", MAX_KEY_PACKAGE_LEN)
                })?,
            },
            kind::KEY_PACKAGES_STORED => Self::KeyPackagesStored {
                available: r.u32("available")?,
                last_resort: read_flag(r, "last resort")?,
            },
            kind::POST_MESSAGE => Self::PostMessage {
                channel_id: r.u32("channel id")?,
                message_id: r.array("message id")?,
                envelope: r.blob("envelope", MAX_ENVELOPE_LEN)?,
                files: r.list("files", MAX_FILES_PER_MESSAGE, |r| r.array("file id"))?,
                retracts: r.optional("retracts", |r| r.u64("retracts"))?,
            },
            kind::MESSAGE_POSTED => Self::MessagePosted {
                channel_id: r.u32("channel id")?,
                message_id: r.array("message id")?,
                seq: r.u64("seq")?,
                posted_at: r.u64("posted at")?,
            },
            kind::POST_REFUSED => Self::PostRefused {
                channel_id: r.u32("channel id")?,
                message_id: r.array("message id")?,
                code: ErrorCode::from_u16(r.u16("error code")?),
                reason: r.string("reason", MAX_MESSAGE_LEN)?,
            },
            kind::READ_CHANNEL => Self::ReadChannel {
                channel_id: r.u32("channel id")?,
                after: r.u64("after")?,
                limit: r.u16("limit")?,
            },
            kind::CHANNEL_MESSAGES => Self::ChannelMessages {
                channel_id: r.u32("channel id")?,
                messages: r.list("messages", MAX_MESSAGES_PER_PAGE, read_stored_message)?,
                more: read_flag(r, "more")?,
            },
            kind::NEW_MESSAGE => Self::NewMessage(read_stored_message(r)?),
            kind::SET_PRESENCE => Self::SetPresence {
                presence: match Presence::from_u8(r.u8("presence")?) {
                    Some(presence) if presence != Presence::Offline => presence,
                    _ => return Err(DecodeError::InvalidValue { field: "presence" }),
                },
                status: r.string("status", MAX_NAME_LEN)?,
            },
            kind::PRESENCE_UPDATE => Self::PresenceUpdate {
                members: r.list("members", MAX_MEMBERS_PER_PAGE, |r| {
                    Ok(MemberPresence {
                        member_id: r.u32("member id")?,
                        presence: match Presence::from_u8(r.u8("presence")?) {
                            Some(presence) if presence != Presence::Invisible => presence,
                            _ => return Err(DecodeError::InvalidValue { field: "presence" }),
                        },
                        status: r.string("status", MAX_NAME_LEN)?,
                    })
                })?,
            },
            kind::TYPING => Self::Typing {
                channel_id: r.u32("channel id")?,
            },
            kind::MEMBER_TYPING => Self::MemberTyping {
                channel_id: r.u32("channel id")?,
                member_id: r.u32("member id")?,
            },
            kind::CLAIM_KEY_PACKAGE => Self::ClaimKeyPackage {
                member: r.array("member")?,
            },
            kind::KEY_PACKAGE_CLAIMED => Self::KeyPackageClaimed {
                member: r.array("member")?,
                key_package: r.optional("key package", |r| {
                    r.blob("key package", MAX_KEY_PACKAGE_LEN)
                })?,
            },
            kind::LIST_MEMBERS => Self::ListMembers {
                after: r.u32("after")?,
            },
            kind::MEMBER_LIST => Self::MemberList {
                members: r.list("members", MAX_MEMBERS_PER_PAGE, read_listed_member)?,
                more: read_flag(r, "more")?,
            },
            kind::INVITE_CREATED => Self::InviteCreated {
                token: r.array("token")?,
                expires_at: r.optional("expires at", |r| r.u64("expires at"))?,
                max_uses: r.optional("max uses", |r| r.u32("max uses"))?,
            },
            kind::ERROR => Self::Error {
                code: ErrorCode::from_u16(r.u16("error code")?),
                message: r.string("message", MAX_MESSAGE_LEN)?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

fn read_group_id(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let group_id = r.blob("group id", MAX_GROUP_ID_LEN)?;
    if group_id.is_empty() {
        return Err(DecodeError::InvalidValue { field: "group id" });
    }
    Ok(group_id)
}

fn write_conversation(w: &mut Writer<'_>, c: &ConversationInfo) {
    w.u32(c.id);
    w.blob(&c.group_id);
    w.bytes(&c.creator);
    w.list(&c.members, |w, key| w.bytes(key));
}

fn read_conversation(r: &mut Reader<'_>) -> Result<ConversationInfo, DecodeError> {
    Ok(ConversationInfo {
        id: r.u32("conversation id")?,
        group_id: read_group_id(r)?,
        creator: r.array("creator")?,
        members: r.list("members", MAX_CONVERSATION_MEMBERS, |r| r.array("member"))?,
    })
}

fn write_participant(w: &mut Writer<'_>, p: &Participant) {
    w.u16(p.slot);
    w.u32(p.member_id);
    w.bytes(&p.public_key);
    w.string(&p.display_name);
    w.bytes(&p.session_salt);
}

fn read_participant(r: &mut Reader<'_>) -> Result<Participant, DecodeError> {
    Ok(Participant {
        slot: r.u16("slot")?,
        member_id: r.u32("member id")?,
        public_key: r.array("public key")?,
        display_name: r.string("display name", MAX_NAME_LEN)?,
        session_salt: r.array("session salt")?,
    })
}

fn write_stored_message(w: &mut Writer<'_>, m: &StoredMessage) {
    w.u32(m.channel_id);
    w.u64(m.seq);
    w.bytes(&m.message_id);
    w.u32(m.author);
    w.u64(m.posted_at);
    w.blob(&m.envelope);
}

fn read_stored_message(r: &mut Reader<'_>) -> Result<StoredMessage, DecodeError> {
    Ok(StoredMessage {
        channel_id: r.u32("channel id")?,
        seq: r.u64("seq")?,
        message_id: r.array("message id")?,
        author: r.u32("author")?,
        posted_at: r.u64("posted at")?,
        envelope: r.blob("envelope", MAX_ENVELOPE_LEN)?,
    })
}

/// Member flags on the wire: bit 0 owner, bit 1 online; other bits must be zero.
const OWNER_FLAG: u8 = 0x01;
const ONLINE_FLAG: u8 = 0x02;

fn write_listed_member(w: &mut Writer<'_>, m: &ListedMember) {
    w.u32(m.member_id);
    w.bytes(&m.public_key);
    w.string(&m.display_name);
    let mut flags = 0;
    if m.is_owner {
        flags |= OWNER_FLAG;
    }
    if m.online {
        flags |= ONLINE_FLAG;
    }
    w.u8(flags);
}

fn read_listed_member(r: &mut Reader<'_>) -> Result<ListedMember, DecodeError> {
    let member_id = r.u32("member id")?;
    let public_key = r.array("public key")?;
    let display_name = r.string("display name", MAX_NAME_LEN)?;
    let flags = r.u8("member flags")?;
    if flags & !(OWNER_FLAG | ONLINE_FLAG) != 0 {
        return Err(DecodeError::InvalidValue {
            field: "member flags",
        });
    }
    Ok(ListedMember {
        member_id,
        public_key,
        display_name,
        is_owner: flags & OWNER_FLAG != 0,
        online: flags & ONLINE_FLAG != 0,
    })
}

fn read_flag(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidValue { field }),
    }
}

/// Splits a byte stream into control frames, checking each is complete before parsing it.
///
/// Push bytes as they arrive with [`FrameDecoder::push`], then drain frames with
/// [`FrameDecoder::poll_frame`]. The buffer never holds more than one maximal frame plus
/// whatever the caller pushed at once. After an error the stream is unusable: close it.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn poll_frame(&mut self) -> Result<Option<ControlFrame>, DecodeError> {
        let pending = &self.buffer[self.start..];
        let Some(prefix) = pending.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
        if len > MAX_GROUP_FRAME_LEN {
            return Err(DecodeError::FrameTooLong {
                len,
                max: MAX_GROUP_FRAME_LEN,
            });
        }
        if len > MAX_FRAME_LEN {
            // Only group frames may be longer: wait for the kind byte to know.
            let Some(kind) = pending.get(LENGTH_PREFIX_LEN + 1) else {
                return Ok(None);
            };
            let max = max_len_of_kind(*kind);
            if len > max {
                return Err(DecodeError::FrameTooLong { len, max });
            }
        }
        let Some(body) = pending.get(LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len) else {
            return Ok(None);
        };
        let frame = ControlFrame::decode(body);
        self.start += LENGTH_PREFIX_LEN + len;
        if self.start > MAX_GROUP_FRAME_LEN {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        frame.map(Some)
    }
}

mod roles;
pub use roles::{
    MAX_ASSIGNMENTS, MAX_AUDIT_PER_PAGE, MAX_OVERRIDES, MAX_REASON_LEN, MAX_ROLES, MAX_TIMEOUTS,
};

#[cfg(test)]
mod tests;
