//! Any datagram: parse, decode every attribute, check integrity and
//! fingerprint, rebuild and compare (see `edgeice_stun::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_stun::fuzzing::parse_message(data);
});
