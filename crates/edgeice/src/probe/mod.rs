//! `edgeice probe URL...`: checks STUN/TURN servers as an operator would,
//! from where it runs — Binding, Allocate over the URL's transport, the
//! relayed address's class and whether data sent to it from here comes
//! back through the allocation, RFC 5780 mapping and filtering when offered — and prints
//! a checklist of pass / warn / fail, each with its reason and fix.
//!
//! Blocking sockets with deadlines: a probe is a short sequence of
//! request/response exchanges, so the sans-IO clients of `edgeice-client`
//! are driven by a plain loop (`link.rs`) rather than an async runtime.

mod error;
mod link;
mod ms_turn;
mod report;
mod stun;
mod turn;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use edgeice_client::{Credentials, TransactionConfig, Transport};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::server_url::{Scheme, ServerUrl, UrlTransport};
use report::{Check, ServerReport, Status};

/// Debian's bundle of the system's trusted roots, for `turns:`.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How long REST API credentials made from `--secret` stay valid.
const REST_VALIDITY: Duration = Duration::from_secs(3600);

/// `edgeice probe` arguments.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Servers to check: `stun:HOST[:PORT]` (Binding), `turn:HOST[:PORT]`
    /// (Binding and Allocate over UDP), `turn:HOST[:PORT]?transport=tcp`,
    /// `turns:HOST[:PORT]` (Allocate over TCP, TLS).
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
    /// TURN user name (with `--password`; with `--secret`, the name part
    /// of the REST API user name).
    #[arg(long)]
    user: Option<String>,
    /// TURN password.
    #[arg(long, requires = "user", conflicts_with = "secret")]
    password: Option<String>,
    /// TURN REST API shared secret: the probe makes a user name
    /// `EXPIRY:NAME` and its password as the server's web application would.
    #[arg(long)]
    secret: Option<String>,
    /// PEM certificates to trust for `turns:` (default: the system's roots).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Seconds each exchange may take (the Allocate gets twice that).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    timeout: u64,
    /// Write the checklist as JSON.
    #[arg(long)]
    json: bool,
    /// The TURN dialect to speak: `ms-turn` checks an edge as a Lync or
    /// Skype for Business client would (MS-TURN Allocate, Send and Data,
    /// Set Active Destination).
    #[arg(long, value_enum, default_value_t = Dialect::Standard)]
    dialect: Dialect,
}

/// Which TURN the probe speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// RFC 8656 (and RFC 5780 for STUN).
    Standard,
    /// Microsoft's MS-TURN.
    MsTurn,
}

/// What the checks share.
pub struct Settings {
    /// The time each exchange may take.
    timeout: Duration,
    /// TLS for `turns:` (loaded only when such a URL is given).
    tls: Option<Arc<ClientConfig>>,
    /// The TURN dialect.
    dialect: Dialect,
}

/// Runs the probe: exit 0 when no check failed, 1 when one did, 2 for bad
/// usage (an unreadable URL, TURN without credentials).
pub fn run(args: ProbeArgs) -> ExitCode {
    let mut urls = Vec::new();
    for text in &args.urls {
        match ServerUrl::parse(text) {
            Ok(url) => urls.push((text.clone(), url)),
            Err(e) => return usage(&e),
        }
    }
    let needs_turn = urls
        .iter()
        .any(|(_, u)| matches!(u.scheme, Scheme::Turn | Scheme::Turns));
    let credentials = match credentials(&args) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    if needs_turn && credentials.is_none() {
        return usage("TURN URLs need --user and --password, or --secret");
    }
    // Only `turns:` is probed over TLS (`stuns:` gets a warning).
    let needs_tls = urls.iter().any(|(_, u)| u.scheme == Scheme::Turns);
    let tls = if needs_tls {
        match tls_config(args.ca.as_deref()) {
            Ok(config) => Some(config),
            Err(e) => return usage(&e),
        }
    } else {
        None
    };
    let settings = Settings {
        timeout: Duration::from_secs(args.timeout),
        tls,
        dialect: args.dialect,
    };

    let reports: Vec<ServerReport> = urls
        .iter()
        .map(|(text, url)| probe_one(text, url, credentials.as_ref(), &settings))
        .collect();
    if args.json {
        println!("{}", report::json(&reports));
    } else {
        print!("{}", report::text(&reports));
    }
    match report::overall(&reports) {
        Status::Fail => ExitCode::FAILURE,
        Status::Pass | Status::Warn => ExitCode::SUCCESS,
    }
}

/// The checks of one URL.
fn probe_one(
    text: &str,
    url: &ServerUrl,
    credentials: Option<&Credentials>,
    settings: &Settings,
) -> ServerReport {
    let mut report = ServerReport {
        url: text.to_owned(),
        address: None,
        checks: Vec::new(),
    };
    let server = match url.resolve() {
        Ok(server) => server,
        Err(e) => {
            report.checks.push(Check::fail(
                "resolve",
                e,
                "check the host name (DNS) or give an IP address",
            ));
            return report;
        }
    };
    report.address = Some(server.to_string());
    let transport = match (url.scheme, url.transport) {
        (Scheme::Stuns | Scheme::Turns, _) => Transport::Tls,
        (_, UrlTransport::Tcp) => Transport::Tcp,
        (_, UrlTransport::Udp) => Transport::Udp,
    };
    // Binding over UDP for every UDP URL (TURN servers answer it too).
    if transport == Transport::Udp {
        report.checks.extend(stun::checks(server, settings));
    } else if matches!(url.scheme, Scheme::Stun | Scheme::Stuns) {
        report.checks.push(Check::warn(
            "binding",
            "STUN over TCP/TLS is not probed",
            "probe stun:HOST over UDP, or turn:/turns: to test the stream transports",
        ));
    }
    if let (Scheme::Turn | Scheme::Turns, Some(credentials)) = (url.scheme, credentials) {
        let checks = match settings.dialect {
            Dialect::Standard => turn::checks,
            Dialect::MsTurn => ms_turn::checks,
        };
        report
            .checks
            .extend(checks(server, &url.host, transport, credentials, settings));
    }
    report
}

/// The credentials from `--user/--password` or `--secret`.
fn credentials(args: &ProbeArgs) -> Result<Option<Credentials>, String> {
    if let Some(secret) = &args.secret {
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970".to_owned())?
            + REST_VALIDITY;
        let name = args.user.as_deref().unwrap_or("edgeice-probe");
        let username = format!("{}:{name}", expiry.as_secs());
        let password = edgeice_server::rest_api_password(secret, &username);
        return Ok(Some(Credentials { username, password }));
    }
    match (&args.user, &args.password) {
        (Some(user), Some(password)) => Ok(Some(Credentials {
            username: user.clone(),
            password: password.clone(),
        })),
        (Some(_), None) => Err("--user needs --password (or --secret)".to_owned()),
        _ => Ok(None),
    }
}

/// TLS trusting `ca` or the system's roots.
pub(crate) fn tls_config(ca: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, String> {
    let path = ca.unwrap_or(std::path::Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("reading certificates from {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: a certificate cannot be a root: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate to trust", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Retransmissions sized for a probe: a dead server is reported within
/// about two `timeout`s, not RFC 8489's 39.5 s.
fn transactions(timeout: Duration) -> TransactionConfig {
    TransactionConfig {
        rto: Duration::from_millis(250),
        max_requests: 5,
        last_wait_factor: 4,
        stream_timeout: timeout,
        id_seed: None,
    }
}

/// A duration in milliseconds, for round trips.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints a usage error; exit status 2.
fn usage(message: &str) -> ExitCode {
    eprintln!("edgeice probe: {message}");
    ExitCode::from(2)
}
