//! Incoming webhooks: a local HTTP endpoint that integrations (CI, monitoring) post to, whose
//! posts a bot then seals and sends into a channel.
//!
//! `POST /<channel>` with the message as the body (plain text, or JSON `{"text": "…"}`) is
//! answered `202 Accepted` once queued. The listener only binds loopback addresses: anything
//! that can reach it can post as the bot, so it is for integrations on the same machine (or
//! behind a proxy that authenticates them). Requests are parsed with `httparse`; heads are at
//! most 16 KiB and bodies at most 64 KiB.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;
/// Largest body: a message's largest text.
pub const MAX_BODY: usize = 64 * 1024;
/// How long one request may take to arrive.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A message an integration posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPost {
    /// The channel named in the path (without '#').
    pub channel: String,
    /// The text to send.
    pub text: String,
}

/// Why the webhook listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Only loopback addresses are allowed.
    #[error(
        "the webhook listens on this machine only (127.0.0.1 or ::1), not {0}: anyone who reaches it can post as the bot"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the webhook listener (loopback only).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, WebhookError> {
    if !address.ip().is_loopback() {
        return Err(WebhookError::NotLoopback(address));
    }
    TcpListener::bind(address)
        .await
        .map_err(|source| WebhookError::Bind { address, source })
}

/// Accepts requests on `listener` until `posts` is closed, queuing each valid post.
pub async fn serve(listener: TcpListener, posts: mpsc::Sender<WebhookPost>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if posts.is_closed() {
            return;
        }
        let posts = posts.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT, handle(stream, posts)).await;
        });
    }
}

async fn handle(mut stream: TcpStream, posts: mpsc::Sender<WebhookPost>) -> std::io::Result<()> {
    let answer = match read_request(&mut stream).await? {
        Ok(post) => {
            if posts.send(post).await.is_ok() {
                (202, "queued\n")
            } else {
                (503, "the bot is shutting down\n")
            }
        }
        Err((status, reason)) => (status, reason),
    };
    let (status, body) = answer;
    let phrase = match status {
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

type Refusal = (u16, &'static str);

/// Reads one request: the post, or the status and reason to refuse it with.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Result<WebhookPost, Refusal>> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 4096];
    let (head_len, channel, length) = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(Err((400, "the request ended early\n")));
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer) {
            Ok(httparse::Status::Complete(head_len)) => match parse_head(&request) {
                Ok((channel, length)) => break (head_len, channel, length),
                Err(refusal) => return Ok(Err(refusal)),
            },
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Ok(Err((413, "the request head is too large\n")));
            }
            Err(_) => return Ok(Err((400, "that is not an HTTP request\n"))),
        }
    };
    let mut body = buffer.split_off(head_len);
    while body.len() < length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(Err((400, "the body ended early\n")));
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Ok(message_text(&body).map(|text| WebhookPost { channel, text }))
}

/// The channel and body length of a valid head.
fn parse_head(request: &httparse::Request<'_, '_>) -> Result<(String, usize), Refusal> {
    if request.method != Some("POST") {
        return Err((405, "post the message with POST /<channel>\n"));
    }
    let path = request.path.unwrap_or("/");
    let channel = path.trim_start_matches('/').trim_start_matches('#');
    if channel.is_empty() || channel.contains(['/', '?', '%']) {
        return Err((404, "post to /<channel>, e.g. /general\n"));
    }
    let length = request
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .map(|header| {
            std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
        });
    match length {
        None => Err((411, "send a Content-Length\n")),
        Some(None) => Err((400, "the Content-Length is not a number\n")),
        Some(Some(length)) if length > MAX_BODY => Err((413, "a message is at most 64 KiB\n")),
        Some(Some(length)) => Ok((channel.to_owned(), length)),
    }
}

/// The message in a body: JSON `{"text": "…"}`, or the body itself as UTF-8 text.
fn message_text(body: &[u8]) -> Result<String, Refusal> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err((400, "the body is not UTF-8 text\n"));
    };
    let text = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(object)) => match object.get("text") {
            Some(serde_json::Value::String(text)) => text.clone(),
            _ => return Err((400, "a JSON body needs a \"text\" string\n")),
        },
        _ => text.to_owned(),
    };
    if text.trim().is_empty() {
        return Err((400, "the message is empty\n"));
    }
    Ok(text.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn posts_become_messages_and_bad_requests_are_refused_with_a_reason() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, mut posts) = mpsc::channel(8);
        tokio::spawn(serve(listener, sender));
        let ok = post(
            address,
            b"POST /general HTTP/1.1\r\nContent-Length: 17\r\n\r\nCI: build passed\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 202 Accepted"), "{ok}");
        let json = br#"{"text": "deploy \u2705"}"#;
        let request = format!(
            "POST /%23ops HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            json.len()
        );
        let refused = post(address, &[request.as_bytes(), json].concat()).await;
        assert!(refused.starts_with("HTTP/1.1 404"), "{refused}");
        let request = format!(
            "POST /ops HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
            json.len()
        );
        post(address, &[request.as_bytes(), json].concat()).await;
        assert_eq!(
            posts.recv().await.unwrap(),
            WebhookPost {
                channel: "general".into(),
                text: "CI: build passed".into()
            }
        );
        assert_eq!(posts.recv().await.unwrap().text, "deploy ✅");
        for (request, status) in [
            (&b"GET /general HTTP/1.1\r\n\r\n"[..], "405"),
            (b"POST /general HTTP/1.1\r\n\r\n", "411"),
            (
                b"POST /general HTTP/1.1\r\nContent-Length: 999999\r\n\r\n",
                "413",
            ),
            (
                b"POST /general HTTP/1.1\r\nContent-Length: 2\r\n\r\n  ",
                "400",
            ),
            (b"\x00\x01 nonsense\r\n\r\n", "400"),
        ] {
            let answer = post(address, request).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{answer}"
            );
        }
        assert!(matches!(
            bind("0.0.0.0:0".parse().unwrap()).await,
            Err(WebhookError::NotLoopback(_))
        ));
    }
}
