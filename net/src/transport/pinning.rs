//! Certificate pinning: the relay is recognised by the SHA-256 of its certificate, as carried in
//! the invite link. No certificate authority and no trust-on-first-use prompt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::transport::config::certificate_fingerprint;

/// Accepts exactly one certificate, by fingerprint, and remembers a mismatch so the caller can
/// report it clearly.
#[derive(Debug, Clone)]
pub struct PinnedCertificate {
    fingerprint: [u8; 32],
    mismatch_seen: Arc<AtomicBool>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertificate {
    /// Pins the certificate whose SHA-256 is `fingerprint`.
    pub fn new(fingerprint: [u8; 32]) -> Self {
        Self {
            fingerprint,
            mismatch_seen: Arc::new(AtomicBool::new(false)),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    /// Whether a relay presented a different certificate.
    pub fn mismatch_seen(&self) -> bool {
        self.mismatch_seen.load(Ordering::Relaxed)
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if certificate_fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatch_seen.store(true, Ordering::Relaxed);
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
