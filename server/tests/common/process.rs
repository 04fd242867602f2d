//! The real `sotto-relay` binary as a child process, and its metrics endpoint.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};

pub struct RelayProcess {
    pub child: Child,
}

impl RelayProcess {
    pub fn start(data: &std::path::Path, address: SocketAddr, metrics: SocketAddr) -> Self {
        Self::start_with(data, address, metrics, &[])
    }

    /// Serves with extra `serve` flags.
    pub fn start_with(
        data: &std::path::Path,
        address: SocketAddr,
        metrics: SocketAddr,
        flags: &[&str],
    ) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_sotto-relay"))
            .args(["serve", "--data"])
            .arg(data)
            .args([
                "--listen",
                &address.to_string(),
                "--metrics",
                &metrics.to_string(),
            ])
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sotto-relay starts");
        Self { child }
    }

    pub fn kill_9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    /// Resident memory of the relay process, in bytes (Linux).
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the relay process is running");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Loopback addresses for a relay's QUIC port and metrics port.
pub fn relay_addresses() -> (SocketAddr, SocketAddr) {
    (
        format!("127.0.0.1:{}", free_udp_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap(),
    )
}

pub async fn metrics_text(address: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// The value of an unlabelled metric.
pub async fn metric(address: SocketAddr, name: &str) -> u64 {
    let text = metrics_text(address).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}
