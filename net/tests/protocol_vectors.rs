//! The test vectors in `net/PROTOCOL.md`, decoded and checked against the implementation.

use sotto_net::crypto::{SenderContext, derive_media_key};
use sotto_net::proto::StreamKind;
use sotto_net::proto::control::{ControlFrame, ErrorCode, FrameDecoder, Participant};
use sotto_net::proto::datagram::{HEADER_LEN, MediaHeader, MediaOpener, MediaSealer, OVERHEAD};
use sotto_net::proto::feedback::{ReceiverReport, SenderLoss};
use sotto_net::proto::replay::ReplayWindow;
use sotto_net::seal::file::{FileKey, FileOpener, FileSealer, decode_manifest, encode_manifest};
use sotto_net::seal::text::{
    MessageHeader, TextSecret, decode_envelope, derive_text_key, encode_envelope, open_message,
    seal_message_with_id,
};

const PROTOCOL: &str = include_str!("../PROTOCOL.md");

/// The bytes of the ```hex block after `<!-- vector: NAME -->`.
fn vector(name: &str) -> Vec<u8> {
    let marker = format!("<!-- vector: {name} -->");
    let start = PROTOCOL
        .find(&marker)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no vector {name}"));
    let rest = &PROTOCOL[start..];
    let block = rest
        .split("```hex")
        .nth(1)
        .expect("a hex block")
        .split("```")
        .next()
        .unwrap();
    block
        .split_whitespace()
        .map(|byte| {
            u8::from_str_radix(byte, 16).unwrap_or_else(|_| panic!("bad hex {byte} in {name}"))
        })
        .collect()
}

fn seq<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn decode_one(bytes: &[u8]) -> ControlFrame {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    let frame = decoder.poll_frame().unwrap().expect("a whole frame");
    assert_eq!(decoder.buffered(), 0, "no bytes left over");
    assert_eq!(frame.to_bytes().unwrap(), bytes, "re-encodes identically");
    frame
}

#[test]
fn control_vectors_decode() {
    assert_eq!(
        decode_one(&vector("control-hello")),
        ControlFrame::Hello {
            public_key: seq(0x20),
            display_name: "Zoë".into(),
            invite: Some(seq(0xa0))
        }
    );
    assert_eq!(
        decode_one(&vector("control-join-voice")),
        ControlFrame::JoinVoice {
            channel_id: 2,
            session_salt: seq(0x40)
        }
    );
    assert_eq!(
        decode_one(&vector("control-roster")),
        ControlFrame::Roster {
            channel_id: 2,
            participants: vec![Participant {
                slot: 3,
                member_id: 7,
                public_key: seq(0x20),
                display_name: "ada".into(),
                session_salt: seq(0x40),
            }],
        }
    );
    assert_eq!(
        decode_one(&vector("control-roster-changed")),
        ControlFrame::RosterChanged {
            channel_id: 2,
            joined: vec![Participant {
                slot: 4,
                member_id: 9,
                public_key: seq(0x20),
                display_name: "bob".into(),
                session_salt: seq(0x40),
            }],
            left: vec![3],
        }
    );
    assert_eq!(
        decode_one(&vector("control-error-rate-limited")),
        ControlFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        }
    );
    assert_eq!(
        decode_one(&vector("control-error")),
        ControlFrame::Error {
            code: ErrorCode::InviteExpired,
            message: "expired".into()
        }
    );
}

#[test]
fn media_vectors_derive_open_and_reseal() {
    let sender = SenderContext {
        channel_id: 2,
        public_key: seq(0x20),
        session_salt: seq(0x40),
    };
    let key = derive_media_key(&seq(0x00), &sender, 0);
    assert_eq!(key.as_bytes().as_slice(), vector("media-key"));

    let opener = MediaOpener::new(&key);
    let mut window = ReplayWindow::new();
    let mut sealer = MediaSealer::new(&key, 0, 3);
    for (counter, name) in ["media-datagram-0", "media-datagram-1"]
        .into_iter()
        .enumerate()
    {
        let expected = vector(name);
        assert_eq!(expected.len(), b"sotto".len() + OVERHEAD);
        let header = MediaHeader::parse(&expected).unwrap();
        assert_eq!(
            header,
            MediaHeader {
                stream: StreamKind::Voice,
                key_id: 0,
                sender: 3,
                counter: counter as u32
            }
        );
        let mut buffer = expected.clone();
        let len = opener.open_in_place(&header, &mut buffer).unwrap();
        assert_eq!(&buffer[HEADER_LEN..HEADER_LEN + len], b"sotto");
        assert!(window.commit(u64::from(header.counter)));
        let mut resealed = Vec::new();
        sealer
            .seal(StreamKind::Voice, b"sotto", &mut resealed)
            .unwrap();
        assert_eq!(resealed, expected, "{name} reseals bit for bit");
    }
    assert!(!window.check(1), "a replayed vector is refused");
}

#[test]
fn receiver_report_vector_decodes() {
    let report = ReceiverReport::decode(&vector("receiver-report")).unwrap();
    assert_eq!(
        report.losses,
        [
            SenderLoss {
                slot: 1,
                loss_percent: 0
            },
            SenderLoss {
                slot: 515,
                loss_percent: 12
            }
        ]
    );
    assert_eq!(report.encode(), vector("receiver-report"));
}

#[test]
fn text_vectors_derive_seal_and_open() {
    let secret = TextSecret::from_bytes(seq(0x00));
    let message_id = seq(0x20);
    assert_eq!(
        derive_text_key(&secret, &message_id).as_bytes().as_slice(),
        vector("text-key")
    );

    let author = ed25519_dalek::SigningKey::from_bytes(&seq(0x40));
    let header = MessageHeader {
        channel_id: 2,
        epoch: 1,
        author: author.verifying_key().to_bytes(),
        sent_at_ms: 1_700_000_000_000,
        kind: 1,
    };
    let expected = vector("text-envelope");
    let sealed = seal_message_with_id(&secret, &author, &header, b"sotto", message_id).unwrap();
    assert_eq!(
        encode_envelope(&sealed),
        expected,
        "the envelope reseals bit for bit"
    );
    assert_eq!(decode_envelope(&expected).unwrap(), sealed);
    let opened = open_message(&secret, &expected).unwrap();
    assert_eq!(opened.header, header);
    assert_eq!(opened.message_id, message_id);
    assert_eq!(opened.body, b"sotto");
}

#[test]
fn file_vectors_seal_and_open() {
    let mut sealed = Vec::new();
    let manifest = FileSealer::with_key(&b"sotto"[..], FileKey::from_bytes(seq(0x00)), seq(0x20))
        .seal_to(&mut sealed)
        .unwrap();
    assert_eq!(sealed, vector("file-chunk"));
    assert_eq!(
        encode_manifest(&manifest).as_slice(),
        vector("file-manifest")
    );

    let manifest = decode_manifest(&vector("file-manifest")).unwrap();
    assert_eq!(manifest.chunk_count(), 1);
    let mut plaintext = Vec::new();
    let len = FileOpener::new(&manifest)
        .open_to(&vector("file-chunk")[..], &mut plaintext)
        .unwrap();
    assert_eq!(len, 5);
    assert_eq!(plaintext, b"sotto");
}
