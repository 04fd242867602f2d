//! Connection statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the client's connection statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConnectionStats {
    /// Whether a connection is up.
    pub connected: bool,
    /// Smoothed round-trip time to the relay.
    pub rtt: Duration,
    /// QUIC packets sent on the current connection.
    pub packets_sent: u64,
    /// QUIC packets detected lost on the current connection.
    pub packets_lost: u64,
    /// Media datagrams sent since start.
    pub datagrams_sent: u64,
    /// Media datagrams received and accepted since start.
    pub datagrams_received: u64,
    /// Media datagrams dropped since start: forged, replayed, unknown sender, or unread.
    pub datagrams_dropped: u64,
    /// Connections established since start (1 + reconnects).
    pub connections: u64,
}

impl ConnectionStats {
    /// Fraction of QUIC packets lost, 0 to 1.
    pub fn loss(&self) -> f64 {
        if self.packets_sent == 0 {
            0.0
        } else {
            self.packets_lost as f64 / self.packets_sent as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    connections: AtomicU64,
}

impl Counters {
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, connection: Option<&quinn::Connection>) -> ConnectionStats {
        let path = connection.map(|connection| connection.stats().path);
        ConnectionStats {
            connected: connection.is_some_and(|connection| connection.close_reason().is_none()),
            rtt: path.map_or(Duration::ZERO, |path| path.rtt),
            packets_sent: path.map_or(0, |path| path.sent_packets),
            packets_lost: path.map_or(0, |path| path.lost_packets),
            datagrams_sent: self.sent.load(Ordering::Relaxed),
            datagrams_received: self.received.load(Ordering::Relaxed),
            datagrams_dropped: self.dropped.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}
