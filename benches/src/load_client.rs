//! Load-generating members: real QUIC connections that authenticate and join voice through
//! the relay's protocol, then send or count media datagrams.
//!
//! The payload is not encrypted: the relay routes on the clear header alone and never opens a
//! payload, so sealing would only add load-generator CPU. Sizes match a sealed 160-byte Opus
//! frame (8-byte header + 160 + 16-byte tag).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::ControlFrame;
use sotto_net::proto::datagram::{MediaHeader, TAG_LEN};
use sotto_net::proto::handshake::{ClientHandshake, DEFAULT_HANDSHAKE_TIMEOUT};
use sotto_net::transport::{ControlStream, PinnedCertificate, TransportTuning, client_config};

use crate::latency::{Clock, Delays};

/// Bytes of an Opus payload in the load.
pub const PAYLOAD_LEN: usize = 160;
/// Bytes of one media datagram on the wire (QUIC framing excluded).
pub const DATAGRAM_LEN: usize = 8 + PAYLOAD_LEN + TAG_LEN;

/// A member in a voice channel.
pub struct LoadMember {
    /// Its connection.
    pub connection: quinn::Connection,
    /// Its sender slot.
    pub slot: u16,
    _control: ControlStream,
}

/// A client configuration pinning the relay in `link`.
pub fn quic_config(link: &InviteLink) -> Result<quinn::ClientConfig> {
    Ok(client_config(
        &PinnedCertificate::new(link.fingerprint),
        &TransportTuning::default(),
    )?)
}

/// Connects through `endpoint`, authenticates with a fresh identity and joins `channel_id`.
pub async fn join(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    link: &InviteLink,
    channel_id: u32,
) -> Result<LoadMember> {
    let address = link.address().parse().context("relay address")?;
    let connection = endpoint
        .connect_with(config, address, "sotto-relay")?
        .await?;
    let (send, recv) = connection.open_bi().await?;
    let mut control = ControlStream::new(send, recv);
    let mut handshake = ClientHandshake::new(
        Instant::now(),
        Identity::generate(),
        "load".into(),
        Some(link.token),
        link.fingerprint,
        DEFAULT_HANDSHAKE_TIMEOUT,
    );
    loop {
        while let Some(frame) = handshake.poll_transmit() {
            control.send(&frame).await?;
        }
        let frame = control
            .recv()
            .await?
            .context("relay closed the control stream")?;
        if handshake.handle_frame(frame)?.is_some() {
            break;
        }
    }
    control
        .send(&ControlFrame::JoinVoice {
            channel_id,
            session_salt: rand::random(),
        })
        .await?;
    loop {
        match control
            .recv()
            .await?
            .context("relay closed the control stream")?
        {
            ControlFrame::VoiceJoined { slot, .. } => {
                return Ok(LoadMember {
                    connection,
                    slot,
                    _control: control,
                });
            }
            ControlFrame::Roster { .. } => {}
            other => bail!("unexpected {other:?} while joining"),
        }
    }
}

/// A datagram from `slot` with `counter`, stamped with the send time.
pub fn datagram(slot: u16, counter: u32, sent_at_nanos: u64) -> Bytes {
    let mut bytes = Vec::with_capacity(DATAGRAM_LEN);
    bytes.extend_from_slice(
        &MediaHeader {
            stream: StreamKind::Voice,
            key_id: 0,
            sender: slot,
            counter,
        }
        .to_bytes(),
    );
    bytes.extend_from_slice(&sent_at_nanos.to_be_bytes());
    bytes.resize(DATAGRAM_LEN, 0);
    Bytes::from(bytes)
}

/// The send time stamped into a datagram by [`datagram`], at `offset` (8 for Sotto datagrams).
pub fn stamp(datagram: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        datagram.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// Counts a receiver's datagrams and their delays until the connection closes.
pub async fn receive(
    connection: quinn::Connection,
    clock: Clock,
    received: Arc<AtomicU64>,
    delays: Arc<std::sync::Mutex<Delays>>,
) {
    while let Ok(datagram) = connection.read_datagram().await {
        let now = clock.now_nanos();
        received.fetch_add(1, Ordering::Relaxed);
        if let Some(sent) = stamp(&datagram, 8) {
            delays.lock().unwrap().record(now.saturating_sub(sent));
        }
    }
}
