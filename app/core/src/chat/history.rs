//! A channel's history shared with members who join later, when an admin switched it on.
//!
//! MLS keeps what was said before a member joined sealed to it. An admin may choose otherwise
//! for a channel (an encrypted `history sharing` action, so the relay never learns which
//! channels share). Then members hand their past text secrets of that channel to members not
//! covered yet, inside a message of the channel sealed in the current epoch: only members can
//! open it. Whoever receives keys keeps those it lacks (never replacing its own) and opens
//! again the messages that were sealed to it.

use sotto_net::proto::control::PublicKey;
use sotto_net::seal::text::TextSecret;
use zeroize::Zeroizing;

use super::action::{Action, MAX_HISTORY_EPOCHS, MAX_HISTORY_RECIPIENTS, PastKeys};
use super::store::ChatStore;
use super::{ChatBody, ChatError, ChatMessage, SYNC_PAGE, history, post_action, sync};
use crate::Session;
use crate::group::GroupState;
use sotto_net::identity::Identity;

/// Shares `channel_id`'s past text secrets with the group's members not covered yet, if the
/// channel shares its history; returns how many members they were for.
pub async fn share_if_due(
    session: &Session,
    identity: &Identity,
    store: &mut ChatStore,
    server: &str,
    channel_id: u32,
) -> Result<usize, ChatError> {
    // Conversations keep their own keys; only the server's channels share.
    if !session
        .channels
        .iter()
        .any(|channel| channel.id == channel_id)
        || !store.shares_history(server, channel_id)?
    {
        return Ok(0);
    }
    let GroupState::Member { members, .. } = session.group.state() else {
        return Ok(0);
    };
    let own = identity.public_key();
    let covered = store.history_recipients(server, channel_id)?;
    let mut recipients: Vec<PublicKey> = members
        .iter()
        .map(|member| member.public_key)
        .filter(|key| *key != own && !covered.contains(key))
        .take(MAX_HISTORY_RECIPIENTS - 1)
        .collect();
    if recipients.is_empty() {
        return Ok(0);
    }
    let count = recipients.len();
    // We hold them too: nobody needs to share them with us.
    if !covered.contains(&own) {
        recipients.push(own);
    }
    let mut secrets = session.group.text_secrets(channel_id).await;
    if secrets.len() > MAX_HISTORY_EPOCHS {
        secrets.drain(..secrets.len() - MAX_HISTORY_EPOCHS);
    }
    if secrets.is_empty() {
        return Ok(0);
    }
    let keys = PastKeys(
        secrets
            .iter()
            .map(|(epoch, secret)| (*epoch, Zeroizing::new(*secret.as_bytes())))
            .collect(),
    );
    let action = Action::HistoryKeys { recipients, keys };
    post_action(session, identity, channel_id, &action).await?;
    // Recorded as covered at once, so they are not shared with twice.
    sync(session, store, server, channel_id).await?;
    Ok(count)
}

/// Keeps the past keys among `new` messages of `channel_id` (those we lack), and opens again
/// what they unseal; returns how many messages became readable.
pub async fn import_shared(
    session: &Session,
    store: &mut ChatStore,
    server: &str,
    channel_id: u32,
    new: &[ChatMessage],
    is_admin: &dyn Fn(&PublicKey) -> bool,
) -> Result<usize, ChatError> {
    if !session
        .channels
        .iter()
        .any(|channel| channel.id == channel_id)
    {
        return Ok(0);
    }
    let mut imported = 0;
    for message in new {
        let ChatBody::Action(Action::HistoryKeys { keys, .. }) = &message.body else {
            continue;
        };
        let secrets: Vec<(u64, TextSecret)> = keys
            .0
            .iter()
            .map(|(epoch, secret)| (*epoch, TextSecret::from_bytes(**secret)))
            .collect();
        imported += session.group.import_text_secrets(channel_id, secrets).await;
    }
    if imported == 0 {
        return Ok(0);
    }
    reopen(session, store, server, channel_id, is_admin).await
}

/// Reads again from the relay the messages of `channel_id` this device could not open, and
/// keeps those it can open now.
async fn reopen(
    session: &Session,
    store: &mut ChatStore,
    server: &str,
    channel_id: u32,
    is_admin: &dyn Fn(&PublicKey) -> bool,
) -> Result<usize, ChatError> {
    let sealed = store.unreadable_seqs(server, channel_id)?;
    let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else {
        return Ok(0);
    };
    let mut reopened = 0;
    let mut after = first - 1;
    while after < *last {
        let (messages, more) = history(session, channel_id, after, SYNC_PAGE).await?;
        let Some(end) = messages.last().map(|message| message.seq) else {
            break;
        };
        let wanted: Vec<ChatMessage> = messages
            .into_iter()
            .filter(|message| sealed.binary_search(&message.seq).is_ok())
            .collect();
        reopened += store.reopen(server, &wanted, is_admin)?;
        after = end;
        if !more {
            break;
        }
    }
    Ok(reopened)
}
