//! Any bytes as a file given to `edgeice analyze` (see
//! `edgeice_analyze::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_analyze::fuzzing::analyze_input(data);
});
