//! Issue 15: what dockerd 20.10 checks and answers, through real clients:
//! create-time validation (status and message as dockerd's), the classic
//! builder's parameters, and `GET /containers/json` with every filter.
//!
//! The expected statuses and messages are dockerd 20.10's own answers to
//! the same requests (recorded against a reference dockerd, which CI does
//! not run), except `invalid filter '…'`, which berth words in lower case
//! as later dockerd releases do.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use berth_tests::*;

mod builder;
mod create;
mod list;

/// How often a wait polls here (its conditions run the docker CLI).
const POLL: Duration = Duration::from_millis(100);

fn message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["message"].as_str().unwrap_or("").to_string()
}

/// `POST /v1.41/containers/create` with `body`: (status, message or Id).
fn create(d: &Daemon, body: serde_json::Value) -> (u16, String) {
    let (code, _, b) = d.raw(
        "POST",
        "/v1.41/containers/create",
        Some(body.to_string().as_bytes()),
    );
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    let out = v["Id"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| message(&b));
    (code, out)
}

fn with_hc(hc: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
}

fn rm_all(d: &Daemon) {
    let ids = d.docker_ok(&["ps", "-aq"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        d.docker_ok(&args);
    }
}
