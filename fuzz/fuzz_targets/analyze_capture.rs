//! Frames wrapped in a pcap file, read by `edgeice analyze`'s capture
//! reader (see `edgeice_analyze::fuzzing::analyze_capture`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_analyze::fuzzing::analyze_capture(data);
});
