//! QUIC and TLS configuration shared by the relay and the client.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::ALPN;
use crate::transport::pinning::PinnedCertificate;

/// The relay's self-signed certificate and its private key, both DER.
#[derive(Clone)]
pub struct RelayCertificate {
    /// The certificate.
    pub certificate_der: Vec<u8>,
    /// The PKCS#8 private key.
    pub private_key_der: Vec<u8>,
}

impl std::fmt::Debug for RelayCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayCertificate")
            .field(
                "fingerprint",
                &crate::invite::encode_b64(&self.fingerprint()),
            )
            .finish_non_exhaustive()
    }
}

impl RelayCertificate {
    /// SHA-256 of the certificate, as pinned by invite links.
    pub fn fingerprint(&self) -> [u8; 32] {
        certificate_fingerprint(&self.certificate_der)
    }
}

/// SHA-256 of a DER certificate.
pub fn certificate_fingerprint(certificate_der: &[u8]) -> [u8; 32] {
    Sha256::digest(certificate_der).into()
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// rustls refused the certificate, key or protocol settings.
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("could not generate a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration has no QUIC-capable cipher suite.
    #[error("TLS configuration has no cipher suite usable by QUIC")]
    NoQuicCipherSuite,
}

/// A fresh self-signed certificate for a relay.
pub fn generate_certificate() -> Result<RelayCertificate, ConfigError> {
    let certified = rcgen::generate_simple_self_signed(vec!["sotto-relay".to_owned()])?;
    Ok(RelayCertificate {
        certificate_der: certified.cert.der().to_vec(),
        private_key_der: certified.key_pair.serialize_der(),
    })
}

/// Timing and buffer settings for QUIC connections.
#[derive(Debug, Clone)]
pub struct TransportTuning {
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// How often to send keep-alives when otherwise silent (client side).
    pub keep_alive: Duration,
    /// Bytes of received datagrams buffered before the oldest are dropped.
    pub datagram_receive_buffer: usize,
    /// Bytes of outgoing datagrams buffered before the oldest are dropped.
    pub datagram_send_buffer: usize,
}

impl Default for TransportTuning {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(1),
            datagram_receive_buffer: 1 << 20,
            datagram_send_buffer: 1 << 20,
        }
    }
}

impl TransportTuning {
    fn transport_config(&self, keep_alive: bool) -> TransportConfig {
        let mut transport = TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                IdleTimeout::try_from(self.idle_timeout).unwrap_or(VarInt::from_u32(10_000).into()),
            ))
            .keep_alive_interval(keep_alive.then_some(self.keep_alive))
            .datagram_receive_buffer_size(Some(self.datagram_receive_buffer))
            .datagram_send_buffer_size(self.datagram_send_buffer)
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .max_concurrent_bidi_streams(VarInt::from_u32(4))
            // A LAN or loopback relay answers well within this; a lower first guess makes lost
            // handshake packets retransmit sooner when reconnecting to a restarted relay.
            .initial_rtt(Duration::from_millis(100));
        // Media datagrams are never retransmitted, so per-packet ACKs buy little; ask the peer
        // to acknowledge every 8th packet (or within 25 ms) to halve the relay's inbound work.
        let mut ack_frequency = quinn::AckFrequencyConfig::default();
        ack_frequency
            .ack_eliciting_threshold(VarInt::from_u32(7))
            .max_ack_delay(Some(Duration::from_millis(25)));
        transport.ack_frequency_config(Some(ack_frequency));
        transport
    }
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Endpoint settings whose stateless-reset key is derived from `reset_secret`.
///
/// A relay that keeps the secret across restarts can answer a client's packets for a
/// connection it no longer knows with a stateless reset the client accepts, so clients notice
/// a restarted relay at their next packet instead of waiting for the idle timeout.
pub fn endpoint_config(reset_secret: &[u8]) -> quinn::EndpointConfig {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_secret);
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    // quinn's default generator signs connection IDs with a per-process key and silently drops
    // packets whose IDs it did not mint, so a restarted relay would never answer them with a
    // reset. Random IDs are accepted by any instance; 4 bytes (instead of 8) also trims every
    // media packet, and 2^32 IDs leave room for the connection cap many times over.
    config.cid_generator(|| Box::new(quinn_proto::RandomConnectionIdGenerator::new(4)));
    config
}

/// The relay's QUIC server configuration: TLS 1.3, ALPN `sotto/1`, datagrams on, migration on.
pub fn server_config(
    certificate: &RelayCertificate,
    tuning: &TransportTuning,
) -> Result<quinn::ServerConfig, ConfigError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certificate.private_key_der.clone(),
    ));
    let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certificate.certificate_der.clone())],
            key,
        )?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|_| ConfigError::NoQuicCipherSuite)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(tuning.transport_config(false)));
    config.migration(true);
    Ok(config)
}

/// A client configuration that accepts only the certificate `pin` names.
pub fn client_config(
    pin: &PinnedCertificate,
    tuning: &TransportTuning,
) -> Result<quinn::ClientConfig, ConfigError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pin.clone()))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|_| ConfigError::NoQuicCipherSuite)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(tuning.transport_config(true)));
    Ok(config)
}
