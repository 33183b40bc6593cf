//! Any byte stream, fed whole and in chunks: the frames must agree (see
//! `edgeice_stun::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeice_stun::fuzzing::stream_decoder(data);
});
