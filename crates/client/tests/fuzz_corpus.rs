//! Replays the committed `client_allocation` fuzz corpus (`fuzz/corpus/`),
//! so every CI run re-checks what the fuzzer found without needing it.

#[test]
fn client_allocation_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/client_allocation");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        // A fuzzer running beside the tests may replace files as we go.
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        edgeice_client::fuzzing::client_allocation(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}

/// The hand-written seeds reach the states they were written for.
#[test]
fn seeds_reach_their_states() {
    use edgeice_client::AllocationState::*;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/client_allocation");
    for (seed, expected) in [
        (
            "udp_full",
            &[Allocating, Allocated, Releasing, Released][..],
        ),
        ("tcp_full", &[Allocating, Allocated, Releasing, Released]),
        ("tcp_relay", &[Allocating, Allocated, Releasing, Released]),
        ("wrong_then_errors", &[Allocating, Failed]),
        ("timeouts", &[Allocating, Failed]),
    ] {
        let Ok(data) = std::fs::read(dir.join(seed)) else {
            continue; // minimised away
        };
        assert_eq!(edgeice_client::fuzzing::run(&data), expected, "{seed}");
    }
}
