//! A script of server answers, corrupted answers, raw bytes, relayed data,
//! API calls and time jumps against a TURN client allocation in every state
//! (see `edgeice_client::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_client::fuzzing::client_allocation(data);
});
