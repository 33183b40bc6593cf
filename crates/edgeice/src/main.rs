//! `edgeice`: one binary, one subcommand per job. Each subcommand parses its
//! arguments, builds a protocol core from the library crates, runs an I/O
//! driver around it and renders the result; no protocol logic lives here.

mod analyze;
mod bench;
mod call;
mod config;
mod open_files;
mod probe;
mod serve;
mod server_url;
mod sessions;
mod users;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Get real-time media through NATs and firewalls.
#[derive(Debug, Parser)]
#[command(name = "edgeice", version, about)]
struct Cli {
    /// Log format on stderr: human text, or one JSON object per line for
    /// log collectors. EDGEICE_LOG sets the level (default: info). For
    /// serve, also `log-format` in its file, EDGEICE_LOG_FORMAT.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the edge: a STUN/TURN server over UDP and TCP (RFC 8489, 8656).
    Serve(Box<serve::ServeArgs>),
    /// Make a call to another machine and watch its four phases: gathering,
    /// exchange (through files or the terminal), checks, selection.
    Call(Box<call::CallArgs>),
    /// Manage the TURN users in the SQLite store that `serve` reads.
    User(users::UserArgs),
    /// Read a call's SDP, SIP traces or Lync/SfB client logs; say why its
    /// media did not flow and how to fix it.
    Analyze(analyze::AnalyzeArgs),
    /// Check STUN/TURN servers as an operator would: Binding, Allocate, and
    /// whether the relayed address is reachable from here.
    Probe(Box<probe::ProbeArgs>),
    /// Load a TURN server: allocations, relayed packets, loss, latency.
    Bench(Box<bench::BenchArgs>),
    /// Convert configuration: `from-coturn` writes the serve TOML
    /// equivalent to a coturn turnserver.conf.
    Config(config::ConfigArgs),
    /// List the live allocations of a running `edgeice serve`, or kick one
    /// (over its local admin socket).
    Sessions(sessions::SessionsArgs),
}

fn main() -> ExitCode {
    let matches = serve::command(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // serve's settings (flags, environment, file) are resolved before
    // logging starts: its log format and level are among them.
    let serve = match matches.subcommand() {
        Some(("serve", serve)) => match serve::Resolved::from_matches(serve) {
            Ok(resolved) => Some(resolved),
            Err(error) => {
                eprintln!("edgeice: {error:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let log_format = serve.as_ref().map_or(cli.log_format, |s| s.log_format);
    let filter = match serve.as_ref().and_then(serve::Resolved::log_filter) {
        Some(directives) => tracing_subscriber::EnvFilter::new(directives),
        None => tracing_subscriber::EnvFilter::try_from_env("EDGEICE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let result = match cli.command {
        Command::Serve(_) => match serve {
            Some(resolved) => serve::run(resolved),
            None => Err(anyhow::anyhow!("serve: no settings")),
        },
        Command::User(args) => users::run(args),
        Command::Analyze(args) => return analyze::run(args),
        Command::Call(args) => return call::run(*args),
        Command::Probe(args) => return probe::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Config(args) => config::run(args),
        Command::Sessions(args) => sessions::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("edgeice: {error:#}");
            ExitCode::FAILURE
        }
    }
}
