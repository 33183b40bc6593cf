//! Any bytes as a Chrome webrtc-internals dump, read whole and a byte at a
//! time (see `edgeice_analyze::fuzzing::webrtc_dump`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_analyze::fuzzing::webrtc_dump(data);
});
