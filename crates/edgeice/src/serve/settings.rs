//! The settings of `edgeice serve`, from the command line, the environment
//! and a TOML file, and where each came from.
//!
//! One definition, [`Settings`]: its clap arguments are the flags, and the
//! same arguments, found by their long names, are the keys of the file and,
//! as `EDGEICE_<NAME>` (upper snake case), the environment variables. A
//! value from the file or the environment is handed to the flag's own clap
//! parser, as `--name=value`, so the three sources cannot disagree on a
//! setting's name, type or syntax, and a new flag is a new file key and
//! variable with no other line to write. Precedence: command line, then
//! environment, then file, then default; the peer lists (`allow-peer`,
//! `deny-peer`) and the alternate servers add up over all three instead,
//! so that no source silently drops a rule another holds. Other lists given in a higher source replace
//! the lower one's.
//!
//! Why not figment, or serde on the same struct: the file and the
//! environment would then be read by serde while the command line is read
//! by clap, two parsers per setting (port ranges, rates, STUN URIs, enums)
//! to keep in step, which is the drift this replaces; figment 0.10 also
//! brings pear, its proc-macro pear_codegen, uncased and yansi into a 2-core
//! build. This needs no crate beyond `toml` (already used) and `strsim`
//! (already built for clap's suggestions).

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches};
use ipnet::IpNet;

/// Arguments of `edgeice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of settings: every flag below is a key, named like the
    /// flag (`relay-ports = "61000-65535"`, `no-tcp = true`, lists for
    /// repeatable flags: `listen = ["0.0.0.0:3478"]`), and also an
    /// environment variable, EDGEICE_ and the flag (EDGEICE_RELAY_PORTS; lists
    /// comma-separated). The command line wins over the environment, which
    /// wins over the file; peer rules add up. Also EDGEICE_CONFIG.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the effective settings, each with where it came from, check
    /// them (without binding anything) and exit: 0 when they are valid.
    #[arg(long)]
    check_config: bool,

    #[command(flatten)]
    settings: Settings,
}

/// The settings of `edgeice serve`: to add one, add a field here (its doc
/// comment is its help; its long name its file key and, upper snake case
/// after EDGEICE_, its environment variable). Booleans take `--flag`,
/// `--flag=false`, `flag = false`, `EDGEICE_FLAG=0`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on, UDP and TCP; repeat for several. Port 0 picks
    /// a free port (the chosen one is printed).
    #[arg(long = "listen", value_name = "ADDR:PORT", default_values = ["0.0.0.0:3478", "[::]:3478"])]
    pub(super) listen: Vec<SocketAddr>,

    /// Do not listen on TCP.
    #[arg(long)]
    pub(super) no_tcp: bool,

    /// Address to listen on with TLS over TCP (TURN on 443 gets through
    /// strict firewalls); repeatable. Needs --tls-cert and --tls-key.
    #[arg(long = "tls-listen", value_name = "ADDR:PORT")]
    pub(super) tls_listen: Vec<SocketAddr>,

    /// PEM certificate chain for TLS.
    #[arg(long, value_name = "PEM")]
    pub(super) tls_cert: Option<std::path::PathBuf>,

    /// PEM private key for TLS.
    #[arg(long, value_name = "PEM")]
    pub(super) tls_key: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(super) metrics: Option<SocketAddr>,

    /// The local admin socket `edgeice sessions` talks to (a Unix socket,
    /// 0600), or `none` [default: /run/edgeice/admin.sock as root, else
    /// $XDG_RUNTIME_DIR/edgeice/admin.sock, else beside the user store].
    #[arg(long, value_name = "PATH")]
    pub(super) admin_socket: Option<std::path::PathBuf>,

    /// Leave the SOFTWARE attribute out of responses.
    #[arg(long)]
    pub(super) no_software: bool,

    /// Realm of the long-term credentials.
    #[arg(long, default_value = "edgeice")]
    pub(super) realm: String,

    /// A TURN user, as NAME:PASSWORD; repeat for several.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub(super) users: Vec<String>,

    /// The SQLite user store (`edgeice user` manages it). Used by default
    /// when no --user or --auth-secret is given; re-read when it changes.
    #[arg(long = "users-db", value_name = "PATH")]
    pub(super) users_db: Option<std::path::PathBuf>,

    /// RFC 5780 NAT behaviour discovery: a second IP of this host. Each UDP
    /// listener on a specific address of that family is also served on
    /// port+1, and on this IP with both ports; Binding answers then carry
    /// OTHER-ADDRESS and honour CHANGE-REQUEST.
    #[arg(long = "alternate-ip", value_name = "IP")]
    pub(super) alternate_ip: Option<IpAddr>,

    /// Shared secret of the TURN REST API scheme (time-limited user names
    /// `expiry:name` with password base64(HMAC-SHA1(secret, user name)));
    /// repeat to accept several while rotating.
    #[arg(long = "auth-secret", value_name = "SECRET")]
    pub(super) auth_secrets: Vec<String>,

    /// A TURN user given by its long-term key rather than its password, as
    /// NAME:0xKEY (32 hex digits: MD5 of NAME:REALM:PASSWORD, tied to the
    /// realm; what coturn's `user=NAME:0x...` holds); repeatable.
    #[arg(long = "user-key", value_name = "NAME:0xKEY", value_parser = parse_user_key)]
    pub(super) user_keys: Vec<String>,

    /// A file of TURN REST API secrets, one per line (blank lines and lines
    /// starting with # are skipped; several lines: rotation), so that they
    /// do not show in `ps`; adds to --auth-secret. Repeatable.
    #[arg(long = "auth-secret-file", value_name = "FILE")]
    pub(super) auth_secret_files: Vec<std::path::PathBuf>,

    /// A file of TURN users, NAME:PASSWORD per line (blank lines and lines
    /// starting with # are skipped), so that passwords do not show in
    /// `ps`; adds to --user. Repeatable.
    #[arg(long = "user-file", value_name = "FILE")]
    pub(super) user_files: Vec<std::path::PathBuf>,

    /// IP address relay sockets bind to, one per family. By default, the
    /// listening address of that family, when it is not a wildcard.
    #[arg(long = "relay-ip", value_name = "IP")]
    pub(super) relay_ips: Vec<IpAddr>,

    /// Ports relay sockets use. Keep it clear of the system's ephemeral
    /// ports (Linux: 32768-60999).
    #[arg(long, value_name = "LO-HI", value_parser = parse_port_range, default_value = "49152-65535")]
    pub(super) relay_ports: RangeInclusive<u16>,

    /// Behind a 1:1 NAT, PUBLIC is advertised for relays bound on PRIVATE
    /// (PUBLIC alone: for the relay IP of the same family). Repeatable.
    /// `auto` asks the STUN server of --external-ip-stun instead.
    #[arg(long = "external-ip", value_name = "PUBLIC[/PRIVATE]")]
    pub(super) external_ips: Vec<String>,

    /// The STUN server `--external-ip auto` asks, outside the NAT:
    /// `stun:HOST[:PORT]` (RFC 7064), `HOST:PORT` or an IP; port 3478 if none.
    #[arg(long, value_name = "STUN-URI", value_parser = parse_stun_server)]
    pub(super) external_ip_stun: Option<SocketAddr>,

    /// Do not warn about private relay addresses: this edge serves only its
    /// own network.
    #[arg(long)]
    pub(super) private_relay_ok: bool,

    /// Relay bound channels in the kernel (XDP, or TC) on the interfaces of
    /// the listening and relay addresses: `auto` where the capabilities
    /// (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, or root) and the interfaces
    /// allow, else the sockets, saying why in one log line; `on` refuses to
    /// start without it; `off` never tries.
    #[arg(long, value_enum, default_value_t = super::kernel::FastPathMode::Auto)]
    pub(super) kernel_fast_path: super::kernel::FastPathMode,

    /// Most 401/438 answers per source IP: RATE per second on average,
    /// BURST at once (default 50/200); the rest go unanswered, so spoofed
    /// requests cannot turn the server against a victim.
    #[arg(long, value_name = "RATE/BURST", value_parser = parse_rate)]
    pub(super) challenges_per_ip: Option<(u32, u32)>,

    /// Bandwidth cap per allocation: relayed payload bytes per second, both
    /// directions together; what exceeds it is dropped.
    #[arg(long, value_name = "BYTES")]
    pub(super) max_bytes_per_second: Option<u64>,

    /// Most allocations at once, all users together (coturn's
    /// total-quota); beyond it Allocate gets 486 [default: 10000].
    #[arg(long, value_name = "N")]
    pub(super) max_allocations: Option<usize>,

    /// Most allocations at once per user name (coturn's user-quota);
    /// beyond it Allocate gets 486 [default: 1000].
    #[arg(long, value_name = "N")]
    pub(super) max_allocations_per_user: Option<usize>,

    /// Allow relaying to peers in CIDR even if refused by default
    /// (loopback, link-local, cloud metadata, this host's own addresses,
    /// private with --deny-private-peers); repeatable, adds to the config
    /// file's list.
    #[arg(long = "allow-peer", value_name = "CIDR")]
    pub(super) allow_peers: Vec<IpNet>,

    /// Refuse relaying to peers in CIDR, in whatever form it is written
    /// (an IPv6 prefix such as 64:ff9b::/96 matches IPv6 peers under it);
    /// repeatable, adds to the config file's list.
    #[arg(long = "deny-peer", value_name = "CIDR")]
    pub(super) deny_peers: Vec<IpNet>,

    /// Most TCP and TLS connections open at once, all clients together;
    /// more are closed as soon as accepted [default: half the files the
    /// open-file limit leaves, the rest being for relay sockets].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) max_tcp_connections: Option<u64>,

    /// Most TCP and TLS connections open at once from one IP address
    /// [default: 1000; raise it for an edge that serves a large site behind
    /// one NAT address].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) max_tcp_connections_per_ip: Option<u64>,

    /// Seconds a TCP or TLS connection without an allocation may go without
    /// a complete request (its first one included, however slowly the bytes
    /// come) before it is closed [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) tcp_idle_timeout: Option<u64>,

    /// Also refuse private peers (RFC 1918, CGNAT 100.64.0.0/10, ULA
    /// fc00::/7) unless --allow-peer covers them: for an edge that serves
    /// only the public internet.
    #[arg(long)]
    pub(super) deny_private_peers: bool,

    /// Most permissions (peer IPs) per allocation; beyond it
    /// CreatePermission and ChannelBind get 508 [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub(super) max_permissions_per_allocation: Option<u64>,

    /// Most channels per allocation; beyond it ChannelBind gets 508
    /// [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub(super) max_channels_per_allocation: Option<u64>,

    /// Seconds a permission lasts unless refreshed (coturn's
    /// permission-lifetime) [default: 300, RFC 8656's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) permission_lifetime: Option<u64>,

    /// Longest allocation lifetime granted, in seconds (coturn's
    /// max-allocate-lifetime); below 600 it is also the default, so that
    /// clients refresh sooner (soak tests, short-lived edges)
    /// [default: 3600, RFC 8656's].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub(super) max_allocate_lifetime: Option<u64>,

    /// Another edge to send new Allocates to (300 Try Alternate with
    /// ALTERNATE-SERVER) while this one drains or is full, as HOST:PORT of
    /// its UDP/TCP listener (coturn's alternate-server); repeatable, adds
    /// to the config file's list; one of the client's address family is
    /// chosen, round-robin. Re-read on SIGHUP.
    #[arg(long = "alternate-server", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub(super) alternate_servers: Vec<String>,

    /// As --alternate-server, for TLS clients: HOST:PORT of the other
    /// edge's TLS listener; a HOST that is a name is also sent as
    /// ALTERNATE-DOMAIN (coturn's tls-alternate-server).
    #[arg(long = "tls-alternate-server", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub(super) tls_alternate_servers: Vec<String>,

    /// With it, SIGTERM drains before exiting: new Allocates go elsewhere
    /// (or get 508), running ones go on for at most SECONDS, then what is
    /// left is cut. Also the deadline of a SIGUSR1 drain [default: SIGTERM
    /// stops at once; SIGUSR1 waits for the last allocation].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=604800))]
    pub(super) drain_timeout: Option<u64>,

    /// Allocations at which new Allocates are redirected to an
    /// --alternate-server instead of served here [default: the
    /// --max-allocations limit].
    #[arg(long, value_name = "N")]
    pub(super) redirect_above: Option<usize>,

    /// Share users, REST API secrets, the nonce key, per-user quotas and
    /// a node registry with the other edges of a fleet through this Redis:
    /// redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS.
    #[arg(long, value_name = "URL")]
    pub(super) redis: Option<String>,

    /// A file whose first line is the Redis password (AUTH), so that it
    /// shows neither in `ps` nor in the URL; replaces the URL's.
    #[arg(long, value_name = "PATH")]
    pub(super) redis_password_file: Option<std::path::PathBuf>,

    /// This edge's name in the fleet's registry (unique per edge)
    /// [default: the host name].
    #[arg(long, value_name = "ID")]
    pub(super) node_id: Option<String>,

    /// Seconds between this edge's registry heartbeats; its record lapses
    /// after three missed ones [default: 1].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub(super) fleet_heartbeat: Option<u64>,
}

/// Checks that `value` is HOST:PORT (`[v6]:PORT` for an IPv6 address);
/// names are resolved when the server starts.
fn parse_host_port(value: &str) -> Result<String, String> {
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("not HOST:PORT".to_owned());
    };
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let well_formed = match bracketed {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && !host.contains(':'),
    };
    if !well_formed {
        return Err(
            "not HOST:PORT (an IPv6 address goes in brackets: [2001:db8::1]:3478)".to_owned(),
        );
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(value.to_owned()),
        _ => Err(format!("port {port:?} is not 1-65535")),
    }
}

/// Long names of `serve`'s arguments that are not settings.
const NOT_SETTINGS: &[&str] = &["config", "check-config", "help", "version"];

/// Lists whose values from every source add up (file, environment, command
/// line, in that order) rather than the higher source replacing the lower.
pub(super) const ADDITIVE: &[&str] = &[
    "allow-peer",
    "deny-peer",
    "alternate-server",
    "tls-alternate-server",
];

/// Settings shown masked by `--check-config`; for `user`, the password.
const SECRETS: &[&str] = &["user", "user-key", "auth-secret", "redis"];

/// Variables edgeice or its tests read that are not settings of `serve`
/// (`EDGEICE_BPF_CHECK`: scripts/test.sh sets it for the whole test run,
/// so every server the tests start sees it).
const OTHER_VARIABLES: &[&str] = &[
    "EDGEICE_LOG",
    "EDGEICE_CONFIG",
    "EDGEICE_BIN",
    "EDGEICE_BPF_CHECK",
];

/// The prefix of the settings' environment variables.
const ENV_PREFIX: &str = "EDGEICE_";

/// The environment variable of the setting `key`.
pub(super) fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_uppercase().replace('-', "_"))
}

/// Adapts the command line before parsing: every boolean flag of `serve`
/// also takes a value, so that each can be unset where a higher source
/// sets it (`--no-tcp=false`); the file and the environment use the same
/// values (true/false, yes/no, on/off, 1/0).
pub fn command(cli: clap::Command) -> clap::Command {
    cli.mut_subcommand("serve", |serve| {
        serve.mut_args(|arg| {
            if !matches!(arg.get_action(), ArgAction::SetTrue) {
                return arg;
            }
            arg.action(ArgAction::Set)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .default_value("false")
                .hide_default_value(true)
                .value_name("BOOL")
                .value_parser(clap::builder::BoolishValueParser::new())
        })
    })
}

/// The `serve` command as parsed, with the global flags (`--log-format`)
/// among its arguments.
fn serve_command() -> Result<clap::Command> {
    let mut cli = command(crate::Cli::command());
    cli.build();
    cli.find_subcommand("serve")
        .cloned()
        .context("no serve command")
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nothing set it.
    Default,
    /// The TOML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// A flag.
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}

/// One setting's effective value and its sources, for `--check-config`.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The setting's key (its flag's long name).
    pub key: String,
    /// Where its values came from: one source, or several for the lists
    /// that add up.
    pub sources: Vec<Source>,
    /// Its values as given (a default's included), one per list entry.
    pub values: Vec<String>,
    bool_flag: bool,
    list: bool,
    /// The default its help gives, when it is computed rather than a value.
    default_help: Option<String>,
}

/// The settings of a run of `edgeice serve`, resolved.
#[derive(Debug)]
pub struct Resolved {
    /// The typed values.
    pub settings: Settings,
    /// `--check-config`: print, check and exit.
    pub check_config: bool,
    /// The log format (the global `--log-format`, settable here too).
    pub log_format: crate::logging::LogFormat,
    /// The log level or filter (the global `--log-level`).
    pub log_level: Option<String>,
    /// The log file (the global `--log-file`).
    pub log_file: Option<PathBuf>,
    /// `serve`'s command line as parsed, to resolve the settings again
    /// when the server reloads.
    matches: ArgMatches,
    /// Every setting, in the order of `--help`.
    pub origins: Vec<Origin>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
}

impl Resolved {
    /// Resolves the settings from `serve`'s parsed command line, the
    /// process environment and the config file it names.
    pub fn from_matches(cli: &ArgMatches) -> Result<Self> {
        let mut env = Vec::new();
        for (var, value) in std::env::vars_os() {
            let Some(var) = var.to_str().map(str::to_owned) else {
                continue;
            };
            if !var.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = value
                .into_string()
                .map_err(|_| anyhow!("{var} (environment) is not valid UTF-8"))?;
            env.push((var, value));
        }
        resolve(cli, &env)
    }

    /// The logging settings to start with. A level from the file is left
    /// out: it is put in force once the log is up (see
    /// [`Resolved::file_log_level`]), as a reload does, so that
    /// `--log-level` and EDGEICE_LOG keep precedence over it.
    pub fn log_args(&self) -> crate::logging::LogArgs {
        crate::logging::LogArgs {
            log_format: self.log_format,
            log_level: self
                .log_level
                .clone()
                .filter(|_| !self.log_level_from_file()),
            log_file: self.log_file.clone(),
        }
    }

    /// The config file's `log-level`, when that is where the level comes
    /// from.
    pub fn file_log_level(&self) -> Option<&str> {
        self.log_level
            .as_deref()
            .filter(|_| self.log_level_from_file())
    }

    fn log_level_from_file(&self) -> bool {
        self.origin("log-level")
            .is_some_and(|o| matches!(o.sources[..], [Source::File(_)]))
    }

    /// The settings resolved again from the same command line and
    /// environment, and the config file and secret files as they are now:
    /// what a reload puts in force.
    pub fn again(&self) -> Result<Self> {
        Self::from_matches(&self.matches)
    }

    /// Warns about secrets given on the command line: every user of the
    /// host sees them in `ps`.
    pub fn warn_exposed_secrets(&self) {
        for key in ["user", "auth-secret"] {
            if self
                .origin(key)
                .is_some_and(|o| o.sources.contains(&Source::CommandLine))
            {
                tracing::warn!(
                    "--{key} on the command line shows in `ps` to every user of this host; \
                     --{key}-file (or the config file) keeps it out"
                );
            }
        }
    }

    /// Where `key` came from and its values.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.iter().find(|o| o.key == key)
    }

    /// The effective settings as TOML, each line with its source; secrets
    /// masked. What `--check-config` prints.
    pub fn render(&self) -> String {
        let mut out = String::from("# edgeice serve: effective settings (secrets masked)\n");
        if let Some(file) = &self.file {
            out.push_str(&format!("# config file: {}\n", file.display()));
        }
        for origin in &self.origins {
            let sources: Vec<String> = origin.sources.iter().map(ToString::to_string).collect();
            let sources = sources.join(" + ");
            if origin.values.is_empty() {
                let default = match &origin.default_help {
                    Some(default) => format!(", default {default}"),
                    None => String::new(),
                };
                out.push_str(&format!("# {}: not set{default}\n", origin.key));
                continue;
            }
            let shown: Vec<String> = origin
                .values
                .iter()
                .map(|v| render_value(&origin.key, v, origin.bool_flag))
                .collect();
            let value = if origin.list {
                format!("[{}]", shown.join(", "))
            } else {
                shown.join(", ")
            };
            out.push_str(&format!("{} = {value}  # {sources}\n", origin.key));
        }
        out
    }
}

/// A value as TOML: booleans and integers bare, the rest quoted; secrets
/// masked.
fn render_value(key: &str, value: &str, bool_flag: bool) -> String {
    if SECRETS.contains(&key) {
        let masked = match value.split_once(':') {
            Some((name, _)) if key.starts_with("user") => format!("{name}:***"),
            _ => "***".to_owned(),
        };
        return toml::Value::String(masked).to_string();
    }
    if bool_flag {
        use clap::builder::TypedValueParser;
        if let Ok(b) = clap::builder::BoolishValueParser::new().parse_ref(
            &clap::Command::new("x"),
            None,
            std::ffi::OsStr::new(value),
        ) {
            return b.to_string();
        }
    }
    match value.parse::<i64>() {
        Ok(n) => n.to_string(),
        Err(_) => toml::Value::String(value.to_owned()).to_string(),
    }
}

/// The `[default: ...]` of an argument's help.
fn help_default(arg: &Arg) -> Option<String> {
    let help = arg.get_long_help().or(arg.get_help())?.to_string();
    let (_, rest) = help.split_once("[default: ")?;
    let (default, _) = rest.split_once(']')?;
    Some(default.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The long name of a setting.
fn key_of(arg: &Arg) -> Option<&str> {
    arg.get_long().filter(|l| !NOT_SETTINGS.contains(l))
}

/// A boolean flag, as [`command`] made it.
fn is_bool(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set)
        && arg.get_num_args().is_some_and(|n| n.min_values() == 0)
}

fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// The nearest of `names` to `wrong`, as ", did you mean NAME?".
fn suggestion<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| (strsim::damerau_levenshtein(wrong, n), n))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| format!("; did you mean {n}?"))
        .unwrap_or_default()
}

/// Checks one value of `arg` with the flag's own parser; the reason it is
/// refused if it is.
fn check_value(arg: &Arg, key: &str, value: &str) -> std::result::Result<(), String> {
    let one = clap::Command::new("serve")
        .no_binary_name(true)
        .arg(arg.clone().global(false).required(false));
    match one.try_get_matches_from([format!("--{key}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => Err(reason(&e, arg)),
    }
}

/// What a clap error says about a value, without clap's framing.
fn reason(e: &clap::Error, arg: &Arg) -> String {
    if let Some(inner) = std::error::Error::source(e) {
        return inner.to_string();
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_owned())
        .collect();
    if !possible.is_empty() {
        return format!("expected one of: {}", possible.join(", "));
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}

/// The values of each key of the config file at `path`, checked.
fn read_file(path: &Path, settings: &[&Arg]) -> Result<Vec<(String, Vec<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow!("in the config file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let Some(arg) = settings.iter().find(|a| key_of(a) == Some(key.as_str())) else {
            let hint = suggestion(&key, settings.iter().filter_map(|a| key_of(a)));
            bail!(
                "{key} in {}: not a setting of edgeice serve{hint}",
                path.display()
            );
        };
        let scalar = |v: &toml::Value| -> Option<String> {
            match v {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                toml::Value::Float(f) => Some(f.to_string()),
                toml::Value::Boolean(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let values = match &value {
            toml::Value::Array(items) if is_list(arg) => items.iter().map(scalar).collect(),
            toml::Value::Array(_) => None,
            one => scalar(one).map(|v| vec![v]),
        };
        let Some(values) = values else {
            let expected = if is_list(arg) {
                "a value or a list of values"
            } else {
                "one value (a string, number or boolean)"
            };
            bail!("{key} = {value} in {}: expected {expected}", path.display());
        };
        for v in &values {
            check_value(arg, &key, v).map_err(|why| {
                let shown = render_value(&key, v, false);
                anyhow!("{key} = {shown} in {}: {why}", path.display())
            })?;
        }
        out.push((key, values));
    }
    Ok(out)
}

/// The values one source gives a setting.
type Layer = (Source, Vec<OsString>);

/// Resolves the settings from the parsed command line `cli`, the
/// environment variables `env` (those starting EDGEICE_) and the file.
fn resolve(cli: &ArgMatches, env: &[(String, String)]) -> Result<Resolved> {
    let command = serve_command()?;
    let settings: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| key_of(a).is_some())
        .collect();
    let given = |id: &str| cli.value_source(id) == Some(ValueSource::CommandLine);

    let file = match cli.get_one::<PathBuf>("config") {
        Some(path) => Some(path.clone()),
        None => env
            .iter()
            .find(|(var, _)| var == "EDGEICE_CONFIG")
            .map(|(_, path)| PathBuf::from(path)),
    };
    let from_file = match &file {
        Some(path) => read_file(path, &settings)?,
        None => Vec::new(),
    };

    let mut from_env: Vec<(String, String, Vec<String>)> = Vec::new();
    for (var, value) in env {
        if OTHER_VARIABLES.contains(&var.as_str()) {
            continue;
        }
        let Some(arg) = settings
            .iter()
            .find(|a| key_of(a).is_some_and(|k| env_name(k) == *var))
        else {
            let names: Vec<String> = settings
                .iter()
                .filter_map(|a| key_of(a))
                .map(env_name)
                .collect();
            let hint = suggestion(var, names.iter().map(String::as_str));
            bail!("{var} (environment) is not a setting of edgeice serve{hint}");
        };
        let key = key_of(arg).unwrap_or_default().to_owned();
        let values: Vec<String> = if is_list(arg) {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        } else {
            vec![value.clone()]
        };
        for v in &values {
            check_value(arg, &key, v).map_err(|why| {
                let shown = if SECRETS.contains(&key.as_str()) {
                    "***"
                } else {
                    value
                };
                anyhow!("{var}={shown} (environment): {why}")
            })?;
        }
        from_env.push((key, var.clone(), values));
    }

    let mut argv: Vec<OsString> = vec!["serve".into()];
    let mut layers: Vec<(String, Vec<Layer>)> = Vec::new();
    for arg in &settings {
        let Some(key) = key_of(arg) else { continue };
        let id = arg.get_id().as_str();
        let mut present: Vec<Layer> = Vec::new();
        if let Some((_, values)) = from_file.iter().find(|(k, _)| k == key) {
            let source = Source::File(file.clone().unwrap_or_default());
            present.push((source, values.iter().map(OsString::from).collect()));
        }
        if let Some((_, var, values)) = from_env.iter().find(|(k, _, _)| k == key) {
            let values = values.iter().map(OsString::from).collect();
            present.push((Source::Env(var.clone()), values));
        }
        if given(id) {
            let values = cli
                .get_raw(id)
                .map(|raw| raw.map(ToOwned::to_owned).collect())
                .unwrap_or_default();
            present.push((Source::CommandLine, values));
        }
        // The highest source alone, but for the lists that add up.
        if !ADDITIVE.contains(&key) && present.len() > 1 {
            present.drain(..present.len() - 1);
        }
        for (_, values) in &present {
            for value in values {
                let mut flag = OsString::from(format!("--{key}="));
                flag.push(value);
                argv.push(flag);
            }
        }
        layers.push((key.to_owned(), present));
    }
    let matches = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(|e| anyhow!("{}", e.to_string().trim_start_matches("error: ").trim()))?;
    let settings_typed = Settings::from_arg_matches(&matches).map_err(|e| anyhow!("{e}"))?;
    let log_format = *matches
        .get_one::<crate::logging::LogFormat>("log_format")
        .context("no log format")?;
    let log_level = matches.get_one::<String>("log_level").cloned();
    let log_file = matches.get_one::<PathBuf>("log_file").cloned();

    let mut origins = Vec::new();
    for (key, present) in layers {
        let Some(arg) = settings.iter().find(|a| key_of(a) == Some(key.as_str())) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let sources = if present.is_empty() {
            vec![Source::Default]
        } else {
            present.into_iter().map(|(s, _)| s).collect()
        };
        origins.push(Origin {
            key,
            sources,
            values,
            bool_flag: is_bool(arg),
            list: is_list(arg),
            default_help: help_default(arg),
        });
    }
    let resolved = Resolved {
        settings: settings_typed,
        check_config: cli.get_flag("check_config"),
        log_format,
        log_level,
        log_file,
        matches: cli.clone(),
        origins,
        file,
    };
    resolved.settings.check()?;
    Ok(resolved)
}

impl Settings {
    /// Checks what no single setting's parser can: settings that need each
    /// other.
    fn check(&self) -> Result<()> {
        if !self.tls_listen.is_empty() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            bail!("tls-listen needs both tls-cert and tls-key");
        }
        Ok(())
    }

    /// The realm.
    pub(super) fn realm(&self) -> &str {
        &self.realm
    }

    /// The relay ports.
    pub(super) fn relay_ports(&self) -> RangeInclusive<u16> {
        self.relay_ports.clone()
    }

    /// The REST API secrets: `--auth-secret`'s and those of the files.
    pub(super) fn auth_secrets(&self) -> Result<Vec<String>> {
        let mut secrets = self.auth_secrets.clone();
        for path in &self.auth_secret_files {
            secrets.extend(read_secret_lines(path, "auth-secret-file")?);
        }
        Ok(secrets)
    }

    /// The users as NAME:PASSWORD: `--user`'s and those of the files.
    pub(super) fn users(&self) -> Result<Vec<String>> {
        let mut users = self.users.clone();
        for path in &self.user_files {
            users.extend(read_secret_lines(path, "user-file")?);
        }
        Ok(users)
    }
}

/// Reads a file of secrets: one per line, surrounding spaces trimmed, blank
/// lines and lines starting with # skipped. Warns when every user of the
/// host may read it.
pub(super) fn read_secret_lines(path: &Path, key: &str) -> Result<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{key} {}: cannot read it", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            "{key} {}: every user of this host can read it; `chmod o-r` it (0600 or 0640)",
            path.display()
        );
    }
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        bail!("{key} {}: no secret in it", path.display());
    }
    Ok(lines)
}

/// Reads a STUN server as `--external-ip-stun` takes it: `stun:HOST[:PORT]`
/// (RFC 7064), `HOST:PORT`, or an IP alone; the port defaults to 3478. A
/// host name is resolved once, at start-up.
fn parse_stun_server(s: &str) -> Result<SocketAddr, String> {
    let url = crate::server_url::ServerUrl::parse(s)?;
    if url.scheme != crate::server_url::Scheme::Stun {
        return Err(format!("{s}: a stun: server is needed here"));
    }
    url.resolve()
}

fn parse_rate(s: &str) -> Result<(u32, u32), String> {
    let (rate, burst) = s.split_once('/').unwrap_or((s, s));
    let rate = rate.trim().parse().map_err(|e| format!("{rate}: {e}"))?;
    let burst = burst.trim().parse().map_err(|e| format!("{burst}: {e}"))?;
    Ok((rate, burst))
}

fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or("expected LO-HI, such as 61000-65535")?;
    let lo: u16 = lo.trim().parse().map_err(|e| format!("{lo}: {e}"))?;
    let hi: u16 = hi.trim().parse().map_err(|e| format!("{hi}: {e}"))?;
    if lo == 0 || lo > hi {
        return Err(format!("{lo}-{hi} is not a range of ports"));
    }
    Ok(lo..=hi)
}

/// A user's long-term key, NAME:0xKEY, as its name and 16 bytes.
pub(crate) fn user_key(s: &str) -> Result<(&str, [u8; 16]), String> {
    let (name, hex) = s
        .split_once(':')
        .ok_or("expected NAME:0xKEY (32 hex digits)")?;
    let hex = hex.strip_prefix("0x").ok_or("the key must start with 0x")?;
    if name.is_empty() || hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected NAME:0xKEY, the key 32 hex digits".to_owned());
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok((name, key))
}

fn parse_user_key(s: &str) -> Result<String, String> {
    user_key(s).map(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{parse_host_port, parse_stun_server};

    #[test]
    fn alternate_servers_are_host_and_port_with_ipv6_in_brackets() {
        for good in [
            "192.0.2.7:3478",
            "[2001:db8::7]:3478",
            "turn2.example.org:5349",
        ] {
            assert_eq!(parse_host_port(good), Ok(good.to_owned()));
        }
        for bad in [
            "192.0.2.7",
            "2001:db8::7:3478",
            "[nonsense]:3478",
            ":3478",
            "host:0",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stun_servers_are_read_as_uris_or_addresses() {
        let read = |s| parse_stun_server(s).map(|a| a.to_string());
        assert_eq!(read("stun:192.0.2.1"), Ok("192.0.2.1:3478".into()));
        assert_eq!(read("stun:192.0.2.1:3479"), Ok("192.0.2.1:3479".into()));
        assert_eq!(read("192.0.2.1:19302"), Ok("192.0.2.1:19302".into()));
        assert_eq!(read("stun:[2001:db8::1]"), Ok("[2001:db8::1]:3478".into()));
        assert_eq!(read("[2001:db8::1]:5349"), Ok("[2001:db8::1]:5349".into()));
        assert_eq!(read("2001:db8::1"), Ok("[2001:db8::1]:3478".into()));
        assert!(read("stun:").is_err());
    }
}

#[cfg(test)]
mod drift {
    //! Every setting is a flag, a file key and an environment variable:
    //! enumerated from clap's own list, so a new flag is covered untested.
    use super::*;

    /// A valid value for a setting, from its value name or choices.
    fn sample(arg: &Arg) -> String {
        if is_bool(arg) {
            return "true".to_owned();
        }
        let choices = arg.get_possible_values();
        if let Some(last) = choices.last() {
            return last.get_name().to_owned();
        }
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        match name.as_str() {
            "ADDR:PORT" => "127.0.0.1:3478",
            "HOST:PORT" => "192.0.2.7:3478",
            "PEM" | "FILE" | "PATH" => "/nonexistent/file",
            "IP" => "127.0.0.1",
            "NAME:PASSWORD" => "alice:secret",
            "NAME:0xKEY" => "bob:0xbc807ee29df3c9ffa736523fb2c4e8ee",
            "SECRET" => "secret",
            "LO-HI" => "61000-65535",
            "PUBLIC[/PRIVATE]" => "192.0.2.1/127.0.0.1",
            "STUN-URI" => "stun:192.0.2.1",
            "RATE/BURST" => "5/10",
            "N" | "SECONDS" | "BYTES" => "7",
            "CIDR" => "10.0.0.0/8",
            "FILTER" | "LEVEL" => "debug",
            "BOOL" => "true",
            "URL" => "redis://127.0.0.1:6379/",
            "ID" => "node-1",
            _ if arg.get_id() == "realm" => "sample",
            other => panic!(
                "no sample value for --{} (value name {other}): add one here",
                arg.get_long().unwrap_or_default()
            ),
        }
        .to_owned()
    }

    fn settings() -> Vec<Arg> {
        serve_command()
            .unwrap()
            .get_arguments()
            .filter(|a| key_of(a).is_some())
            .cloned()
            .collect()
    }

    fn resolve_with(argv: &[String], env: &[(String, String)]) -> Resolved {
        let matches = command(crate::Cli::command())
            .try_get_matches_from(
                ["edgeice", "serve"]
                    .into_iter()
                    .map(String::from)
                    .chain(argv.iter().cloned()),
            )
            .unwrap();
        let serve = matches.subcommand_matches("serve").unwrap();
        resolve(serve, env).unwrap()
    }

    fn assert_every_setting_from(resolved: &Resolved, source: impl Fn(&str) -> Source) {
        for arg in settings() {
            let key = key_of(&arg).unwrap();
            let origin = resolved.origin(key).unwrap();
            assert_eq!(origin.sources, vec![source(key)], "{key}");
            assert_eq!(origin.values, vec![sample(&arg)], "{key}");
        }
    }

    #[test]
    fn every_setting_is_a_file_key() {
        let path = std::env::temp_dir().join(format!("edgeice-drift-{}.toml", std::process::id()));
        let text: String = settings()
            .iter()
            .map(|a| format!("{} = {:?}\n", key_of(a).unwrap(), sample(a)))
            .collect();
        std::fs::write(&path, text).unwrap();
        let resolved = resolve_with(&["--config".into(), path.display().to_string()], &[]);
        assert_every_setting_from(&resolved, |_| Source::File(path.clone()));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn every_setting_is_an_environment_variable() {
        let env: Vec<(String, String)> = settings()
            .iter()
            .map(|a| (env_name(key_of(a).unwrap()), sample(a)))
            .collect();
        let resolved = resolve_with(&[], &env);
        assert_every_setting_from(&resolved, |key| Source::Env(env_name(key)));
    }

    #[test]
    fn every_setting_is_a_flag() {
        let argv: Vec<String> = settings()
            .iter()
            .map(|a| format!("--{}={}", key_of(a).unwrap(), sample(a)))
            .collect();
        let resolved = resolve_with(&argv, &[]);
        assert_every_setting_from(&resolved, |_| Source::CommandLine);
    }

    #[test]
    fn every_boolean_can_be_unset_by_a_higher_source() {
        let booleans: Vec<String> = settings()
            .iter()
            .filter(|a| is_bool(a))
            .map(|a| key_of(a).unwrap().to_owned())
            .collect();
        assert!(booleans.len() >= 4, "{booleans:?}");
        let env: Vec<(String, String)> =
            booleans.iter().map(|k| (env_name(k), "1".into())).collect();
        let argv: Vec<String> = booleans.iter().map(|k| format!("--{k}=false")).collect();
        let resolved = resolve_with(&argv, &env);
        for key in &booleans {
            let origin = resolved.origin(key).unwrap();
            assert_eq!(origin.sources, vec![Source::CommandLine], "{key}");
            assert_eq!(origin.values, vec!["false".to_owned()], "{key}");
        }
        let set = resolve_with(&[], &env);
        assert!(set.settings.no_tcp && set.settings.deny_private_peers);
    }
}
