//! A script of MS-TURN answers, corrupted answers, raw bytes, Data
//! indications, API calls and time jumps against the MS-TURN client (see
//! `edgeice_client::fuzzing::ms_turn_client`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_client::fuzzing::ms_turn_client(data);
});
