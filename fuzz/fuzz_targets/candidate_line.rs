//! Any text as a candidate line: parse, write back, parse again (see
//! `edgeice_candidate::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_candidate::fuzzing::candidate_line(data);
});
