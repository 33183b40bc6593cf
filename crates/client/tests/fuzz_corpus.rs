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

#[test]
fn ms_turn_client_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ms_turn_client");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        edgeice_client::fuzzing::ms_turn_client(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus in {}", dir.display());
}

/// Scripts for the fuzz target (see `edgeice_client::fuzzing` for the
/// operations) reach the states they were written for, so the target does
/// get everywhere.
#[test]
fn scripts_reach_every_state() {
    use edgeice_client::AllocationState::*;
    const ANSWER: u8 = 1;
    let allocate = [ANSWER, ANSWER]; // 401, then success
    let permission = [7, 1, 0, 0, ANSWER];
    let channel = [7, 1, 0, 1, ANSWER];
    let send = [6, 1, 0, 5, b'h', b'e', b'l', b'l', b'o'];
    let channel_data = [9, 0, 3, b'a', b'b', b'c', 1];
    let data_indication = [8, 1, 0, 3, b'a', b'b', b'c'];
    let to_refresh = [5, 14, 0, ANSWER, ANSWER, ANSWER]; // 196 s later
    let release = [11, 0, ANSWER];
    let full = |first: u8| -> Vec<u8> {
        [&[first, 250][..], &allocate, &permission, &channel, &send]
            .into_iter()
            .chain([&channel_data[..], &data_indication, &to_refresh, &release])
            .flatten()
            .copied()
            .collect()
    };
    let tcp_relay: Vec<u8> = [
        &[0x11, 100][..],
        &allocate,
        &permission,
        &[7, 1, 0, 2, ANSWER],
    ]
    .into_iter()
    .chain([&[10, 9, 1, 0, 0][..], &release])
    .flatten()
    .copied()
    .collect();
    let refused = [0, 50, ANSWER, 3, 1];
    let timed_out = [2, 0, 5, 3, 1];
    let closed = [1, 60, ANSWER, ANSWER, 11, 1];
    let expired = [0, 100, ANSWER, ANSWER, 5, 11, 0, 5, 11, 0];
    for (name, script, expected) in [
        (
            "udp",
            full(0),
            &[Allocating, Allocated, Releasing, Released][..],
        ),
        (
            "tcp",
            full(1),
            &[Allocating, Allocated, Releasing, Released],
        ),
        (
            "tcp relay",
            tcp_relay,
            &[Allocating, Allocated, Releasing, Released],
        ),
        ("refused", refused.to_vec(), &[Allocating, Failed]),
        ("timed out", timed_out.to_vec(), &[Allocating, Failed]),
        ("closed", closed.to_vec(), &[Allocating, Allocated, Failed]),
        (
            "expired",
            expired.to_vec(),
            &[Allocating, Allocated, Failed],
        ),
    ] {
        assert_eq!(edgeice_client::fuzzing::run(&script), expected, "{name}");
    }
}
