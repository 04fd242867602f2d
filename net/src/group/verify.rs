//! Codes people compare to know nobody is in the middle.
//!
//! - A [`SafetyNumber`] belongs to a pair of members: 60 digits, the same on both sides, that
//!   change only when one of them changes identity key. It follows Signal's construction: each
//!   key's fingerprint is SHA-512 iterated 5,200 times over a version, the key and a label; the
//!   first 30 bytes give six 5-digit groups (each 5 bytes as a big-endian integer mod 100,000);
//!   the two 30-digit halves are ordered by the keys so both sides print the same number.
//! - A [`PrivacyCode`] belongs to a group epoch: 30 digits from MLS's `epoch_authenticator`,
//!   equal for all members who share the epoch and different for anyone on a fork.

use sha2::{Digest, Sha512};

use crate::proto::control::PublicKey;

const FINGERPRINT_VERSION: [u8; 2] = [0, 1];
const FINGERPRINT_LABEL: &[u8] = b"sotto/1 safety number";
const FINGERPRINT_ITERATIONS: usize = 5200;
const QR_VERSION: u8 = 1;

/// Six groups of five digits from 30 bytes.
fn thirty_digits(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(30);
    for chunk in bytes.chunks(5).take(6) {
        let value = chunk
            .iter()
            .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
        out.push_str(&format!("{:05}", value % 100_000));
    }
    out
}

fn fingerprint(key: &PublicKey) -> [u8; 64] {
    let mut hash: [u8; 64] = {
        let mut hasher = Sha512::new();
        hasher.update(FINGERPRINT_VERSION);
        hasher.update(key);
        hasher.update(FINGERPRINT_LABEL);
        hasher.finalize().into()
    };
    for _ in 1..FINGERPRINT_ITERATIONS {
        let mut hasher = Sha512::new();
        hasher.update(hash);
        hasher.update(key);
        hash = hasher.finalize().into();
    }
    hash
}

/// The safety number of two members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
    qr: Vec<u8>,
}

impl SafetyNumber {
    /// The safety number of `a` and `b`; the same whichever order they are given in.
    pub fn between(a: &PublicKey, b: &PublicKey) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let (low, high) = (fingerprint(low), fingerprint(high));
        let mut digits = thirty_digits(&low[..30]);
        digits.push_str(&thirty_digits(&high[..30]));
        let mut qr = vec![QR_VERSION];
        qr.extend_from_slice(&low[..32]);
        qr.extend_from_slice(&high[..32]);
        Self { digits, qr }
    }

    /// The 60 digits.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The payload of the QR code to scan instead of reading digits.
    pub fn qr_payload(&self) -> &[u8] {
        &self.qr
    }
}

impl std::fmt::Display for SafetyNumber {
    /// Twelve groups of five digits, four groups per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = (0..12).map(|i| &self.digits[i * 5..i * 5 + 5]).collect();
        for (line, chunk) in groups.chunks(4).enumerate() {
            if line > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", chunk.join(" "))?;
        }
        Ok(())
    }
}

/// The privacy code of a group epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyCode(String);

impl PrivacyCode {
    /// The code of an epoch authenticator (at least 30 bytes; SHA-256 suites give 32).
    pub fn from_authenticator(authenticator: &[u8]) -> Self {
        let mut bytes = [0u8; 30];
        let len = authenticator.len().min(30);
        bytes[..len].copy_from_slice(&authenticator[..len]);
        Self(thirty_digits(&bytes))
    }

    /// The 30 digits.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PrivacyCode {
    /// Six groups of five digits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = (0..6).map(|i| &self.0[i * 5..i * 5 + 5]).collect();
        f.write_str(&groups.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_numbers_are_symmetric_and_distinct_per_pair() {
        let (alice, bob, carol) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let ab = SafetyNumber::between(&alice, &bob);
        assert_eq!(ab, SafetyNumber::between(&bob, &alice));
        assert_eq!(ab.digits().len(), 60);
        assert!(ab.digits().bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(ab, SafetyNumber::between(&alice, &carol));
        assert_eq!(ab.qr_payload().len(), 65);
        let shown = ab.to_string();
        assert_eq!(shown.lines().count(), 3);
        assert_eq!(shown.split_whitespace().count(), 12);
    }

    #[test]
    fn privacy_codes_have_thirty_digits_in_six_groups() {
        let code = PrivacyCode::from_authenticator(&[0xff; 32]);
        assert_eq!(code.digits().len(), 30);
        // 0xffffffffff = 1099511627775, mod 100000 = 27775.
        assert_eq!(code.to_string(), "27775 27775 27775 27775 27775 27775");
        assert_ne!(code, PrivacyCode::from_authenticator(&[0xfe; 32]));
    }
}
