//! Replays the committed ICE fuzz corpora (`fuzz/corpus/`).

fn replay(target: &str, body: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        // A fuzzer running beside the tests may replace files as we go.
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        body(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}

#[test]
fn ice_agent_corpus() {
    replay("ice_agent", edgeice_ice::fuzzing::agent_input);
}

#[test]
fn ice_description_corpus() {
    replay("ice_description", edgeice_ice::fuzzing::description);
}
