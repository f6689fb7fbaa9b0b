//! TLS set-up shared by the daemon and the CLI: PEM certificates and keys
//! read from files, the system's trusted roots, the crypto provider, and
//! client configurations.
//!
//! One implementation, so that the CLI's link to the daemon
//! (`--tlsverify`), the daemon's own listener, its registry client and the
//! builder's `ADD <https-url>` read their files, and fail, alike. Behind
//! the `tls` feature: the shim, which shares this crate, needs none of it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why TLS could not be set up. Each text names the file or the step.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {}: {err}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        err: std::io::Error,
    },
    /// The file's PEM could not be parsed.
    #[error("reading {}: {err}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        err: rustls::pki_types::pem::Error,
    },
    /// The file holds no PEM certificate.
    #[error("{}: no PEM certificate found", .0.display())]
    NoCertificate(PathBuf),
    /// The file holds no PEM private key.
    #[error("{}: no PEM private key found", .0.display())]
    NoKey(PathBuf),
    /// rustls refused a CA certificate.
    #[error("invalid CA certificate: {0}")]
    InvalidCa(rustls::Error),
    /// rustls refused the client's certificate chain or key.
    #[error("invalid client certificate: {0}")]
    InvalidClientCert(rustls::Error),
    /// rustls refused the protocol versions of the provider.
    #[error("TLS set-up: {0}")]
    Setup(rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        path: path.to_path_buf(),
        err,
    })
}

/// The PEM certificates in `path`: at least one, or an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|err| TlsError::Pem {
            path: path.to_path_buf(),
            err,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// The first PEM private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read(path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|err| match err {
        PemError::NoItemsFound => TlsError::NoKey(path.to_path_buf()),
        err => TlsError::Pem {
            path: path.to_path_buf(),
            err,
        },
    })
}

/// A certificate chain and its private key: what one side of a handshake
/// shows.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The chain in `cert` and the key in `key` (Docker's `--tlscert` and
/// `--tlskey`, a `.json` plugin spec's `CertFile`/`KeyFile`).
pub fn read_identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    Ok((read_certs(cert)?, read_key(key)?))
}

/// The host of a `host:port` address, as TLS names the server: the port
/// dropped, an IPv6 literal without its brackets.
pub fn server_host(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// The crypto provider every configuration uses (ring), made once.
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trusted roots, loaded once: reading the store costs
/// milliseconds, and it does not change under a running process.
pub fn system_roots() -> Arc<RootCertStore> {
    static R: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    R.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let res = rustls_native_certs::load_native_certs();
        for e in &res.errors {
            tracing::debug!(error = %e, "loading a system root certificate");
        }
        let (added, ignored) = store.add_parsable_certificates(res.certs);
        tracing::debug!(added, ignored, "system root certificates");
        Arc::new(store)
    })
    .clone()
}

/// A root store of exactly `certs`; any certificate rustls refuses is an
/// error (a CA file given on purpose must not be half-used).
pub fn root_store(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(TlsError::InvalidCa)?;
    }
    Ok(roots)
}

/// What a TLS client trusts and what it shows.
#[derive(Debug, Default)]
pub struct ClientTls {
    /// Trust the system's roots, besides `roots`.
    pub system_roots: bool,
    /// CA certificates to trust.
    pub roots: Vec<CertificateDer<'static>>,
    /// The client's certificate chain and its key, for servers that ask.
    pub identity: Option<Identity>,
    /// Accept any server certificate (Docker's insecure registries); the
    /// handshake's signatures are still checked against its key.
    pub skip_verify: bool,
}

impl ClientTls {
    /// Trust and identity from PEM files: the CA bundle `ca` (the system's
    /// roots when there is none) and the client's `(cert, key)`.
    pub fn from_files(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            system_roots: ca.is_none(),
            roots: match ca {
                Some(ca) => read_certs(ca)?,
                None => Vec::new(),
            },
            identity: match identity {
                Some((cert, key)) => Some(read_identity(cert, key)?),
                None => None,
            },
            skip_verify: false,
        })
    }

    /// The rustls client configuration (safe default protocol versions).
    pub fn config(self) -> Result<ClientConfig, TlsError> {
        let p = provider();
        let builder = ClientConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?;
        let builder = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(p)))
        } else {
            let mut roots = if self.system_roots {
                (*system_roots()).clone()
            } else {
                RootCertStore::empty()
            };
            for c in self.roots {
                roots.add(c).map_err(TlsError::InvalidCa)?;
            }
            builder.with_root_certificates(roots)
        };
        match self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::InvalidClientCert),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

/// Accepts any server certificate, still checking that the handshake is
/// signed by the key in it.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM files in `dir`.
    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn files_fail_with_their_names() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing.pem");
        let e = read_certs(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("reading {}: ", missing.display())),
            "{e}"
        );
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(
            read_certs(&empty).unwrap_err().to_string(),
            format!("{}: no PEM certificate found", empty.display())
        );
        let (cert, _) = self_signed(d.path());
        assert_eq!(
            read_key(&cert).unwrap_err().to_string(),
            format!("{}: no PEM private key found", cert.display())
        );
    }

    #[test]
    fn client_configs_build() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(d.path());
        let chain = read_certs(&cert).unwrap();
        ClientTls {
            roots: chain.clone(),
            identity: Some((chain, read_key(&key).unwrap())),
            ..Default::default()
        }
        .config()
        .unwrap();
        ClientTls {
            system_roots: true,
            ..Default::default()
        }
        .config()
        .unwrap();
        ClientTls {
            skip_verify: true,
            ..Default::default()
        }
        .config()
        .unwrap();
        assert!(Arc::ptr_eq(&system_roots(), &system_roots()));
        assert!(Arc::ptr_eq(&provider(), &provider()));
    }

    #[test]
    fn files_make_a_client() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(d.path());
        let c = ClientTls::from_files(Some(&cert), Some((&cert, &key))).unwrap();
        assert!(!c.system_roots);
        assert_eq!(c.roots.len(), 1);
        assert_eq!(c.identity.as_ref().map(|(chain, _)| chain.len()), Some(1));
        c.config().unwrap();
        let c = ClientTls::from_files(None, None).unwrap();
        assert!(c.system_roots && c.roots.is_empty() && c.identity.is_none());
        // The key file holds no certificate, the certificate file no key.
        let e = ClientTls::from_files(Some(&key), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: no PEM certificate found", key.display())
        );
        let e = read_identity(&cert, &cert).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: no PEM private key found", cert.display())
        );
    }

    #[test]
    fn servers_are_named_by_their_host() {
        assert_eq!(server_host("localhost:2376"), "localhost");
        assert_eq!(server_host("10.0.0.1:443"), "10.0.0.1");
        assert_eq!(server_host("[::1]:2376"), "::1");
        assert_eq!(server_host("registry.example"), "registry.example");
    }

    #[test]
    fn a_bad_ca_is_refused() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let e = root_store(vec![junk]).unwrap_err().to_string();
        assert!(e.starts_with("invalid CA certificate: "), "{e}");
    }
}
