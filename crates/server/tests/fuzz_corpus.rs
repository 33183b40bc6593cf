//! Replays the committed `server_core` fuzz corpus (`fuzz/corpus/`), so
//! every CI run re-checks what the fuzzer found without needing the fuzzer.

#[test]
fn server_core_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/server_core");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        // A fuzzer running beside the tests may replace files as we go.
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        edgeice_server::fuzzing::server_core(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}
