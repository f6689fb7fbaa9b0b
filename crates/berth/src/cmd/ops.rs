//! `port`, `update`, `export`, `diff` and `commit`: a container's ports,
//! limits and filesystem, as the docker CLI shows and sends them.

use std::io::{IsTerminal, Write};

use serde_json::{json, Map, Value};

use berth_api::reference::{Reference, DEFAULT_TAG};
use berth_api::units::ram_in_bytes;

use crate::client::Conn;
use crate::format::natural_cmp;
use crate::opts::{parse_cpus, parse_restart};
use crate::raw;
use crate::ExitCode;

#[derive(clap::Args)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// PRIVATE_PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    port: Option<String>,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_name = "uint16")]
    blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", value_name = "int")]
    cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", value_name = "int")]
    cpu_rt_runtime: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    cpuset_mems: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    cpu_shares: Option<i64>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Kernel memory limit (deprecated)
    #[arg(long = "kernel-memory", value_name = "bytes", hide = true)]
    kernel_memory: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    restart: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    cpus: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    output: Option<String>,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(clap::Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_parser = super::common::parse_go_bool)]
    pause: bool,
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The lines `port` prints for an inspect body's `NetworkSettings.Ports`.
fn port_lines(info: &Value, container: &str, port: Option<&str>) -> anyhow::Result<Vec<String>> {
    let ports = info["NetworkSettings"]["Ports"].as_object();
    let bindings = |key: &str| -> Vec<String> {
        ports
            .and_then(|p| p.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|b| {
                join_host_port(
                    b["HostIp"].as_str().unwrap_or(""),
                    b["HostPort"].as_str().unwrap_or(""),
                )
            })
            .collect()
    };
    let mut out = Vec::new();
    match port {
        Some(p) => {
            let (num, proto) = p.split_once('/').unwrap_or((p, ""));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            if num.parse::<u16>().is_err() {
                let why = if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                    "value out of range"
                } else {
                    "invalid syntax"
                };
                anyhow::bail!(
                    "Error: invalid port ({num}): strconv.ParseUint: parsing {num:?}: {why}"
                );
            }
            out = bindings(&format!("{num}/{proto}"));
            if out.is_empty() {
                anyhow::bail!("Error: No public port '{p}' published for {container}");
            }
        }
        None => {
            for key in ports.into_iter().flat_map(|p| p.keys()) {
                for b in bindings(key) {
                    out.push(format!("{key} -> {b}"));
                }
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

pub async fn port(conn: &Conn, a: PortArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let info: Value = serde_json::from_slice(
        &raw.call(
            "GET",
            &format!("/containers/{}/json", raw::seg(&a.container)),
            None,
        )
        .await?,
    )?;
    let lines = port_lines(&info, &a.container, a.port.as_deref())?;
    if !lines.is_empty() {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

/// An `update` flag value docker rejects while parsing flags: its message,
/// the usage line, and status 125.
fn flag_error(value: &str, flag: &str, why: impl std::fmt::Display) -> anyhow::Error {
    eprintln!(
        "invalid argument \"{value}\" for \"{flag}\" flag: {why}\n\n\
         Usage:  berth update [OPTIONS] CONTAINER [CONTAINER...]\n\n\
         Run 'berth update --help' for more information"
    );
    ExitCode(125).into()
}

/// The `UpdateConfig` body: only the limits given (the daemon leaves the
/// others as they are, as it does for docker's zero values).
fn update_body(a: &UpdateArgs) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mem = |v: &Option<String>, flag: &str| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|s| ram_in_bytes(s).map_err(|e| flag_error(s, flag, e)))
            .transpose()
    };
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("BlkioWeight", a.blkio_weight.map(|v| json!(v)));
    put("CpuPeriod", a.cpu_period.map(|v| json!(v)));
    put("CpuQuota", a.cpu_quota.map(|v| json!(v)));
    put("CpuRealtimePeriod", a.cpu_rt_period.map(|v| json!(v)));
    put("CpuRealtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v)));
    put("CpusetCpus", a.cpuset_cpus.clone().map(Value::from));
    put("CpusetMems", a.cpuset_mems.clone().map(Value::from));
    put("CpuShares", a.cpu_shares.map(|v| json!(v)));
    put("Memory", mem(&a.memory, "-m, --memory")?.map(|v| json!(v)));
    put(
        "MemoryReservation",
        mem(&a.memory_reservation, "--memory-reservation")?.map(|v| json!(v)),
    );
    let swap = match a.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        _ => mem(&a.memory_swap, "--memory-swap")?,
    };
    put("MemorySwap", swap.map(|v| json!(v)));
    put(
        "KernelMemory",
        mem(&a.kernel_memory, "--kernel-memory")?.map(|v| json!(v)),
    );
    // docker sends no limit for 0 ("unchanged").
    put(
        "PidsLimit",
        a.pids_limit.filter(|p| *p != 0).map(|v| json!(v)),
    );
    let cpus = a
        .cpus
        .as_deref()
        .map(|s| parse_cpus(s).map_err(|e| flag_error(s, "--cpus", e)))
        .transpose()?;
    put("NanoCpus", cpus.map(|v| json!(v)));
    if let Some(r) = a.restart.as_deref().filter(|r| !r.is_empty()) {
        put("RestartPolicy", Some(parse_restart(r)?));
    }
    Ok(Value::Object(m))
}

fn any_flag(a: &UpdateArgs) -> bool {
    a.blkio_weight.is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
        || a.cpu_shares.is_some()
        || a.memory.is_some()
        || a.memory_reservation.is_some()
        || a.memory_swap.is_some()
        || a.kernel_memory.is_some()
        || a.restart.is_some()
        || a.pids_limit.is_some()
        || a.cpus.is_some()
}

/// One container after the other, as docker: each updated name printed,
/// then the daemon's warnings, then the errors (status 1).
pub async fn update(conn: &Conn, a: UpdateArgs) -> anyhow::Result<()> {
    if !any_flag(&a) {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    let body = serde_json::to_vec(&update_body(&a)?)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut warnings = Vec::new();
    let mut errs = Vec::new();
    for c in &a.containers {
        let r = if c.trim().is_empty() {
            Err(anyhow::anyhow!(
                "invalid container name or ID: value is empty"
            ))
        } else {
            raw.call(
                "POST",
                &format!("/containers/{}/update", raw::seg(c.trim())),
                Some(("application/json", body.clone())),
            )
            .await
        };
        match r {
            Ok(b) => {
                println!("{c}");
                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                warnings.extend(
                    v["Warnings"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string),
                );
            }
            Err(e) => errs.push(super::error_text(&e)),
        }
    }
    if !warnings.is_empty() {
        println!("{}", warnings.join("\n"));
    }
    if !errs.is_empty() {
        eprintln!("{}", errs.join("\n"));
        return Err(ExitCode(1).into());
    }
    Ok(())
}

pub async fn export(conn: &Conn, a: ExportArgs) -> anyhow::Result<()> {
    let to_file = a.output.as_deref().filter(|o| !o.is_empty());
    if to_file.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let r = raw
        .send(
            "GET",
            &format!("/containers/{}/export", raw::seg(&a.container)),
            None,
            false,
        )
        .await?;
    if r.status >= 400 {
        return Err(r.error().await.into());
    }
    let mut body = r.into_body();
    match to_file {
        Some(path) => {
            // Written beside the target and renamed at the end (docker's
            // atomic writer, mode 0600), so a failure leaves no partial tar.
            let tmp = format!("{path}.berth-tmp-{}", std::process::id());
            let mut f = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| anyhow::anyhow!("failed to export container: {e}"))?
            };
            let r: anyhow::Result<()> = async {
                while let Some(chunk) = body.chunk().await? {
                    f.write_all(&chunk)?;
                }
                f.sync_all()?;
                Ok(())
            }
            .await;
            if let Err(e) = r.and_then(|_| Ok(std::fs::rename(&tmp, path)?)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        None => {
            while let Some(chunk) = body.chunk().await? {
                crate::stream::write_stdout(&chunk)?;
            }
        }
    }
    Ok(())
}

pub async fn diff(conn: &Conn, a: DiffArgs) -> anyhow::Result<()> {
    if a.container.is_empty() {
        anyhow::bail!("Container name cannot be empty");
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let changes: Value = serde_json::from_slice(
        &raw.call(
            "GET",
            &format!("/containers/{}/changes", raw::seg(a.container.trim())),
            None,
        )
        .await?,
    )?;
    let mut out = String::new();
    // A null list (nothing changed) prints nothing.
    for c in changes.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "",
        };
        out.push_str(&format!("{kind} {}\n", c["Path"].as_str().unwrap_or("")));
    }
    crate::stream::write_stdout(out.as_bytes())?;
    Ok(())
}

/// `commit`'s REPOSITORY[:TAG] as docker's client sends it: the repository
/// fully qualified, the tag `latest` when none is given. Errors are those
/// of distribution/reference's `ParseNormalizedNamed`.
fn commit_reference(r: &str) -> anyhow::Result<(String, String)> {
    let r = Reference::parse(r)?;
    if r.digest.is_some() {
        anyhow::bail!("refusing to create a tag with a digest reference");
    }
    Ok((r.name(), r.tag.unwrap_or_else(|| DEFAULT_TAG.into())))
}

pub async fn commit(conn: &Conn, a: CommitArgs) -> anyhow::Result<()> {
    let container = a.container.trim();
    if container.is_empty() {
        anyhow::bail!("invalid container name or ID: value is empty");
    }
    let (repo, tag) = match a.reference.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => commit_reference(r)?,
        None => (String::new(), String::new()),
    };
    let mut q = vec![
        ("container", container.to_string()),
        ("repo", repo),
        ("tag", tag),
        ("comment", a.message.clone().unwrap_or_default()),
        ("author", a.author.clone().unwrap_or_default()),
    ];
    for c in &a.change {
        q.push(("changes", c.clone()));
    }
    if !a.pause {
        q.push(("pause", "0".into()));
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let r: Value = serde_json::from_slice(
        &raw.call("POST", &format!("/commit?{}", raw::query(&q)), None)
            .await?,
    )?;
    println!("{}", r["Id"].as_str().unwrap_or(""));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lines_as_docker_prints_them() {
        let info = json!({"NetworkSettings": {"Ports": {
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8089"}],
            "81/udp": [{"HostIp": "0.0.0.0", "HostPort": "8090"}, {"HostIp": "::", "HostPort": "8090"}],
            "443/tcp": null,
            "9/tcp": [{"HostIp": "127.0.0.1", "HostPort": "10009"}],
        }}});
        assert_eq!(
            port_lines(&info, "c", None).unwrap(),
            [
                "9/tcp -> 127.0.0.1:10009",
                "80/tcp -> 127.0.0.1:8089",
                "81/udp -> 0.0.0.0:8090",
                "81/udp -> [::]:8090"
            ]
        );
        assert_eq!(
            port_lines(&info, "c", Some("80")).unwrap(),
            ["127.0.0.1:8089"]
        );
        assert_eq!(
            port_lines(&info, "c", Some("443/tcp"))
                .unwrap_err()
                .to_string(),
            "Error: No public port '443/tcp' published for c"
        );
        assert_eq!(
            port_lines(&info, "c", Some("http"))
                .unwrap_err()
                .to_string(),
            "Error: invalid port (http): strconv.ParseUint: parsing \"http\": invalid syntax"
        );
        assert!(
            port_lines(&json!({"NetworkSettings": {"Ports": {}}}), "c", None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn commit_references_normalise_as_docker() {
        let r = |s: &str| commit_reference(s).map_err(|e| e.to_string());
        assert_eq!(
            r("committed:1"),
            Ok(("docker.io/library/committed".into(), "1".into()))
        );
        assert_eq!(
            r("me/img"),
            Ok(("docker.io/me/img".into(), "latest".into()))
        );
        assert_eq!(
            r("localhost:5000/a/b:v2"),
            Ok(("localhost:5000/a/b".into(), "v2".into()))
        );
        assert_eq!(
            r("Foo"),
            Err("invalid reference format: repository name (library/Foo) must be lowercase".into())
        );
        assert_eq!(
            r("[::1]:5000/x"),
            Ok(("[::1]:5000/x".into(), "latest".into()))
        );
        assert_eq!(r("a b"), Err("invalid reference format".into()));
        assert_eq!(r("img:"), Err("invalid reference format".into()));
        assert_eq!(
            r(&format!("img@sha256:{}", "a".repeat(64))),
            Err("refusing to create a tag with a digest reference".into())
        );
        assert!(r(&"a".repeat(64)).is_err());
    }

    #[test]
    fn update_sends_only_what_was_given() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: UpdateArgs,
        }
        let t = T::try_parse_from([
            "t",
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--restart",
            "on-failure:3",
            "--pids-limit",
            "0",
            "c1",
        ])
        .unwrap();
        assert_eq!(
            update_body(&t.a).unwrap(),
            json!({"Memory": 64 << 20, "MemorySwap": -1, "NanoCpus": 1_500_000_000i64,
                   "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
        );
        assert!(any_flag(&t.a));
    }
}
