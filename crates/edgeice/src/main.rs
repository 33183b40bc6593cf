//! `edgeice`: one binary, one subcommand per job. Each subcommand parses its
//! arguments, builds a protocol core from the library crates, runs an I/O
//! driver around it and renders the result; no protocol logic lives here.

mod analyze;
mod assets;
mod bench;
mod call;
mod credentials;
mod open_files;
mod probe;
mod serve;
mod server_url;
mod users;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Get real-time media through NATs and firewalls.
#[derive(Debug, Parser)]
#[command(name = "edgeice", version, about)]
struct Cli {
    /// Log format on stderr: human text, or one JSON object per line for
    /// log collectors. EDGEICE_LOG sets the level (default: info).
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
    /// Print a time-limited TURN credential for `serve --auth-secret` (the
    /// TURN REST API scheme) and a ready iceServers entry.
    Credentials(credentials::CredentialsArgs),
    /// Write the manual pages and shell completions (for packaging).
    #[command(hide = true)]
    Assets(assets::AssetsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGEICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::User(args) => users::run(args),
        Command::Analyze(args) => return analyze::run(args),
        Command::Call(args) => return call::run(*args),
        Command::Probe(args) => return probe::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Credentials(args) => credentials::run(args),
        Command::Assets(args) => assets::run(args, Cli::command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("edgeice: {error:#}");
            ExitCode::FAILURE
        }
    }
}
