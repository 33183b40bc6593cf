//! `edgeice serve` over TCP: a request split across writes, and two
//! requests in one write, are each answered.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use edgeice_stun::*;

fn binding_request(id: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut b = MessageBuilder::new(&mut buf, kind, TransactionId([id; 12]));
    b.add(&Attribute::Software("edgeice test")).unwrap();
    b.add_fingerprint().unwrap();
    buf
}

fn read_response(stream: &mut TcpStream, decoder: &mut StreamDecoder) -> Vec<u8> {
    loop {
        if let Some(Frame::Stun(bytes)) = decoder.next_frame().unwrap() {
            return bytes.to_vec();
        }
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).expect("read response");
        assert!(n > 0, "server closed the connection");
        decoder.push(&chunk[..n]);
    }
}

#[test]
fn tcp_requests_are_framed_and_answered() {
    let (_server, listeners) =
        common::start_server(&["--user", "t:t", "--listen", "127.0.0.1:0"], 2);
    let (_, addr) = listeners
        .iter()
        .find(|(p, _)| p == "tcp")
        .expect("a TCP listener");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let client = stream.local_addr().unwrap();
    let mut decoder = StreamDecoder::new();

    let first = binding_request(1);
    stream.write_all(&first[..7]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(&first[7..]).unwrap();
    let mut both = binding_request(2);
    both.extend_from_slice(&binding_request(3));
    stream.write_all(&both).unwrap();

    for id in 1..=3 {
        let response = read_response(&mut stream, &mut decoder);
        let m = Message::parse(&response).unwrap();
        assert_eq!(m.transaction_id(), &TransactionId([id; 12]));
        assert_eq!(m.class(), Class::Success);
        assert_eq!(
            m.get(AttributeType::XOR_MAPPED_ADDRESS),
            Some(Ok(Attribute::XorMappedAddress(client)))
        );
    }
}
