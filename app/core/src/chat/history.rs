//! A channel's history shared with members who join later, when an admin switched it on.
//!
//! MLS keeps what was said before a member joined sealed to it. An admin may choose otherwise
//! for a channel (an encrypted `history sharing` action, so the relay never learns which
//! channels share). Then members hand their past text secrets of that channel to members not
//! covered yet, inside a message of the channel sealed in the current epoch: only members can
//! open it. Whoever receives keys keeps those it lacks (never replacing its own) and opens
//! again the messages that were sealed to it.

use sotto_net::proto::control::{PublicKey, StoredMessage};
use sotto_net::seal::text::{TextSecret, decode_envelope, open_message};
use zeroize::Zeroizing;

use super::action::{Action, MAX_HISTORY_EPOCHS, MAX_HISTORY_RECIPIENTS, PastKeys};
use super::store::ChatStore;
use super::{ChatBody, ChatError, ChatMessage, SYNC_PAGE, open, post_action, sync};
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

/// Keeps the past keys among `new` messages of `channel_id` that were meant for us and prove
/// genuine, and opens again what they unseal; returns how many messages became readable.
///
/// A key proves genuine when it opens (and the author's signature holds on) a message of its
/// epoch that we could not read and that came before the first one we could: a member cannot
/// hand us made-up keys that would then block the real ones.
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
    let own = session.group.own_key();
    let shared: Vec<(u64, TextSecret)> = new
        .iter()
        .filter_map(|message| match &message.body {
            ChatBody::Action(Action::HistoryKeys { recipients, keys })
                if recipients.contains(&own) =>
            {
                Some(keys)
            }
            _ => None,
        })
        .flat_map(|keys| keys.0.iter())
        .map(|(epoch, secret)| (*epoch, TextSecret::from_bytes(**secret)))
        .collect();
    if shared.is_empty() {
        return Ok(0);
    }
    let sealed = sealed_messages(session, store, server, channel_id).await?;
    let before = store
        .first_readable_seq(server, channel_id)?
        .unwrap_or(u64::MAX);
    let genuine: Vec<(u64, TextSecret)> = shared
        .into_iter()
        .filter(|(epoch, secret)| {
            sealed.iter().any(|stored| {
                stored.seq < before
                    && decode_envelope(&stored.envelope)
                        .is_ok_and(|envelope| envelope.header().epoch == *epoch)
                    && open_message(secret, &stored.envelope).is_ok()
            })
        })
        .collect();
    if genuine.is_empty() {
        return Ok(0);
    }
    if session.group.import_text_secrets(channel_id, genuine).await == 0 {
        return Ok(0);
    }
    let mut reopened = Vec::with_capacity(sealed.len());
    for stored in &sealed {
        reopened.push(open(session, stored).await);
    }
    Ok(store.reopen(server, &reopened, is_admin)?)
}

/// The messages of `channel_id` this device could not open, read again from the relay.
async fn sealed_messages(
    session: &Session,
    store: &ChatStore,
    server: &str,
    channel_id: u32,
) -> Result<Vec<StoredMessage>, ChatError> {
    let sealed = store.unreadable_seqs(server, channel_id)?;
    let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::with_capacity(sealed.len());
    let mut after = first.saturating_sub(1);
    while after < *last {
        let (page, more) = session
            .client
            .read_channel(channel_id, after, SYNC_PAGE)
            .await?;
        let Some(end) = page.last().map(|stored| stored.seq) else {
            break;
        };
        found.extend(
            page.into_iter()
                .filter(|stored| sealed.binary_search(&stored.seq).is_ok()),
        );
        if !more || end <= after {
            break;
        }
        after = end;
    }
    Ok(found)
}
