//! `berth ui`: the web dashboard. The CLI serves it (so it runs as a user who
//! can already reach the daemon, and adds nothing to the daemon's attack
//! surface): a token-guarded HTTP server with the embedded page, and a proxy
//! from `/api/engine/…` to the Engine API over the CLI's own connection.
//! It keeps no state but the token.

mod assets;
mod auth;
mod fanin;
mod proxy;
mod reply;
mod server;
mod ws;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::client::Conn;
use crate::raw::Raw;

#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Address to serve on (a non-loopback address needs --tls-cert/--tls-key)
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Do not open a browser
    #[arg(long)]
    no_open: bool,
    /// Serve HTTPS with this certificate (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Access to the dashboard is root on the host: off this machine, only
/// over TLS.
fn check_addr(addr: SocketAddr, tls: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && !tls {
        bail!(
            "refusing to serve the dashboard on the non-loopback address {addr} without TLS: \
             give --tls-cert and --tls-key (or use a 127.0.0.1 address)"
        );
    }
    Ok(())
}

pub async fn ui(conn: &Conn, a: UiArgs) -> anyhow::Result<()> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(server::tls_acceptor(c, k)?),
        _ => None,
    };
    check_addr(a.addr, tls.is_some())?;
    let docker = conn.connect().await?;
    // Unversioned paths: the page names the API version it wants, if any.
    let raw = Raw {
        prefix: String::new(),
        ..conn.raw(&docker)
    };
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .with_context(|| format!("binding {}", a.addr))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let auth = auth::Auth::new(scheme, bound)?;
    let url = format!("{scheme}://{bound}/?token={}", auth.token());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{url}")?;
        out.flush()?;
    }
    if !a.no_open {
        // Best effort: a server has no browser, and that is fine.
        if let Ok(mut child) = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            std::thread::spawn(move || child.wait());
        }
    }
    server::serve(listener, tls, auth, raw).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_loopback_needs_tls() {
        let a = |s: &str| s.parse().unwrap();
        assert!(super::check_addr(a("127.0.0.1:0"), false).is_ok());
        assert!(super::check_addr(a("[::1]:8080"), false).is_ok());
        assert!(super::check_addr(a("0.0.0.0:8080"), false).is_err());
        assert!(super::check_addr(a("10.1.2.3:8080"), false).is_err());
        assert!(super::check_addr(a("0.0.0.0:8080"), true).is_ok());
    }
}
