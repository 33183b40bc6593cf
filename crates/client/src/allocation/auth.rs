//! Long-term credentials (RFC 8489 §9.2): meeting the server's 401
//! challenge, following its nonce, and signing requests.

use edgeice_stun::attribute::PasswordAlgorithm;
use edgeice_stun::credentials::long_term_key;
use edgeice_stun::{Attribute, AttributeType, IntegrityKey, Message, MessageBuilder};

use super::Allocation;
use crate::error::ClientError;

/// What the server's challenge gave: realm, nonce and the derived key.
#[derive(Clone, Debug)]
pub(super) struct Auth {
    pub(super) realm: String,
    pub(super) nonce: String,
    pub(super) key: IntegrityKey,
    /// PASSWORD-ALGORITHMS as the server sent it, echoed back (RFC 8489 §9.2).
    pub(super) algorithms: Option<Vec<u8>>,
    pub(super) algorithm: u16,
}

impl Allocation {
    /// USERNAME, REALM, NONCE, the password algorithm if the server offered
    /// a choice, and MESSAGE-INTEGRITY — when a challenge has been met.
    pub(super) fn add_credentials(
        &self,
        builder: &mut MessageBuilder<'_>,
    ) -> Result<(), ClientError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        builder.add(&Attribute::Username(&self.config.credentials.username))?;
        builder.add(&Attribute::Realm(&auth.realm))?;
        builder.add(&Attribute::Nonce(&auth.nonce))?;
        if let Some(algorithms) = &auth.algorithms {
            builder.add_raw(AttributeType::PASSWORD_ALGORITHMS, algorithms)?;
            builder.add(&Attribute::PasswordAlgorithm(PasswordAlgorithm {
                algorithm: auth.algorithm,
                params: &[],
            }))?;
        }
        builder.add_integrity_sha1(&auth.key)?;
        Ok(())
    }

    /// Takes REALM and NONCE (and PASSWORD-ALGORITHMS) from a 401 or 438
    /// and derives the key; `false` when they are missing or unusable.
    pub(super) fn learn_challenge(&mut self, message: &Message<'_>) -> bool {
        let (Some(Ok(Attribute::Realm(realm))), Some(Ok(Attribute::Nonce(nonce)))) = (
            message.get(AttributeType::REALM),
            message.get(AttributeType::NONCE),
        ) else {
            return false;
        };
        let offered = match message.get(AttributeType::PASSWORD_ALGORITHMS) {
            Some(Ok(Attribute::PasswordAlgorithms(list))) => Some(list),
            _ => None,
        };
        let algorithm = match offered {
            Some(list) => match list
                .iter()
                .map(|a| a.algorithm)
                .find(|a| *a == PasswordAlgorithm::MD5 || *a == PasswordAlgorithm::SHA256)
            {
                Some(a) => a,
                None => return false,
            },
            None => PasswordAlgorithm::MD5,
        };
        if let Some(auth) = &mut self.auth
            && auth.realm == realm
            && auth.algorithm == algorithm
        {
            auth.nonce = nonce.to_owned();
            return true;
        }
        let credentials = &self.config.credentials;
        let Ok(key) = long_term_key(
            &credentials.username,
            realm,
            &credentials.password,
            algorithm,
            self.config.preparation,
        ) else {
            return false;
        };
        self.auth = Some(Auth {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            key,
            algorithms: offered.map(|list| list.as_bytes().to_vec()),
            algorithm,
        });
        true
    }
}
