//! `pull`, `push`, `search`, `login`, `logout` (and `image pull|push`).

use std::io::{IsTerminal, Read, Write};

use anyhow::bail;
use serde_json::{json, Value};

use crate::client::Conn;
use crate::creds::{self, Creds};
use crate::jsonstream::Display;
use crate::raw::{self, Raw};

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

/// A reference split the docker way: `name` fully qualified
/// (`docker.io/library/busybox`), plus tag and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Ref {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            bail!("invalid reference format");
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((a, d)) => (a, Some(d.to_string())),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(name_tag[last_slash + i + 1..].to_string()),
            ),
            None => (name_tag, None),
        };
        if repo.is_empty() {
            bail!("invalid reference format");
        }
        let path_part = repo.split_once('/').map(|(_, p)| p).unwrap_or(repo);
        if path_part.chars().any(|c| c.is_ascii_uppercase()) {
            bail!("invalid reference format: repository name ({repo}) must be lowercase");
        }
        Ok(Self {
            name: super::images::qualify(repo),
            tag,
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        self.name.split('/').next().unwrap_or("docker.io")
    }

    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// `docker.io/library/busybox:latest`
    pub fn full(&self) -> String {
        let mut s = self.name.clone();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// `busybox`, `myrepo/bb`, `host:5000/a`
    pub fn familiar_name(&self) -> String {
        match self.name.strip_prefix("docker.io/") {
            Some(rest) => match rest.strip_prefix("library/") {
                Some(r) if !r.contains('/') => r.to_string(),
                _ => rest.to_string(),
            },
            None => self.name.clone(),
        }
    }
}

/// Reads a JSON-message stream from the daemon and shows it on `out`.
async fn show_stream(
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
) -> anyhow::Result<Ref> {
    let mut r = Ref::parse(image)?;
    if all_tags && (r.tag.is_some() || r.digest.is_some()) {
        bail!("tag can't be used with --all-tags/-a");
    }
    if !all_tags {
        r = r.with_default_tag();
    }
    let d = conn.connect().await?;
    let rawc: Raw = conn.raw(&d);
    let mut q = vec![("fromImage", r.name.clone())];
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
    let resp = send_with_auth(&rawc, "POST", &path, r.domain()).await?;
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

pub async fn pull(conn: &Conn, a: PullArgs) -> anyhow::Result<()> {
    let r = pull_image(
        conn,
        &a.name,
        a.platform.as_deref(),
        a.all_tags,
        a.quiet,
        false,
    )
    .await?;
    println!("{}", r.full());
    Ok(())
}

pub async fn push(conn: &Conn, a: PushArgs) -> anyhow::Result<()> {
    let mut r = Ref::parse(&a.name)?;
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
    let auth = creds::registry_auth_header(r.domain());
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
        println!("{}", r.full());
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
    let filters = crate::cmd::images::filters_of(&a.filter)?;
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
                "Description": if a.no_trunc { desc } else { crate::cmd::images::ellipsis(&desc, 45) },
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

/// Sends a bodiless request with the CLI's credentials for `domain` in
/// `X-Registry-Auth`; an error status is the error.
async fn send_with_auth(
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse_like_docker() {
        let r = Ref::parse("busybox").unwrap().with_default_tag();
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        let r = Ref::parse("127.0.0.1:5000/a/b:1").unwrap();
        assert_eq!(r.domain(), "127.0.0.1:5000");
        assert_eq!(r.tag.as_deref(), Some("1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Ref::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.with_default_tag().tag, None);
        assert!(Ref::parse("Foo/Bar").is_err());
    }
}
