use proptest::prelude::*;

use super::*;

fn secret() -> TextSecret {
    TextSecret::from_bytes([7; 32])
}

fn alice() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn mallory() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

fn header_of(author: &SigningKey) -> MessageHeader {
    MessageHeader {
        channel_id: 3,
        epoch: 42,
        author: author.verifying_key().to_bytes(),
        sent_at_ms: 1_700_000_000_123,
        kind: 1,
    }
}

fn sealed(body: &[u8]) -> Vec<u8> {
    let author = alice();
    encode_envelope(&seal_message(&secret(), &author, &header_of(&author), body).unwrap())
}

#[test]
fn round_trips_empty_small_and_largest_bodies() {
    let author = alice();
    let header = header_of(&author);
    for body in [&b""[..], b"hello, world", &[0xa5; MAX_BODY_LEN]] {
        let message = seal_message(&secret(), &author, &header, body).unwrap();
        let bytes = encode_envelope(&message);
        assert_eq!(bytes.len(), OVERHEAD + body.len());
        assert_eq!(bytes.len(), message.encoded_len());
        assert_eq!(decode_envelope(&bytes).unwrap(), message);
        let opened = open_message(&secret(), &bytes).unwrap();
        assert_eq!(opened.header, header);
        assert_eq!(&opened.message_id, message.message_id());
        assert_eq!(opened.body, body);
    }
}

#[test]
fn overhead_is_150_bytes() {
    const { assert!(OVERHEAD == 150) };
    assert_eq!(sealed(&[0; 200]).len(), 350);
}

#[test]
fn header_round_trips_through_bytes() {
    let header = MessageHeader {
        channel_id: 0x0102_0304,
        epoch: u64::MAX - 1,
        author: [9; 32],
        sent_at_ms: 0x1122_3344_5566_7788,
        kind: 0xfe,
    };
    let bytes = header.to_bytes();
    assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
    assert_eq!(MessageHeader::from_bytes(&bytes), header);
}

#[test]
fn a_body_over_64_kib_is_refused() {
    let author = alice();
    assert_eq!(
        seal_message(
            &secret(),
            &author,
            &header_of(&author),
            &[0; MAX_BODY_LEN + 1]
        ),
        Err(SealError::BodyTooLong(MAX_BODY_LEN + 1))
    );
}

#[test]
fn sealing_in_someone_elses_name_is_refused() {
    assert_eq!(
        seal_message(&secret(), &mallory(), &header_of(&alice()), b"hi"),
        Err(SealError::AuthorMismatch)
    );
}

#[test]
fn two_sealings_of_one_message_differ() {
    let author = alice();
    let header = header_of(&author);
    let first = seal_message(&secret(), &author, &header, b"same words").unwrap();
    let second = seal_message(&secret(), &author, &header, b"same words").unwrap();
    assert_ne!(first.message_id(), second.message_id());
    assert_ne!(first.ciphertext(), second.ciphertext());
    assert_ne!(
        derive_text_key(&secret(), first.message_id()).as_bytes(),
        derive_text_key(&secret(), second.message_id()).as_bytes()
    );
}

#[test]
fn keys_depend_on_secret_and_message_id() {
    let key = derive_text_key(&secret(), &[0; 16]);
    assert_ne!(
        key.as_bytes(),
        derive_text_key(&secret(), &[1; 16]).as_bytes()
    );
    assert_ne!(
        key.as_bytes(),
        derive_text_key(&TextSecret::from_bytes([8; 32]), &[0; 16]).as_bytes()
    );
}

#[test]
fn the_wrong_secret_does_not_open() {
    assert_eq!(
        open_message(&TextSecret::from_bytes([8; 32]), &sealed(b"hi")),
        Err(OpenError::Undecryptable)
    );
}

#[test]
fn every_changed_byte_is_refused_and_says_where() {
    let bytes = sealed(b"meet at noon");
    let fields: [(&str, std::ops::Range<usize>); 10] = [
        ("version", 0..1),
        ("channel id", 1..5),
        ("epoch", 5..13),
        ("author", 13..45),
        ("sent at", 45..53),
        ("kind", 53..54),
        ("message id", 54..70),
        ("signature", 70..134),
        ("body", 134..146),
        ("tag", 146..162),
    ];
    assert_eq!(fields.last().unwrap().1.end, bytes.len());
    for (field, range) in fields {
        for at in range {
            let mut tampered = bytes.clone();
            tampered[at] ^= 0x01;
            let expected = if field == "version" {
                OpenError::Envelope(EnvelopeError::UnsupportedVersion(ENVELOPE_VERSION ^ 1))
            } else {
                OpenError::Undecryptable
            };
            assert_eq!(
                open_message(&secret(), &tampered),
                Err(expected),
                "{field} byte {at}"
            );
        }
    }
}

#[test]
fn a_member_forging_another_authors_message_is_caught() {
    // Mallory holds the text secret, so the AEAD accepts her envelope; only the signature,
    // made with her key over a header naming Alice, gives her away.
    let header = header_of(&alice());
    let id = [5; 16];
    let body = b"send mallory the keys";
    let signature = mallory().sign(&signature_input(&header, &id, body));
    let forged = seal_signed(&secret(), &header, id, &signature.to_bytes(), body);
    assert_eq!(
        open_message(&secret(), &encode_envelope(&forged)),
        Err(OpenError::BadSignature)
    );

    // Alice's genuine signature over other words does not carry over either.
    let signature = alice().sign(&signature_input(&header, &id, b"hello"));
    let spliced = seal_signed(&secret(), &header, id, &signature.to_bytes(), body);
    assert_eq!(
        open_message(&secret(), &encode_envelope(&spliced)),
        Err(OpenError::BadSignature)
    );

    // Nor over another message id or header.
    let signature = alice().sign(&signature_input(&header, &[6; 16], body));
    let moved = seal_signed(&secret(), &header, id, &signature.to_bytes(), body);
    assert_eq!(
        open_message(&secret(), &encode_envelope(&moved)),
        Err(OpenError::BadSignature)
    );
    let other_channel = MessageHeader {
        channel_id: 4,
        ..header
    };
    let signature = alice().sign(&signature_input(&other_channel, &id, body));
    let moved = seal_signed(&secret(), &header, id, &signature.to_bytes(), body);
    assert_eq!(
        open_message(&secret(), &encode_envelope(&moved)),
        Err(OpenError::BadSignature)
    );
}

#[test]
fn an_author_key_that_is_no_point_is_refused() {
    let invalid = (0..=u8::MAX)
        .map(|byte| {
            let mut key = [byte; 32];
            key[31] &= 0x7f;
            key
        })
        .find(|key| VerifyingKey::from_bytes(key).is_err())
        .expect("some byte pattern is not a curve point");
    let header = MessageHeader {
        author: invalid,
        ..header_of(&alice())
    };
    let forged = seal_signed(&secret(), &header, [5; 16], &[0; 64], b"hi");
    assert_eq!(
        open_message(&secret(), &encode_envelope(&forged)),
        Err(OpenError::InvalidAuthorKey)
    );
}

#[test]
fn decoding_checks_length_and_version() {
    let bytes = sealed(b"");
    assert_eq!(
        decode_envelope(&bytes[..OVERHEAD - 1]),
        Err(EnvelopeError::TooShort(OVERHEAD - 1))
    );
    assert_eq!(decode_envelope(&[]), Err(EnvelopeError::TooShort(0)));
    let too_long = vec![ENVELOPE_VERSION; MAX_ENVELOPE_LEN + 1];
    assert_eq!(
        decode_envelope(&too_long),
        Err(EnvelopeError::TooLong(MAX_ENVELOPE_LEN + 1))
    );
    let mut future = bytes.clone();
    future[0] = 2;
    assert_eq!(
        decode_envelope(&future),
        Err(EnvelopeError::UnsupportedVersion(2))
    );
    // A cut envelope decodes (its length is still valid) but does not authenticate.
    let longer = sealed(b"some body");
    assert_eq!(
        open_message(&secret(), &longer[..longer.len() - 1]),
        Err(OpenError::Undecryptable)
    );
}

#[test]
fn the_relay_can_read_the_header_without_the_secret() {
    let author = alice();
    let header = header_of(&author);
    let bytes = sealed(b"private");
    let decoded = decode_envelope(&bytes).unwrap();
    assert_eq!(decoded.header(), &header);
    assert!(
        !bytes.windows(7).any(|window| window == b"private"),
        "the body is not in the clear"
    );
}

#[test]
fn debug_output_hides_secrets() {
    assert_eq!(format!("{:?}", secret()), "TextSecret(..)");
    assert_eq!(
        format!("{:?}", derive_text_key(&secret(), &[0; 16])),
        "TextKey(..)"
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_envelope(&bytes);
        prop_assert!(open_message(&secret(), &bytes).is_err());
    }

    #[test]
    fn random_bytes_with_a_valid_prefix_never_open(
        body in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        let mut bytes = vec![ENVELOPE_VERSION];
        bytes.extend_from_slice(&header_of(&alice()).to_bytes());
        bytes.extend_from_slice(&body);
        let _ = decode_envelope(&bytes);
        prop_assert!(open_message(&secret(), &bytes).is_err());
    }

    #[test]
    fn any_single_change_is_refused(
        position in any::<prop::sample::Index>(), flip in 1u8..=255
    ) {
        let mut bytes = sealed(b"proptest body");
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        prop_assert!(open_message(&secret(), &bytes).is_err());
    }
}
