//! coturn's `turnserver.conf` read and rewritten as `edgeice serve` TOML.
//!
//! coturn's format: one option a line, its name then its value after
//! spaces, tabs or `=`; a value may be quoted; lines starting with `#` are
//! comments; a flag alone is true. Every option read is either carried over
//! (a key in the output), already edgeice's behaviour (a comment saying
//! so), or listed as not carried over with the reason.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

/// An option that could not be carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its line in the coturn file, from 1; 0 when it comes of several.
    pub line: usize,
    /// The option's name.
    pub option: String,
    /// Why it is not carried over.
    pub why: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a conclusion from several lines.
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}: {}", self.option, self.why)
    }
}

/// The result of a conversion.
#[derive(Debug)]
pub struct Conversion {
    /// The edgeice TOML, with the not carried options as comments.
    pub toml: String,
    /// The options not carried over.
    pub skipped: Vec<Skipped>,
}

/// One option of the coturn file.
struct Entry {
    line: usize,
    name: String,
    value: Option<String>,
}

/// Reads coturn's lines as it does: name, then a value after blanks or `=`.
fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.find([' ', '\t', '=']) {
            Some(at) => {
                let value = line[at..].trim_start_matches([' ', '\t', '=']);
                (&line[..at], Some(value))
            }
            None => (line, None),
        };
        let value = value
            .map(|v| {
                let v = v.strip_prefix('"').unwrap_or(v);
                v.strip_suffix('"').unwrap_or(v).to_owned()
            })
            .filter(|v| !v.is_empty());
        out.push(Entry {
            line: i + 1,
            name: name.trim_start_matches('-').to_owned(),
            value,
        });
    }
    out
}

/// A coturn boolean: a flag alone, or its value.
fn truth(value: Option<&str>) -> bool {
    !matches!(
        value.map(str::to_ascii_lowercase).as_deref(),
        Some("0" | "false" | "no" | "off" | "n" | "f")
    )
}

/// The smallest set of CIDRs covering `lo`-`hi`.
fn range_to_cidrs(lo: IpAddr, hi: IpAddr) -> Option<Vec<IpNet>> {
    match (lo, hi) {
        (IpAddr::V4(lo), IpAddr::V4(hi)) if lo <= hi => {
            Some(Ipv4Subnets::new(lo, hi, 0).map(IpNet::V4).collect())
        }
        (IpAddr::V6(lo), IpAddr::V6(hi)) if lo <= hi => {
            Some(Ipv6Subnets::new(lo, hi, 0).map(IpNet::V6).collect())
        }
        _ => None,
    }
}

/// A peer rule as coturn writes it (IP, IP-IP range, or CIDR) as CIDRs.
fn peer_rule(value: &str) -> Option<Vec<IpNet>> {
    if let Ok(net) = value.parse::<IpNet>() {
        return Some(vec![net]);
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(vec![IpNet::from(ip)]);
    }
    let (lo, hi) = value.split_once('-')?;
    range_to_cidrs(lo.trim().parse().ok()?, hi.trim().parse().ok()?)
}

/// Why an option edgeice has no equivalent for is not carried over.
fn reason(name: &str) -> &'static str {
    match name {
        "listening-device" | "relay-device" => {
            "edgeice binds addresses, not devices: give listen and relay-ip"
        }
        "alt-listening-port" | "alt-tls-listening-port" => {
            "edgeice's RFC 5780 alternate is alternate-ip (a second IP of this host), served on port+1"
        }
        "aux-server" | "udp-self-balance" | "tcp-proxy-port" => {
            "no edgeice equivalent: list every address in listen"
        }
        "relay-threads" | "cpus" => "edgeice spreads clients over every core by itself",
        "no-udp" => "edgeice always listens on UDP",
        "no-udp-relay" | "no-tcp-relay" => "edgeice relays both UDP and TCP (RFC 6062)",
        "dtls" => "edgeice has no DTLS listener",
        "no-auth" => "edgeice always authenticates TURN (long-term credentials)",
        "oauth" | "server-name" => "edgeice has no OAuth (RFC 7635)",
        "userdb" => {
            "coturn's SQLite schema is not edgeice's: add the users with `edgeice user add` (users-db), or a user-file"
        }
        "psql-userdb" | "mysql-userdb" | "mongo-userdb" | "redis-userdb" | "secret-key-file"
        | "redis-statsdb" => {
            "edgeice has no database server backend: its own SQLite store (`edgeice user`), user-file or auth-secret-file"
        }
        "prometheus-username-labels" => {
            "edgeice has no per-user labels (coturn's grow its memory without bound)"
        }
        "prometheus-path" | "prometheus-tls" | "prometheus-cert" | "prometheus-key" => {
            "edgeice serves metrics over HTTP at /metrics"
        }
        "pkey-pwd" => "edgeice reads unencrypted PEM keys: decrypt it (openssl pkey)",
        "cipher-list" | "ec-curve-name" | "dh-file" | "dh566" | "dh1066" | "no-tlsv1"
        | "no-tlsv1_1" | "no-tlsv1_2" | "raw-public-keys" | "ca-file" => {
            "edgeice's TLS (rustls) picks safe versions and ciphers itself: TLS 1.2 and 1.3"
        }
        "log-file"
        | "syslog"
        | "syslog-facility"
        | "simple-log"
        | "no-stdout-log"
        | "new-log-timestamp"
        | "new-log-timestamp-format"
        | "log-binding" => {
            "edgeice logs to stderr (journald under systemd); log-format = \"json\" for collectors"
        }
        "bps-capacity" => "edgeice has no server-wide bandwidth cap, only max-bytes-per-second",
        "stale-nonce" | "channel-lifetime" | "max-allocate-timeout" => {
            "edgeice uses RFC 8656's fixed values"
        }
        "stun-only" | "no-stun" | "secure-stun" => "edgeice always serves both STUN and TURN",
        "udp-alternate-server" | "tcp-alternate-server" => {
            "edgeice has one list for UDP and TCP clients: alternate-server"
        }
        "cli"
        | "no-cli"
        | "cli-ip"
        | "cli-port"
        | "cli-password"
        | "cli-max-output-sessions"
        | "web-admin"
        | "web-admin-ip"
        | "web-admin-port"
        | "web-admin-listen-on-workers" => {
            "edgeice has no admin console: `edgeice user` manages users"
        }
        "pidfile" | "proc-user" | "proc-group" => {
            "let the service manager do it (systemd: User=, no PID file needed)"
        }
        "mobility" => "edgeice has no ICE mobility (MOBILITY-TICKET)",
        "check-origin-consistency" => "edgeice does not check ORIGIN",
        "multiplex-peer" | "multiplex-peer-port" | "multiplex-peer-max-peers" => {
            "edgeice gives each allocation its own relay port"
        }
        "keep-address-family" | "allocation-default-address-family" => {
            "edgeice follows RFC 8656 (the client's REQUESTED-ADDRESS-FAMILY, else IPv4)"
        }
        "unauthorized-ratelimit" | "unauthorized-ratelimit-rps" => {
            "edgeice limits its 401 answers per IP with challenges-per-ip (RATE/BURST)"
        }
        "stateless-nonce" | "stateless-nonce-secret" => {
            "edgeice's nonces are always stateless, from a secret drawn at start"
        }
        "drain-min-allocations" => "edgeice has no drain mode",
        "rest-api-separator" => "edgeice's REST user names are EXPIRY:NAME (':' only)",
        "acme-redirect" | "respond-http-unsupported" => "edgeice answers no HTTP on its TURN ports",
        "include-reason-string"
        | "server-relay"
        | "ne"
        | "udp-recvmmsg"
        | "udp-recvmmsg-log"
        | "udp-gso"
        | "sock-buf-size" => "no edgeice equivalent",
        _ => "no edgeice equivalent",
    }
}

/// What the coturn file sets, gathered before the output is written.
#[derive(Default)]
struct Gathered {
    listening_ips: Vec<IpAddr>,
    port: Option<u16>,
    tls_port: Option<u16>,
    relay_ips: Vec<IpAddr>,
    external_ips: Vec<String>,
    min_port: Option<u16>,
    max_port: Option<u16>,
    realm: Option<String>,
    users: Vec<String>,
    user_keys: Vec<String>,
    secrets: Vec<String>,
    use_auth_secret: Option<usize>,
    cert: Option<String>,
    pkey: Option<String>,
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
    total_quota: Option<u64>,
    user_quota: Option<u64>,
    max_bps: Option<u64>,
    no_tcp: bool,
    no_tls: bool,
    prometheus: bool,
    prometheus_port: Option<(usize, u16)>,
    prometheus_address: Option<(usize, IpAddr)>,
    no_software: bool,
    permission_lifetime: Option<u64>,
    max_allocate_lifetime: Option<u64>,
    /// `alternate-server`, `tls-alternate-server`: HOST:PORT each.
    alternates: Vec<String>,
    tls_alternates: Vec<String>,
    log_level: Option<&'static str>,
    /// Options that are edgeice's behaviour already: (line, option, how).
    implied: Vec<(usize, String, &'static str)>,
    skipped: Vec<Skipped>,
}

impl Gathered {
    /// Records an option as not carried over.
    fn skip(&mut self, entry: &Entry, why: impl Into<String>) {
        self.skipped.push(Skipped {
            line: entry.line,
            option: entry.name.clone(),
            why: why.into(),
        });
    }

    /// Records an option as edgeice's behaviour already.
    fn implied(&mut self, entry: &Entry, how: &'static str) {
        self.implied.push((entry.line, entry.name.clone(), how));
    }

    /// Reads one option; what it cannot read is skipped with the reason.
    fn read(&mut self, entry: &Entry) {
        let value = entry.value.as_deref();
        let on = truth(value);
        let name = entry.name.as_str();
        let Some(text) = value.or((!VALUED.contains(&name)).then_some("")) else {
            return self.skip(entry, "no value given");
        };
        macro_rules! parse {
            ($what:literal) => {
                match text.parse() {
                    Ok(v) => v,
                    Err(_) => return self.skip(entry, format!("{text:?} is not {}", $what)),
                }
            };
        }
        match name {
            "listening-ip" => {
                let ip: IpAddr = parse!("an IP address");
                self.listening_ips.push(ip);
            }
            "listening-port" => self.port = Some(parse!("a port")),
            "tls-listening-port" => self.tls_port = Some(parse!("a port")),
            "relay-ip" => {
                let ip: IpAddr = parse!("an IP address");
                self.relay_ips.push(ip);
            }
            "external-ip" => {
                // PUBLIC or PUBLIC/PRIVATE, the same in edgeice.
                let (public, private) = match text.split_once('/') {
                    Some((p, q)) => (p, Some(q)),
                    None => (text, None),
                };
                let ok = public.parse::<IpAddr>().is_ok()
                    && private.is_none_or(|p| p.parse::<IpAddr>().is_ok());
                if !ok {
                    return self.skip(
                        entry,
                        format!("{text:?} is not PUBLIC-IP or PUBLIC-IP/PRIVATE-IP (host names are not taken)"),
                    );
                }
                self.external_ips.push(text.to_owned());
            }
            "min-port" => self.min_port = Some(parse!("a port")),
            "max-port" => self.max_port = Some(parse!("a port")),
            "realm" => self.realm = Some(text.to_owned()),
            "user" => {
                let Some((user, password)) = text.split_once(':') else {
                    return self.skip(entry, "not NAME:PASSWORD");
                };
                if password.starts_with("0x") {
                    if crate::serve::user_key(text).is_err() {
                        return self
                            .skip(entry, format!("{user}: a 0x key that is not 32 hex digits"));
                    }
                    self.user_keys.push(text.to_owned());
                } else {
                    self.users.push(text.to_owned());
                }
            }
            "lt-cred-mech" => self.implied(entry, "edgeice always uses long-term credentials"),
            "use-auth-secret" if on => self.use_auth_secret = Some(entry.line),
            "use-auth-secret" => {}
            "static-auth-secret" => self.secrets.push(text.to_owned()),
            "cert" => self.cert = Some(text.to_owned()),
            "pkey" => self.pkey = Some(text.to_owned()),
            "denied-peer-ip" | "allowed-peer-ip" => {
                let Some(nets) = peer_rule(text) else {
                    return self.skip(entry, format!("{text:?} is not an IP, IP-IP range or CIDR"));
                };
                if name == "denied-peer-ip" {
                    self.deny.extend(nets);
                } else {
                    self.allow.extend(nets);
                }
            }
            "allow-loopback-peers" if on => {
                self.allow.extend(
                    ["127.0.0.0/8", "::1/128"].map(|n| n.parse::<IpNet>().expect("a CIDR")),
                );
            }
            "no-multicast-peers" | "no-loopback-peers" => {
                self.implied(entry, "edgeice always refuses these peers")
            }
            "total-quota" => self.total_quota = Some(parse!("a number")),
            "user-quota" => self.user_quota = Some(parse!("a number")),
            "max-bps" => match parse!("a number") {
                0 => self.implied(entry, "0 is no cap, as in edgeice by default"),
                bps => self.max_bps = Some(bps),
            },
            "no-tcp" => self.no_tcp = on,
            "no-tls" => self.no_tls = on,
            "no-dtls" => self.implied(entry, "edgeice has no DTLS"),
            "fingerprint" => self.implied(
                entry,
                "edgeice answers with FINGERPRINT when asked with one",
            ),
            "prometheus" => self.prometheus = on,
            "prometheus-port" => self.prometheus_port = Some((entry.line, parse!("a port"))),
            "prometheus-address" => {
                self.prometheus_address = Some((entry.line, parse!("an IP address")))
            }
            "no-software-attribute" => self.no_software = on,
            "permission-lifetime" => self.permission_lifetime = Some(parse!("a number of seconds")),
            "max-allocate-lifetime" => {
                self.max_allocate_lifetime = Some(parse!("a number of seconds"))
            }
            "alternate-server" | "tls-alternate-server" => {
                // coturn's default ports when none is given.
                let tls = name == "tls-alternate-server";
                let Some(address) = host_port(text, if tls { 5349 } else { 3478 }) else {
                    return self.skip(entry, format!("{text:?} is not IP[:PORT]"));
                };
                match tls {
                    true => self.tls_alternates.push(address),
                    false => self.alternates.push(address),
                }
            }
            "verbose" => self.implied(entry, "edgeice logs at info by default"),
            "Verbose" => self.log_level = Some("debug"),
            _ => self.skip(entry, reason(name)),
        }
    }
}

/// The options carried over that take a value.
const VALUED: &[&str] = &[
    "listening-ip",
    "listening-port",
    "tls-listening-port",
    "relay-ip",
    "external-ip",
    "min-port",
    "max-port",
    "realm",
    "user",
    "static-auth-secret",
    "cert",
    "pkey",
    "denied-peer-ip",
    "allowed-peer-ip",
    "total-quota",
    "user-quota",
    "max-bps",
    "prometheus-port",
    "prometheus-address",
    "permission-lifetime",
    "max-allocate-lifetime",
    "alternate-server",
    "tls-alternate-server",
];

/// coturn's `IP[:PORT]` (`[IPv6]:PORT`; a bare IPv6 address takes no
/// port) as HOST:PORT, `default_port` when none is given.
fn host_port(text: &str, default_port: u16) -> Option<String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port).to_string());
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address.to_string());
    }
    // A host name, as edgeice also takes.
    let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
    let named = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port = match port {
        "" => default_port,
        port => port.parse().ok().filter(|p| *p > 0)?,
    };
    named.then(|| format!("{host}:{port}"))
}

/// One line of TOML: `key = value`, with where it came from.
fn line(out: &mut String, key: &str, value: toml::Value, from: &str) {
    out.push_str(&format!("{key} = {value}  # coturn: {from}\n"));
}

fn strings<T: ToString>(items: &[T]) -> toml::Value {
    toml::Value::Array(
        items
            .iter()
            .map(|i| toml::Value::String(i.to_string()))
            .collect(),
    )
}

/// Converts coturn's configuration `text` (read from `source`) to
/// `edgeice serve` TOML.
pub fn convert(text: &str, source: &str) -> Conversion {
    let mut g = Gathered::default();
    for entry in entries(text) {
        g.read(&entry);
    }
    let mut out = format!(
        "# edgeice serve configuration, converted from coturn's {source}\n\
         # by `edgeice config from-coturn`. Check it with:\n\
         #   edgeice serve --config FILE --check-config\n\n"
    );
    // coturn listens on every address when given none.
    let ips: Vec<IpAddr> = if g.listening_ips.is_empty() {
        vec![[0u8; 4].into(), [0u16; 8].into()]
    } else {
        // coturn would fail to bind one twice: each once.
        let mut ips = g.listening_ips.clone();
        let mut seen = std::collections::HashSet::new();
        ips.retain(|ip| seen.insert(*ip));
        ips
    };
    let port = g.port.unwrap_or(3478);
    if g.port.is_some() || !g.listening_ips.is_empty() {
        let listen: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        line(
            &mut out,
            "listen",
            strings(&listen),
            "listening-ip, listening-port",
        );
    }
    if g.no_tcp {
        line(&mut out, "no-tcp", toml::Value::Boolean(true), "no-tcp");
    }
    match (&g.cert, &g.pkey) {
        (Some(cert), Some(pkey)) if !g.no_tls => {
            let tls_port = g.tls_port.unwrap_or(5349);
            let listen: Vec<SocketAddr> = ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, tls_port))
                .collect();
            line(
                &mut out,
                "tls-listen",
                strings(&listen),
                "listening-ip, tls-listening-port",
            );
            line(
                &mut out,
                "tls-cert",
                toml::Value::String(cert.clone()),
                "cert",
            );
            line(
                &mut out,
                "tls-key",
                toml::Value::String(pkey.clone()),
                "pkey",
            );
        }
        (Some(_), None) | (None, Some(_)) if !g.no_tls => {
            g.skipped.push(Skipped {
                line: 0,
                option: "cert/pkey".into(),
                why: "TLS needs both a certificate and its key: no TLS listener".into(),
            });
        }
        (Some(_), Some(_)) => g.skipped.push(Skipped {
            line: 0,
            option: "cert, pkey, tls-listening-port".into(),
            why: "no-tls is set: no TLS listener".into(),
        }),
        (None, None) if g.tls_port.is_some() && !g.no_tls => g.skipped.push(Skipped {
            line: 0,
            option: "tls-listening-port".into(),
            why: "no cert and pkey: no TLS listener (as in coturn)".into(),
        }),
        _ => {}
    }
    if !g.relay_ips.is_empty() {
        line(&mut out, "relay-ip", strings(&g.relay_ips), "relay-ip");
    }
    if !g.external_ips.is_empty() {
        line(
            &mut out,
            "external-ip",
            strings(&g.external_ips),
            "external-ip",
        );
    }
    if g.min_port.is_some() || g.max_port.is_some() {
        let (lo, hi) = (g.min_port.unwrap_or(49152), g.max_port.unwrap_or(65535));
        let ports = toml::Value::String(format!("{lo}-{hi}"));
        line(&mut out, "relay-ports", ports, "min-port, max-port");
    }
    if let Some(realm) = &g.realm {
        line(
            &mut out,
            "realm",
            toml::Value::String(realm.clone()),
            "realm",
        );
    }
    if !g.users.is_empty() {
        line(&mut out, "user", strings(&g.users), "user");
    }
    if !g.user_keys.is_empty() {
        let from = "user (0x keys: valid only for the realm they were made with)";
        line(&mut out, "user-key", strings(&g.user_keys), from);
    }
    match (g.use_auth_secret, g.secrets.is_empty()) {
        (_, false) => line(
            &mut out,
            "auth-secret",
            strings(&g.secrets),
            "use-auth-secret, static-auth-secret",
        ),
        (Some(at), true) => g.skipped.push(Skipped {
            line: at,
            option: "use-auth-secret".into(),
            why: "its secrets are in coturn's database: give them with auth-secret-file".into(),
        }),
        (None, true) => {}
    }
    if !g.allow.is_empty() {
        let from = "allowed-peer-ip, allow-loopback-peers (ranges as CIDRs)";
        line(&mut out, "allow-peer", strings(&g.allow), from);
    }
    if !g.deny.is_empty() {
        line(
            &mut out,
            "deny-peer",
            strings(&g.deny),
            "denied-peer-ip (ranges as CIDRs)",
        );
    }
    let quota = |out: &mut String, g: &mut Gathered, n: Option<u64>, key: &str, from: &str| match n
    {
        Some(0) => g.skipped.push(Skipped {
            line: 0,
            option: from.into(),
            why: format!("0 is no limit in coturn; edgeice keeps its default {key} (see --help)"),
        }),
        Some(n) => line(
            out,
            key,
            toml::Value::Integer(n.min(i64::MAX as u64) as i64),
            from,
        ),
        None => {}
    };
    let (total, per_user) = (g.total_quota, g.user_quota);
    quota(&mut out, &mut g, total, "max-allocations", "total-quota");
    quota(
        &mut out,
        &mut g,
        per_user,
        "max-allocations-per-user",
        "user-quota",
    );
    if let Some(bps) = g.max_bps.filter(|b| *b > 0) {
        // coturn caps each direction alone, edgeice both together: the
        // same number is never looser than coturn was.
        let from = "max-bps (coturn: each direction; edgeice: both together)";
        line(
            &mut out,
            "max-bytes-per-second",
            toml::Value::Integer(bps.min(i64::MAX as u64) as i64),
            from,
        );
    }
    if let Some(seconds) = g.permission_lifetime {
        let v = toml::Value::Integer(seconds.min(i64::MAX as u64) as i64);
        line(&mut out, "permission-lifetime", v, "permission-lifetime");
    }
    if let Some(seconds) = g.max_allocate_lifetime {
        let v = toml::Value::Integer(seconds.min(i64::MAX as u64) as i64);
        line(
            &mut out,
            "max-allocate-lifetime",
            v,
            "max-allocate-lifetime",
        );
    }
    if !g.alternates.is_empty() || !g.tls_alternates.is_empty() {
        // coturn redirects every Allocate when it has alternate servers:
        // a threshold of 0 does the same; without it, edgeice redirects
        // only while it drains or is full.
        out.push_str(
            "# remove redirect-above to serve here and redirect only while draining or full\n",
        );
        let from = "alternate-server (coturn redirects every Allocate)";
        line(&mut out, "redirect-above", toml::Value::Integer(0), from);
    }
    if !g.alternates.is_empty() {
        line(
            &mut out,
            "alternate-server",
            strings(&g.alternates),
            "alternate-server",
        );
    }
    if !g.tls_alternates.is_empty() {
        let from = "tls-alternate-server";
        line(&mut out, from, strings(&g.tls_alternates), from);
    }
    if g.prometheus {
        let addr = SocketAddr::new(
            g.prometheus_address.map_or([0u8; 4].into(), |(_, ip)| ip),
            g.prometheus_port.map_or(9641, |(_, port)| port),
        );
        let from = "prometheus, prometheus-port, prometheus-address";
        line(
            &mut out,
            "metrics",
            toml::Value::String(addr.to_string()),
            from,
        );
    } else {
        let unused = [
            g.prometheus_port.map(|(at, _)| (at, "prometheus-port")),
            g.prometheus_address
                .map(|(at, _)| (at, "prometheus-address")),
        ];
        for (at, option) in unused.into_iter().flatten() {
            g.skipped.push(Skipped {
                line: at,
                option: option.into(),
                why: "prometheus is not on".into(),
            });
        }
    }
    if g.no_software {
        line(
            &mut out,
            "no-software",
            toml::Value::Boolean(true),
            "no-software-attribute",
        );
    }
    if let Some(level) = g.log_level {
        line(
            &mut out,
            "log-level",
            toml::Value::String(level.into()),
            "Verbose",
        );
    }
    if !g.implied.is_empty() {
        out.push_str("\n# Already edgeice's behaviour:\n");
        for (at, option, how) in &g.implied {
            out.push_str(&format!("#   line {at}: {option}: {how}\n"));
        }
    }
    if !g.skipped.is_empty() {
        out.push_str("\n# Not carried over:\n");
        for skipped in &g.skipped {
            out.push_str(&format!("#   {skipped}\n"));
        }
    }
    Conversion {
        toml: out,
        skipped: g.skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_the_fewest_cidrs() {
        let cidrs = |s| {
            peer_rule(s)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(cidrs("10.0.0.0-10.255.255.255"), ["10.0.0.0/8"]);
        assert_eq!(
            cidrs("192.0.2.1-192.0.2.6"),
            [
                "192.0.2.1/32",
                "192.0.2.2/31",
                "192.0.2.4/31",
                "192.0.2.6/32"
            ]
        );
        assert_eq!(cidrs("172.17.19.110"), ["172.17.19.110/32"]);
        assert_eq!(cidrs("2001:db8::/32"), ["2001:db8::/32"]);
        assert_eq!(cidrs("::1-::2"), ["::1/128", "::2/128"]);
        assert!(peer_rule("10.0.0.9-10.0.0.1").is_none());
        assert!(peer_rule("10.0.0.1-::1").is_none());
        assert!(peer_rule("nonsense").is_none());
    }

    #[test]
    fn lines_are_read_as_coturn_reads_them() {
        let conf = "# comment\nrealm=example.org\nlistening-port 3479\nuser = \"a:b c\"\nfingerprint\n\n  no-tcp=false\n";
        let e = entries(conf);
        let got: Vec<(usize, &str, Option<&str>)> = e
            .iter()
            .map(|e| (e.line, e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "realm", Some("example.org")),
                (3, "listening-port", Some("3479")),
                (4, "user", Some("a:b c")),
                (5, "fingerprint", None),
                (7, "no-tcp", Some("false")),
            ]
        );
    }

    #[test]
    fn what_cannot_be_carried_is_listed_with_why() {
        let conf = "user=bob:0xbc807ee29df3c9ffa736523fb2c4e8ee\nuser=eve:0x12\nno-udp\nlistening-ip=not-an-ip\nuse-auth-secret\nmobility\nexternal-ip=60.70.80.91/172.17.19.101\n";
        let c = convert(conf, "t.conf");
        let skipped: Vec<String> = c.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            [
                "line 2: user: eve: a 0x key that is not 32 hex digits",
                "line 3: no-udp: edgeice always listens on UDP",
                "line 4: listening-ip: \"not-an-ip\" is not an IP address",
                "line 6: mobility: edgeice has no ICE mobility (MOBILITY-TICKET)",
                "line 5: use-auth-secret: its secrets are in coturn's database: give them with auth-secret-file",
            ]
        );
        assert!(
            c.toml
                .contains("user-key = [\"bob:0xbc807ee29df3c9ffa736523fb2c4e8ee\"]"),
            "{}",
            c.toml
        );
        assert!(
            c.toml
                .contains("external-ip = [\"60.70.80.91/172.17.19.101\"]"),
            "{}",
            c.toml
        );
        assert!(
            c.toml
                .contains("#   line 3: no-udp: edgeice always listens on UDP"),
            "{}",
            c.toml
        );
        assert!(!c.toml.contains("eve:0x12"), "{}", c.toml);
    }

    #[test]
    fn alternate_servers_are_carried_with_coturns_default_ports() {
        let conf = "alternate-server=192.0.2.7\nalternate-server=[2001:db8::7]:3479\n\
                    alternate-server 2001:db8::8\ntls-alternate-server=turn2.example.org\n\
                    udp-alternate-server=192.0.2.9:3478\nalternate-server=192.0.2.7:x\n";
        let c = convert(conf, "t.conf");
        assert!(
            c.toml.contains(
                "alternate-server = [\"192.0.2.7:3478\", \"[2001:db8::7]:3479\", \"[2001:db8::8]:3478\"]"
            ),
            "{}",
            c.toml
        );
        assert!(
            c.toml
                .contains("tls-alternate-server = [\"turn2.example.org:5349\"]"),
            "{}",
            c.toml
        );
        assert!(c.toml.contains("redirect-above = 0"), "{}", c.toml);
        let skipped: Vec<String> = c.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            [
                "line 5: udp-alternate-server: edgeice has one list for UDP and TCP clients: alternate-server",
                "line 6: alternate-server: \"192.0.2.7:x\" is not IP[:PORT]",
            ]
        );
    }
}
