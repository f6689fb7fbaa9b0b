//! docker's value syntaxes for container flags: restart policies,
//! ulimits, `-v`, `--mount`, `-p`/`--expose`, `--add-host`,
//! `--security-opt`, `--device`, `--link`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

use super::set;

/// `--link` values are checked as docker checks them, before any request.
pub(super) fn parse_link_flag(v: &str) -> Result<String, String> {
    berth_api::links::parse(v)
        .map(|_| v.to_string())
        .map_err(|e| e.to_string())
}

pub fn parse_cpus(s: &str) -> anyhow::Result<i64> {
    let n: f64 = s
        .parse()
        .map_err(|_| anyhow!("failed to parse {s} as a rational number"))?;
    Ok((n * 1e9).round() as i64)
}

/// `nofile=1024[:2048]`
pub(super) fn parse_ulimit(s: &str) -> anyhow::Result<Value> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| anyhow!("invalid ulimit argument: {s}"))
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`
pub fn parse_restart(s: &str) -> anyhow::Result<Value> {
    let (name, max) = s.split_once(':').unwrap_or((s, ""));
    match name {
        "" | "no" | "always" | "unless-stopped" if max.is_empty() => {
            Ok(json!({"Name": name, "MaximumRetryCount": 0}))
        }
        "on-failure" => {
            let n = if max.is_empty() {
                0
            } else {
                max.parse::<i64>()
                    .map_err(|_| anyhow!("invalid restart policy format: maximum retry count must be an integer"))?
            };
            Ok(json!({"Name": name, "MaximumRetryCount": n}))
        }
        "no" | "always" | "unless-stopped" => {
            bail!("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
        }
        _ => bail!("invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    }
}

/// `-v`: `SRC:DST[:OPTS]` is a bind (or named volume), returned for
/// `Binds`; `DST` alone is an anonymous volume (`None`).
pub(super) fn parse_volume(v: &str) -> anyhow::Result<Option<String>> {
    let parts: Vec<&str> = v.split(':').collect();
    let dst = match parts.len() {
        1 => parts[0],
        2 | 3 => parts[1],
        _ => bail!("invalid volume specification: '{v}'"),
    };
    if parts.iter().any(|p| p.is_empty()) {
        bail!("invalid volume specification: '{v}'");
    }
    if !dst.starts_with('/') {
        bail!("invalid volume specification: '{v}': invalid mount config for type \"volume\": invalid mount path: '{dst}' mount path must be absolute");
    }
    Ok((parts.len() > 1).then(|| v.to_string()))
}

/// `--mount type=bind,source=/a,target=/b,readonly`
pub(super) fn parse_mount(s: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut typ = "volume".to_string();
    let mut bind = Map::new();
    let mut vol = Map::new();
    let mut vol_labels = Map::new();
    let mut vol_opts = Map::new();
    let mut tmpfs = Map::new();
    let truthy = |v: Option<&str>| -> anyhow::Result<bool> {
        match v.map(str::to_ascii_lowercase).as_deref() {
            None | Some("1") | Some("true") => Ok(true),
            Some("0") | Some("false") => Ok(false),
            Some(o) => bail!("invalid value for boolean: {o}"),
        }
    };
    for field in s.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || v.ok_or_else(|| anyhow!("invalid field '{field}' must be a key=value pair"));
        match k.as_str() {
            "type" => typ = need()?.to_string(),
            "source" | "src" => set(&mut m, "Source", need()?),
            "target" | "destination" | "dst" => set(&mut m, "Target", need()?),
            "readonly" | "ro" => set(&mut m, "ReadOnly", truthy(v)?),
            "consistency" => set(&mut m, "Consistency", need()?),
            "bind-propagation" => set(&mut bind, "Propagation", need()?),
            "bind-nonrecursive" => set(&mut bind, "NonRecursive", truthy(v)?),
            "bind-create-host-path" => set(&mut bind, "CreateMountpoint", truthy(v)?),
            "volume-nocopy" => set(&mut vol, "NoCopy", truthy(v)?),
            "volume-subpath" => set(&mut vol, "Subpath", need()?),
            "volume-label" => {
                let (lk, lv) = need()?.split_once('=').unwrap_or((need()?, ""));
                set(&mut vol_labels, lk, lv);
            }
            "volume-driver" => set(&mut vol, "DriverConfig", json!({"Name": need()?})),
            "volume-opt" => {
                let (ok, ov) = need()?.split_once('=').unwrap_or((need()?, ""));
                set(&mut vol_opts, ok, ov);
            }
            "tmpfs-size" => set(
                &mut tmpfs,
                "SizeBytes",
                berth_api::units::ram_in_bytes(need()?)?,
            ),
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(need()?, 8).map_err(|_| {
                    anyhow!("invalid value for tmpfs-mode: {}", need().unwrap_or(""))
                })?;
                set(&mut tmpfs, "Mode", mode);
            }
            _ => bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    if !m.contains_key("Target") {
        bail!("target is required");
    }
    if !vol_labels.is_empty() {
        set(&mut vol, "Labels", vol_labels);
    }
    if !vol_opts.is_empty() {
        let driver = vol
            .get("DriverConfig")
            .and_then(|d| d["Name"].as_str())
            .unwrap_or("")
            .to_string();
        set(
            &mut vol,
            "DriverConfig",
            json!({"Name": driver, "Options": vol_opts}),
        );
    }
    match typ.as_str() {
        "bind" if !bind.is_empty() => set(&mut m, "BindOptions", bind),
        "volume" if !vol.is_empty() => set(&mut m, "VolumeOptions", vol),
        "tmpfs" if !tmpfs.is_empty() => set(&mut m, "TmpfsOptions", tmpfs),
        "bind" | "volume" | "tmpfs" | "image" | "npipe" | "cluster" => {}
        o => bail!("invalid mount type '{o}'"),
    }
    set(&mut m, "Type", typ);
    Ok(Value::Object(m))
}

/// `start[-end][/proto]` → `["80/tcp", ...]`
pub(super) fn port_range(spec: &str) -> anyhow::Result<(u16, u16)> {
    let bad = || anyhow!("invalid port range: {spec}");
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

pub(super) fn parse_expose(e: &str) -> anyhow::Result<Vec<String>> {
    if e.contains(':') {
        bail!("invalid port format for --expose: {e}");
    }
    let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let (a, b) = port_range(port)
        .map_err(|err| anyhow!("invalid range format for --expose: {e}, error: {err}"))?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// `-p [ip:][hostPort:]containerPort[/proto]` (ranges allowed) →
/// `("80/tcp", {"HostIp","HostPort"})` per container port, as docker's
/// `nat.ParsePortSpec`.
pub(super) fn parse_publish(spec: &str) -> anyhow::Result<Vec<(String, Value)>> {
    // The long syntax: published=8080,target=80,protocol=udp
    let spec = if spec.contains('=') {
        let mut p: BTreeMap<&str, &str> = BTreeMap::new();
        for kv in spec.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                anyhow!("invalid publish opts format (should be name=value but got '{kv}')")
            })?;
            p.insert(k, v);
        }
        format!(
            "{}:{}/{}",
            p.get("published").unwrap_or(&""),
            p.get("target").unwrap_or(&""),
            p.get("protocol").unwrap_or(&"tcp")
        )
    } else {
        spec.to_string()
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec.as_str(), "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let n = parts.len();
    let (ip, host, ctr) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address: {ip}");
    }
    if ctr.is_empty() {
        bail!("no port specified: {spec}<empty>");
    }
    let (c0, c1) = port_range(ctr).map_err(|_| anyhow!("invalid containerPort: {ctr}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(port_range(host).map_err(|_| anyhow!("invalid hostPort: {host}"))?)
    };
    if let Some((h0, h1)) = host_range {
        if c1 - c0 != h1 - h0 && (c0 != c1 || h0 == h1) {
            bail!("invalid ranges specified for container and host Ports: {ctr} and {host}");
        }
    }
    let mut out = Vec::new();
    for (i, c) in (c0..=c1).enumerate() {
        let host_port = match host_range {
            None => String::new(),
            // One container port, a host range: the daemon picks in it.
            Some((h0, h1)) if c0 == c1 && h0 != h1 => format!("{h0}-{h1}"),
            Some((h0, _)) => (h0 as usize + i).to_string(),
        };
        out.push((
            format!("{c}/{proto}"),
            json!({"HostIp": ip, "HostPort": host_port}),
        ));
    }
    Ok(out)
}

/// `host:ip` or `host=ip` → `host:ip` (the API's form).
pub(super) fn parse_extra_host(s: &str) -> anyhow::Result<String> {
    let (h, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| anyhow!("bad format for add-host: {s:?}"))?;
    if h.is_empty() || h.contains(':') {
        bail!("bad format for add-host: {s:?}");
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address in add-host: {ip:?}");
    }
    Ok(format!("{h}:{ip}"))
}

/// `seccomp=<file>` sends the profile's content, as docker does.
pub(super) fn parse_security_opt(o: &str) -> anyhow::Result<String> {
    let (k, v) = match o.split_once('=').or_else(|| o.split_once(':')) {
        Some(kv) => kv,
        None if o == "no-new-privileges" => return Ok(o.to_string()),
        None => bail!("Invalid --security-opt: {o:?}"),
    };
    if k == "seccomp" && v != "unconfined" && v != "builtin" {
        let text = std::fs::read_to_string(v)
            .with_context(|| format!("opening seccomp profile ({v}) failed"))?;
        let parsed: Value = serde_json::from_str(&text)
            .with_context(|| format!("compacting json for seccomp profile ({v}) failed"))?;
        return Ok(format!("seccomp={parsed}"));
    }
    Ok(o.to_string())
}

/// `/dev/x[:/dev/y][:rwm]`
pub(super) fn parse_device(s: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let is_mode = |m: &str| !m.is_empty() && m.chars().all(|c| "rwm".contains(c));
    let (src, dst, perms) = match parts.as_slice() {
        [src] => (*src, *src, "rwm"),
        [src, m] if is_mode(m) => (*src, *src, *m),
        [src, dst] => (*src, *dst, "rwm"),
        [src, dst, m] if is_mode(m) => (*src, *dst, *m),
        _ => bail!("invalid device specification: {s}"),
    };
    Ok(json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_syntaxes() {
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
        assert!(parse_volume("relative:path").is_err());
        assert_eq!(
            parse_mount("type=bind,src=/a,dst=/b,readonly").unwrap(),
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1023}})
        );
        assert_eq!(parse_publish("[::1]:80:80").unwrap()[0].1["HostIp"], "::1");
        assert_eq!(
            parse_publish("8000-8010:80").unwrap()[0].1["HostPort"],
            "8000-8010"
        );
        assert!(parse_publish("1-2:3-5").is_err());
        assert_eq!(
            parse_expose("7000-7001").unwrap(),
            vec!["7000/tcp", "7001/tcp"]
        );
    }
}
