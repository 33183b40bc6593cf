//! `edgeice analyze`: read a call's traces, say why its media did not flow.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use edgeice_analyze::{analyze, input, report};

/// Arguments of `edgeice analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Files to read: SDP, SIP traces, Lync/Skype for Business client logs
    /// (.uccapilog); their formats are recognised.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,

    /// Explain every candidate line in words.
    #[arg(long)]
    explain: bool,

    /// Where `--format html` writes its report (stdout if not given).
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
/// an input cannot be read.
pub fn run(args: AnalyzeArgs) -> ExitCode {
    let mut read = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("edgeice: cannot open {name}: {e}");
                return ExitCode::from(2);
            }
        };
        match input::read(&name, BufReader::new(file)) {
            Ok((format, items)) => read.push((name, format, items)),
            Err(e) => {
                eprintln!("edgeice: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let analysis = analyze(read);
    let rendered = match args.format {
        OutputFormat::Text => report::text(&analysis, args.explain),
        OutputFormat::Json => report::json(&analysis) + "\n",
        OutputFormat::Html => edgeice_analyze::html::html(&analysis),
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, rendered) {
                eprintln!("edgeice: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => print!("{rendered}"),
    }
    if analysis.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
