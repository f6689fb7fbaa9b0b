//! A fake berth-shim for unit tests: it speaks the shim's protocol (one
//! JSON request line, one JSON reply line, on a Unix socket; the ready
//! line on a pipe) with scripted answers, so that the daemon's side of the
//! protocol — error kinds, exit codes, a shim that dies or hangs — is
//! tested without a container.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::shim::{ErrorKind, ExitStatus, Reply, Request, StateReply};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::*;
use crate::engine::EngineError;

/// What the fake does with a request.
enum Answer {
    Reply(Reply),
    /// Closes the connection without a word (a shim that died).
    Close,
    /// Never answers (a stopped shim).
    Hang,
}

struct FakeShim {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl FakeShim {
    fn serve(script: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shim.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let script = script.clone();
                tokio::spawn(async move {
                    let mut conn = BufReader::new(conn);
                    let mut line = String::new();
                    if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let req: Request = serde_json::from_str(&line).unwrap();
                    match script(&req) {
                        Answer::Reply(r) => {
                            let mut out = serde_json::to_vec(&r).unwrap();
                            out.push(b'\n');
                            let _ = conn.get_mut().write_all(&out).await;
                        }
                        Answer::Close => {}
                        Answer::Hang => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Self {
            _dir: dir,
            socket,
            task,
        }
    }
}

impl Drop for FakeShim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn exited(code: i32) -> ExitStatus {
    ExitStatus {
        exit_code: code,
        finished_at: "2026-12-06T00:00:00Z".into(),
        oom_killed: false,
    }
}

fn failed(msg: &str, kind: Option<ErrorKind>) -> Reply {
    Reply {
        error: Some(msg.into()),
        kind,
        ..Reply::default()
    }
}

#[tokio::test]
async fn a_start_the_runtime_refuses_keeps_its_kind_and_exit_code() {
    let shim = FakeShim::serve(|req| match req {
        Request::Start => Answer::Reply(failed(
            "exec: \"nope\": executable file not found in $PATH",
            Some(ErrorKind::NotFound),
        )),
        _ => Answer::Reply(Reply::ok()),
    });
    let e = call(&shim.socket, &Request::Start).await.unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::NotFound);
    assert_eq!(kind_of(&e).exit_code(), 127);
    assert!(matches!(e, EngineError::StartFailed { .. }), "{e:?}");
    // Other requests on the same shim are unaffected.
    assert!(call(&shim.socket, &Request::State).await.is_ok());
}

#[tokio::test]
async fn a_failure_without_a_kind_is_internal() {
    let shim = FakeShim::serve(|_| Answer::Reply(failed("cgroup gone", None)));
    let e = call(&shim.socket, &Request::State).await.unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Internal);
    assert!(
        matches!(&e, EngineError::Internal(m) if m == "cgroup gone"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_shim_that_dies_mid_call_or_is_gone_is_an_internal_error() {
    let shim = FakeShim::serve(|_| Answer::Close);
    let e = call(&shim.socket, &Request::State).await.unwrap_err();
    assert!(e.to_string().contains("shim closed the connection"), "{e}");
    let gone = shim.socket.with_file_name("gone.sock");
    let e = call(&gone, &Request::State).await.unwrap_err();
    assert!(e.to_string().contains("connecting to the shim"), "{e}");
}

#[tokio::test]
async fn the_exit_a_shim_reports_is_followed() {
    let shim = FakeShim::serve(|req| match req {
        Request::Wait => Answer::Reply(Reply {
            exit: Some(exited(3)),
            ..Reply::default()
        }),
        _ => Answer::Close,
    });
    let record = shim.socket.with_file_name("exit.json");
    assert_eq!(follow_exit(&shim.socket, &record).await, Some(exited(3)));
}

#[tokio::test]
async fn a_shim_gone_after_its_exit_record_is_read_from_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("exit.json");
    std::fs::write(&record, serde_json::to_vec(&exited(137)).unwrap()).unwrap();
    let no_shim = dir.path().join("shim.sock");
    assert_eq!(follow_exit(&no_shim, &record).await, Some(exited(137)));
}

#[tokio::test]
async fn a_shim_that_died_without_a_word_is_given_up_on() {
    let shim = FakeShim::serve(|_| Answer::Close);
    let record = shim.socket.with_file_name("exit.json");
    let t = std::time::Instant::now();
    assert_eq!(follow_exit(&shim.socket, &record).await, None);
    // 20 retries 50 ms apart: bounded, about a second.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_restarted_daemon_reads_each_shims_state() {
    let state = |status: &str, exit: Option<ExitStatus>| {
        Answer::Reply(Reply {
            state: Some(StateReply {
                pid: 42,
                status: status.into(),
                started_at: None,
                exit,
            }),
            ..Reply::default()
        })
    };
    let running = FakeShim::serve(move |_| state("running", None));
    let within = Duration::from_millis(500);
    assert_eq!(probe(&running.socket, within).await, Probe::Running);
    let ended = FakeShim::serve(move |_| state("exited", Some(exited(0))));
    assert_eq!(probe(&ended.socket, within).await, Probe::Exited(exited(0)));
    let stopped = FakeShim::serve(|_| Answer::Hang);
    let t = std::time::Instant::now();
    assert_eq!(probe(&stopped.socket, within).await, Probe::Unreachable);
    assert!(t.elapsed() < Duration::from_secs(3), "the probe is bounded");
    let mute = FakeShim::serve(|_| Answer::Reply(Reply::ok()));
    assert_eq!(probe(&mute.socket, within).await, Probe::Unreachable);
}

/// The two pipes of a launched shim, with the fake on the other end.
fn launched(log: &Path) -> (Launched, OwnedFd, OwnedFd) {
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let l = Launched {
        go: go_w,
        ready: ready_r,
        log: log.to_path_buf(),
        via: None,
    };
    (l, go_r, ready_w)
}

/// The fake's side of a launch: waits for the word, then says `line`
/// (or nothing, closing its end).
fn answer_launch(go: OwnedFd, ready: OwnedFd, line: Option<&'static str>) {
    tokio::spawn(async move {
        let mut go = tokio::net::unix::pipe::Receiver::from_owned_fd(go).unwrap();
        let mut word = [0u8; 1];
        assert_eq!(go.read(&mut word).await.unwrap(), 1);
        assert_eq!(&word, b"g");
        let mut ready = tokio::net::unix::pipe::Sender::from_owned_fd(ready).unwrap();
        if let Some(line) = line {
            ready.write_all(line.as_bytes()).await.unwrap();
        }
    });
}

#[tokio::test]
async fn a_launched_shim_reports_its_init_pid() {
    let dir = tempfile::tempdir().unwrap();
    let (l, go, ready) = launched(&dir.path().join("shim.log"));
    answer_launch(go, ready, Some("{\"pid\":4242}\n"));
    assert_eq!(l.go().await.unwrap(), 4242);
}

#[tokio::test]
async fn a_create_the_shim_refuses_is_a_start_failure_with_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (l, go, ready) = launched(&dir.path().join("shim.log"));
    answer_launch(
        go,
        ready,
        Some("{\"error\":\"exec: \\\"/bin/x\\\": permission denied\",\"kind\":\"permission_denied\"}\n"),
    );
    let e = l.go().await.unwrap_err();
    assert_eq!(kind_of(&e).exit_code(), 126);
    assert!(
        e.to_string().starts_with(
            "failed to create task for container: exec: \"/bin/x\": permission denied"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_shim_that_exits_before_it_is_ready_shows_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shim.log");
    std::fs::write(&log, "berth-shim: reading config.json: no such file\n").unwrap();
    let (l, go, ready) = launched(&log);
    answer_launch(go, ready, None);
    let e = l.go().await.unwrap_err();
    assert_eq!(kind_of(&e), ErrorKind::Internal);
    assert!(
        e.to_string()
            .contains("exited before it was ready: berth-shim: reading config.json"),
        "{e}"
    );
}

/// A launch handed to a spawner (one that cannot be killed from here),
/// whose `bin` would execute `program` if the spawner dropped it.
fn launched_via_spawner(log: &Path, program: &str) -> (Launched, OwnedFd, OwnedFd) {
    let (mut l, go, ready) = launched(log);
    l.via = Some(Via {
        spawner: Arc::new(spawner::Process::untracked()),
        bin: ShimBinary::from_file(Path::new(program)).unwrap(),
        state_dir: log.with_file_name("state"),
    });
    (l, go, ready)
}

#[tokio::test]
async fn a_shim_the_spawner_took_answers_after_the_spawners_line() {
    let dir = tempfile::tempdir().unwrap();
    let (l, go, ready) = launched_via_spawner(&dir.path().join("shim.log"), "/bin/false");
    answer_launch(go, ready, Some("taken\n{\"pid\":4243}\n"));
    assert_eq!(l.go().await.unwrap(), 4243);
}

#[tokio::test]
async fn a_first_line_that_is_not_taken_is_read_as_the_shims_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (l, go, ready) = launched_via_spawner(&dir.path().join("shim.log"), "/bin/false");
    answer_launch(go, ready, Some("{\"pid\":4244}\n"));
    assert_eq!(l.go().await.unwrap(), 4244);
}

/// The spawner's end closed without `taken`: no fork holds the shim's
/// stdio, so the shim is executed (here `echo`, which answers with its
/// arguments: `run <state_dir>`, on the new pipes).
#[tokio::test]
async fn a_shim_the_spawner_dropped_is_executed_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (l, go, ready) = launched_via_spawner(&dir.path().join("shim.log"), "/bin/echo");
    drop((go, ready));
    let e = l.go().await.unwrap_err().to_string();
    let state = dir.path().join("state");
    assert!(
        e.contains(&format!("berth-shim said \"run {}\"", state.display())),
        "{e}"
    );
}

/// A spawner that has not said `taken` within `TAKE_WITHIN` is killed;
/// the message dies with it (here: its holder lets go of the shim's ends
/// once the stand-in spawner has exited), and the shim is executed.
#[tokio::test]
async fn a_silent_spawner_is_killed_and_the_shim_executed() {
    let dir = tempfile::tempdir().unwrap();
    let mut stand_in = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    let pid = stand_in.id();
    let (mut l, go, ready) = launched_via_spawner(&dir.path().join("shim.log"), "/bin/echo");
    if let Some(via) = l.via.as_mut() {
        via.spawner = Arc::new(spawner::Process::of_pid(pid));
    }
    let holder = tokio::spawn(async move {
        let _ends = (go, ready);
        let gone = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .is_none_or(|r| r.trim_start().starts_with('Z'))
        };
        while !gone() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let e = l.go().await.unwrap_err().to_string();
    holder.await.unwrap();
    assert!(
        stand_in.try_wait().unwrap().is_some(),
        "the silent spawner was killed"
    );
    let state = dir.path().join("state");
    assert!(
        e.contains(&format!("berth-shim said \"run {}\"", state.display())),
        "{e}"
    );
}

#[tokio::test]
async fn an_abandoned_shim_is_told_to_go_away_and_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let (l, go, ready) = launched(&dir.path().join("shim.log"));
    let fake = tokio::spawn(async move {
        let mut go = tokio::net::unix::pipe::Receiver::from_owned_fd(go).unwrap();
        let mut rest = Vec::new();
        // End of file without the word: the shim exits, closing its stdout.
        go.read_to_end(&mut rest).await.unwrap();
        drop(ready);
        rest
    });
    tokio::time::timeout(Duration::from_secs(3), l.abandon())
        .await
        .expect("abandon waits only for the shim's exit");
    assert!(fake.await.unwrap().is_empty(), "no word to create");
}

/// While one launch starts a spawner (here a stand-in that never says it
/// is ready, so the start takes all of its bound), another launch does not
/// wait for it: it is told to execute its shim at once. And the runtime's
/// one worker, where the start runs, is not held: a task spawned meanwhile
/// runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_launch_does_not_wait_on_another_starting_the_spawner() {
    let dir = tempfile::tempdir().unwrap();
    let spawner = Arc::new(spawner::Spawner::default());
    let null = || std::fs::File::open("/dev/null").unwrap();
    let silent = || {
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "sleep 3"]);
        cmd
    };
    let first = {
        let (spawner, state) = (spawner.clone(), dir.path().join("a"));
        tokio::spawn(async move {
            let io = [null(), null(), null()];
            let at = std::time::Instant::now();
            let r = spawner.spawn(
                &state,
                [io[0].as_fd(), io[1].as_fd(), io[2].as_fd()],
                silent,
            );
            (r.is_err(), at.elapsed())
        })
    };
    // Not a worker's sleep (the worker may be the one starting): well
    // inside the stand-in's 2 s start, with room for a loaded machine to
    // have begun it.
    std::thread::sleep(Duration::from_millis(700));
    let io = [null(), null(), null()];
    let at = std::time::Instant::now();
    let second = spawner.spawn(
        &dir.path().join("b"),
        [io[0].as_fd(), io[1].as_fd(), io[2].as_fd()],
        || panic!("only one launch starts the spawner"),
    );
    let waited = at.elapsed();
    assert!(second.is_err(), "no spawner to hand the shim to yet");
    // The old code waited on the lock for the rest of the start (~1.3 s).
    assert!(waited < Duration::from_millis(500), "waited {waited:?}");
    let at = std::time::Instant::now();
    tokio::spawn(async {}).await.unwrap();
    let ran = at.elapsed();
    assert!(!first.is_finished(), "the start was still going on");
    assert!(
        ran < Duration::from_millis(500),
        "a task waited {ran:?} for the worker"
    );
    let (failed, took) = first.await.unwrap();
    assert!(failed, "a spawner that never said ready is not used");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
}
