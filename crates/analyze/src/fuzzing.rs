//! The body of the `analyze_input` fuzz target, kept in the crate so that
//! `cargo test` replays its committed corpus.

use crate::report::JsonReport;
use crate::stream::{Analyzer, Limits};

/// Reads any bytes as an input file and analyzes and reports them: there
/// must be no panic, whatever the bytes, and the streamed JSON report must
/// stay one valid document.
pub fn analyze_input(data: &[u8]) {
    let Ok((format, items)) = crate::input::read("fuzz", std::io::Cursor::new(data)) else {
        return;
    };
    // Streamed with tiny bounds, so that finishing calls early, evicting
    // them and capping the findings are exercised on every input.
    let mut analyzer = Analyzer::new(Limits {
        max_open_calls: 2,
        max_ending: 1,
        keep_ended: false,
        findings_per_code: 1,
    });
    let mut json = JsonReport::new(Vec::new());
    for item in items.iter().cloned() {
        let _ = analyzer.push(item, &mut json);
    }
    analyzer.input("fuzz", format);
    let summary = analyzer.finish(&mut json);
    if let Ok(bytes) = json.finish(&summary, None) {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "the streamed JSON report is not valid JSON"
        );
    }

    let analysis = crate::analyze(vec![("fuzz".to_owned(), format, items)]);
    let _ = crate::report::text(&analysis, true);
    let _ = crate::report::json(&analysis);
    let _ = crate::html::html(&analysis);
}

/// Link types the capture reader decodes, for [`analyze_capture`].
const FUZZ_LINK_TYPES: [u32; 9] = [0, 1, 12, 101, 108, 113, 228, 229, 276];

/// The body of the `analyze_capture` fuzz target: the bytes are frames of a
/// pcap file that this wraps around them — the first byte picks the link
/// type, then each frame is a 2-byte length, a 1-byte time step (in
/// seconds, so that fragment timeouts are crossed) and the frame — so that
/// the fuzzer spends its time in the link, IP, extension header, fragment
/// and TCP stream layers rather than in the container. Every capture is
/// also read cut short by a byte (a damaged file). No panic, and the
/// counts must agree with the items read.
pub fn analyze_capture(data: &[u8]) {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let linktype = FUZZ_LINK_TYPES[usize::from(pick) % FUZZ_LINK_TYPES.len()];
    let mut file = Vec::with_capacity(data.len() + 64);
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&65535u32.to_le_bytes());
    file.extend_from_slice(&linktype.to_le_bytes());
    let mut seconds = 1_700_000_000u32;
    while let [l0, l1, step, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1])).min(tail.len());
        seconds = seconds.wrapping_add(u32::from(*step));
        file.extend_from_slice(&seconds.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&(len as u32).to_le_bytes());
        file.extend_from_slice(&(len as u32).to_le_bytes());
        file.extend_from_slice(&tail[..len]);
        rest = &tail[len..];
    }
    for bytes in [&file[..], &file[..file.len() - 1]] {
        let Ok((format, items)) = crate::input::read("fuzz.pcap", std::io::Cursor::new(bytes))
        else {
            continue;
        };
        let stun = items
            .iter()
            .filter(|i| matches!(i, crate::input::Item::Stun(_)))
            .count();
        let analysis = crate::analyze(vec![("fuzz.pcap".to_owned(), format, items)]);
        assert_eq!(analysis.read.stun_packets, stun);
        let _ = crate::report::text(&analysis, true);
        let json = crate::report::json(&analysis);
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
        let _ = crate::html::html(&analysis);
    }
}

/// Reads any bytes as a webrtc-internals dump twice: from one slice, and
/// through a reader that hands out a byte at a time (every value then
/// crosses a chunk boundary of the reader, `json_walk.rs`). No panic, and both
/// reads must give the same peer connections and the same outcome (the
/// same line for damage).
pub fn webrtc_dump(data: &[u8]) {
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }
    let read = |reader: &mut dyn std::io::Read| {
        let mut seen = Vec::new();
        let outcome = crate::webrtc_internals::read_stream("fuzz", reader, &mut |item| {
            seen.push(format!("{item:?}"));
            Ok(())
        });
        (seen, outcome.map_err(|e| e.to_string()))
    };
    let whole = read(&mut &data[..]);
    let trickled = read(&mut Trickle(data));
    assert_eq!(whole, trickled, "a dump read whole and a byte at a time");
}
