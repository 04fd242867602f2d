//! Invite links: where the relay is, how to recognise it, how to get in, and the invite secret.
//!
//! ```text
//! sotto://relay.example.org:7878/join/<token>?fp=<certificate SHA-256>#<group secret>
//! ```
//!
//! Token, fingerprint and secret are unpadded base64url. The fragment after `#` is never sent
//! to the relay: it is the invite secret with which the joiner proves to the group's members
//! that it holds an invite a member made (see [`crate::group::JoinRequest`]). It decrypts
//! nothing. A link printed by the relay itself has no fragment: its holder waits for an admin.

use data_encoding::BASE64URL_NOPAD;

use crate::group::InviteSecret;
use crate::proto::control::InviteToken;

const SCHEME: &str = "sotto://";

/// A parsed invite link.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// Host name or IP address of the relay (IPv6 without brackets).
    pub host: String,
    /// UDP port of the relay.
    pub port: u16,
    /// The invite token.
    pub token: InviteToken,
    /// SHA-256 of the relay's certificate (DER).
    pub fingerprint: [u8; 32],
    /// The invite secret, if the link carries one.
    pub secret: Option<InviteSecret>,
}

impl std::fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteLink")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("has_secret", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a string is not a usable invite link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteLinkError {
    /// Wrong scheme.
    #[error("an invite link starts with `sotto://`; ask the sender for the whole link")]
    Scheme,
    /// No `/join/` path.
    #[error("the invite link has no `/join/<token>` part; ask the sender for the whole link")]
    MissingToken,
    /// No `host:port`.
    #[error("the invite link has no valid `host:port`")]
    Address,
    /// No `fp=` query.
    #[error(
        "the invite link has no `?fp=` certificate fingerprint; ask the sender for the whole link"
    )]
    MissingFingerprint,
    /// A base64 part does not decode to the right length.
    #[error("the invite link's {0} is damaged (wrong length or characters); copy the link again")]
    Damaged(&'static str),
}

impl InviteLink {
    /// Parses a link; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, InviteLinkError> {
        let rest = text
            .trim()
            .strip_prefix(SCHEME)
            .ok_or(InviteLinkError::Scheme)?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (rest, query) = rest
            .split_once('?')
            .ok_or(InviteLinkError::MissingFingerprint)?;
        let (authority, token) = rest
            .split_once("/join/")
            .ok_or(InviteLinkError::MissingToken)?;
        let (host, port) = parse_authority(authority)?;
        let fingerprint = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("fp="))
            .ok_or(InviteLinkError::MissingFingerprint)?;
        let secret = match fragment {
            Some(fragment) if !fragment.is_empty() => {
                Some(InviteSecret::from_bytes(decode_fixed(fragment, "secret")?))
            }
            _ => None,
        };
        Ok(Self {
            host,
            port,
            token: decode_fixed(token.trim_end_matches('/'), "token")?,
            fingerprint: decode_fixed(fingerprint, "fingerprint")?,
            secret,
        })
    }

    /// The link as text, with the secret fragment if there is one.
    pub fn to_link(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut link = format!(
            "{SCHEME}{host}:{}/join/{}?fp={}",
            self.port,
            encode_b64(&self.token),
            encode_b64(&self.fingerprint)
        );
        if let Some(secret) = &self.secret {
            link.push('#');
            link.push_str(&encode_b64(secret.as_bytes()));
        }
        link
    }

    /// `host:port`, bracketing IPv6 addresses, for name resolution.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for InviteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_link())
    }
}

fn parse_authority(authority: &str) -> Result<(String, u16), InviteLinkError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or(InviteLinkError::Address)?;
        (host, port)
    } else {
        authority.rsplit_once(':').ok_or(InviteLinkError::Address)?
    };
    let port: u16 = port.parse().map_err(|_| InviteLinkError::Address)?;
    if host.is_empty() || port == 0 || host.contains(['/', '?', '#', ' ']) {
        return Err(InviteLinkError::Address);
    }
    Ok((host.to_owned(), port))
}

fn decode_fixed<const N: usize>(
    text: &str,
    part: &'static str,
) -> Result<[u8; N], InviteLinkError> {
    let bytes = BASE64URL_NOPAD
        .decode(text.as_bytes())
        .map_err(|_| InviteLinkError::Damaged(part))?;
    bytes.try_into().map_err(|_| InviteLinkError::Damaged(part))
}

/// Unpadded base64url, as used in links and logs.
pub fn encode_b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// The bytes of unpadded base64url text, if it is that.
pub fn decode_b64(text: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD.decode(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(host: &str, secret: bool) -> InviteLink {
        InviteLink {
            host: host.to_owned(),
            port: 7878,
            token: [1; 16],
            fingerprint: [2; 32],
            secret: secret.then(|| InviteSecret::from_bytes([3; 32])),
        }
    }

    #[test]
    fn round_trips_with_and_without_secret() {
        for link in [
            sample("127.0.0.1", true),
            sample("relay.example.org", false),
            sample("::1", true),
        ] {
            let text = link.to_link();
            assert_eq!(InviteLink::parse(&text).unwrap(), link, "{text}");
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let link = sample("::1", false);
        assert!(link.to_link().starts_with("sotto://[::1]:7878/join/"));
        assert_eq!(link.address(), "[::1]:7878");
    }

    #[test]
    fn rejects_damaged_links_with_a_reason() {
        let good = sample("127.0.0.1", true).to_link();
        assert_eq!(
            InviteLink::parse("https://x").unwrap_err(),
            InviteLinkError::Scheme
        );
        assert_eq!(
            InviteLink::parse(&good.replace("?fp=", "?xx=")).unwrap_err(),
            InviteLinkError::MissingFingerprint
        );
        assert_eq!(
            InviteLink::parse(&good.replace(":7878", ":0")).unwrap_err(),
            InviteLinkError::Address
        );
        let truncated = &good[..good.len() - 3];
        assert_eq!(
            InviteLink::parse(truncated).unwrap_err(),
            InviteLinkError::Damaged("secret")
        );
        assert_eq!(
            InviteLink::parse(&good.replace("/join/AQ", "/join/")).unwrap_err(),
            InviteLinkError::Damaged("token")
        );
    }
}
