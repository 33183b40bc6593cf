//! `edgeice analyze FILE` (text report) without the rest of the binary:
//! what `bench/analyze-log/` measures, built with only this crate's
//! dependencies (`cargo build --release -p edgeice-analyze --example
//! analyze_text`).

use std::io::{BufReader, Write};

use edgeice_analyze::input::{self, InputError};
use edgeice_analyze::report::TextReport;
use edgeice_analyze::{Analyzer, Limits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: analyze_text FILE")?;
    let file = std::fs::File::open(&path)?;
    let source = input::open(&path, BufReader::with_capacity(1 << 18, file))?;
    let mut analyzer = Analyzer::new(Limits::default());
    analyzer.input(&path, source.format());
    let mut report = TextReport::new(false);
    source.read(&mut |item| analyzer.push(item, &mut report).map_err(InputError::Output))?;
    analyzer.finish_all(&mut report)?;
    let summary = analyzer.into_summary();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    report.finish(&summary, &mut out)?;
    out.flush()?;
    Ok(())
}
