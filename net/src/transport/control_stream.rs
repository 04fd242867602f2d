//! Control frames over a QUIC bidirectional stream.

use crate::proto::control::{ControlFrame, DecodeError, EncodeError, FrameDecoder};

/// Why the control stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer sent bytes that are not a valid frame.
    #[error("malformed control frame: {0}")]
    Decode(#[from] DecodeError),
    /// A frame could not be encoded.
    #[error("could not encode a control frame: {0}")]
    Encode(#[from] EncodeError),
    /// Reading failed (the connection closed or the stream was reset).
    #[error("control stream read failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed (the connection closed or the stream was stopped).
    #[error("control stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
}

/// The framed control stream of one connection.
#[derive(Debug)]
pub struct ControlStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    read_buffer: Box<[u8]>,
    write_buffer: Vec<u8>,
    bytes_sent: u64,
}

impl ControlStream {
    /// Wraps the two halves of a bidirectional stream.
    pub fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Self {
            send,
            recv,
            decoder: FrameDecoder::new(),
            read_buffer: vec![0; 16 * 1024].into(),
            write_buffer: Vec::new(),
            bytes_sent: 0,
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ControlFrame) -> Result<(), StreamError> {
        self.write_buffer.clear();
        frame.encode(&mut self.write_buffer)?;
        self.send.write_all(&self.write_buffer).await?;
        self.bytes_sent += self.write_buffer.len() as u64;
        Ok(())
    }

    /// Bytes of whole frames sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Receives the next frame; `None` once the peer finished the stream. Cancel-safe: bytes
    /// already read stay buffered.
    pub async fn recv(&mut self) -> Result<Option<ControlFrame>, StreamError> {
        loop {
            if let Some(frame) = self.decoder.poll_frame()? {
                return Ok(Some(frame));
            }
            match self.recv.read(&mut self.read_buffer).await? {
                Some(read) => self.decoder.push(&self.read_buffer[..read]),
                None => return Ok(None),
            }
        }
    }

    /// Writes bytes that need not be a valid frame (for tests of peers' error handling).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.send.write_all(bytes).await?;
        Ok(())
    }

    /// Finishes the sending half (the peer's `recv` then returns `None`).
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }
}
