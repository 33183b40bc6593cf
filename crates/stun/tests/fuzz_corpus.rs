//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/`) through the
//! fuzz targets' bodies, so every CI run re-checks what the fuzzer found
//! without needing the fuzzer.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        // A fuzzer running beside the tests may replace files as we go.
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        body(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}

#[test]
fn parse_message_corpus() {
    replay("parse_message", edgeice_stun::fuzzing::parse_message);
}

#[test]
fn stream_decoder_corpus() {
    replay("stream_decoder", edgeice_stun::fuzzing::stream_decoder);
}
