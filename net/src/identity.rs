//! Member identities: Ed25519 keys, and the signature that proves one on a connection.
//!
//! The client signs `"sotto/1 auth\0" | challenge nonce (32) | relay certificate SHA-256 (32) |
//! own public key (32)`. Binding the relay's certificate stops a malicious relay from passing
//! a member's signature on to another relay.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use zeroize::Zeroize;

use crate::proto::control::PublicKey;

const AUTH_CONTEXT: &[u8] = b"sotto/1 auth\0";

/// A member's Ed25519 key pair.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("public_key", &crate::invite::encode_b64(&self.public_key()))
            .finish()
    }
}

/// Why an identity could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The stored secret key is not 32 bytes.
    #[error("identity secret key must be 32 bytes, found {0}")]
    WrongLength(usize),
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Loads an identity from its 32 secret bytes.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdentityError::WrongLength(bytes.len()))?;
        let signing = SigningKey::from_bytes(&secret);
        secret.zeroize();
        Ok(Self { signing })
    }

    /// The 32 secret bytes, for storage in a keychain.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The signing key, for MLS (crate-internal: nothing outside signs with it directly).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public key that names this member.
    pub fn public_key(&self) -> PublicKey {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs a relay's challenge.
    pub fn sign_challenge(&self, nonce: &[u8; 32], relay_fingerprint: &[u8; 32]) -> [u8; 64] {
        let message = auth_message(nonce, relay_fingerprint, &self.public_key());
        self.signing.sign(&message).to_bytes()
    }
}

fn auth_message(nonce: &[u8; 32], relay_fingerprint: &[u8; 32], public_key: &PublicKey) -> Vec<u8> {
    [AUTH_CONTEXT, nonce, relay_fingerprint, public_key].concat()
}

/// Checks a challenge signature. False for a malformed key or a bad signature.
pub fn verify_challenge(
    public_key: &PublicKey,
    nonce: &[u8; 32],
    relay_fingerprint: &[u8; 32],
    signature: &[u8; 64],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let message = auth_message(nonce, relay_fingerprint, public_key);
    key.verify(&message, &Signature::from_bytes(signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_only_for_the_same_challenge_and_relay() {
        let identity = Identity::generate();
        let nonce = [7u8; 32];
        let relay = [9u8; 32];
        let signature = identity.sign_challenge(&nonce, &relay);
        assert!(verify_challenge(
            &identity.public_key(),
            &nonce,
            &relay,
            &signature
        ));
        assert!(!verify_challenge(
            &identity.public_key(),
            &[8u8; 32],
            &relay,
            &signature
        ));
        assert!(!verify_challenge(
            &identity.public_key(),
            &nonce,
            &[1u8; 32],
            &signature
        ));
        let other = Identity::generate();
        assert!(!verify_challenge(
            &other.public_key(),
            &nonce,
            &relay,
            &signature
        ));
    }

    #[test]
    fn secret_bytes_round_trip() {
        let identity = Identity::generate();
        let restored = Identity::from_secret_bytes(&identity.secret_bytes()).unwrap();
        assert_eq!(restored.public_key(), identity.public_key());
        assert_eq!(
            Identity::from_secret_bytes(&[0; 5]).unwrap_err(),
            IdentityError::WrongLength(5)
        );
    }
}
