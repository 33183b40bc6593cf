//! The body of the `candidate_line` fuzz target, kept in the crate so that
//! `cargo test` replays its committed corpus.

use crate::{Candidate, parse_remote_candidates};

/// Parses any bytes as a candidate line; what parses must write back to a
/// line that parses to the same candidate.
pub fn candidate_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(candidate) = Candidate::parse(line) {
        let written = candidate.to_string();
        let again = Candidate::parse(&written).expect("a written candidate must parse");
        assert_eq!(again, candidate);
    }
    let _ = parse_remote_candidates(line);
}
