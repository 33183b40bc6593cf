//! Chrome `webrtc-internals` dumps: each peer connection's update log holds
//! its local and remote descriptions, the candidates trickled after them,
//! and its ICE state changes.

use serde_json::Value;

use crate::input::Item;

/// One peer connection of a dump.
#[derive(Clone, Debug)]
pub struct PeerConnection {
    /// Its id in the dump (`<pid>-<n>`).
    pub id: String,
    /// The file.
    pub file: String,
    /// Descriptions in order: (update-log index, `local`/`remote`, SDP type, SDP).
    pub descriptions: Vec<(usize, &'static str, String, String)>,
    /// Trickled candidates: (update-log index, `local`/`remote`, m-line index, line).
    pub candidates: Vec<(usize, &'static str, usize, String)>,
    /// Timeline entries: (update-log index, time, what).
    pub events: Vec<(usize, Option<String>, String)>,
}

/// `type: offer, sdp: v=0...` → ("offer", "v=0...").
fn description_of(value: &str) -> Option<(String, String)> {
    let rest = value.strip_prefix("type: ")?;
    let (kind, sdp) = rest.split_once(", sdp: ")?;
    Some((kind.trim().to_owned(), sdp.replace("\r\n", "\n")))
}

/// `sdpMid: 0, sdpMLineIndex: 0, candidate: candidate:...` → (0, line).
fn candidate_of(value: &str) -> Option<(usize, String)> {
    let index = value
        .split(", ")
        .find_map(|p| p.strip_prefix("sdpMLineIndex: "))
        .and_then(|i| i.trim().parse().ok())
        .unwrap_or(0);
    let at = value.find("candidate: ")?;
    let line = value[at + "candidate: ".len()..].trim();
    (!line.is_empty()).then(|| (index, line.to_owned()))
}

/// The peer connections of a dump; `None` if `text` is not one.
pub fn read(file: &str, text: &str) -> Option<Vec<Item>> {
    let dump: Value = serde_json::from_str(text).ok()?;
    let connections = dump.get("PeerConnections")?.as_object()?;
    let mut items = Vec::new();
    for (id, connection) in connections {
        let mut pc = PeerConnection {
            id: id.clone(),
            file: file.to_owned(),
            descriptions: Vec::new(),
            candidates: Vec::new(),
            events: Vec::new(),
        };
        let log = connection.get("updateLog").and_then(Value::as_array);
        for (i, entry) in log.into_iter().flatten().enumerate() {
            let kind = entry.get("type").and_then(Value::as_str).unwrap_or("");
            let value = entry.get("value").and_then(Value::as_str).unwrap_or("");
            let time = entry.get("time").and_then(Value::as_str).map(str::to_owned);
            let lower = kind.to_ascii_lowercase();
            let side = if lower.contains("remote") || lower == "addicecandidate" {
                "remote"
            } else {
                "local"
            };
            if lower == "setlocaldescription" || lower == "setremotedescription" {
                if let Some((sdp_type, sdp)) = description_of(value) {
                    pc.descriptions.push((i, side, sdp_type, sdp));
                }
            } else if lower.contains("icecandidate")
                && !lower.contains("error")
                && let Some((index, line)) = candidate_of(value)
            {
                pc.candidates.push((i, side, index, line));
            }
            if lower.contains("statechange") || lower.contains("description") {
                let what = if lower.contains("description") {
                    kind.to_owned()
                } else {
                    format!("{kind}: {value}")
                };
                pc.events.push((i, time, what));
            }
        }
        items.push(Item::PeerConnection(pc));
    }
    Some(items)
}
