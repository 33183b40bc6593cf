//! `edgeice analyze`: read a call's traces, say why its media did not flow.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use edgeice_analyze::html::HtmlReport;
use edgeice_analyze::input::{self, InputError};
use edgeice_analyze::report::{JsonReport, TextReport};
use edgeice_analyze::{Analyzer, Limits, Sink, Summary};

/// Arguments of `edgeice analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Files to read: SDP, SIP traces, Lync/Skype for Business client and
    /// server logs, packet captures, webrtc-internals dumps, `edgeice call
    /// --trace` files; their formats are recognised. `-` reads standard
    /// input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,

    /// Explain every candidate line in words.
    #[arg(long)]
    explain: bool,

    /// Where the report is written (stdout if not given).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
    /// One self-contained HTML file with a diagram of each call.
    Html,
}

/// Runs the analysis; exit status 0 with no error finding, 1 with one, 2 if
/// an input cannot be read (or, a damaged capture, be read to its end).
///
/// Every file is opened and its format recognised before anything is read;
/// one that cannot be opened or is in no format read is named, the others
/// are reported all the same, and the exit status is 2. Then the files are
/// read one after the other, each call reported and dropped as soon as it
/// ends: memory does not grow with the size of the logs. `-` is standard
/// input.
pub fn run(args: AnalyzeArgs) -> ExitCode {
    let mut sources = Vec::new();
    // Files that cannot be opened or are no format read: named, and the
    // readable ones reported all the same (exit status 2).
    let mut unreadable: Vec<String> = Vec::new();
    for path in &args.files {
        let stdin = path.as_os_str() == "-";
        let name = if stdin {
            "(standard input)".to_owned()
        } else {
            path.display().to_string()
        };
        let reader: Box<dyn Read + Send> = if stdin {
            Box::new(io::stdin())
        } else {
            match File::open(path) {
                Ok(file) => Box::new(file),
                Err(e) => {
                    eprintln!("edgeice: cannot open {name}: {e}");
                    unreadable.push(format!("cannot open {name}: {e}"));
                    continue;
                }
            }
        };
        match input::open(&name, BufReader::with_capacity(1 << 18, reader)) {
            Ok(source) => sources.push((name, source)),
            Err(e) => {
                eprintln!("edgeice: {e}");
                unreadable.push(e.to_string());
            }
        }
    }
    if sources.is_empty() {
        return ExitCode::from(2);
    }
    let limits = Limits {
        // With several files, one call's messages may be spread over them.
        keep_ended: sources.len() > 1,
        ..Limits::default()
    };
    let mut analyzer = Analyzer::new(limits);
    let outcome = match args.format {
        OutputFormat::Text => {
            let mut report = TextReport::new(args.explain);
            let read = read_all(&mut analyzer, sources, &mut report, &mut unreadable);
            finish_spooled(
                analyzer,
                read,
                report,
                args.output.as_deref(),
                |r, s, out| r.finish(s, out),
            )
        }
        OutputFormat::Html => {
            let mut report = HtmlReport::default();
            let read = read_all(&mut analyzer, sources, &mut report, &mut unreadable);
            finish_spooled(
                analyzer,
                read,
                report,
                args.output.as_deref(),
                |r, s, out| r.finish(s, out),
            )
        }
        OutputFormat::Json => {
            let out = match output(args.output.as_deref()) {
                Ok(out) => out,
                Err(status) => return status,
            };
            let mut report = JsonReport::new(out);
            let read = read_all(&mut analyzer, sources, &mut report, &mut unreadable);
            // The document is closed whatever happened, so that it stays
            // valid JSON; an input error is named in it.
            let finished = analyzer.finish_all(&mut report);
            let summary = analyzer.into_summary();
            let error = read
                .as_ref()
                .err()
                .map(ToString::to_string)
                .into_iter()
                .chain(unreadable.iter().cloned())
                .chain(summary.inputs.iter().filter_map(|input| {
                    let stopped = input.read.capture.as_ref()?.stopped.as_ref()?;
                    Some(format!(
                        "{}: could not be read past byte {} (after packet {}): {}",
                        input.file, stopped.byte_offset, stopped.after_packet, stopped.reason
                    ))
                }))
                .collect::<Vec<_>>();
            let error = (!error.is_empty()).then(|| error.join("; "));
            let written = finished
                .and_then(|()| report.finish(&summary, error.as_deref()))
                .and_then(|mut out| out.flush());
            match (read, written) {
                (Err(e), _) => Err(fail_input(e)),
                (Ok(()), Err(e)) => Err(fail_output(e)),
                (Ok(()), Ok(())) => Ok(summary),
            }
        }
    };
    match outcome {
        Ok(_) if !unreadable.is_empty() => ExitCode::from(2),
        // A capture read only up to its damage: what was read is reported,
        // but the input was not all read.
        Ok(summary) if summary.read.files_stopped_early > 0 => ExitCode::from(2),
        Ok(summary) if summary.has_errors() => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(status) => status,
    }
}

/// A file (or standard input) whose format is recognised.
type Input = input::Source<BufReader<Box<dyn Read + Send>>>;

/// Reads every source to its end, each item into the analyzer. A file that
/// turns out unreadable is named in `unreadable` and the next one read; a
/// report that cannot be written stops everything.
fn read_all(
    analyzer: &mut Analyzer,
    sources: Vec<(String, Input)>,
    sink: &mut dyn Sink,
    unreadable: &mut Vec<String>,
) -> Result<(), InputError> {
    for (name, source) in sources {
        let format = source.format();
        match source.read(&mut |item| analyzer.push(item, sink).map_err(InputError::Output)) {
            // Only a file read to its end is listed as read in its format.
            Ok(()) => analyzer.input(&name, format),
            Err(e @ InputError::Output(_)) => return Err(e),
            Err(e) => {
                eprintln!("edgeice: {e}");
                unreadable.push(e.to_string());
            }
        }
    }
    Ok(())
}

/// Where the report goes: `--output FILE`, else standard output.
fn output(path: Option<&Path>) -> Result<Box<dyn Write>, ExitCode> {
    match path {
        Some(path) => match File::create(path) {
            Ok(file) => Ok(Box::new(BufWriter::with_capacity(1 << 18, file))),
            Err(e) => {
                eprintln!("edgeice: cannot write {}: {e}", path.display());
                Err(ExitCode::from(2))
            }
        },
        None => Ok(Box::new(BufWriter::with_capacity(
            1 << 18,
            io::stdout().lock(),
        ))),
    }
}

/// Finishes a report whose calls were spooled (text, HTML): nothing is
/// written if an input could not be read.
fn finish_spooled<R: Sink>(
    mut analyzer: Analyzer,
    read: Result<(), InputError>,
    mut report: R,
    path: Option<&Path>,
    write: impl FnOnce(R, &Summary, &mut dyn Write) -> io::Result<()>,
) -> Result<Summary, ExitCode> {
    read.map_err(fail_input)?;
    analyzer.finish_all(&mut report).map_err(fail_output)?;
    let summary = analyzer.into_summary();
    // Nothing was read to its end: no report, which would say "nothing
    // wrong found" about input it could not read.
    if summary.inputs.is_empty() {
        return Err(ExitCode::from(2));
    }
    let mut out = output(path)?;
    write(report, &summary, &mut out)
        .and_then(|()| out.flush())
        .map_err(fail_output)?;
    Ok(summary)
}

fn fail_input(e: InputError) -> ExitCode {
    eprintln!("edgeice: {e}");
    ExitCode::from(2)
}

fn fail_output(e: io::Error) -> ExitCode {
    eprintln!("edgeice: writing the report: {e}");
    ExitCode::from(2)
}
