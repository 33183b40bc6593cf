//! A script of client datagrams, signed TURN requests, peer datagrams,
//! closes and time jumps against the server core (see
//! `edgeice_server::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_server::fuzzing::server_core(data);
});
