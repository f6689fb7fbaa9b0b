//! bollard's own typed API against berthd, one test per endpoint group:
//! every call goes through bollard's typed method (not a raw request), and
//! what comes back is deserialized into bollard's models and checked field
//! by field. A model that fails to deserialize, or an unexpected status,
//! fails the test: that is exactly a client-fidelity gap.

use std::collections::HashMap;
use std::io::Read;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_tests::fixtures::busybox_rootfs_tar;
use berth_tests::*;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::*;
use bollard::query_parameters::*;
use bollard::Docker;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

mod containers;
mod distribution;
mod exec;
mod filters;
mod images;
mod networks;
mod system;
mod volumes;

const LIMIT: Duration = Duration::from_secs(30);

async fn client(d: &Daemon) -> Docker {
    d.bollard()
        .negotiate_version()
        .await
        .expect("version negotiation")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    m
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The HTTP status of a bollard error from the daemon (0 for other errors).
fn status_of(e: &BollardError) -> u16 {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => *status_code,
        _ => 0,
    }
}

/// stdout and stderr of a multiplexed stream, separately.
async fn split_output(
    mut s: impl futures_util::Stream<Item = Result<LogOutput, BollardError>> + Unpin,
) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(item) = timeout(LIMIT, s.next()).await.expect("output in time") {
        match item.expect("output frame") {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                out.push_str(&String::from_utf8_lossy(&message))
            }
            LogOutput::StdErr { message } => err.push_str(&String::from_utf8_lossy(&message)),
            LogOutput::StdIn { .. } => {}
        }
    }
    (out, err)
}

/// Runs a command in a container, attached; returns (stdout, stderr, exit code).
async fn exec(docker: &Docker, id: &str, cmd: &[&str]) -> (String, String, i64) {
    let e = docker
        .create_exec(
            id,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(strings(cmd)),
                ..Default::default()
            },
        )
        .await
        .expect("exec create");
    let StartExecResults::Attached { output, .. } =
        docker.start_exec(&e.id, None).await.expect("exec start")
    else {
        panic!("exec started detached")
    };
    let (out, err) = split_output(output).await;
    let code = docker
        .inspect_exec(&e.id)
        .await
        .expect("exec inspect")
        .exit_code
        .expect("exit code");
    (out, err, code)
}

/// The files of a tar stream: path → contents.
fn tar_files(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(bytes);
    let mut m = HashMap::new();
    for e in a.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let path = e.path().expect("entry path").display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("entry body");
        m.insert(path.trim_start_matches("./").to_string(), b);
    }
    m
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *body).expect("tar append");
    }
    b.into_inner().expect("tar finish")
}

/// Starts exec `id` with a TTY, attached: its output.
async fn start_attached_tty(
    docker: &Docker,
    id: &str,
) -> Pin<Box<dyn Stream<Item = Result<LogOutput, BollardError>> + Send>> {
    let StartExecResults::Attached { output, .. } = docker
        .start_exec(
            id,
            Some(StartExecOptions {
                tty: true,
                ..Default::default()
            }),
        )
        .await
        .expect("start")
    else {
        panic!("detached")
    };
    output
}

/// Waits (up to `LIMIT`) until container `id` has exited.
async fn wait_exited(docker: &Docker, id: &str) {
    let _ = timeout(
        LIMIT,
        docker
            .wait_container(id, None::<WaitContainerOptions>)
            .collect::<Vec<_>>(),
    )
    .await;
}

async fn collect_bytes(
    s: impl futures_util::Stream<Item = Result<impl AsRef<[u8]>, BollardError>>,
) -> Vec<u8> {
    let chunks: Vec<_> = timeout(LIMIT, s.try_collect::<Vec<_>>())
        .await
        .expect("stream in time")
        .expect("stream");
    chunks.iter().flat_map(|c| c.as_ref().to_vec()).collect()
}

async fn run_sleeper(docker: &Docker, name: &str, extra: ContainerCreateBody) -> String {
    let body = ContainerCreateBody {
        image: Some("busybox:latest".into()),
        cmd: Some(strings(&["sleep", "3600"])),
        stop_signal: Some("SIGKILL".into()),
        ..extra
    };
    let id = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(name).build()),
            body,
        )
        .await
        .expect("create")
        .id;
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .expect("start");
    id
}

/// The error that ends a byte stream that must fail.
async fn collect_bytes_err(
    s: impl futures_util::Stream<Item = Result<impl AsRef<[u8]>, BollardError>>,
) -> BollardError {
    timeout(LIMIT, s.try_collect::<Vec<_>>())
        .await
        .expect("stream in time")
        .err()
        .expect("the stream fails")
}

/// Seconds since the epoch of an RFC 3339 UTC time without fraction
/// (`2026-12-06T08:21:35`).
fn rfc3339_secs(t: &str) -> i64 {
    let num = |s: &str| s.parse::<i64>().expect("a number");
    let (date, time) = t.split_once('T').expect("a T");
    let d: Vec<i64> = date.split('-').map(num).collect();
    let h: Vec<i64> = time.trim_end_matches('Z').split(':').map(num).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + h[0] * 3600 + h[1] * 60 + h[2]
}
