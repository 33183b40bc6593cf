//! Any text as the other side's description, line by line (see
//! `edgeice_ice::fuzzing::description`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_ice::fuzzing::description(data);
});
