//! edgeice-stun against the webrtc-rs `stun` (and `turn`) crates and
//! `stun-rs`, on three jobs a STUN/TURN server does per packet:
//!
//! - `parse_verify_binding_request`: decode the RFC 5769 §2.1 Binding
//!   request, check its MESSAGE-INTEGRITY with the short-term key and check
//!   its FINGERPRINT;
//! - `build_sign_binding_response`: write the Binding success response
//!   (same transaction ID, XOR-MAPPED-ADDRESS 192.0.2.1:32853,
//!   MESSAGE-INTEGRITY, FINGERPRINT);
//! - `parse_channel_data`: parse a ChannelData frame on channel 0x4000 with
//!   160 bytes of data (a 20 ms audio frame).
//!
//! Each library is used through its ordinary public API, and every key or
//! credential is made once, outside the timed loop. Where a library lets a
//! buffer or a decoder value be reused, it is reused across iterations, so
//! each library is measured at its best. The function each loop times is
//! the one checked before timing starts, so no library is timed doing a
//! failing check or producing a message edgeice would reject.
//!
//! Run from bench/stun-codec: `cargo bench` (see README.md).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{Criterion, criterion_group, criterion_main};

use edgeice_stun::credentials::{Preparation, short_term_key};
use edgeice_stun::{
    Attribute, AttributeType, ChannelData, Class, IntegrityKey, Message, MessageBuilder,
    MessageType, Method, TransactionId,
};

/// RFC 5769 §2.1: Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED,
/// USERNAME, MESSAGE-INTEGRITY and FINGERPRINT (the bytes of
/// crates/stun/tests/rfc5769.rs).
const SAMPLE_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, // header
    0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
    0x69, 0x65, 0x6e, 0x74, // SOFTWARE
    0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, // PRIORITY
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, // ICE-CONTROLLED
    0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
    0x20, // USERNAME
    0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5,
    0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, // MESSAGE-INTEGRITY
    0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf, // FINGERPRINT
];

/// The short-term password of the RFC 5769 samples.
const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// The address the response maps the client to (RFC 5769 §2.2).
const MAPPED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 32853);

const CHANNEL: u16 = 0x4000;
const PAYLOAD_LEN: usize = 160;

/// A ChannelData frame: channel 0x4000, 160 bytes of data (already a
/// multiple of 4, so no padding).
fn channel_data_frame() -> Vec<u8> {
    let mut frame = ChannelData::header(CHANNEL, PAYLOAD_LEN as u16).to_vec();
    frame.extend((0..PAYLOAD_LEN).map(|i| i as u8));
    frame
}

/// The transaction ID of the sample request.
fn request_transaction_id() -> [u8; 12] {
    Message::parse(&SAMPLE_REQUEST)
        .expect("edgeice parses the RFC 5769 request")
        .transaction_id()
        .0
}

/// Checks with edgeice that `bytes` is the Binding success response this
/// benchmark asks for, signed with `key`.
fn check_response(library: &str, bytes: &[u8], key: &IntegrityKey, txid: [u8; 12]) {
    let message = Message::parse(bytes)
        .unwrap_or_else(|e| panic!("{library}: edgeice cannot parse its response: {e}"));
    assert_eq!(
        message.kind(),
        MessageType::new(Method::BINDING, Class::Success),
        "{library}: message type"
    );
    assert_eq!(message.transaction_id(), &TransactionId(txid), "{library}");
    assert_eq!(
        message.get(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(MAPPED))),
        "{library}: XOR-MAPPED-ADDRESS"
    );
    message
        .verify_integrity(key)
        .unwrap_or_else(|e| panic!("{library}: MESSAGE-INTEGRITY: {e}"));
    message
        .verify_fingerprint()
        .unwrap_or_else(|e| panic!("{library}: FINGERPRINT: {e}"));
}

// ---------------------------------------------------------------- edgeice

mod with_edgeice {
    use super::*;

    pub fn parse_verify<'a>(
        bytes: &'a [u8],
        key: &IntegrityKey,
    ) -> Result<Message<'a>, Box<dyn std::error::Error>> {
        let message = Message::parse(bytes)?;
        message.verify_integrity(key)?;
        message.verify_fingerprint()?;
        Ok(message)
    }

    /// Builds the response into `buf`, which is cleared and reused.
    pub fn build_sign<'b>(
        buf: &'b mut Vec<u8>,
        txid: [u8; 12],
        mapped: SocketAddr,
        key: &IntegrityKey,
    ) -> &'b [u8] {
        let kind = MessageType::new(Method::BINDING, Class::Success);
        let mut builder = MessageBuilder::new(buf, kind, TransactionId(txid));
        builder
            .add(&Attribute::XorMappedAddress(mapped))
            .expect("XOR-MAPPED-ADDRESS fits");
        builder.add_integrity_sha1(key).expect("in order");
        builder.add_fingerprint().expect("in order");
        builder.finish()
    }
}

// ------------------------------------------------------- webrtc-rs `stun`

mod with_webrtc {
    use super::*;
    use stun::agent::TransactionId;
    use stun::fingerprint::FINGERPRINT;
    use stun::integrity::MessageIntegrity;
    use stun::message::{BINDING_SUCCESS, Message};
    use stun::xoraddr::XorMappedAddress;
    use turn::proto::chandata::ChannelData;

    /// Decodes into `message`, which is reused: `unmarshal_binary` copies
    /// the bytes into the message's own buffer, then decodes the header and
    /// copies each attribute's value out.
    pub fn parse_verify(
        message: &mut Message,
        bytes: &[u8],
        integrity: &MessageIntegrity,
    ) -> Result<(), stun::Error> {
        message.unmarshal_binary(bytes)?;
        // `check` takes `&mut Message`: it rewrites the header length in
        // place while it hashes, then puts it back.
        integrity.check(message)?;
        FINGERPRINT.check(message)?;
        Ok(())
    }

    /// Builds the response into `message`, which is reused (`build` resets
    /// it, keeping its buffer's capacity). The setters are boxed trait
    /// objects, as `Message::build` takes them, and the integrity setter
    /// owns its key, so the key made once is cloned into each message.
    pub fn build_sign<'m>(
        message: &'m mut Message,
        txid: [u8; 12],
        mapped: SocketAddr,
        integrity: &MessageIntegrity,
    ) -> Result<&'m [u8], stun::Error> {
        message.build(&[
            Box::new(TransactionId(txid)),
            Box::new(BINDING_SUCCESS),
            Box::new(XorMappedAddress {
                ip: mapped.ip(),
                port: mapped.port(),
            }),
            Box::new(integrity.clone()),
            Box::new(FINGERPRINT),
        ])?;
        Ok(&message.raw)
    }

    /// webrtc-rs keeps ChannelData in its `turn` crate (the `stun` crate has
    /// none). `decode` reads `raw`, which the caller fills: here a reused
    /// value whose `raw` is refilled, where turn's own server and client
    /// build a fresh `ChannelData { raw: bytes.to_vec(), .. }` per packet.
    /// `decode` copies the data out into `data` either way.
    pub fn parse_channel_data<'c>(
        channel_data: &'c mut ChannelData,
        bytes: &[u8],
    ) -> Result<&'c ChannelData, turn::Error> {
        channel_data.raw.clear();
        channel_data.raw.extend_from_slice(bytes);
        channel_data.decode()?;
        Ok(channel_data)
    }
}

// ---------------------------------------------------------------- stun-rs

mod with_stun_rs {
    use super::*;
    use stun_rs::attributes::stun::{Fingerprint, MessageIntegrity, XorMappedAddress};
    use stun_rs::methods::BINDING;
    use stun_rs::{
        HMACKey, MessageClass, MessageDecoder, MessageEncoder, StunMessage, StunMessageBuilder,
        TransactionId,
    };

    /// stun-rs checks MESSAGE-INTEGRITY and FINGERPRINT inside `decode`
    /// when its context has a key and validation on, but a message without
    /// them still decodes, so their presence is checked too, as the other
    /// two libraries' checks do ("missing" is an error there).
    pub fn parse_verify(
        decoder: &MessageDecoder,
        bytes: &[u8],
    ) -> Result<StunMessage, Box<dyn std::error::Error>> {
        let (message, _) = decoder.decode(bytes)?;
        if message.get::<MessageIntegrity>().is_none() {
            return Err("no MESSAGE-INTEGRITY".into());
        }
        if message.get::<Fingerprint>().is_none() {
            return Err("no FINGERPRINT".into());
        }
        Ok(message)
    }

    /// Builds a `StunMessage` value (owning its attributes) and encodes it
    /// into `buf`, which is reused; the encoder fills in MESSAGE-INTEGRITY
    /// and FINGERPRINT. `HMACKey` is an `Arc`, so the clone is a count.
    pub fn build_sign<'b>(
        encoder: &MessageEncoder,
        buf: &'b mut [u8],
        txid: [u8; 12],
        mapped: SocketAddr,
        key: &HMACKey,
    ) -> Result<&'b [u8], stun_rs::error::StunEncodeError> {
        let message = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
            .with_transaction_id(TransactionId::from(txid))
            .with_attribute(XorMappedAddress::from(mapped))
            .with_attribute(MessageIntegrity::new(key.clone()))
            .with_attribute(Fingerprint::default())
            .build();
        let len = encoder.encode(buf, &message)?;
        Ok(&buf[..len])
    }

    // stun-rs has no ChannelData: it models STUN messages and their
    // attributes (CHANNEL-NUMBER among them, with the `turn` feature), not
    // TURN's ChannelData framing, so `parse_channel_data` skips it.
}

// ------------------------------------------------------------ benchmarks

fn parse_verify_binding_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_verify_binding_request");

    let key = short_term_key(PASSWORD, Preparation::OpaqueString).expect("valid password");
    with_edgeice::parse_verify(&SAMPLE_REQUEST, &key).expect("edgeice accepts the request");
    let wrong = short_term_key("wrong", Preparation::OpaqueString).expect("valid password");
    assert!(
        with_edgeice::parse_verify(&SAMPLE_REQUEST, &wrong).is_err(),
        "edgeice checks the integrity"
    );
    group.bench_function("edgeice", |b| {
        b.iter(|| with_edgeice::parse_verify(black_box(&SAMPLE_REQUEST), &key))
    });

    let integrity = stun::integrity::MessageIntegrity::new_short_term_integrity(PASSWORD.into());
    let mut message = stun::message::Message::new();
    with_webrtc::parse_verify(&mut message, &SAMPLE_REQUEST, &integrity)
        .expect("webrtc-rs stun accepts the request");
    let wrong = stun::integrity::MessageIntegrity::new_short_term_integrity("wrong".into());
    assert!(
        with_webrtc::parse_verify(&mut message, &SAMPLE_REQUEST, &wrong).is_err(),
        "webrtc-rs stun checks the integrity"
    );
    group.bench_function("webrtc-rs stun", |b| {
        b.iter(|| {
            let result =
                with_webrtc::parse_verify(&mut message, black_box(&SAMPLE_REQUEST), &integrity);
            let _ = black_box(result);
            black_box(&message);
        })
    });

    let decoder_with = |password: &str| {
        let key = stun_rs::HMACKey::new_short_term(password).expect("valid password");
        let context = stun_rs::DecoderContextBuilder::default()
            .with_key(key)
            .with_validation()
            .build();
        stun_rs::MessageDecoderBuilder::default()
            .with_context(context)
            .build()
    };
    let decoder = decoder_with(PASSWORD);
    with_stun_rs::parse_verify(&decoder, &SAMPLE_REQUEST).expect("stun-rs accepts the request");
    assert!(
        with_stun_rs::parse_verify(&decoder_with("wrong"), &SAMPLE_REQUEST).is_err(),
        "stun-rs checks the integrity"
    );
    group.bench_function("stun-rs", |b| {
        // The decoded message is returned, so dropping it is timed too.
        b.iter(|| with_stun_rs::parse_verify(&decoder, black_box(&SAMPLE_REQUEST)))
    });

    group.finish();
}

fn build_sign_binding_response(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_sign_binding_response");
    let txid = request_transaction_id();

    let key = short_term_key(PASSWORD, Preparation::OpaqueString).expect("valid password");
    let mut buf = Vec::with_capacity(128);
    let bytes = with_edgeice::build_sign(&mut buf, txid, MAPPED, &key).to_vec();
    check_response("edgeice", &bytes, &key, txid);
    group.bench_function("edgeice", |b| {
        b.iter(|| {
            let out = with_edgeice::build_sign(&mut buf, black_box(txid), black_box(MAPPED), &key);
            let _ = black_box(out);
        })
    });

    let integrity = stun::integrity::MessageIntegrity::new_short_term_integrity(PASSWORD.into());
    let mut message = stun::message::Message::new();
    let bytes = with_webrtc::build_sign(&mut message, txid, MAPPED, &integrity)
        .expect("webrtc-rs stun builds the response")
        .to_vec();
    check_response("webrtc-rs stun", &bytes, &key, txid);
    group.bench_function("webrtc-rs stun", |b| {
        b.iter(|| {
            let out = with_webrtc::build_sign(
                &mut message,
                black_box(txid),
                black_box(MAPPED),
                &integrity,
            );
            let _ = black_box(out);
        })
    });

    let hmac_key = stun_rs::HMACKey::new_short_term(PASSWORD).expect("valid password");
    let encoder = stun_rs::MessageEncoderBuilder::default().build();
    let mut out_buf = [0u8; 128];
    let bytes = with_stun_rs::build_sign(&encoder, &mut out_buf, txid, MAPPED, &hmac_key)
        .expect("stun-rs builds the response")
        .to_vec();
    check_response("stun-rs", &bytes, &key, txid);
    group.bench_function("stun-rs", |b| {
        b.iter(|| {
            let out = with_stun_rs::build_sign(
                &encoder,
                &mut out_buf,
                black_box(txid),
                black_box(MAPPED),
                &hmac_key,
            );
            let _ = black_box(out);
        })
    });

    group.finish();
}

fn parse_channel_data(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_channel_data");
    let frame = channel_data_frame();
    let payload = &frame[4..];

    let parsed = ChannelData::parse(&frame).expect("edgeice parses the frame");
    assert_eq!((parsed.channel, parsed.data), (CHANNEL, payload));
    group.bench_function("edgeice", |b| {
        b.iter(|| black_box(ChannelData::parse(black_box(&frame))))
    });

    let mut channel_data = turn::proto::chandata::ChannelData::default();
    let parsed = with_webrtc::parse_channel_data(&mut channel_data, &frame)
        .expect("webrtc-rs turn parses the frame");
    assert_eq!((parsed.number.0, &parsed.data[..]), (CHANNEL, payload));
    group.bench_function("webrtc-rs stun", |b| {
        b.iter(|| {
            let parsed = with_webrtc::parse_channel_data(&mut channel_data, black_box(&frame));
            let _ = black_box(parsed);
        })
    });

    // stun-rs: no ChannelData support (see `mod with_stun_rs`), so no bench here.

    group.finish();
}

criterion_group!(
    benches,
    parse_verify_binding_request,
    build_sign_binding_response,
    parse_channel_data
);
criterion_main!(benches);
