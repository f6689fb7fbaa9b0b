//! Mutual TLS for tcp:// hosts: the client must present a certificate signed
//! by `--tlscacert`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsFiles;

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut r =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let v = rustls_pemfile::certs(&mut r).collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err(anyhow!("no certificates in {}", path.display()));
    }
    Ok(v)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let mut r =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    rustls_pemfile::private_key(&mut r)?
        .ok_or_else(|| anyhow!("no private key in {}", path.display()))
}

pub fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs(&files.ca)? {
        roots.add(c).context("adding CA certificate")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building client verifier")?;
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .context("loading server certificate")?;
    Ok(cfg)
}
