//! `/api/stats?id=A&id=B…`: the stats streams of many containers in one
//! response. A browser opens at most six HTTP/1.1 connections to a host, so
//! one `fetch` per visible row would starve every other request; here the
//! server holds one daemon `stats?stream=1` per named container (at most
//! 50) and interleaves their lines as `{"id":"A","stats":{…}}`. Dropping
//! the response drops them all.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::reply::{self, Body};
use crate::raw::Raw;

pub const PATH: &str = "/api/stats";
pub const MAX: usize = 50;

/// The container IDs (or names) asked for, or why not.
pub fn ids(query: Option<&str>) -> Result<Vec<String>, &'static str> {
    let mut out: Vec<String> = Vec::new();
    for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let Some(("id", v)) = kv.split_once('=') else {
            return Err("only id= parameters are accepted");
        };
        let ok = !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err("invalid container ID");
        }
        if !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    if out.len() > MAX {
        return Err("at most 50 containers at once");
    }
    Ok(out)
}

pub fn serve(raw: &Raw, query: Option<&str>) -> Response<Body> {
    let ids = match ids(query) {
        Ok(i) => i,
        Err(why) => return reply::error(StatusCode::BAD_REQUEST, why),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    for id in ids {
        let raw = raw.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = follow(&raw, &id, &tx) => {}
                _ = tx.closed() => {}
            }
        });
    }
    drop(tx);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(frames).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// One container's stream, line by line, wrapped with its ID.
async fn follow(raw: &Raw, id: &str, tx: &mpsc::Sender<Bytes>) {
    let Ok(r) = raw
        .send(
            "GET",
            &format!("/containers/{id}/stats?stream=1"),
            None,
            false,
        )
        .await
    else {
        return;
    };
    if r.status != 200 {
        return;
    }
    let mut body = r.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = body.chunk().await {
        buf.extend_from_slice(&chunk);
        while let Some(n) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=n).collect();
            let line = line.trim_ascii();
            if line.first() != Some(&b'{') {
                continue;
            }
            let mut out = Vec::with_capacity(line.len() + id.len() + 24);
            out.extend_from_slice(b"{\"id\":\"");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\",\"stats\":");
            out.extend_from_slice(line);
            out.extend_from_slice(b"}\n");
            if tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ids;

    #[test]
    fn takes_plain_ids_only() {
        assert_eq!(ids(Some("id=abc&id=def&id=abc")).unwrap(), ["abc", "def"]);
        assert_eq!(ids(None).unwrap(), Vec::<String>::new());
        assert!(ids(Some("id=../x")).is_err());
        assert!(ids(Some("id=a%2Fb")).is_err());
        assert!(ids(Some("path=x")).is_err());
        assert!(ids(Some("id=")).is_err());
        let many: Vec<String> = (0..51).map(|i| format!("id=c{i}")).collect();
        assert!(ids(Some(&many.join("&"))).is_err());
    }
}
