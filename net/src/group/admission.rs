//! Admission by invite: how a joiner proves it holds an invite link the relay never saw.
//!
//! The fragment of an invite link carries an [`InviteSecret`]. From it both the inviter and
//! the joiner derive an Ed25519 *invite key*. The inviter publishes an [`InviteGrant`]: the
//! invite key's public half, the group and an expiry, signed with the inviter's identity key.
//! The joiner signs the reference of its KeyPackage with the invite key ([`JoinRequest`]). Any
//! member can then check, without knowing the secret, that the joiner holds the link of an
//! invite a member made; the committer copies the grant and the proof into the commit's
//! authenticated data ([`JoinProof`]) so every other member checks the same.
//!
//! A relay cannot forge a proof: it never learns the secret, and a grant it made up carries no
//! member's signature.
//!
//! ```text
//! invite key seed = HKDF-SHA256(salt = "sotto/1 invite key", ikm = invite secret, info = "", 32)
//! grant  = version (1) ‖ group id (u8 len ‖ bytes) ‖ invite public key (32) ‖ inviter key (32)
//!          ‖ expires (u64 BE, Unix seconds) ‖ signature (64) by the inviter over
//!          "sotto/1 invite grant\0" ‖ all fields before it
//! proof  = Ed25519 by the invite key over "sotto/1 join proof\0" ‖ group id (u8 len ‖ bytes)
//!          ‖ KeyPackageRef (u8 len ‖ bytes)
//! ```

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::codec::{Reader, put_vec8, put_vec32};
use super::policy::PolicyViolation;
use crate::identity::Identity;
use crate::proto::control::PublicKey;

const INVITE_KEY_SALT: &[u8] = b"sotto/1 invite key";
const GRANT_CONTEXT: &[u8] = b"sotto/1 invite grant\0";
const PROOF_CONTEXT: &[u8] = b"sotto/1 join proof\0";
const VERSION: u8 = 1;

/// The secret in an invite link's fragment; wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct InviteSecret([u8; 32]);

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

impl InviteSecret {
    /// Bytes of a secret.
    pub const LEN: usize = 32;

    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes (to put in an invite link; never log them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn invite_key(&self) -> SigningKey {
        let hkdf = Hkdf::<Sha256>::new(Some(INVITE_KEY_SALT), &self.0);
        let mut seed = [0u8; 32];
        hkdf.expand(&[], &mut seed)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        key
    }

    /// The public half of the invite key, as published in a grant.
    pub fn invite_public_key(&self) -> PublicKey {
        self.invite_key().verifying_key().to_bytes()
    }
}

/// An inviter's signed statement that whoever holds the secret of `invite_key` may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteGrant {
    /// The group the invite is for.
    pub group_id: Vec<u8>,
    /// Public half of the invite key.
    pub invite_key: PublicKey,
    /// The member who made the invite.
    pub inviter: PublicKey,
    /// When the invite stops admitting, in Unix seconds.
    pub expires_at: u64,
    signature: [u8; 64],
}

impl InviteGrant {
    /// A grant for `secret`, signed by `inviter`.
    pub fn sign(
        inviter: &Identity,
        group_id: &[u8],
        secret: &InviteSecret,
        expires_at: u64,
    ) -> Result<Self, PolicyViolation> {
        if group_id.is_empty() || group_id.len() > super::MAX_GROUP_ID_LEN {
            return Err(PolicyViolation::MalformedProof);
        }
        let mut grant = Self {
            group_id: group_id.to_vec(),
            invite_key: secret.invite_public_key(),
            inviter: inviter.public_key(),
            expires_at,
            signature: [0; 64],
        };
        grant.signature = inviter.signing_key().sign(&grant.signed_bytes()).to_bytes();
        Ok(grant)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = GRANT_CONTEXT.to_vec();
        self.encode_fields(&mut out);
        out
    }

    fn encode_fields(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_vec8(out, &self.group_id);
        out.extend_from_slice(&self.invite_key);
        out.extend_from_slice(&self.inviter);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 1 + self.group_id.len() + 32 + 32 + 8 + 64);
        self.encode_fields(&mut out);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the wire form (the signature is checked by [`Self::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyViolation> {
        let mut reader = Reader::new(bytes);
        let parse = |reader: &mut Reader<'_>| -> Result<Self, super::codec::Truncated> {
            if reader.u8()? != VERSION {
                return Err(super::codec::Truncated);
            }
            Ok(Self {
                group_id: reader.vec8()?.to_vec(),
                invite_key: reader.array()?,
                inviter: reader.array()?,
                expires_at: reader.u64()?,
                signature: reader.array()?,
            })
        };
        let grant = parse(&mut reader).map_err(|_| PolicyViolation::MalformedProof)?;
        reader
            .finish()
            .map_err(|_| PolicyViolation::MalformedProof)?;
        Ok(grant)
    }

    /// Checks the inviter's signature, the group and the expiry.
    pub fn verify(&self, group_id: &[u8], now_unix: u64) -> Result<(), PolicyViolation> {
        if self.group_id != group_id {
            return Err(PolicyViolation::ProofForAnotherGroup);
        }
        if now_unix >= self.expires_at {
            return Err(PolicyViolation::InviteExpired);
        }
        let inviter =
            VerifyingKey::from_bytes(&self.inviter).map_err(|_| PolicyViolation::BadProof)?;
        inviter
            .verify_strict(
                &self.signed_bytes(),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| PolicyViolation::BadProof)
    }
}

fn proof_bytes(group_id: &[u8], key_package_ref: &[u8]) -> Vec<u8> {
    let mut out = PROOF_CONTEXT.to_vec();
    put_vec8(&mut out, group_id);
    put_vec8(&mut out, key_package_ref);
    out
}

/// The evidence for one Add: a grant and the joiner's signature over its KeyPackage reference.
///
/// Committers put one per added KeyPackage into the commit's authenticated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinProof {
    /// The KeyPackageRef (RFC 9420 §5.2) of the KeyPackage being added.
    pub key_package_ref: Vec<u8>,
    /// The invite it was made under.
    pub grant: InviteGrant,
    signature: [u8; 64],
}

impl JoinProof {
    /// The joiner's proof for `key_package_ref` under `secret`.
    pub fn new(secret: &InviteSecret, grant: InviteGrant, key_package_ref: &[u8]) -> Self {
        let signature = secret
            .invite_key()
            .sign(&proof_bytes(&grant.group_id, key_package_ref))
            .to_bytes();
        Self {
            key_package_ref: key_package_ref.to_vec(),
            grant,
            signature,
        }
    }

    /// Checks the grant and the joiner's signature.
    pub fn verify(&self, group_id: &[u8], now_unix: u64) -> Result<(), PolicyViolation> {
        self.grant.verify(group_id, now_unix)?;
        let invite_key = VerifyingKey::from_bytes(&self.grant.invite_key)
            .map_err(|_| PolicyViolation::BadProof)?;
        invite_key
            .verify_strict(
                &proof_bytes(group_id, &self.key_package_ref),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| PolicyViolation::BadProof)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        put_vec8(out, &self.key_package_ref);
        put_vec32(out, &self.grant.encode());
        out.extend_from_slice(&self.signature);
    }

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, PolicyViolation> {
        let malformed = |_| PolicyViolation::MalformedProof;
        let key_package_ref = reader.vec8().map_err(malformed)?.to_vec();
        let grant = InviteGrant::decode(reader.vec32().map_err(malformed)?)?;
        let signature = reader.array().map_err(malformed)?;
        Ok(Self {
            key_package_ref,
            grant,
            signature,
        })
    }

    /// Encodes the proofs of one commit as its authenticated data.
    pub fn encode_all(proofs: &[JoinProof]) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&(proofs.len() as u16).to_be_bytes());
        for proof in proofs {
            proof.encode_into(&mut out);
        }
        out
    }

    /// Decodes a commit's authenticated data; empty data means no proofs.
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<JoinProof>, PolicyViolation> {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let mut reader = Reader::new(bytes);
        let malformed = |_| PolicyViolation::MalformedProof;
        if reader.u8().map_err(malformed)? != VERSION {
            return Err(PolicyViolation::MalformedProof);
        }
        let count = reader.u16().map_err(malformed)?;
        let mut proofs = Vec::with_capacity(usize::from(count).min(64));
        for _ in 0..count {
            proofs.push(Self::decode_from(&mut reader)?);
        }
        reader.finish().map_err(malformed)?;
        Ok(proofs)
    }
}

/// What a joiner uploads to be let in: its KeyPackage (an MLS message) and its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The KeyPackage, as an MLS message.
    pub key_package: Vec<u8>,
    /// The proof over its reference.
    pub proof: JoinProof,
}

impl JoinRequest {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        put_vec32(&mut out, &self.key_package);
        self.proof.encode_into(&mut out);
        out
    }

    /// Parses the wire form (nothing is verified yet).
    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyViolation> {
        let mut reader = Reader::new(bytes);
        let malformed = |_| PolicyViolation::MalformedProof;
        if reader.u8().map_err(malformed)? != VERSION {
            return Err(PolicyViolation::MalformedProof);
        }
        let key_package = reader.vec32().map_err(malformed)?.to_vec();
        let proof = JoinProof::decode_from(&mut reader)?;
        reader.finish().map_err(malformed)?;
        Ok(Self { key_package, proof })
    }
}
