//! Relay counters and the Prometheus text endpoint that exposes them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Why a datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Its header did not parse.
    Malformed,
    /// Its sender is not in a voice channel.
    NotInVoice,
    /// Its sender field is not the connection's slot.
    ForgedSender,
    /// The connection exceeded its datagram rate.
    RateLimited,
    /// A receiver's connection could not take it.
    SendFailed,
    /// Its sender may not speak (server-muted, timed out, or no speak permission).
    Silenced,
}

impl DropReason {
    const ALL: [Self; 6] = [
        Self::Malformed,
        Self::NotInVoice,
        Self::ForgedSender,
        Self::RateLimited,
        Self::SendFailed,
        Self::Silenced,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotInVoice => "not_in_voice",
            Self::ForgedSender => "forged_sender",
            Self::RateLimited => "rate_limited",
            Self::SendFailed => "send_failed",
            Self::Silenced => "silenced",
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|reason| *reason == self)
            .expect("listed")
    }
}

/// Counters updated by the relay; cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicI64,
    /// Members authenticated and online now.
    pub members_online: AtomicI64,
    /// Connections refused during the handshake.
    pub handshakes_refused: AtomicU64,
    /// Media datagrams received.
    pub datagrams_in: AtomicU64,
    /// Media datagrams sent (one per receiver).
    pub datagrams_out: AtomicU64,
    /// Control-stream bytes sent to members after their handshake (answers and rosters).
    pub control_bytes_out: AtomicU64,
    /// Requests refused because a connection exceeded its request rate.
    pub requests_rate_limited: AtomicU64,
    /// Connections closed for flooding requests or breaking the protocol after the handshake.
    pub sessions_closed_for_abuse: AtomicU64,
    /// Sealed file bytes received in uploads.
    pub file_bytes_in: AtomicU64,
    /// Sealed file bytes sent in downloads.
    pub file_bytes_out: AtomicU64,
    /// Uploads completed (bytes durable, hash checked).
    pub files_stored: AtomicU64,
    /// Files deleted because no message carried them past the grace period.
    pub files_deleted: AtomicU64,
    dropped: [AtomicU64; 6],
}

impl Metrics {
    /// Counts a dropped datagram.
    pub fn drop_datagram(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many datagrams were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
        metric(
            "sotto_connections_accepted_total",
            "counter",
            "QUIC connections accepted.",
            get(&self.connections_accepted),
        );
        metric(
            "sotto_connections_open",
            "gauge",
            "QUIC connections open now.",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "sotto_members_online",
            "gauge",
            "Authenticated members connected now.",
            self.members_online.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "sotto_handshakes_refused_total",
            "counter",
            "Connections refused during the handshake.",
            get(&self.handshakes_refused),
        );
        metric(
            "sotto_datagrams_in_total",
            "counter",
            "Media datagrams received.",
            get(&self.datagrams_in),
        );
        metric(
            "sotto_datagrams_out_total",
            "counter",
            "Media datagrams forwarded, one per receiver.",
            get(&self.datagrams_out),
        );
        metric(
            "sotto_control_bytes_out_total",
            "counter",
            "Control-stream bytes sent to members after their handshake.",
            get(&self.control_bytes_out),
        );
        metric(
            "sotto_requests_rate_limited_total",
            "counter",
            "Requests refused because a connection sent too many.",
            get(&self.requests_rate_limited),
        );
        metric(
            "sotto_sessions_closed_for_abuse_total",
            "counter",
            "Connections closed for flooding or malformed frames after the handshake.",
            get(&self.sessions_closed_for_abuse),
        );
        metric(
            "sotto_file_bytes_in_total",
            "counter",
            "Sealed file bytes received in uploads.",
            get(&self.file_bytes_in),
        );
        metric(
            "sotto_file_bytes_out_total",
            "counter",
            "Sealed file bytes sent in downloads.",
            get(&self.file_bytes_out),
        );
        metric(
            "sotto_files_stored_total",
            "counter",
            "Uploads completed: bytes durable and their SHA-256 checked.",
            get(&self.files_stored),
        );
        metric(
            "sotto_files_deleted_total",
            "counter",
            "Stored files deleted because no message carried them past the grace period.",
            get(&self.files_deleted),
        );
        let _ = writeln!(
            out,
            "# HELP sotto_datagrams_dropped_total Media datagrams dropped, by reason."
        );
        let _ = writeln!(out, "# TYPE sotto_datagrams_dropped_total counter");
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "sotto_datagrams_dropped_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.dropped(reason)
            );
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let read = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.read(&mut request),
            )
            .await
            {
                Ok(Ok(read)) => read,
                _ => return,
            };
            let line = request[..read]
                .split(|byte| *byte == b'\n')
                .next()
                .unwrap_or_default();
            let response = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// Binds the metrics endpoint.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
