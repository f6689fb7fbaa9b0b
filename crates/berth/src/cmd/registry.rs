//! `pull`, `push`, `search`, `login`, `logout` (and `image pull|push`).

use std::io::{IsTerminal, Read, Write};

use anyhow::bail;
use serde_json::{json, Value};

use berth_api::reference::Reference;

use super::common::{self, ellipsis, filters_of, send_with_auth, show_stream};
use crate::client::Conn;
use crate::creds::{self, Creds};
use crate::raw;

#[derive(clap::Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, env = "DOCKER_DEFAULT_PLATFORM")]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Skip image verification (accepted for compatibility; always skipped)
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Push a platform-specific manifest (accepted; berth images have one platform)
    #[arg(long)]
    platform: Option<String>,
    /// Skip image signing (accepted for compatibility)
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
    /// NAME[:TAG]
    name: String,
}

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results
    #[arg(long)]
    limit: Option<i64>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// TERM
    term: String,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password or Personal Access Token (PAT)
    #[arg(short, long)]
    password: Option<String>,
    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long)]
    password_stdin: bool,
    /// SERVER
    server: Option<String>,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// SERVER
    server: Option<String>,
}

pub async fn pull(conn: &Conn, a: PullArgs) -> anyhow::Result<()> {
    let r = common::pull_image(
        conn,
        &a.name,
        a.platform.as_deref(),
        a.all_tags,
        a.quiet,
        false,
    )
    .await?;
    println!("{r}");
    Ok(())
}

pub async fn push(conn: &Conn, a: PushArgs) -> anyhow::Result<()> {
    let mut r = Reference::parse(&a.name)?;
    if r.digest.is_some() {
        bail!("cannot push a digest reference");
    }
    if a.all_tags && r.tag.is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    if !a.all_tags {
        r = r.with_default_tag();
    }
    let _ = a.platform;
    let d = conn.connect().await?;
    let rawc = conn.raw(&d);
    let mut path = format!("/images/{}/push", raw::seg(&r.familiar_name()));
    if let Some(t) = &r.tag {
        path.push_str(&format!("?{}", raw::query(&[("tag", t.clone())])));
    }
    let auth = creds::registry_auth_header(&r.domain);
    let resp = rawc
        .send_with("POST", &path, None, false, &[("X-Registry-Auth", auth)])
        .await?;
    if resp.status >= 400 {
        return Err(resp.error().await.into());
    }
    let is_term = std::io::stdout().is_terminal();
    let mut o = std::io::stdout();
    show_stream(resp, &mut o, is_term, a.quiet, &mut |_| {}).await?;
    if a.quiet {
        println!("{r}");
    }
    Ok(())
}

/// The registry a search term names, as the docker CLI finds the
/// credentials for it: the first component when it looks like a host.
fn search_domain(term: &str) -> &str {
    match term.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

pub async fn search(conn: &Conn, a: SearchArgs) -> anyhow::Result<()> {
    let filters = filters_of(&a.filter)?;
    let mut q = vec![("term", a.term.clone())];
    if let Some(l) = a.limit.filter(|l| *l != 0) {
        q.push(("limit", l.to_string()));
    }
    if !filters.is_empty() {
        q.push(("filters", serde_json::to_string(&filters)?));
    }
    let d = conn.connect().await?;
    let rawc = conn.raw(&d);
    let path = format!("/images/search?{}", raw::query(&q));
    let resp = send_with_auth(&rawc, "GET", &path, search_domain(&a.term)).await?;
    let results: Vec<Value> = serde_json::from_slice(&resp.body().await?)?;
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let desc = r["description"]
                .as_str()
                .unwrap_or("")
                .replace(['\n', '\r'], " ");
            // docker CLI 28 shows IsOfficial only (IsAutomated is gone).
            let official = if r["is_official"].as_bool() == Some(true) {
                "[OK]"
            } else {
                ""
            };
            json!({
                "Name": r["name"].as_str().unwrap_or(""),
                "Description": if a.no_trunc { desc } else { ellipsis(&desc, 45) },
                "StarCount": r["star_count"].as_i64().unwrap_or(0).to_string(),
                "IsOfficial": official,
            })
        })
        .collect();
    let fmt = a.format.unwrap_or_else(|| {
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}".into()
    });
    let t = crate::format::Tmpl::parse(
        &fmt,
        &[
            ("Name", "NAME"),
            ("Description", "DESCRIPTION"),
            ("StarCount", "STARS"),
            ("IsOfficial", "OFFICIAL"),
        ],
    )?;
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

fn prompt_hidden(label: &str) -> anyhow::Result<String> {
    // SAFETY: termios is plain data; we restore the saved state below.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(0, &mut t) } == 0;
    let saved = t;
    if have {
        t.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    }
    let r = prompt(label);
    if have {
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        eprintln!();
    }
    r
}

pub async fn login(conn: &Conn, a: LoginArgs) -> anyhow::Result<()> {
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if a.password_stdin && a.username.as_deref().unwrap_or("").is_empty() {
        bail!("Must provide --username with --password-stdin");
    }
    let key = creds::normalize_server(a.server.as_deref().unwrap_or(""));
    let interactive = std::io::stdin().is_terminal();
    let mut username = a.username.clone().unwrap_or_default();
    let mut password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if a.password.is_some() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        a.password.clone().unwrap_or_default()
    };
    if username.is_empty() || password.is_empty() {
        if !interactive {
            bail!("Error: Cannot perform an interactive login from a non TTY device");
        }
        if username.is_empty() {
            username = prompt("Username: ")?;
        }
        if password.is_empty() {
            password = prompt_hidden("Password: ")?;
        }
    }
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let d = conn.connect().await?;
    let rawc = conn.raw(&d);
    let body = serde_json::to_vec(&json!({
        "username": username,
        "password": password,
        "serveraddress": key,
    }))?;
    let resp = rawc
        .call("POST", "/auth", Some(("application/json", body)))
        .await?;
    let v: Value = serde_json::from_slice(&resp).unwrap_or(Value::Null);
    let token = v["IdentityToken"].as_str().unwrap_or("").to_string();
    let c = if token.is_empty() {
        Creds {
            username,
            password,
            identity_token: String::new(),
        }
    } else {
        Creds {
            username,
            password: String::new(),
            identity_token: token,
        }
    };
    let plain = creds::store(&key, &c)?;
    if plain {
        eprintln!(
            "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            creds::config_path().display()
        );
    }
    println!("{}", v["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(())
}

pub async fn logout(_conn: &Conn, a: LogoutArgs) -> anyhow::Result<()> {
    let key = creds::normalize_server(a.server.as_deref().unwrap_or(""));
    let shown = a
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| key.clone());
    if creds::erase(&key)? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse_like_docker() {
        let r = Reference::parse("busybox").unwrap().with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        let r = Reference::parse("127.0.0.1:5000/a/b:1").unwrap();
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.tag.as_deref(), Some("1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.with_default_tag().tag, None);
        assert!(Reference::parse("foo/Bar").is_err());
    }
}
