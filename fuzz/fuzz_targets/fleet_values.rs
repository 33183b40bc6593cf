//! What `edgeice serve --redis` reads back from Redis, where anything with
//! access to that Redis may have written: the change announcements and the
//! hex of stored long-term keys and the nonce key
//! (`crates/edgeice/src/serve/fleet/keys.rs`, compiled in as it is: the
//! binary crate has no library to link).
#![no_main]

#[path = "../../crates/edgeice/src/serve/fleet/keys.rs"]
#[allow(dead_code)]
mod keys;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match keys::Change::parse(data) {
        keys::Change::User { realm, name } => {
            // What a node announces reads back as itself.
            let message = keys::Change::user_message(realm, name);
            if !realm.contains('\t') && !name.contains('\t') {
                assert_eq!(
                    keys::Change::parse(message.as_bytes()),
                    keys::Change::User { realm, name }
                );
            }
        }
        keys::Change::Secrets | keys::Change::Everything => {}
    }
    if let Some(bytes) = keys::unhex(data) {
        // Only pairs of hex digits are taken, and they are the bytes.
        assert_eq!(keys::hex(&bytes), String::from_utf8_lossy(data).to_lowercase());
    }
});
