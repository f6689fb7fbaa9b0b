//! Mutual TLS for tcp:// hosts: the client must present a certificate signed
//! by `--tlscacert`. The files are read by `berth_api::tls`, as the CLI
//! reads its own.

use std::sync::Arc;

use anyhow::Context;
use berth_api::tls;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use crate::config::TlsFiles;

pub fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let provider = tls::provider();
    let roots = tls::root_store(tls::read_certs(&files.ca)?)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building client verifier")?;
    let (chain, key) = tls::read_identity(&files.cert, &files.key)?;
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading server certificate")?;
    Ok(cfg)
}
