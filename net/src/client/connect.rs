//! One connection attempt: resolve, QUIC with the pinned certificate, then the handshake.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::client::{ClientError, ClientOptions};
use crate::proto::control::{ChannelInfo, ControlFrame, ServerInfo};
use crate::proto::handshake::{ClientHandshake, HandshakeError};
use crate::transport::{ControlStream, PinnedCertificate, client_config, close_code};

/// An authenticated connection.
pub(crate) struct Established {
    pub(crate) connection: quinn::Connection,
    pub(crate) control: ControlStream,
    pub(crate) member_id: u32,
    pub(crate) server: ServerInfo,
    pub(crate) channels: Vec<ChannelInfo>,
}

/// The client's UDP endpoint, reused across reconnects.
pub(crate) fn client_endpoint() -> Result<quinn::Endpoint, ClientError> {
    // Dual-stack where the OS allows; IPv4 otherwise.
    quinn::Endpoint::client(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
        .or_else(|_| quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))))
        .map_err(ClientError::Socket)
}

async fn resolve(address: &str) -> Result<SocketAddr, ClientError> {
    let mut addresses =
        tokio::net::lookup_host(address)
            .await
            .map_err(|error| ClientError::Resolve {
                address: address.to_owned(),
                reason: error.to_string(),
            })?;
    addresses.next().ok_or_else(|| ClientError::Resolve {
        address: address.to_owned(),
        reason: "no addresses".to_owned(),
    })
}

/// Maps a closed connection to the error the user should see.
pub(crate) fn connection_error(error: quinn::ConnectionError) -> ClientError {
    if let quinn::ConnectionError::ApplicationClosed(close) = &error {
        let code = close.error_code.into_inner();
        if code == u64::from(close_code::REPLACED) {
            return ClientError::Replaced;
        }
        // A refusal or a protocol violation the relay gave only as its close reason (its
        // `Error` frame was lost with the connection) counts as much as the frame would have.
        if let Ok(code @ (close_code::REFUSED | close_code::PROTOCOL_VIOLATION)) =
            u32::try_from(code)
        {
            return ClientError::ClosedByRelay {
                code,
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            };
        }
    }
    ClientError::Connection(error)
}

/// Connects and authenticates once.
pub(crate) async fn connect(
    endpoint: &quinn::Endpoint,
    options: &ClientOptions,
) -> Result<Established, ClientError> {
    let mut address = resolve(&options.link.address()).await?;
    if address.is_ipv4()
        && endpoint.local_addr().is_ok_and(|local| local.is_ipv6())
        && let std::net::IpAddr::V4(v4) = address.ip()
    {
        address = SocketAddr::new(v4.to_ipv6_mapped().into(), address.port());
    }
    let pin = PinnedCertificate::new(options.link.fingerprint);
    let config = client_config(&pin, &options.tuning)?;
    let connecting = endpoint.connect_with(config, address, "sotto-relay")?;
    let connection = match connecting.await {
        Ok(connection) => connection,
        Err(_) if pin.mismatch_seen() => return Err(ClientError::FingerprintMismatch),
        Err(error) => return Err(connection_error(error)),
    };
    match handshake(&connection, options).await {
        Ok(established) => Ok(established),
        Err(error) => {
            connection.close(close_code::NORMAL.into(), b"handshake failed");
            Err(error)
        }
    }
}

async fn handshake(
    connection: &quinn::Connection,
    options: &ClientOptions,
) -> Result<Established, ClientError> {
    let (send, recv) = connection.open_bi().await.map_err(connection_error)?;
    let mut control = ControlStream::new(send, recv);
    let mut handshake = ClientHandshake::new(
        Instant::now(),
        options.identity.clone(),
        options.display_name.clone(),
        Some(options.link.token),
        options.link.fingerprint,
        options.handshake_timeout,
    );
    loop {
        while let Some(frame) = handshake.poll_transmit() {
            control.send(&frame).await?;
        }
        let deadline = handshake
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + options.handshake_timeout);
        let frame = match tokio::time::timeout_at(deadline.into(), control.recv()).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                return Err(HandshakeError::Unexpected {
                    frame: "end of stream",
                }
                .into());
            }
            Ok(Err(crate::transport::StreamError::Read(quinn::ReadError::ConnectionLost(
                error,
            )))) => {
                return Err(connection_error(error));
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => {
                handshake.handle_timeout(Instant::now())?;
                continue;
            }
        };
        if let Some(admission) = handshake.handle_frame(frame)? {
            let ControlFrame::Welcome {
                member_id,
                server,
                channels,
            } = admission.welcome
            else {
                unreachable!("the handshake admits only with a Welcome frame")
            };
            return Ok(Established {
                connection: connection.clone(),
                control,
                member_id,
                server,
                channels,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::session::Failure;

    fn closed(code: u32, reason: &'static str) -> quinn::ConnectionError {
        quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: code.into(),
            reason: bytes::Bytes::from_static(reason.as_bytes()),
        })
    }

    #[test]
    fn a_refusal_seen_only_in_the_close_reason_is_final() {
        let error = connection_error(closed(close_code::REFUSED, "the invite has expired"));
        assert_eq!(error.failure(), Failure::Permanent);
        assert!(
            error.to_string().contains("the invite has expired"),
            "the relay's reason reaches the person: {error}"
        );
        let error = connection_error(closed(close_code::REPLACED, "signed in elsewhere"));
        assert!(matches!(error, ClientError::Replaced));
        assert_eq!(error.failure(), Failure::Permanent);
        // A protocol violation is retried a few times; a relay shutting down, always.
        let error = connection_error(closed(close_code::PROTOCOL_VIOLATION, "malformed"));
        assert_eq!(error.failure(), Failure::Suspect);
        let error = connection_error(closed(close_code::SHUTTING_DOWN, "bye"));
        assert_eq!(error.failure(), Failure::Transient);
        let error = connection_error(quinn::ConnectionError::TimedOut);
        assert_eq!(error.failure(), Failure::Transient);
    }
}
