//! The baseline: a plain UDP forwarder with no encryption, no QUIC and no authentication — the
//! least any relay must do. Packets are `room: u16 | sender: u16 | payload`; a 4-byte packet
//! registers its source address as that sender in that room and is echoed as the
//! acknowledgement.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

/// Forwards until the socket fails. One task, one socket, like a classic voice server thread.
pub async fn run(socket: Arc<UdpSocket>) {
    let mut rooms: HashMap<u16, Vec<(u16, SocketAddr)>> = HashMap::new();
    let mut buffer = vec![0u8; 2048];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
            return;
        };
        if len < 4 {
            continue;
        }
        let room = u16::from_be_bytes([buffer[0], buffer[1]]);
        let sender = u16::from_be_bytes([buffer[2], buffer[3]]);
        let members = rooms.entry(room).or_default();
        if len == 4 {
            if !members.iter().any(|(slot, _)| *slot == sender) {
                members.push((sender, from));
            }
            let _ = socket.send_to(&buffer[..4], from).await;
            continue;
        }
        for (slot, address) in members.iter() {
            if *slot != sender {
                let _ = socket.send_to(&buffer[..len], *address).await;
            }
        }
    }
}
