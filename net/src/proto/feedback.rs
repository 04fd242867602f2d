//! Receiver reports: every listener tells its voice channel what share of each sender's packets
//! it lost, so senders can turn forward error correction on when the network gets worse.
//!
//! A report travels as the plaintext of a media datagram of stream kind
//! [`StreamKind::Feedback`](super::StreamKind::Feedback), sealed end to end like the voice
//! itself: the relay forwards it by header and cannot read it.
//!
//! ```text
//! | version (1) | count n (0..=64) | n × ( sender slot u16 | loss percent u8 (0..=100) ) |
//! ```

/// Version byte of the report format.
pub const REPORT_VERSION: u8 = 1;
/// Most senders one report describes.
pub const MAX_REPORTED_SENDERS: usize = 64;
const ENTRY_LEN: usize = 3;

/// How much of one sender's media a listener lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderLoss {
    /// The sender's slot.
    pub slot: u16,
    /// Packets lost over the last report interval, percent (0…100).
    pub loss_percent: u8,
}

/// One listener's report about every sender it hears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverReport {
    /// One entry per sender, at most [`MAX_REPORTED_SENDERS`].
    pub losses: Vec<SenderLoss>,
}

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedbackError {
    /// The report is shorter than its fields say.
    #[error("receiver report is truncated")]
    Truncated,
    /// A version this build does not know.
    #[error("receiver report has unknown version {0}")]
    UnknownVersion(u8),
    /// More entries than allowed.
    #[error("receiver report lists {0} senders, more than {MAX_REPORTED_SENDERS}")]
    TooManySenders(usize),
    /// A loss figure over 100 %.
    #[error("receiver report gives a loss of {0} %, over 100")]
    LossOutOfRange(u8),
    /// Bytes after the last entry.
    #[error("receiver report has {0} bytes after its last entry")]
    TrailingBytes(usize),
}

impl ReceiverReport {
    /// The report's bytes. Entries beyond [`MAX_REPORTED_SENDERS`] are left out and losses
    /// over 100 % are written as 100.
    pub fn encode(&self) -> Vec<u8> {
        let entries = &self.losses[..self.losses.len().min(MAX_REPORTED_SENDERS)];
        let mut out = Vec::with_capacity(2 + entries.len() * ENTRY_LEN);
        out.push(REPORT_VERSION);
        out.push(u8::try_from(entries.len()).unwrap_or(u8::MAX));
        for entry in entries {
            out.extend_from_slice(&entry.slot.to_be_bytes());
            out.push(entry.loss_percent.min(100));
        }
        out
    }

    /// Reads a report, checking every field.
    pub fn decode(bytes: &[u8]) -> Result<Self, FeedbackError> {
        let [version, count, body @ ..] = bytes else {
            return Err(FeedbackError::Truncated);
        };
        if *version != REPORT_VERSION {
            return Err(FeedbackError::UnknownVersion(*version));
        }
        let count = usize::from(*count);
        if count > MAX_REPORTED_SENDERS {
            return Err(FeedbackError::TooManySenders(count));
        }
        let needed = count * ENTRY_LEN;
        if body.len() < needed {
            return Err(FeedbackError::Truncated);
        }
        if body.len() > needed {
            return Err(FeedbackError::TrailingBytes(body.len() - needed));
        }
        let losses = body
            .chunks_exact(ENTRY_LEN)
            .map(|entry| {
                let loss_percent = entry[2];
                if loss_percent > 100 {
                    return Err(FeedbackError::LossOutOfRange(loss_percent));
                }
                Ok(SenderLoss {
                    slot: u16::from_be_bytes([entry[0], entry[1]]),
                    loss_percent,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { losses })
    }

    /// The loss this report gives for `slot`, if it mentions it.
    pub fn loss_for(&self, slot: u16) -> Option<u8> {
        self.losses
            .iter()
            .find(|entry| entry.slot == slot)
            .map(|entry| entry.loss_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ReceiverReport {
        ReceiverReport {
            losses: vec![
                SenderLoss {
                    slot: 1,
                    loss_percent: 0,
                },
                SenderLoss {
                    slot: 0x0203,
                    loss_percent: 12,
                },
            ],
        }
    }

    #[test]
    fn round_trips_with_the_documented_layout() {
        let bytes = report().encode();
        assert_eq!(bytes, [1, 2, 0x00, 0x01, 0, 0x02, 0x03, 12]);
        let decoded = ReceiverReport::decode(&bytes).unwrap();
        assert_eq!(decoded, report());
        assert_eq!(decoded.loss_for(0x0203), Some(12));
        assert_eq!(decoded.loss_for(9), None);
        assert_eq!(
            ReceiverReport::decode(&ReceiverReport::default().encode()).unwrap(),
            ReceiverReport::default()
        );
    }

    #[test]
    fn rejects_every_malformed_report() {
        let good = report().encode();
        assert_eq!(ReceiverReport::decode(&[]), Err(FeedbackError::Truncated));
        assert_eq!(ReceiverReport::decode(&[1]), Err(FeedbackError::Truncated));
        assert_eq!(
            ReceiverReport::decode(&[2, 0]),
            Err(FeedbackError::UnknownVersion(2))
        );
        assert_eq!(
            ReceiverReport::decode(&good[..good.len() - 1]),
            Err(FeedbackError::Truncated)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            ReceiverReport::decode(&long),
            Err(FeedbackError::TrailingBytes(1))
        );
        let mut over = good.clone();
        over[4] = 101;
        assert_eq!(
            ReceiverReport::decode(&over),
            Err(FeedbackError::LossOutOfRange(101))
        );
        assert_eq!(
            ReceiverReport::decode(&[1, 65]),
            Err(FeedbackError::TooManySenders(65))
        );
    }

    #[test]
    fn encoding_caps_entries_and_losses() {
        let report = ReceiverReport {
            losses: (0..100)
                .map(|slot| SenderLoss {
                    slot,
                    loss_percent: 200,
                })
                .collect(),
        };
        let decoded = ReceiverReport::decode(&report.encode()).unwrap();
        assert_eq!(decoded.losses.len(), MAX_REPORTED_SENDERS);
        assert!(decoded.losses.iter().all(|entry| entry.loss_percent == 100));
    }
}
