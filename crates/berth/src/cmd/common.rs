//! Helpers the command modules share: filter flags, prune prompts, short
//! IDs and ellipses, inspect printing, daemon error statuses, and pulling
//! an image with progress (for `pull` and for `run`/`create`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use berth_api::duration::human as human_duration;
use berth_api::reference::Reference;
use serde_json::Value;

use crate::client::Conn;
use crate::creds;
use crate::format::Tmpl;
use crate::jsonstream::Display;
use crate::raw::{self, Raw};
use crate::ExitCode;

/// The 12-hex-digit short form of an ID, without `sha256:`.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// `3 hours ago`: go-units' `HumanDuration` since a unix time.
pub fn since(unix: i64) -> String {
    format!(
        "{} ago",
        human_duration(chrono::Utc::now().timestamp() - unix)
    )
}

/// `--filter name=value` flags as the API's `filters` map.
pub fn filters_of(flags: &[String]) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        m.entry(k.trim().to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    Ok(m)
}

/// Go's `stringutils.Ellipsis`.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

/// Asks on the terminal before a prune, as docker does (from stdin, a
/// terminal or not: an empty answer or EOF is a no).
pub fn confirm(warning: &str) -> bool {
    confirm_message(&format!("{warning}\nAre you sure you want to continue?"))
}

/// `confirm` with the whole question given (`builder prune` asks on one line).
pub fn confirm_message(message: &str) -> bool {
    print!("{message} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // docker's prompt.Confirm: only `y`, in either case, goes on.
    line.trim().eq_ignore_ascii_case("y")
}

/// Go's `strconv.ParseBool`, for `--flag=value` booleans.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// JSON as the docker CLI prints it: four-space indents.
pub fn pretty(v: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// Prints inspect results as docker does: a JSON array, or one rendered
/// template per object. Misses print `Error: No such …` after the rest.
pub fn print_inspect(
    found: Vec<Value>,
    missing: Vec<String>,
    format: Option<&str>,
) -> anyhow::Result<()> {
    match format {
        Some(f) => {
            let t = Tmpl::parse(f, &[])?;
            for v in &found {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", pretty(&found)?),
    }
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("{m}");
        }
        return Err(ExitCode(1).into());
    }
    Ok(())
}

/// Go's `json.Indent(dst, src, "", "    ")`: re-indents the daemon's JSON
/// without reordering it (docker prints inspect bodies that way).
pub fn indent_json(src: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut need_indent = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    for c in src.chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            '}' | ']' => {
                if need_indent {
                    // Empty: `{}` / `[]`.
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

/// Prints inspect results as docker does: one indented JSON array of the
/// raw bodies, or one rendered template per object; misses go to stderr.
pub fn print_raw_inspect(
    found: &[String],
    missing: &[String],
    format: Option<&str>,
) -> anyhow::Result<()> {
    match format.filter(|f| !f.is_empty()) {
        Some(f) => {
            let t = Tmpl::parse(f, &[])?;
            for r in found {
                let v: Value = serde_json::from_str(r)?;
                println!("{}", t.render(&v)?);
            }
        }
        None if found.is_empty() => println!("[]"),
        None => println!("{}", indent_json(&format!("[{}]", found.join(",")))),
    }
    if !missing.is_empty() {
        for m in missing {
            eprintln!("{m}");
        }
        return Err(ExitCode(1).into());
    }
    Ok(())
}

/// The HTTP status of a daemon error anywhere in `e`'s chain.
pub fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<bollard::errors::Error>() {
            Some(bollard::errors::Error::DockerResponseServerError { status_code, .. }) => {
                Some(*status_code)
            }
            _ => None,
        })
}

/// Reads a JSON-message stream from the daemon and shows it on `out`.
pub async fn show_stream(
    resp: raw::Response,
    out: &mut dyn Write,
    is_term: bool,
    quiet: bool,
    aux: &mut dyn FnMut(&Value),
) -> anyhow::Result<()> {
    let width = if is_term {
        crate::term::size(1)
            .or_else(|| crate::term::size(2))
            .map(|(_, c)| c as usize)
            .unwrap_or(80)
    } else {
        80
    };
    let mut disp = Display::new(is_term, width);
    let mut sink = std::io::sink();
    let mut body = resp.into_body();
    while let Some(chunk) = body.chunk().await? {
        let target: &mut dyn Write = if quiet { &mut sink } else { &mut *out };
        disp.feed(&chunk, target, aux)?;
    }
    Ok(())
}

/// Pulls `image` through the daemon, with the stored credentials for its
/// registry. Progress goes to stdout (`pull`) or stderr (`run`/`create`).
pub async fn pull_image(
    conn: &Conn,
    image: &str,
    platform: Option<&str>,
    all_tags: bool,
    quiet: bool,
    to_stderr: bool,
) -> anyhow::Result<Reference> {
    let mut r = Reference::parse(image)?;
    if all_tags && (r.tag.is_some() || r.digest.is_some()) {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    }
    if !all_tags {
        r = r.with_default_tag();
    }
    let d = conn.connect().await?;
    let rawc: Raw = conn.raw(&d);
    let mut q = vec![("fromImage", r.name())];
    q.push((
        "tag",
        r.digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_default(),
    ));
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_string()));
    }
    let path = format!("/images/create?{}", raw::query(&q));
    let resp = send_with_auth(&rawc, "POST", &path, &r.domain).await?;
    if to_stderr {
        let is_term = std::io::stderr().is_terminal();
        let mut e = std::io::stderr();
        show_stream(resp, &mut e, is_term, quiet, &mut |_| {}).await?;
    } else {
        let is_term = std::io::stdout().is_terminal();
        let mut o = std::io::stdout();
        show_stream(resp, &mut o, is_term, quiet, &mut |_| {}).await?;
    }
    Ok(r)
}

/// Sends a bodiless request with the CLI's credentials for `domain` in
/// `X-Registry-Auth`; an error status is the error.
pub async fn send_with_auth(
    rawc: &Raw,
    method: &str,
    path: &str,
    domain: &str,
) -> anyhow::Result<raw::Response> {
    let auth = creds::registry_auth_header(domain);
    let resp = rawc
        .send_with(method, path, None, false, &[("X-Registry-Auth", auth)])
        .await?;
    if resp.status >= 400 {
        return Err(resp.error().await.into());
    }
    Ok(resp)
}

/// `--filter` flags, plus `extra` pairs, as the query's JSON
/// (`{"k":{"v":true}}`), if any.
pub fn filters_json(flags: &[String], extra: &[(&str, &str)]) -> anyhow::Result<Option<String>> {
    let mut f = filters_of(flags)?;
    for (k, v) in extra {
        f.entry(k.to_string()).or_default().push(v.to_string());
    }
    if f.is_empty() {
        return Ok(None);
    }
    let m: serde_json::Map<String, serde_json::Value> = f
        .iter()
        .map(|(k, vs)| {
            (
                k.clone(),
                serde_json::Value::Object(
                    vs.iter()
                        .map(|v| (v.clone(), serde_json::Value::Bool(true)))
                        .collect(),
                ),
            )
        })
        .collect();
    Ok(Some(serde_json::Value::Object(m).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_helpers() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(parse_go_bool("T"), Ok(true));
        assert_eq!(
            parse_go_bool("yes"),
            Err("strconv.ParseBool: parsing \"yes\": invalid syntax".into())
        );
        let f = filters_of(&["Label=a=b".into(), "label=c".into()]).unwrap();
        assert_eq!(f["label"], ["a=b", "c"]);
        assert!(filters_of(&["x".into()]).is_err());
    }

    #[test]
    fn inspect_json_is_reindented_in_order() {
        let src = r#"{"Id":"x","State":{"Running":false,"Error":""},"Args":[],"Env":["A=1","B=\"{,}\""],"M":{}}"#;
        let want = "{\n    \"Id\": \"x\",\n    \"State\": {\n        \"Running\": false,\n        \"Error\": \"\"\n    },\n    \"Args\": [],\n    \"Env\": [\n        \"A=1\",\n        \"B=\\\"{,}\\\"\"\n    ],\n    \"M\": {}\n}";
        assert_eq!(indent_json(src), want);
    }
}
