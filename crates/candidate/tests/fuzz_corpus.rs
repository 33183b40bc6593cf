//! Replays the committed `candidate_line` fuzz corpus (`fuzz/corpus/`).

#[test]
fn candidate_line_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/candidate_line");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        // A fuzzer running beside the tests may replace files as we go.
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        edgeice_candidate::fuzzing::candidate_line(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}
