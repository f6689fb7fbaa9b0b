//! `/api/ws/exec/<id>`: a WebSocket bridged to a hijacked
//! `POST /exec/<id>/start` with a TTY. Binary and text frames from the page
//! are the terminal's input; the process's output goes back as binary
//! frames; either side closing closes the other.

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tokio_tungstenite::WebSocketStream;

use super::reply::{self, Body};
use crate::raw::Raw;

pub const EXEC_PREFIX: &str = "/api/ws/exec/";

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn exec(raw: &Raw, req: Request<Incoming>, id: &str) -> Response<Body> {
    if !valid_id(id) {
        return reply::error(StatusCode::BAD_REQUEST, "invalid exec ID");
    }
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return reply::error(StatusCode::BAD_REQUEST, "not a WebSocket request");
    };
    if !is_ws {
        return reply::error(StatusCode::BAD_REQUEST, "not a WebSocket request");
    }
    // Hijack first, so an unknown exec is a plain error, not a dead socket.
    let body = br#"{"Detach":false,"Tty":true}"#.to_vec();
    let daemon = match raw
        .hijack(
            &format!("/exec/{id}/start"),
            Some(("application/json", body)),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let (status, msg) = match e.downcast_ref::<bollard::errors::Error>() {
                Some(bollard::errors::Error::DockerResponseServerError {
                    status_code,
                    message,
                }) => (
                    StatusCode::from_u16(*status_code).unwrap_or(StatusCode::BAD_GATEWAY),
                    message.clone(),
                ),
                _ => (StatusCode::BAD_GATEWAY, format!("{e:#}")),
            };
            return reply::error(status, &msg);
        }
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        bridge(ws, daemon).await;
    });
    let mut r = Response::new(reply::full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

async fn bridge<S>(ws: WebSocketStream<S>, daemon: crate::raw::Stream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let (mut dr, mut dw) = tokio::io::split(daemon);
    let input = async {
        while let Some(Ok(m)) = rx.next().await {
            let data = match m {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if dw.write_all(&data).await.is_err() || dw.flush().await.is_err() {
                break;
            }
        }
        // The page is gone: nothing will hang the TTY up, and an exec has
        // no kill API, so do what a user leaving would: ^C, then ^D (a
        // shell at its prompt exits; closing stdin alone leaves it running).
        let _ = dw.write_all(b"\x03\x04").await;
        let _ = dw.flush().await;
        let _ = dw.shutdown().await;
    };
    let output = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match dr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Message::Close(None)).await;
        let _ = tx.close().await;
    };
    // The session ends when the process's output ends (exit), or shortly
    // after the page goes away (its stdin closed).
    tokio::pin!(output);
    tokio::select! {
        _ = &mut output => {}
        _ = input => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), output).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exec_ids_are_plain() {
        assert!(super::valid_id("0123abcdef"));
        assert!(!super::valid_id(""));
        assert!(!super::valid_id("../containers"));
        assert!(!super::valid_id("a/b"));
    }
}
