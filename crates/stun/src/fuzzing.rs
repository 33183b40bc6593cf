//! The bodies of the cargo-fuzz targets, kept in the crate so that the
//! committed corpus is also replayed by `cargo test` (see
//! `tests/fuzz_corpus.rs`). Each asserts properties that must hold for any
//! input; a panic here is a bug found.

use crate::{
    Attribute, AttributeType, IntegrityKey, Layout, Message, MessageBuilder, StreamDecoder,
};

/// Parses `data` as a datagram, decodes every attribute, runs the integrity
/// checks, and rebuilds the message from what was decoded: the rebuilt
/// message must parse and decode to the same attributes.
pub fn parse_message(data: &[u8]) {
    let key = IntegrityKey::new(b"fuzz");
    for message in [
        Message::parse(data),
        Message::parse_any_cookie(data),
        Message::parse_unpadded(data),
    ]
    .into_iter()
    .flatten()
    {
        let _ = message.verify_integrity(&key);
        let _ = message.verify_integrity_sha1_rfc3489(&key);
        let _ = message.verify_fingerprint();
        let _ = message.verify_fingerprint_legacy();
        let _ = crate::ms::is_ms_turn(data);
        let _ = message.unknown_comprehension_required().count();
        let decoded: Vec<Attribute<'_>> = message
            .attributes()
            .flatten()
            .filter(|a| !is_trailer(a.kind()))
            .collect();

        let mut buf = Vec::new();
        let mut builder = MessageBuilder::with_cookie(
            &mut buf,
            message.kind(),
            message.cookie_field(),
            *message.transaction_id(),
        )
        .layout(message.layout());
        for attribute in &decoded {
            builder
                .add(attribute)
                .expect("a decoded attribute must encode");
        }
        builder.add_fingerprint().expect("fingerprint fits");
        let rebuilt = builder.finish();
        let reparsed = match message.layout() {
            Layout::Padded => Message::parse_any_cookie(rebuilt),
            Layout::Unpadded => Message::parse_unpadded(rebuilt),
        }
        .expect("rebuilt message must parse");
        assert!(reparsed.verify_fingerprint().is_ok());
        let again: Vec<Attribute<'_>> = reparsed
            .attributes()
            .map(|a| a.expect("rebuilt attribute must decode"))
            .filter(|a| !is_trailer(a.kind()))
            .collect();
        assert_eq!(decoded, again);
    }
}

fn is_trailer(kind: AttributeType) -> bool {
    matches!(
        kind,
        AttributeType::MESSAGE_INTEGRITY
            | AttributeType::MESSAGE_INTEGRITY_SHA256
            | AttributeType::FINGERPRINT
    )
}

/// Feeds `data` to a [`StreamDecoder`] whole and in chunks whose sizes come
/// from the input: both must cut the same frames.
pub fn stream_decoder(data: &[u8]) {
    let Some((&chunk_seed, stream)) = data.split_first() else {
        return;
    };
    // The seed's top bit picks MS-TURN's TCP framing.
    let framing = if chunk_seed & 0x80 != 0 {
        crate::Framing::MsTurn
    } else {
        crate::Framing::Turn
    };
    let whole = frames(stream, stream.len().max(1), framing);
    let chunked = frames(stream, usize::from(chunk_seed % 17) + 1, framing);
    assert_eq!(whole, chunked);
}

/// Frames from feeding `stream` in chunks of `chunk` bytes, each frame as
/// (is STUN, its bytes), up to the first error.
fn frames(stream: &[u8], chunk: usize, framing: crate::Framing) -> (Vec<(bool, Vec<u8>)>, bool) {
    let mut decoder = StreamDecoder::new();
    decoder.set_framing(framing);
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(crate::Frame::Stun(bytes))) => {
                    let _ = Message::parse_any_cookie(bytes);
                    out.push((true, bytes.to_vec()))
                }
                Ok(Some(crate::Frame::MsTurn(bytes))) => {
                    let _ = Message::parse_either_layout(bytes);
                    out.push((true, bytes.to_vec()))
                }
                Ok(Some(crate::Frame::ChannelData(cd))) => {
                    let mut v = cd.channel.to_be_bytes().to_vec();
                    v.extend_from_slice(cd.data);
                    out.push((false, v))
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}
