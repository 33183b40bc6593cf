//! `edgeice`: one binary, one subcommand per job. Each subcommand parses its
//! arguments, builds a protocol core from the library crates, runs an I/O
//! driver around it and renders the result; no protocol logic lives here.

mod analyze;
mod assets;
mod bench;
mod call;
mod config;
mod credentials;
mod logging;
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
    #[command(flatten)]
    log: logging::LogArgs,

    #[command(subcommand)]
    command: Command,
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
    /// Drain a running `edgeice serve`: new allocations go to its
    /// --alternate-server (or get 508), running ones go on; it exits when
    /// the last ends or at the timeout (as SIGUSR1).
    Drain(sessions::DrainArgs),
    /// Print a time-limited TURN credential for `serve --auth-secret` (the
    /// TURN REST API scheme) and a ready iceServers entry.
    Credentials(credentials::CredentialsArgs),
    /// Write the manual pages and shell completions (for packaging).
    #[command(hide = true)]
    Assets(assets::AssetsArgs),
}

fn main() -> ExitCode {
    let matches = serve::command(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // serve's settings (flags, environment, file) are resolved before
    // logging starts: its log format, level and file are among them.
    let serve = match matches.subcommand() {
        Some(("serve", serve)) => match serve::Resolved::from_matches(serve) {
            Ok(resolved) => Some(resolved),
            Err(error) => {
                logging::set_json(cli.log.log_format == logging::LogFormat::Json);
                logging::fatal(&error);
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let log = serve
        .as_ref()
        .map_or_else(|| cli.log.clone(), serve::Resolved::log_args);
    if let Err(error) = logging::init(&log) {
        logging::fatal(&error);
        return ExitCode::FAILURE;
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
        Command::Drain(args) => sessions::drain(args),
        Command::Credentials(args) => credentials::run(args),
        Command::Assets(args) => assets::run(args, Cli::command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            logging::fatal(&error);
            ExitCode::FAILURE
        }
    }
}
