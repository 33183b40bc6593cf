//! TLS for the TCP listeners (rustls, TLS 1.2 and 1.3), so that clients
//! behind strict firewalls can reach TURN on 443 like any HTTPS site.
//!
//! The certificate can be replaced while the server runs (SIGHUP, or its
//! files changing): the acceptor asks [`Certificate`] for the key at each
//! handshake, so new handshakes get the new one and sessions already up
//! carry on with theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// The certificate and key in force, and the files they came from.
pub struct Certificate {
    provider: Arc<CryptoProvider>,
    key: RwLock<Arc<CertifiedKey>>,
    files: Mutex<Files>,
}

/// Where the certificate and key were read from, and what those files
/// looked like then.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    stamp: Option<Stamp>,
}

/// What says a file changed: its inode (certbot swaps symlinks to new
/// files), size and modification time, for the certificate and the key.
type Stamp = [(u64, u64, u64, i64, i64); 2];

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    };
    Some([one(cert)?, one(key)?])
}

/// A certificate read, checked against its key, and not yet in force.
pub struct Loaded {
    key: Arc<CertifiedKey>,
    files: Files,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("files", &*super::driver::lock(&self.files))
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Once per handshake, never per packet.
        Some(self.key.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the PEM certificate chain at `cert` and the key at
/// `key`.
fn load(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<Loaded> {
    // Taken before reading: a change made while reading is seen next time.
    let stamp = stamp(cert, key);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificate {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in this PEM file", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let certified = CertifiedKey::from_der(certs, private, provider).with_context(|| {
        format!(
            "the certificate {} does not match the private key {}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        files: Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
            stamp,
        },
    })
}

/// A TLS acceptor for the PEM certificate chain and key at these paths,
/// and the handle that replaces them.
pub fn acceptor(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Arc<Certificate>)> {
    let provider = provider();
    let loaded = load(&provider, cert, key)?;
    let certificate = Arc::new(Certificate {
        provider: provider.clone(),
        key: RwLock::new(loaded.key),
        files: Mutex::new(loaded.files),
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    Ok((TlsAcceptor::from(Arc::new(config)), certificate))
}

impl Certificate {
    /// Reads the certificate and key at these paths, for [`Self::install`].
    pub fn load(&self, cert: &Path, key: &Path) -> Result<Loaded> {
        load(&self.provider, cert, key)
    }

    /// Puts `loaded` in force for the handshakes that follow; says what
    /// changed, if anything did.
    pub fn install(&self, loaded: Loaded) -> Option<String> {
        let mut files = super::driver::lock(&self.files);
        let mut key = self.key.write().unwrap_or_else(|p| p.into_inner());
        let same = key.cert == loaded.key.cert && files.cert == loaded.files.cert;
        *key = loaded.key;
        *files = loaded.files;
        (!same).then(|| format!("TLS certificate reloaded from {}", files.cert.display()))
    }

    /// Whether the files in force changed since they were read (or became
    /// readable again): the caller then loads and installs them.
    pub fn files_changed(&self) -> Option<(PathBuf, PathBuf)> {
        let files = super::driver::lock(&self.files);
        let now = stamp(&files.cert, &files.key);
        (now != files.stamp).then(|| (files.cert.clone(), files.key.clone()))
    }

    /// Remembers the files' look now without loading them, so that a
    /// broken certificate is reported once, not at every look.
    pub fn mark_seen(&self) {
        let mut files = super::driver::lock(&self.files);
        files.stamp = stamp(&files.cert, &files.key);
    }
}
