//! Datagrams, raw or signed, into an ICE agent with a remote candidate
//! (see `edgeice_ice::fuzzing::agent_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_ice::fuzzing::agent_input(data);
});
