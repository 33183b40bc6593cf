//! Long-term credential authentication (RFC 8489 §9.2) with stateless
//! nonces.
//!
//! A nonce is `expiry || HMAC(secret, client IP || expiry)`, in hex. The
//! port is left out on purpose: an RFC 6062 client reuses its nonce on each
//! new data connection, from a new port.
//! the server checks it by recomputing the tag, so a flood of unauthenticated
//! requests from spoofed addresses costs CPU for one HMAC each and no memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::attribute::PasswordAlgorithm;
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::{Attribute, AttributeType, ErrorCode, IntegrityKey, Message};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::ServerConfig;

/// Issues and checks nonces.
#[derive(Clone)]
pub(crate) struct Nonces {
    mac: Hmac<Sha256>,
    /// Time zero of the nonces' clock: nonces carry seconds since then.
    pub(crate) epoch: Instant,
    lifetime: Duration,
    /// Seconds added to the time since `epoch` in a nonce's expiry: 0 for
    /// a server alone; for a fleet, the Unix time at `epoch`, so that every
    /// node reads another's expiry on the same clock.
    clock_offset: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Bytes of the nonce's tag.
const TAG_LEN: usize = 12;

/// Nonce length in characters: 16 hex digits of expiry, then the tag.
const NONCE_LEN: usize = 16 + 2 * TAG_LEN;

impl Nonces {
    pub(crate) fn new(secret: &[u8; 32], epoch: Instant, lifetime: Duration) -> Self {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Nonces {
            mac,
            epoch,
            lifetime,
            clock_offset: 0,
        }
    }

    /// Nonces keyed by a fleet's shared `secret`, their expiry in Unix
    /// seconds (`unix_now` is the Unix time at `now`): a nonce one node
    /// issued is then fresh on every other node of the fleet whose clock
    /// agrees within seconds.
    pub(crate) fn shared(
        secret: &[u8; 32],
        epoch: Instant,
        lifetime: Duration,
        now: Instant,
        unix_now: u64,
    ) -> Self {
        let mut nonces = Nonces::new(secret, epoch, lifetime);
        let since_epoch = now.saturating_duration_since(epoch).as_secs();
        nonces.clock_offset = unix_now.saturating_sub(since_epoch);
        nonces
    }

    /// Seconds on the nonces' clock at `now`.
    fn clock(&self, now: Instant) -> u64 {
        self.clock_offset + now.saturating_duration_since(self.epoch).as_secs()
    }

    fn tag(&self, client: SocketAddr, expiry: u64) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        match client {
            SocketAddr::V4(a) => mac.update(&a.ip().octets()),
            SocketAddr::V6(a) => mac.update(&a.ip().octets()),
        }
        mac.update(&expiry.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Eight unpredictable bytes for reservation tokens and connection IDs:
    /// the nonce secret keys them, under a label of their own.
    ///
    /// `label` names the kind of token, and `place` must differ between
    /// tokens made at the same time by different cores sharing the secret
    /// (a bound socket's address does).
    pub(crate) fn tag_for_token(&self, label: &[u8], place: SocketAddr, counter: u64) -> [u8; 8] {
        let mut mac = self.mac.clone();
        mac.update(label);
        match place {
            SocketAddr::V4(a) => mac.update(&a.ip().octets()),
            SocketAddr::V6(a) => mac.update(&a.ip().octets()),
        }
        mac.update(&place.port().to_be_bytes());
        mac.update(&counter.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&full[..8]);
        tag
    }

    /// A fresh nonce for `client`.
    pub(crate) fn issue(&self, now: Instant, client: SocketAddr) -> String {
        let expiry = self.clock(now) + self.lifetime.as_secs();
        let mut nonce = format!("{expiry:016x}");
        for b in self.tag(client, expiry) {
            nonce.push_str(&format!("{b:02x}"));
        }
        nonce
    }

    /// Whether `nonce` was issued to `client` and is still fresh.
    pub(crate) fn check(&self, now: Instant, client: SocketAddr, nonce: &str) -> NonceCheck {
        if nonce.len() != NONCE_LEN || !nonce.is_ascii() {
            return NonceCheck::Invalid;
        }
        let Ok(expiry) = u64::from_str_radix(&nonce[..16], 16) else {
            return NonceCheck::Invalid;
        };
        let expected = self.tag(client, expiry);
        let mut given = [0u8; TAG_LEN];
        for (i, b) in given.iter_mut().enumerate() {
            let Ok(v) = u8::from_str_radix(&nonce[16 + 2 * i..18 + 2 * i], 16) else {
                return NonceCheck::Invalid;
            };
            *b = v;
        }
        // Not secret (the client holds it), but compare in constant time anyway.
        let differs = expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return NonceCheck::Invalid;
        }
        if self.clock(now) >= expiry {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
    }
}

/// The verdict on a nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Issued here, to this client, and not expired.
    Fresh,
    /// Issued here, to this client, but expired: answer 438.
    Stale,
    /// Not one of ours: answer 401 with a fresh one.
    Invalid,
}

/// A request that passed authentication.
#[derive(Debug)]
pub(crate) struct Authenticated<'m> {
    pub username: &'m str,
    pub key: IntegrityKey,
}

/// Why a request was not authenticated: the error code to answer with.
/// 401 and 438 responses carry REALM and a fresh NONCE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub code: u16,
    /// Refused without checking its integrity: the user and source are in
    /// backoff after failed attempts.
    pub held_back: bool,
    /// The nonce was good and the integrity check failed: a wrong password
    /// or an unknown user (what the operator's records call a failure).
    pub integrity_failed: bool,
}

impl Rejection {
    pub(crate) fn new(code: u16) -> Self {
        Rejection {
            code,
            held_back: false,
            integrity_failed: false,
        }
    }
}

/// Whether `nonce` was issued to `client` (fresh or stale): then the
/// request's sender reads what is sent to its address, so it is not
/// spoofed, and answering it reflects nothing onto anyone else.
pub(crate) fn nonce_is_authentic(
    nonces: &Nonces,
    now: Instant,
    client: SocketAddr,
    nonce: Option<&str>,
) -> bool {
    nonce.is_some_and(|n| nonces.check(now, client, n) != NonceCheck::Invalid)
}

/// Checks a request's integrity with `proves` (which tries a key, or the
/// keys a REST API user name may have), through the guessing throttle:
/// a user and source in backoff are refused without a check, a failure is
/// counted, a success clears the way. Call only once the nonce is fresh,
/// so that failures are counted for the real source.
pub(crate) fn check_integrity<T>(
    config: &ServerConfig,
    now: Instant,
    client: SocketAddr,
    username: &str,
    proves: impl FnOnce() -> Option<T>,
) -> Result<T, Rejection> {
    let shared = &config.shared;
    if shared.guess_held_back(username, client.ip(), now) {
        return Err(Rejection {
            code: ErrorCode::UNAUTHENTICATED,
            held_back: true,
            integrity_failed: false,
        });
    }
    match proves() {
        Some(proven) => {
            shared.guess_succeeded(username, client.ip(), now);
            Ok(proven)
        }
        None => {
            shared.guess_failed(username, client.ip(), now);
            Err(Rejection {
                integrity_failed: true,
                ..Rejection::new(ErrorCode::UNAUTHENTICATED)
            })
        }
    }
}

/// Why a rejection is worth a record, if it is: a failed check (wrong
/// password, unknown user) or a source in backoff. A missing credential,
/// a stale or foreign nonce are how the handshake goes, not failures.
pub(crate) fn refusal_reason(
    config: &ServerConfig,
    rejection: &Rejection,
    username: Option<&str>,
) -> Option<crate::session::RefusalReason> {
    use crate::session::RefusalReason;
    if rejection.held_back {
        return Some(RefusalReason::GuessingBackoff);
    }
    if !rejection.integrity_failed {
        return None;
    }
    let known = username.is_some_and(|u| config.users.contains_key(u))
        || (!config.auth_secrets.is_empty()
            && username.is_some_and(|u| {
                u.split(':')
                    .next()
                    .is_some_and(|t| t.parse::<u64>().is_ok())
            }));
    Some(if known {
        RefusalReason::WrongPassword
    } else {
        RefusalReason::UnknownUser
    })
}

/// Authenticates `request` from `client` (RFC 8489 §9.2.4).
pub(crate) fn authenticate<'m>(
    config: &ServerConfig,
    nonces: &Nonces,
    now: Instant,
    client: SocketAddr,
    request: &Message<'m>,
) -> Result<Authenticated<'m>, Rejection> {
    if !request.has_integrity() && !request.has_integrity_sha256() {
        return Err(Rejection::new(ErrorCode::UNAUTHENTICATED));
    }
    let username = match request.get(AttributeType::USERNAME) {
        Some(Ok(Attribute::Username(u))) => u,
        _ => return Err(Rejection::new(ErrorCode::BAD_REQUEST)),
    };
    let realm_ok = matches!(
        request.get(AttributeType::REALM),
        Some(Ok(Attribute::Realm(_)))
    );
    let nonce = match request.get(AttributeType::NONCE) {
        Some(Ok(Attribute::Nonce(n))) if realm_ok => n,
        _ => return Err(Rejection::new(ErrorCode::BAD_REQUEST)),
    };
    match nonces.check(now, client, nonce) {
        NonceCheck::Fresh => {}
        NonceCheck::Stale => return Err(Rejection::new(ErrorCode::STALE_NONCE)),
        NonceCheck::Invalid => return Err(Rejection::new(ErrorCode::UNAUTHENTICATED)),
    }
    let key = check_integrity(config, now, client, username, || {
        match config.users.get(username) {
            Some(key) => request.verify_integrity(key).is_ok().then(|| key.clone()),
            None => rest_api_key(config, nonces, now, username, |key| {
                request.verify_integrity(key).is_ok()
            }),
        }
    })?;
    Ok(Authenticated { username, key })
}

/// The key of a TURN REST API user name (`expiry` or `expiry:name`, expiry
/// in Unix seconds) that has not expired, under whichever configured secret
/// `proves` accepts (it checks the request's integrity with the key).
pub(crate) fn rest_api_key(
    config: &ServerConfig,
    nonces: &Nonces,
    now: Instant,
    username: &str,
    proves: impl Fn(&IntegrityKey) -> bool,
) -> Option<IntegrityKey> {
    if config.auth_secrets.is_empty() {
        return None;
    }
    let unix_now =
        config.unix_time_at_start + now.saturating_duration_since(nonces.epoch).as_secs();
    let expiry = username.split(':').next()?;
    let expiry: u64 = expiry.parse().ok()?;
    if expiry <= unix_now {
        return None;
    }
    config.auth_secrets.iter().find_map(|secret| {
        let key = rest_api_long_term_key(secret, username, &config.realm)?;
        proves(&key).then_some(key)
    })
}

/// The password of a TURN REST API user name:
/// `base64(HMAC-SHA1(secret, username))`, what a web application hands its
/// clients together with the user name.
pub fn rest_api_password(secret: &str, username: &str) -> String {
    use base64::Engine;
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The long-term key for a REST API user name under `secret`.
fn rest_api_long_term_key(secret: &str, username: &str, realm: &str) -> Option<IntegrityKey> {
    let password = rest_api_password(secret, username);
    long_term_key(
        username,
        realm,
        &password,
        PasswordAlgorithm::MD5,
        Preparation::None,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_bound_to_client_and_expire() {
        let t0 = Instant::now();
        let nonces = Nonces::new(&[7; 32], t0, Duration::from_secs(600));
        let alice: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let alice_again: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        let mallory: SocketAddr = "192.0.2.99:5000".parse().unwrap();
        let n = nonces.issue(t0, alice);
        assert_eq!(n.len(), NONCE_LEN);
        assert_eq!(nonces.check(t0, alice, &n), NonceCheck::Fresh);
        assert_eq!(nonces.check(t0, alice_again, &n), NonceCheck::Fresh);
        assert_eq!(nonces.check(t0, mallory, &n), NonceCheck::Invalid);
        assert_eq!(
            nonces.check(t0 + Duration::from_secs(601), alice, &n),
            NonceCheck::Stale
        );
        let mut forged = n.clone();
        forged.replace_range(..16, "00000000ffffffff");
        assert_eq!(nonces.check(t0, alice, &forged), NonceCheck::Invalid);
        assert_eq!(nonces.check(t0, alice, "short"), NonceCheck::Invalid);
        assert_eq!(
            nonces.check(t0, alice, &"é".repeat(20)),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn shared_nonces_are_read_on_one_clock_by_every_node() {
        // Two nodes started 100 s apart, sharing the fleet's key.
        let (a_start, lifetime) = (Instant::now(), Duration::from_secs(600));
        let b_start = a_start + Duration::from_secs(100);
        let now = b_start + Duration::from_secs(5);
        let unix_now = 1_800_000_000;
        let a = Nonces::shared(&[9; 32], a_start, lifetime, now, unix_now);
        let b = Nonces::shared(&[9; 32], b_start, lifetime, now, unix_now);
        let alice: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let n = a.issue(now, alice);
        assert_eq!(b.check(now, alice, &n), NonceCheck::Fresh);
        assert_eq!(b.check(now + lifetime, alice, &n), NonceCheck::Stale);
    }
}
