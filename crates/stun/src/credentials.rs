//! Credentials: string preparation and key derivation (RFC 8489 §9).
//!
//! Short-term credentials (ICE) key the HMAC with the prepared password.
//! Long-term credentials (TURN) key it with a hash of
//! `username:realm:password`, MD5 or SHA-256 as PASSWORD-ALGORITHM says.

use std::borrow::Cow;

use md5::{Digest, Md5};
use precis_profiles::OpaqueString;
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use sha2::Sha256;

use crate::attribute::PasswordAlgorithm;
use crate::integrity::IntegrityKey;

/// Why a credential could not be prepared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The string contains characters its preparation profile forbids.
    #[error("{profile} rejects this string: {reason}")]
    Prohibited {
        /// The profile that rejected the string.
        profile: &'static str,
        /// What it said.
        reason: String,
    },
    /// PASSWORD-ALGORITHM names an algorithm edgeice does not implement.
    #[error("unknown password algorithm {0:#06x}")]
    UnknownAlgorithm(u16),
}

/// How user names, realms and passwords are prepared before hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Preparation {
    /// The OpaqueString profile of PRECIS (RFC 8265), as RFC 8489 requires.
    #[default]
    OpaqueString,
    /// SASLprep (RFC 4013), as RFC 5389 required; what most deployed
    /// clients and servers (coturn among them) still do, and what the
    /// RFC 5769 test vectors use.
    SaslPrep,
    /// The bytes as given.
    None,
}

impl Preparation {
    /// Prepares `s` with this profile.
    pub fn prepare<'a>(self, s: &'a str) -> Result<Cow<'a, str>, CredentialError> {
        match self {
            Preparation::OpaqueString => {
                OpaqueString::enforce(s).map_err(|e| CredentialError::Prohibited {
                    profile: "OpaqueString",
                    reason: e.to_string(),
                })
            }
            Preparation::SaslPrep => {
                stringprep::saslprep(s).map_err(|e| CredentialError::Prohibited {
                    profile: "SASLprep",
                    reason: e.to_string(),
                })
            }
            Preparation::None => Ok(Cow::Borrowed(s)),
        }
    }
}

/// The key for short-term credentials: the prepared password.
pub fn short_term_key(password: &str, prep: Preparation) -> Result<IntegrityKey, CredentialError> {
    Ok(IntegrityKey::new(prep.prepare(password)?.as_bytes()))
}

/// The raw long-term key: `H(username ":" realm ":" password)` with `H` the
/// algorithm PASSWORD-ALGORITHM names (MD5 when absent). Username is used as
/// sent; realm (for OpaqueString) and password are prepared. Servers store
/// this rather than the password, as coturn's `turnadmin -k` does.
pub fn long_term_key_bytes(
    username: &str,
    realm: &str,
    password: &str,
    algorithm: u16,
    prep: Preparation,
) -> Result<Vec<u8>, CredentialError> {
    let realm = match prep {
        // RFC 5389 did not prepare the realm; RFC 8489 does.
        Preparation::SaslPrep => Cow::Borrowed(realm),
        _ => prep.prepare(realm)?,
    };
    let password = prep.prepare(password)?;
    let parts = [
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ];
    Ok(match algorithm {
        PasswordAlgorithm::MD5 => digest::<Md5>(&parts),
        PasswordAlgorithm::SHA256 => digest::<Sha256>(&parts),
        other => return Err(CredentialError::UnknownAlgorithm(other)),
    })
}

/// The long-term [`IntegrityKey`]; see [`long_term_key_bytes`].
pub fn long_term_key(
    username: &str,
    realm: &str,
    password: &str,
    algorithm: u16,
    prep: Preparation,
) -> Result<IntegrityKey, CredentialError> {
    long_term_key_bytes(username, realm, password, algorithm, prep).map(|k| IntegrityKey::new(&k))
}

/// USERHASH: `SHA-256(OpaqueString(username) ":" OpaqueString(realm))`
/// (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> Result<[u8; 32], CredentialError> {
    let username = Preparation::OpaqueString.prepare(username)?;
    let realm = Preparation::OpaqueString.prepare(realm)?;
    let mut hash = Sha256::new();
    hash.update(username.as_bytes());
    hash.update(b":");
    hash.update(realm.as_bytes());
    Ok(hash.finalize().into())
}

fn digest<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut hash = D::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_string_maps_wide_spaces_and_rejects_controls() {
        let prep = Preparation::OpaqueString;
        assert_eq!(prep.prepare("pass\u{3000}word").unwrap(), "pass word");
        assert!(prep.prepare("bad\u{0007}bell").is_err());
        assert!(prep.prepare("").is_err());
    }

    #[test]
    fn saslprep_drops_soft_hyphens_and_folds_compatibility_characters() {
        let prep = Preparation::SaslPrep;
        assert_eq!(
            prep.prepare("The\u{00AD}M\u{00AA}tr\u{2168}").unwrap(),
            "TheMatrIX"
        );
    }

    #[test]
    fn long_term_keys_hash_username_realm_and_password() {
        let md5 = long_term_key_bytes(
            "user",
            "realm",
            "pass",
            PasswordAlgorithm::MD5,
            Preparation::OpaqueString,
        )
        .unwrap();
        assert_eq!(md5, Md5::digest(b"user:realm:pass").to_vec());
        let sha = long_term_key_bytes(
            "user",
            "realm",
            "pass",
            PasswordAlgorithm::SHA256,
            Preparation::OpaqueString,
        )
        .unwrap();
        assert_eq!(sha, Sha256::digest(b"user:realm:pass").to_vec());
        assert_eq!(
            long_term_key_bytes("user", "realm", "pass", 9, Preparation::None),
            Err(CredentialError::UnknownAlgorithm(9))
        );
    }

    #[test]
    fn userhash_is_sha256_of_username_and_realm() {
        let expected: [u8; 32] = Sha256::digest(b"alice:example.org").into();
        assert_eq!(userhash("alice", "example.org").unwrap(), expected);
    }
}
