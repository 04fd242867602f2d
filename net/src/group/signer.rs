//! The member's Sotto identity as an MLS signer and credential.

use openmls::prelude::{BasicCredential, CredentialWithKey, SignatureScheme};
use openmls_traits::signatures::{Signer, SignerError};

use crate::identity::Identity;

/// Signs MLS messages with a member's identity key.
pub(crate) struct IdentitySigner<'a>(pub(crate) &'a Identity);

impl Signer for IdentitySigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        use ed25519_dalek::Signer as _;
        Ok(self.0.signing_key().sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// The credential of `identity`: a basic credential naming its public key, with that same key
/// as the leaf's signature key.
pub(crate) fn credential_of(identity: &Identity) -> CredentialWithKey {
    let public_key = identity.public_key().to_vec();
    CredentialWithKey {
        credential: BasicCredential::new(public_key.clone()).into(),
        signature_key: public_key.into(),
    }
}
