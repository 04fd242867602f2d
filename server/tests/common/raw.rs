//! A hand-driven client for tests that must misbehave: forged signatures, forged senders,
//! replays, garbage bytes.

use std::net::{Ipv4Addr, SocketAddr};

use sotto_net::crypto::{
    ChannelSecret, KeyProvider, SenderContext, StaticSecretKeys, new_session_salt,
};
use sotto_net::identity::Identity;
use sotto_net::invite::InviteLink;
use sotto_net::proto::control::{ControlFrame, ErrorCode};
use sotto_net::proto::datagram::MediaSealer;
use sotto_net::transport::{ControlStream, PinnedCertificate, TransportTuning, client_config};

pub struct RawClient {
    pub endpoint: quinn::Endpoint,
    pub connection: quinn::Connection,
    pub control: ControlStream,
}

impl RawClient {
    /// Opens a QUIC connection and the control stream, without any handshake.
    pub async fn connect(link: &InviteLink) -> Self {
        let endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let config = client_config(
            &PinnedCertificate::new(link.fingerprint),
            &TransportTuning::default(),
        )
        .unwrap();
        let address: SocketAddr = link.address().parse().unwrap();
        let connection = endpoint
            .connect_with(config, address, "sotto-relay")
            .unwrap()
            .await
            .unwrap();
        let (send, recv) = connection.open_bi().await.unwrap();
        Self {
            endpoint,
            connection,
            control: ControlStream::new(send, recv),
        }
    }

    /// Says Hello as `claimed` but signs the challenge with `signer`. Returns the relay's answer.
    pub async fn handshake(
        &mut self,
        link: &InviteLink,
        claimed: &Identity,
        signer: &Identity,
    ) -> ControlFrame {
        let hello = ControlFrame::Hello {
            public_key: claimed.public_key(),
            display_name: "raw".into(),
            invite: Some(link.token),
        };
        self.control.send(&hello).await.unwrap();
        let Some(ControlFrame::Challenge { nonce }) = self.control.recv().await.unwrap() else {
            panic!("expected a challenge")
        };
        let signature = signer.sign_challenge(&nonce, &link.fingerprint);
        self.control
            .send(&ControlFrame::Authenticate { signature })
            .await
            .unwrap();
        self.control.recv().await.unwrap().expect("an answer")
    }

    /// Joins the voice channel; returns a sealer for our slot.
    pub async fn join_voice(&mut self, identity: &Identity, channel_id: u32) -> (u16, MediaSealer) {
        let session_salt = new_session_salt();
        self.control
            .send(&ControlFrame::JoinVoice {
                channel_id,
                session_salt,
            })
            .await
            .unwrap();
        let slot = loop {
            match self.control.recv().await.unwrap().expect("a frame") {
                ControlFrame::VoiceJoined { slot, .. } => break slot,
                ControlFrame::Roster { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        };
        let keys = StaticSecretKeys::new(ChannelSecret::from_bytes(super::TEST_MEDIA_SECRET));
        let context = SenderContext {
            channel_id,
            public_key: identity.public_key(),
            session_salt,
        };
        (
            slot,
            MediaSealer::new(&keys.media_key(&context, 0).unwrap(), 0, slot),
        )
    }

    /// Waits for the relay to close the connection and returns its application error code.
    pub async fn closed_code(&self) -> Option<u64> {
        match tokio::time::timeout(super::DEADLINE, self.connection.closed())
            .await
            .expect("relay closes")
        {
            quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
            _ => None,
        }
    }
}

pub fn expect_error(frame: ControlFrame, expected: ErrorCode) {
    match frame {
        ControlFrame::Error { code, .. } => assert_eq!(code, expected),
        other => panic!("expected an Error {expected:?}, got {other:?}"),
    }
}
