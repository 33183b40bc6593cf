//! Where log lines go and how they look: stderr or `--log-file` (reopened
//! on SIGHUP, so that logrotate works), text or one JSON object per line,
//! colour only for a person at a terminal, and a level filter that a
//! reload can change.
//!
//! The level comes from, first to last: `--log-level`, `EDGEICE_LOG`, the
//! serve config file's `log-level`, `info`. Flags beat the environment as
//! everywhere else; the config file comes last because it is the only one
//! a running server can re-read.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human text.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

/// The logging flags, shared by every subcommand (and, for `serve`,
/// settings of its file and environment too: `log-level`, `log-file`...).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format: human text, or one JSON object per line for log
    /// collectors (then stdout's lines for scripts are JSON too).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level (error, warn, info, debug, trace) or a filter such as
    /// `edgeice=debug,info`; overrides EDGEICE_LOG and the config file's
    /// `log-level` [default: info].
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_filter)]
    pub log_level: Option<String>,

    /// Write the log to this file (appended, created 0640) instead of
    /// stderr; `edgeice serve` reopens it on SIGHUP, for logrotate.
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

fn parse_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a log level or filter: {e}"))
}

/// Where the log goes: stderr, or a file that can be swapped for a new one.
#[derive(Clone)]
struct Output(Option<Arc<Mutex<File>>>);

/// One event's writer: the formatter writes each event with one call, so
/// lines from several threads do not interleave.
enum Sink<'a> {
    Stderr(io::StderrLock<'static>),
    File(MutexGuard<'a, File>),
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stderr(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stderr(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = Sink<'a>;

    fn make_writer(&'a self) -> Sink<'a> {
        match &self.0 {
            None => Sink::Stderr(io::stderr().lock()),
            Some(file) => Sink::File(lock(file)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a running process can change in its logging.
struct Control {
    filter: reload::Handle<EnvFilter, Registry>,
    /// The filter given by `--log-level` or `EDGEICE_LOG` and which of the
    /// two: a config file's level does not override it.
    fixed: Option<(&'static str, String)>,
    /// The filter in force, as written.
    current: Mutex<String>,
    file: Option<(PathBuf, Arc<Mutex<File>>)>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// Whether output is JSON, known before the log is set up, so that a
/// failure to set it up is reported in the format asked for.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn open_log(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))
}

/// Whether colour codes may be written to stderr: a terminal, and no
/// NO_COLOR (<https://no-color.org>: set and not empty).
fn colour_on_stderr() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Sets up the log as `args` say. Call once, first thing.
pub fn init(args: &LogArgs) -> Result<()> {
    JSON.store(
        args.log_format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let env = std::env::var("EDGEICE_LOG").ok().filter(|v| !v.is_empty());
    let mut bad_env = None;
    let fixed = match (&args.log_level, env) {
        (Some(level), _) => Some(("--log-level", level.clone())),
        (None, Some(env)) => match EnvFilter::try_new(&env) {
            Ok(_) => Some(("EDGEICE_LOG", env)),
            Err(e) => {
                bad_env = Some(format!("EDGEICE_LOG={env:?} ignored: {e}"));
                None
            }
        },
        (None, None) => None,
    };
    let current = fixed
        .as_ref()
        .map_or_else(|| "info".to_owned(), |(_, f)| f.clone());
    let filter = EnvFilter::try_new(&current).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter_layer, handle) = reload::Layer::new(filter);
    let file = match &args.log_file {
        Some(path) => Some((path.clone(), Arc::new(Mutex::new(open_log(path)?)))),
        None => None,
    };
    let output = Output(file.as_ref().map(|(_, f)| f.clone()));
    let json = args.log_format == LogFormat::Json;
    let ansi = !json && file.is_none() && colour_on_stderr();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(output)
        .with_ansi(ansi);
    let layer = match args.log_format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(layer)
        .try_init()
        .context("setting up the log")?;
    let _ = CONTROL.set(Control {
        filter: handle,
        fixed,
        current: Mutex::new(current),
        file,
    });
    if let Some(warning) = bad_env {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Says whether output is JSON before the log is set up (an error in the
/// settings, which the log setup needs, is reported in that format).
pub fn set_json(json: bool) {
    JSON.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the log (and stdout's lines for scripts) are JSON.
pub fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// A level filter checked and ready to take effect.
pub struct PreparedLevel {
    /// The filter, what it was written as, and the one it replaces.
    filter: Option<(EnvFilter, String, String)>,
}

impl PreparedLevel {
    /// What it changes ("log level info → debug"), if anything.
    pub fn describe(&self) -> Option<String> {
        let (_, wanted, before) = self.filter.as_ref()?;
        Some(format!("log level {before} → {wanted}"))
    }
}

/// Checks the config file's `log-level` (`None`: not set). A level that
/// `--log-level` or `EDGEICE_LOG` overrides is checked all the same, so a
/// mistake in the file is caught before it would matter.
pub fn prepare_level(level: Option<&str>) -> Result<PreparedLevel> {
    let wanted = match level {
        Some(level) => {
            EnvFilter::try_new(level).with_context(|| format!("log-level {level:?}"))?;
            level.to_owned()
        }
        None => "info".to_owned(),
    };
    let Some(control) = CONTROL.get() else {
        return Ok(PreparedLevel { filter: None });
    };
    let before = lock(&control.current).clone();
    if control.fixed.is_some() || before == wanted {
        return Ok(PreparedLevel { filter: None });
    }
    let filter = EnvFilter::try_new(&wanted).with_context(|| format!("log-level {wanted:?}"))?;
    Ok(PreparedLevel {
        filter: Some((filter, wanted, before)),
    })
}

/// Puts a prepared level in force.
pub fn apply_level(prepared: PreparedLevel) {
    let (Some((filter, wanted, _)), Some(control)) = (prepared.filter, CONTROL.get()) else {
        return;
    };
    match control.filter.reload(filter) {
        Ok(()) => *lock(&control.current) = wanted,
        Err(e) => tracing::error!("log level not changed: {e}"),
    }
}

/// Where the level in force comes from, when not from the config file.
pub fn level_override() -> Option<&'static str> {
    CONTROL.get()?.fixed.as_ref().map(|(source, _)| *source)
}

/// Opens the log file anew (after logrotate moved it): `Ok(None)` when
/// the log goes to stderr. On failure the old file stays in use.
pub fn reopen() -> Result<Option<PathBuf>> {
    let Some((path, file)) = CONTROL.get().and_then(|c| c.file.as_ref()) else {
        return Ok(None);
    };
    let new = open_log(path)?;
    *lock(file) = new;
    Ok(Some(path.clone()))
}

/// Prints a line for whoever started the process (scripts and tests read
/// the bound addresses from it) on stdout: `edgeice: LINE`, or in JSON
/// mode `{"level":"INFO","target":"edgeice","message":"LINE"}`. A closed
/// stdout is not a reason to stop.
pub fn announce(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = if json() {
        let record = serde_json::json!({
            "level": "INFO",
            "target": "edgeice",
            "message": line.to_string(),
        });
        writeln!(out, "{record}")
    } else {
        writeln!(out, "edgeice: {line}")
    };
    let _ = out.flush();
}

/// Says why the process stops, on stderr: `edgeice: ERROR`, or in JSON
/// mode one JSON object.
pub fn fatal(error: &anyhow::Error) {
    if json() {
        let record = serde_json::json!({
            "level": "ERROR",
            "target": "edgeice",
            "message": format!("{error:#}"),
        });
        eprintln!("{record}");
    } else {
        eprintln!("edgeice: {error:#}");
    }
}
