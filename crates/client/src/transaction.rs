//! Client transactions (RFC 8489 §6.2): sending a request until a response
//! arrives or the transaction times out.
//!
//! Over UDP a request is retransmitted after RTO, then after 2×RTO, 4×RTO…
//! until `Rc` requests have gone out; the transaction fails `Rm`×RTO after
//! the last one (with the defaults, 500 ms, 7 and 16: sends at 0, 0.5, 1.5,
//! 3.5, 7.5, 15.5 and 31.5 s, failure at 39.5 s). Over TCP and TLS the
//! request is sent once and fails after 39.5 s. [`Transactions`] keeps a
//! bounded set of them and pairs responses with requests by transaction ID.

use std::time::{Duration, Instant};

use edgeice_stun::{Class, HEADER_LEN, Message, TransactionId};

use crate::error::ClientError;

/// The transport a client talks to its server over (shared with the
/// server core and the ICE agent).
pub use edgeice_stun::Transport;

/// Retransmission settings (RFC 8489 §6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionConfig {
    /// Initial retransmission timeout, doubled after each retransmission
    /// (RFC 8489 recommends 500 ms, or an estimate from earlier round trips).
    pub rto: Duration,
    /// `Rc`: how many times a request is sent over UDP in all.
    pub max_requests: u32,
    /// `Rm`: after the last request, the transaction fails once this many
    /// initial RTOs have passed without a response.
    pub last_wait_factor: u32,
    /// How long a request sent over TCP or TLS waits for its response.
    pub stream_timeout: Duration,
    /// Draw transaction IDs from a generator seeded with this instead of
    /// the system's randomness: a simulation that seeds every client
    /// replays byte for byte. `None` (the default) outside tests.
    pub id_seed: Option<u64>,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            rto: Duration::from_millis(500),
            max_requests: 7,
            last_wait_factor: 16,
            stream_timeout: Duration::from_millis(39_500),
            id_seed: None,
        }
    }
}

/// One request in flight.
#[derive(Debug)]
pub struct Transaction {
    id: TransactionId,
    request: Vec<u8>,
    stream: bool,
    /// Requests handed out so far (or owed: `send_due` counts one).
    sent: u32,
    /// The wait after the latest send.
    interval: Duration,
    /// When the next retransmission, or the failure, is due.
    deadline: Instant,
    send_due: bool,
    timed_out: bool,
    config: TransactionConfig,
}

impl Transaction {
    /// Starts a transaction for the encoded `request` (its transaction ID
    /// is read from its header); its first send is due at once.
    pub fn new(
        now: Instant,
        request: Vec<u8>,
        transport: Transport,
        config: &TransactionConfig,
    ) -> Result<Self, ClientError> {
        let Some(id_bytes) = request.get(8..HEADER_LEN) else {
            return Err(ClientError::NotARequest);
        };
        let mut id = TransactionId::default();
        id.0.copy_from_slice(id_bytes);
        let stream = transport.is_stream();
        let interval = if stream {
            config.stream_timeout
        } else if config.max_requests <= 1 {
            config.rto.saturating_mul(config.last_wait_factor)
        } else {
            config.rto
        };
        Ok(Transaction {
            id,
            request,
            stream,
            sent: 1,
            interval,
            deadline: now + interval,
            send_due: true,
            timed_out: false,
            config: *config,
        })
    }

    /// The transaction ID.
    pub fn id(&self) -> TransactionId {
        self.id
    }

    /// The request as encoded.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// How many times the request has been (or is about to be) sent.
    pub fn sends(&self) -> u32 {
        self.sent
    }

    /// The request, when a send (first or retransmission) is due; the send
    /// is then counted as done.
    pub fn poll_transmit(&mut self) -> Option<&[u8]> {
        if std::mem::take(&mut self.send_due) && !self.timed_out {
            Some(&self.request)
        } else {
            None
        }
    }

    /// When [`Transaction::handle_timeout`] must next be called; `None`
    /// once timed out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.timed_out).then_some(self.deadline)
    }

    /// Advances the clock: schedules a retransmission or times out.
    /// Returns `true` when the transaction has just timed out.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.timed_out || now < self.deadline {
            return false;
        }
        if self.stream || self.sent >= self.config.max_requests {
            self.timed_out = true;
            self.send_due = false;
            return true;
        }
        self.sent += 1;
        self.send_due = true;
        self.interval = if self.sent >= self.config.max_requests {
            self.config.rto.saturating_mul(self.config.last_wait_factor)
        } else {
            self.interval.saturating_mul(2)
        };
        self.deadline = now + self.interval;
        false
    }

    /// Whether the transaction gave up waiting.
    pub fn is_timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether `message` is a response (success or error) to this request.
    pub fn is_response(&self, message: &Message<'_>) -> bool {
        matches!(message.class(), Class::Success | Class::Error)
            && *message.transaction_id() == self.id
            && self.method_matches(message)
    }

    fn method_matches(&self, message: &Message<'_>) -> bool {
        let Some(&[t0, t1]) = self.request.get(..2) else {
            return false;
        };
        match edgeice_stun::MessageType::from_u16(u16::from_be_bytes([t0, t1])) {
            Some(kind) => kind.method == message.method(),
            None => false,
        }
    }
}

/// A bounded set of transactions, each with a tag saying what it was for.
#[derive(Debug)]
pub struct Transactions<T> {
    entries: Vec<(Transaction, T)>,
    limit: usize,
}

impl<T> Transactions<T> {
    /// An empty set that holds at most `limit` transactions.
    pub fn new(limit: usize) -> Self {
        Transactions {
            entries: Vec::new(),
            limit,
        }
    }

    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a transaction; fails when the set is full.
    pub fn insert(&mut self, transaction: Transaction, tag: T) -> Result<(), ClientError> {
        if self.entries.len() >= self.limit {
            return Err(ClientError::TooManyTransactions);
        }
        self.entries.push((transaction, tag));
        Ok(())
    }

    /// Takes out the transaction `message` answers, if any.
    pub fn take_response(&mut self, message: &Message<'_>) -> Option<(Transaction, T)> {
        let at = self
            .entries
            .iter()
            .position(|(t, _)| t.is_response(message))?;
        Some(self.entries.swap_remove(at))
    }

    /// The tags of the transactions in flight.
    pub fn tags(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, tag)| tag)
    }

    /// Removes every transaction whose tag matches.
    pub fn remove_where(&mut self, mut f: impl FnMut(&T) -> bool) {
        self.entries.retain(|(_, tag)| !f(tag));
    }

    /// The next request due to be sent.
    pub fn poll_transmit(&mut self) -> Option<&[u8]> {
        self.entries.iter_mut().find_map(|(t, _)| t.poll_transmit())
    }

    /// The earliest deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|(t, _)| t.poll_timeout())
            .min()
    }

    /// Advances every transaction's clock, removing and returning those
    /// that timed out.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(Transaction, T)> {
        let mut expired = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].0.handle_timeout(now) {
                expired.push(self.entries.swap_remove(i));
            } else {
                i += 1;
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Vec<u8> {
        let mut buf = Vec::new();
        let kind = edgeice_stun::MessageType::new(edgeice_stun::Method::BINDING, Class::Request);
        edgeice_stun::MessageBuilder::new(&mut buf, kind, TransactionId([9; 12])).finish();
        buf
    }

    /// Drives a transaction with a fake clock and returns the times (in ms
    /// since the start) of its sends and of its failure.
    fn schedule(transport: Transport, config: TransactionConfig) -> (Vec<u128>, u128) {
        let t0 = Instant::now();
        let mut t = Transaction::new(t0, request(), transport, &config).unwrap();
        let mut sends = Vec::new();
        let mut now = t0;
        for _ in 0..100 {
            if t.poll_transmit().is_some() {
                sends.push((now - t0).as_millis());
            }
            let Some(deadline) = t.poll_timeout() else {
                break;
            };
            now = deadline;
            if t.handle_timeout(now) {
                return (sends, (now - t0).as_millis());
            }
        }
        panic!("never timed out")
    }

    #[test]
    fn udp_retransmits_with_doubling_rto_and_fails_at_39_5_s() {
        let (sends, failed) = schedule(Transport::Udp, TransactionConfig::default());
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(failed, 39_500);
    }

    #[test]
    fn rto_is_configurable() {
        let config = TransactionConfig {
            rto: Duration::from_millis(100),
            max_requests: 3,
            ..TransactionConfig::default()
        };
        let (sends, failed) = schedule(Transport::Udp, config);
        assert_eq!(sends, [0, 100, 300]);
        assert_eq!(failed, 300 + 1600);
    }

    #[test]
    fn streams_send_once_and_fail_after_39_5_s() {
        for transport in [Transport::Tcp, Transport::Tls] {
            let (sends, failed) = schedule(transport, TransactionConfig::default());
            assert_eq!(sends, [0]);
            assert_eq!(failed, 39_500);
        }
    }

    #[test]
    fn nothing_happens_before_the_deadline() {
        let t0 = Instant::now();
        let config = TransactionConfig::default();
        let mut t = Transaction::new(t0, request(), Transport::Udp, &config).unwrap();
        assert!(t.poll_transmit().is_some());
        assert!(t.poll_transmit().is_none());
        assert!(!t.handle_timeout(t0 + Duration::from_millis(499)));
        assert!(t.poll_transmit().is_none());
        assert!(!t.handle_timeout(t0 + Duration::from_millis(500)));
        assert!(t.poll_transmit().is_some());
        assert_eq!(t.sends(), 2);
    }

    #[test]
    fn responses_match_by_id_and_method() {
        let t0 = Instant::now();
        let mut set = Transactions::new(2);
        let config = TransactionConfig::default();
        let t = Transaction::new(t0, request(), Transport::Udp, &config).unwrap();
        set.insert(t, 1u8).unwrap();
        let t = Transaction::new(t0, request(), Transport::Udp, &config).unwrap();
        set.insert(t, 2u8).unwrap();
        let t = Transaction::new(t0, request(), Transport::Udp, &config).unwrap();
        assert_eq!(set.insert(t, 3u8), Err(ClientError::TooManyTransactions));

        let mut buf = Vec::new();
        let other = edgeice_stun::MessageType::new(edgeice_stun::Method::ALLOCATE, Class::Success);
        edgeice_stun::MessageBuilder::new(&mut buf, other, TransactionId([9; 12])).finish();
        assert!(set.take_response(&Message::parse(&buf).unwrap()).is_none());
        let ok = edgeice_stun::MessageType::new(edgeice_stun::Method::BINDING, Class::Success);
        edgeice_stun::MessageBuilder::new(&mut buf, ok, TransactionId([8; 12])).finish();
        assert!(set.take_response(&Message::parse(&buf).unwrap()).is_none());
        edgeice_stun::MessageBuilder::new(&mut buf, ok, TransactionId([9; 12])).finish();
        assert!(set.take_response(&Message::parse(&buf).unwrap()).is_some());
        assert_eq!(set.len(), 1);
    }
}
