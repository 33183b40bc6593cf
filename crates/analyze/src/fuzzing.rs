//! The body of the `analyze_input` fuzz target, kept in the crate so that
//! `cargo test` replays its committed corpus.

use crate::report::JsonReport;
use crate::stream::{Analyzer, Limits};

/// Reads any bytes as an input file and analyzes and reports them: there
/// must be no panic, whatever the bytes, and the streamed JSON report must
/// stay one valid document.
pub fn analyze_input(data: &[u8]) {
    let Ok((format, items)) = crate::input::read("fuzz", std::io::Cursor::new(data)) else {
        return;
    };
    // Streamed with tiny bounds, so that finishing calls early, evicting
    // them and capping the findings are exercised on every input.
    let mut analyzer = Analyzer::new(Limits {
        max_open_calls: 2,
        max_ending: 1,
        keep_ended: false,
        findings_per_code: 1,
    });
    let mut json = JsonReport::new(Vec::new());
    for item in items.iter().cloned() {
        let _ = analyzer.push(item, &mut json);
    }
    analyzer.input("fuzz", format);
    let summary = analyzer.finish(&mut json);
    if let Ok(bytes) = json.finish(&summary, None) {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "the streamed JSON report is not valid JSON"
        );
    }

    let analysis = crate::analyze(vec![("fuzz".to_owned(), format, items)]);
    let _ = crate::report::text(&analysis, true);
    let _ = crate::report::json(&analysis);
    let _ = crate::html::html(&analysis);
}
