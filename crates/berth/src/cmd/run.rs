//! The commands that move a container's I/O: `run`, `create`, `start`,
//! `attach`, `exec`.

use berth_api::reference::Reference;
use bollard::Docker;
use serde_json::{json, Value};

use crate::client::Conn;
use crate::opts::{ContainerFlags, CreateSpec};
use crate::raw::{self, Raw};
use crate::stream::{self, End, Session, TtyOf, Waiter};
use crate::term::{self, RawMode};
use crate::ExitCode;

/// Exit statuses of `run`, as docker's.
const EXIT_DAEMON: i32 = 125;
const EXIT_NOT_INVOKABLE: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    sig_proxy: bool,
    /// What `create` takes (the container's flags, IMAGE [COMMAND] [ARG...]).
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    flags: ContainerFlags,
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    argv: Vec<String>,
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<String>,
    container: String,
}

#[derive(clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "list")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    workdir: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    argv: Vec<String>,
}

/// How docker 28 reports a failed `run`: `berth: <message>`, a blank
/// line, and a pointer to the help.
fn report(msg: &str) {
    eprintln!(
        "berth: {}\n\nRun 'berth run --help' for more information",
        msg.trim_end()
    );
}

/// The exit status for a failed create/start, from the daemon's message.
fn start_error_code(msg: &str) -> i32 {
    if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        EXIT_NOT_FOUND
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        EXIT_NOT_INVOKABLE
    } else {
        EXIT_DAEMON
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<bollard::errors::Error>(),
            Some(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        )
    })
}

/// `busybox` → `busybox:latest`: what docker says it cannot find, the
/// familiar reference with the default tag (the text as given when it
/// does not parse; the pull then reports why).
fn with_default_tag(image: &str) -> String {
    match Reference::parse(image) {
        Ok(r) => r.with_default_tag().familiar(),
        Err(_) => image.to_string(),
    }
}

/// Pulls `image`, showing the progress on stderr (as docker does for
/// run/create, keeping stdout for the container), with the stored
/// credentials of its registry.
async fn pull(conn: &Conn, image: &str, platform: Option<&str>, quiet: bool) -> anyhow::Result<()> {
    super::common::pull_image(conn, image, platform, false, quiet, true).await?;
    Ok(())
}

/// Creates the container; a missing image is pulled first (unless
/// `--pull never`), as docker does. Returns the ID.
async fn create_container(
    conn: &Conn,
    raw: &Raw,
    spec: &CreateSpec,
    pull_policy: &str,
    quiet: bool,
) -> anyhow::Result<String> {
    let mut q = Vec::new();
    if let Some(n) = &spec.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &spec.platform {
        q.push(("platform", p.clone()));
    }
    let path = if q.is_empty() {
        "/containers/create".to_string()
    } else {
        format!("/containers/create?{}", raw::query(&q))
    };
    let body = serde_json::to_vec(&spec.body)?;
    let send = || raw.call("POST", &path, Some(("application/json", body.clone())));
    if pull_policy == "always" {
        pull(conn, &spec.image, spec.platform.as_deref(), quiet).await?;
    }
    let resp = match send().await {
        Err(e) if pull_policy == "missing" && is_not_found(&e) => {
            eprintln!(
                "Unable to find image '{}' locally",
                with_default_tag(&spec.image)
            );
            pull(conn, &spec.image, spec.platform.as_deref(), quiet).await?;
            send().await?
        }
        r => r?,
    };
    let v: Value = serde_json::from_slice(&resp)?;
    for w in v["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str().filter(|w| !w.is_empty()) {
            eprintln!("WARNING: {w}");
        }
    }
    let id = v["Id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the daemon returned no container ID"))?
        .to_string();
    Ok(id)
}

fn check_pull_policy(p: &str) -> anyhow::Result<()> {
    if matches!(p, "always" | "missing" | "never") {
        Ok(())
    } else {
        anyhow::bail!(
            "invalid pull option: '{p}': must be one of \"always\", \"missing\" or \"never\""
        )
    }
}

/// `--detach-keys`, or docker's default `ctrl-p,ctrl-q`.
fn detach_keys_of(flag: Option<&str>) -> anyhow::Result<Vec<u8>> {
    match flag.filter(|k| !k.is_empty()) {
        Some(k) => berth_api::detach::parse(k)
            .map_err(|_| anyhow::anyhow!("Invalid detach keys ({k}) provided")),
        None => Ok(berth_api::detach::DEFAULT.to_vec()),
    }
}

/// Everything to hook a container's (or exec's) I/O to ours.
struct Io {
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: Option<String>,
}

impl Io {
    fn attach_path(&self, id: &str) -> String {
        let b = |x: bool| if x { "1" } else { "0" }.to_string();
        let mut q = vec![
            ("stream", "1".to_string()),
            ("stdin", b(self.stdin)),
            ("stdout", b(self.stdout)),
            ("stderr", b(self.stderr)),
        ];
        if let Some(k) = self.detach_keys.as_ref().filter(|k| !k.is_empty()) {
            q.push(("detachKeys", k.clone()));
        }
        format!("/containers/{}/attach?{}", raw::seg(id), raw::query(&q))
    }

    /// Begins pumping a hijacked stream: stdin is read (and sent) from now
    /// on, the terminal goes raw for a TTY with our stdin.
    fn begin(
        &self,
        io: raw::Stream,
    ) -> anyhow::Result<(
        tokio::task::JoinHandle<anyhow::Result<End>>,
        Option<RawMode>,
    )> {
        let keys = detach_keys_of(self.detach_keys.as_deref())?;
        let raw_mode = if self.tty && self.stdin && term::is_tty(0) {
            Some(RawMode::enable(0)?)
        } else {
            None
        };
        let session = Session {
            tty: self.tty,
            stdin: self.stdin.then(term::stdin_chunks),
            detach_keys: (self.tty && self.stdin).then_some(keys),
            output: self.stdout || self.stderr,
        };
        Ok((tokio::spawn(stream::pump(io, session)), raw_mode))
    }
}

async fn finish(
    pump: tokio::task::JoinHandle<anyhow::Result<End>>,
    raw_mode: Option<RawMode>,
) -> anyhow::Result<End> {
    let end = pump.await;
    // Restore the terminal before anything else is printed.
    drop(raw_mode);
    end?
}

pub async fn run(conn: &Conn, a: RunArgs) -> anyhow::Result<()> {
    let fail = |msg: String, code: i32| -> anyhow::Result<()> {
        report(&msg);
        Err(ExitCode(code).into())
    };
    if let Err(e) = check_pull_policy(&a.create.flags.pull) {
        return fail(e.to_string(), EXIT_DAEMON);
    }
    let spec = match a.create.flags.build(&a.create.argv, a.detach) {
        Ok(s) => s,
        Err(e) => return fail(format!("{e:#}"), EXIT_DAEMON),
    };
    let tty = a.create.flags.tty;
    if !a.detach && spec.attach_stdin && tty && !term::is_tty(0) {
        anyhow::bail!("the input device is not a TTY");
    }
    if let Err(e) = detach_keys_of(a.detach_keys.as_deref()) {
        return fail(e.to_string(), EXIT_DAEMON);
    }
    let d = match conn.connect().await {
        Ok(d) => d,
        Err(e) => return fail(format!("{e:#}"), EXIT_DAEMON),
    };
    let raw = conn.raw(&d);
    let id = match create_container(
        conn,
        &raw,
        &spec,
        &a.create.flags.pull,
        a.create.flags.quiet,
    )
    .await
    {
        Ok(id) => id,
        Err(e) => {
            let msg = super::error_text(&e);
            return fail(msg.clone(), start_error_code(&msg));
        }
    };
    if let Some(f) = &a.create.flags.cidfile {
        std::fs::write(f, &id)?;
    }
    if !spec.attach_stdout && !spec.attach_stderr {
        println!("{id}");
    }
    let io = Io {
        tty,
        stdin: spec.attach_stdin,
        stdout: spec.attach_stdout,
        stderr: spec.attach_stderr,
        detach_keys: a.detach_keys.clone(),
    };
    let attach = io.stdin || io.stdout || io.stderr;
    let condition = if a.create.flags.rm {
        "removed"
    } else {
        "next-exit"
    };
    // Attach before start, so no output is missed, and ask to wait: both
    // at once, each on its own connection (neither needs the other).
    let (hijacked, waiter) = tokio::join!(
        async {
            if attach {
                raw.hijack(&io.attach_path(&id), None).await.map(Some)
            } else {
                Ok(None)
            }
        },
        async {
            if a.detach {
                Ok(None)
            } else {
                Waiter::start(&raw, &id, condition).await.map(Some)
            }
        }
    );
    let session = match hijacked {
        Ok(Some(h)) => Some(io.begin(h)?),
        Ok(None) => None,
        Err(e) => return fail(super::error_text(&e), EXIT_DAEMON),
    };
    let waiter = match waiter {
        Ok(w) => w,
        Err(e) => {
            drop(session);
            return fail(super::error_text(&e), EXIT_DAEMON);
        }
    };
    let _signals = (a.sig_proxy && !tty).then(|| stream::proxy_signals(d.clone(), id.clone()));
    if let Err(e) = d
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
    {
        if let Some((pump, raw_mode)) = session {
            pump.abort();
            drop(raw_mode);
        }
        let msg = super::error_text(&e.into());
        report(&msg);
        if let (true, Some(w)) = (a.create.flags.rm, waiter) {
            // Let the daemon finish removing it, as docker does (bounded).
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w.status()).await;
        }
        return Err(ExitCode(start_error_code(&msg)).into());
    }
    if let Some((pump, raw_mode)) = session {
        if tty && term::is_tty(1) {
            stream::monitor_tty_size(d.clone(), TtyOf::Container(id.clone()));
        }
        match finish(pump, raw_mode).await {
            Ok(End::Detached) => return Ok(()),
            Ok(End::Closed) => {}
            Err(e) => return fail(format!("{e:#}"), EXIT_DAEMON),
        }
    }
    if !spec.attach_stdout && !spec.attach_stderr {
        return Ok(());
    }
    match waiter {
        Some(w) => match w.status().await {
            Ok(0) => Ok(()),
            Ok(code) => Err(ExitCode(code as i32).into()),
            Err(e) => fail(super::error_text(&e), EXIT_DAEMON),
        },
        None => Ok(()),
    }
}

pub async fn create(conn: &Conn, a: CreateArgs) -> anyhow::Result<()> {
    check_pull_policy(&a.flags.pull)?;
    let spec = a.flags.build(&a.argv, false)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let id = create_container(conn, &raw, &spec, &a.flags.pull, a.flags.quiet).await?;
    if let Some(f) = &a.flags.cidfile {
        std::fs::write(f, &id)?;
    }
    println!("{id}");
    Ok(())
}

/// A container's raw inspect JSON, parsed.
async fn inspect_json(raw: &Raw, name: &str) -> anyhow::Result<Value> {
    let text = raw
        .get_raw(&format!("/containers/{}/json", raw::seg(name)))
        .await?;
    Ok(serde_json::from_str(&text)?)
}

/// `start -a`/`attach`: streams a container's I/O, runs `then` (the start)
/// once attached and waiting, and exits with the container's status.
/// `condition` is the wait's: `next-exit` before a start, else `""`
/// (not-running), which also answers for a container that just exited.
async fn attach_and<F, Fut>(
    d: &Docker,
    raw: &Raw,
    info: &Value,
    io: Io,
    sig_proxy: bool,
    condition: &str,
    then: F,
) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let id = info["Id"].as_str().unwrap_or_default().to_string();
    let h = raw.hijack(&io.attach_path(&id), None).await?;
    let tty = io.tty;
    let (pump, raw_mode) = io.begin(h)?;
    let _signals = (sig_proxy && !tty).then(|| stream::proxy_signals(d.clone(), id.clone()));
    let waiter = match Waiter::start(raw, &id, condition).await {
        Ok(w) => w,
        Err(e) => {
            pump.abort();
            return Err(e);
        }
    };
    if let Err(e) = then(id.clone()).await {
        pump.abort();
        drop(raw_mode);
        return Err(e);
    }
    if tty && term::is_tty(1) {
        stream::monitor_tty_size(d.clone(), TtyOf::Container(id.clone()));
    }
    if finish(pump, raw_mode).await? == End::Detached {
        return Ok(());
    }
    match waiter.status().await? {
        0 => Ok(()),
        code => Err(ExitCode(code as i32).into()),
    }
}

pub async fn start(conn: &Conn, a: StartArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        detach_keys_of(a.detach_keys.as_deref())?;
        let raw = conn.raw(&d);
        let info = inspect_json(&raw, &a.containers[0]).await?;
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
        if stdin && tty && !term::is_tty(0) {
            anyhow::bail!("the input device is not a TTY");
        }
        let io = Io {
            tty,
            stdin,
            stdout: true,
            stderr: true,
            detach_keys: a.detach_keys.clone(),
        };
        let d2 = d.clone();
        return attach_and(&d, &raw, &info, io, true, "next-exit", |id| async move {
            d2.start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await?;
            Ok(())
        })
        .await;
    }
    // Sequential, as docker: errors print as they come.
    let mut failed = Vec::new();
    for c in &a.containers {
        match d
            .start_container(c, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("{}", super::error_text(&e.into()));
                failed.push(c.clone());
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("Error: failed to start containers: {}", failed.join(", "));
    }
    Ok(())
}

pub async fn attach(conn: &Conn, a: AttachArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    detach_keys_of(a.detach_keys.as_deref())?;
    let info = inspect_json(&raw, &a.container).await?;
    let state = &info["State"];
    if !state["Running"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    if state["Paused"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if state["Restarting"].as_bool().unwrap_or(false) {
        anyhow::bail!("You cannot attach to a restarting container, wait until it is running");
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if stdin && tty && !term::is_tty(0) {
        anyhow::bail!("the input device is not a TTY");
    }
    let io = Io {
        tty,
        stdin,
        stdout: true,
        stderr: true,
        detach_keys: a.detach_keys.clone(),
    };
    attach_and(&d, &raw, &info, io, a.sig_proxy, "", |_| async { Ok(()) }).await
}

pub async fn exec(conn: &Conn, a: ExecArgs) -> anyhow::Result<()> {
    let (container, cmd) = a
        .argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("exec requires at least 2 arguments"))?;
    detach_keys_of(a.detach_keys.as_deref())?;
    if !a.detach && a.interactive && a.tty && !term::is_tty(0) {
        anyhow::bail!("the input device is not a TTY");
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    // As docker: the container must exist (and its name resolve) first.
    inspect_json(&raw, container).await?;
    let env = crate::opts::read_env(&a.env_file, &a.env)?;
    let attach = !a.detach;
    let console = if a.tty { term::console_size() } else { None };
    let mut body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": attach && a.interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Detach": a.detach,
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
        "Env": if env.is_empty() { Value::Null } else { json!(env) },
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": cmd,
    });
    if let Some((h, w)) = console {
        body["ConsoleSize"] = json!([h, w]);
    }
    let created = raw
        .call(
            "POST",
            &format!("/containers/{}/exec", raw::seg(container)),
            Some(("application/json", serde_json::to_vec(&body)?)),
        )
        .await?;
    let created: Value = serde_json::from_slice(&created)?;
    let eid = created["Id"]
        .as_str()
        .or_else(|| created["id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("exec ID empty"))?
        .to_string();
    let mut start = json!({"Detach": a.detach, "Tty": a.tty});
    if let Some((h, w)) = console {
        start["ConsoleSize"] = json!([h, w]);
    }
    let start_path = format!("/exec/{}/start", raw::seg(&eid));
    let start_body = Some(("application/json", serde_json::to_vec(&start)?));
    if a.detach {
        raw.call("POST", &start_path, start_body).await?;
        return Ok(());
    }
    let h = raw.hijack(&start_path, start_body).await?;
    let io = Io {
        tty: a.tty,
        stdin: a.interactive,
        stdout: true,
        stderr: true,
        detach_keys: a.detach_keys.clone(),
    };
    let (pump, raw_mode) = io.begin(h)?;
    if a.tty && term::is_tty(1) {
        stream::monitor_tty_size(d.clone(), TtyOf::Exec(eid.clone()));
    }
    if finish(pump, raw_mode).await? == End::Detached {
        return Ok(());
    }
    let info = d.inspect_exec(&eid).await?;
    match info.exit_code.unwrap_or(0) {
        0 => Ok(()),
        code => Err(ExitCode(code as i32).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_dockers_exit_codes() {
        assert_eq!(
            start_error_code("exec: \"nosuch\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_error_code("exec /etc: permission denied"), 126);
        assert_eq!(start_error_code("conflict"), 125);
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("host:5000/bb"), "host:5000/bb:latest");
        assert_eq!(with_default_tag("bb:1"), "bb:1");
        assert_eq!(
            with_default_tag("docker.io/library/busybox"),
            "busybox:latest"
        );
    }
}
