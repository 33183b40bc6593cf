//! TLS to `turns:` servers (rustls): which roots are trusted, and the
//! name each server's certificate must carry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::net::TlsSetup;

/// Debian's bundle of the system's trusted roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS for `servers` (address, host as written in its URL), trusting the
/// certificates in `ca` (PEM), or the system's roots.
pub fn setup(ca: Option<&Path>, servers: &[(SocketAddr, String)]) -> Result<TlsSetup> {
    let path = ca.unwrap_or(Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).with_context(|| {
        format!(
            "reading trusted certificates from {} (--turn-ca)",
            path.display()
        )
    })?;
    for cert in certs {
        let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a certificate in {} cannot be a root", path.display()))?;
    }
    if roots.is_empty() {
        bail!("{}: no certificate to trust", path.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut names = HashMap::new();
    for (address, host) in servers {
        let name = ServerName::try_from(host.clone())
            .with_context(|| format!("{host:?} is not a name a certificate can carry"))?;
        names.insert(*address, name);
    }
    Ok(TlsSetup {
        connector: TlsConnector::from(Arc::new(config)),
        names,
    })
}
