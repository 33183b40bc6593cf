//! The body of the `analyze_input` fuzz target, kept in the crate so that
//! `cargo test` replays its committed corpus.

/// Reads any bytes as an input file and analyzes and reports them: there
/// must be no panic, whatever the bytes.
pub fn analyze_input(data: &[u8]) {
    if let Ok((format, items)) = crate::input::read("fuzz", std::io::Cursor::new(data)) {
        let analysis = crate::analyze(vec![("fuzz".to_owned(), format, items)]);
        let _ = crate::report::text(&analysis, true);
        let _ = crate::report::json(&analysis);
    }
}
