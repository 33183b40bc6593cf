//! `edgeice credentials`: a time-limited TURN credential of the REST API
//! scheme that `edgeice serve --auth-secret` accepts (user name
//! `expiry:name`, password base64(HMAC-SHA1(secret, user name))), and the
//! `iceServers` entry a web page hands to `RTCPeerConnection`. What a web
//! application's back end computes for each call, here for an operator's
//! test or a script.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::server_url::ServerUrl;

/// Longest lifetime a credential may be given: the scheme exists so that a
/// credential leaked from a web page stops working soon.
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Arguments of `edgeice credentials`.
#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// The name the credential is for (the part after `expiry:`).
    #[arg(value_name = "NAME")]
    name: String,

    /// A file holding the shared secret (the server's --auth-secret); a
    /// final newline is not part of it.
    #[arg(long, value_name = "FILE", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,

    /// The shared secret itself (visible in `ps`: prefer --secret-file).
    #[arg(
        long,
        value_name = "SECRET",
        env = "EDGEICE_AUTH_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,

    /// How long the credential is valid: seconds, or a number with s, m,
    /// h or d (at most 366d).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,

    /// A server URI for the iceServers entry (`turn:host:3478?transport=udp`,
    /// `turns:host:5349`...); repeatable [default: turn: over UDP and TCP
    /// on port 3478 of this host's name].
    #[arg(long = "url", value_name = "URI", value_parser = parse_url)]
    urls: Vec<String>,

    /// Print one JSON object (username, password, ttl, expires, iceServers)
    /// instead of lines for a person.
    #[arg(long)]
    json: bool,
}

/// Reads a lifetime: `3600`, `90s`, `30m`, `1h`, `2d`.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of seconds, or one with s, m, h or d"))?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => return Err(format!("{s:?}: unknown unit {other:?} (s, m, h or d)")),
    };
    let ttl = number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .filter(|ttl| *ttl <= MAX_TTL)
        .ok_or_else(|| format!("{s:?}: longer than the longest lifetime, 366d"))?;
    if ttl.is_zero() {
        return Err(format!("{s:?}: a credential must live at least a second"));
    }
    Ok(ttl)
}

/// Checks a server URI (a scheme is needed: a browser takes no bare host).
fn parse_url(s: &str) -> Result<String, String> {
    let has_scheme = ["stun:", "stuns:", "turn:", "turns:"]
        .iter()
        .any(|scheme| s.starts_with(scheme));
    if !has_scheme {
        return Err(format!("{s}: expected stun:, stuns:, turn: or turns:"));
    }
    ServerUrl::parse(s)?;
    Ok(s.to_owned())
}

/// This host's name, for the default URIs.
fn host_name() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading this host's name (give --url)")?;
    let name = name.trim();
    if name.is_empty() {
        bail!("this host has no name: give --url turn:HOST:3478?transport=udp");
    }
    Ok(name.to_owned())
}

/// The secret from --secret-file, --secret or EDGEICE_AUTH_SECRET.
fn secret(args: &CredentialsArgs) -> Result<String> {
    let secret = match (&args.secret_file, &args.secret) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the secret file {}", path.display()))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        }
        (None, Some(secret)) => secret.clone(),
        (None, None) => bail!(
            "no secret: give --secret-file FILE (the server's --auth-secret), or set \
             EDGEICE_AUTH_SECRET"
        ),
    };
    if secret.is_empty() {
        bail!("the secret is empty");
    }
    Ok(secret)
}

/// The credential and what it is printed as.
#[derive(Debug, serde::Serialize)]
struct Credential {
    username: String,
    password: String,
    ttl: u64,
    expires: u64,
    #[serde(rename = "iceServers")]
    ice_servers: [IceServer; 1],
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, serde::Serialize)]
struct IceServer {
    urls: Vec<String>,
    username: String,
    credential: String,
}

/// Prints a credential for `args.name`.
pub fn run(args: CredentialsArgs) -> Result<()> {
    if args.name.is_empty() {
        bail!("the name is empty");
    }
    let secret = secret(&args)?;
    let urls = if args.urls.is_empty() {
        let host = host_name()?;
        vec![
            format!("turn:{host}:3478?transport=udp"),
            format!("turn:{host}:3478?transport=tcp"),
        ]
    } else {
        args.urls.clone()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let expires = now.as_secs() + args.ttl.as_secs();
    let username = format!("{expires}:{}", args.name);
    let password = edgeice_server::rest_api_password(&secret, &username);
    let credential = Credential {
        ttl: args.ttl.as_secs(),
        expires,
        ice_servers: [IceServer {
            urls,
            username: username.clone(),
            credential: password.clone(),
        }],
        username,
        password,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&credential)?);
    } else {
        println!("username: {}", credential.username);
        println!("password: {}", credential.password);
        println!(
            "expires:  {} (Unix time, in {} s)",
            credential.expires, credential.ttl
        );
        println!(
            "iceServers: {}",
            serde_json::to_string(&credential.ice_servers)?
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_read_with_units_and_bounded() {
        assert_eq!(parse_ttl("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("366d"), Ok(MAX_TTL));
        for wrong in [
            "0",
            "0h",
            "367d",
            "-1h",
            "1w",
            "h",
            "",
            "1.5h",
            "18446744073709551615d",
            "99999999999999999999999",
        ] {
            assert!(parse_ttl(wrong).is_err(), "{wrong:?} was accepted");
        }
    }

    #[test]
    fn urls_need_a_scheme_and_a_valid_form() {
        assert!(parse_url("turn:turn.example.org:3478?transport=udp").is_ok());
        assert!(parse_url("turns:turn.example.org:443?transport=tcp").is_ok());
        assert!(parse_url("stun:[2001:db8::1]:3478").is_ok());
        assert!(parse_url("turn.example.org:3478").is_err());
        assert!(parse_url("turn:turn.example.org:3478?transport=sctp").is_err());
        assert!(parse_url("turn:").is_err());
    }
}
