//! Chrome `webrtc-internals` dumps: each peer connection's update log holds
//! its local and remote descriptions, the candidates trickled after them,
//! its ICE state changes and the browser's own candidate errors; its
//! `rtcConfiguration` the ICE servers it was given; its `stats` what the
//! ICE agent observed (candidate pairs, the selected pair).
//!
//! Two generations of the format are read. Before about 2023 the update
//! log's `value` was text (`type: offer, sdp: v=0…`, `sdpMid: 0,
//! sdpMLineIndex: 0, candidate: candidate:…`, a bare `failed`) and each
//! entry had a `time` string; since then it is JSON
//! (`{"type":"offer","sdp":"v=0…"}`, `{"candidate":"…","sdpMid":"0",
//! "sdpMLineIndex":0}`, `"\"failed\""`) with a numeric `timestamp`.
//!
//! A dump is read as a stream (`json_walk.rs`): a peer connection is
//! handed on as soon as its object ends, each update-log entry and stats
//! series read is parsed on its own, and the series nobody reads are
//! skipped without being decoded, so a dump's size does not set the memory
//! used (BENCHMARKS.md).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use crate::input::{Emit, InputError, Item};
use crate::json_walk::{WalkError, Walker};

/// Update-log entries whose events are kept per peer connection: a
/// connection renegotiated all day must not grow without bound.
const MAX_EVENTS: usize = crate::call::MAX_TIMELINE;
/// Descriptions kept per peer connection (the last ones are what count).
const MAX_DESCRIPTIONS: usize = 64;
/// Trickled candidates kept per peer connection.
const MAX_CANDIDATES: usize = 1024;
/// Candidate errors kept per peer connection.
const MAX_ERRORS: usize = 64;

/// One peer connection of a dump.
#[derive(Clone, Debug, Default)]
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
    /// The browser's `icecandidateerror` events.
    pub errors: Vec<CandidateError>,
    /// What the page gave `new RTCPeerConnection()`.
    pub config: Option<Configuration>,
    /// What the ICE agent observed, from the stats.
    pub observed: Observed,
}

/// An `icecandidateerror` event: a STUN or TURN server that failed the
/// browser while it gathered candidates.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CandidateError {
    /// Its update-log index.
    pub index: usize,
    /// The server's URL (`turn:edge.example:3478?transport=udp`).
    pub url: String,
    /// The error code: a STUN error (401, 403, 437, 486…) or 701 (no
    /// answer, DNS failure, no route).
    pub code: u16,
    /// The browser's text.
    pub text: String,
    /// The local address the request went from (often masked by Chrome).
    pub host: String,
}

/// The `rtcConfiguration` of a peer connection.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Configuration {
    /// Every ICE server URL given (`stun:`, `turn:`, `turns:`).
    pub ice_servers: Vec<String>,
    /// `all` or `relay`, when given.
    pub ice_transport_policy: Option<String>,
}

impl Configuration {
    /// Whether a TURN server was given.
    pub fn has_turn(&self) -> bool {
        self.ice_servers.iter().any(|u| {
            let u = u.to_ascii_lowercase();
            u.starts_with("turn:") || u.starts_with("turns:")
        })
    }
}

/// What the stats say the ICE agent observed, at the last sample.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Candidate pairs, by stats id.
    pub pairs: BTreeMap<String, ObservedPair>,
    /// Candidates (local and remote), by stats id.
    pub candidates: BTreeMap<String, ObservedCandidate>,
    /// The transports' selected pair ids.
    pub selected: Vec<String>,
    /// The transports' last ICE state (`connected`, `failed`…).
    pub transport_state: Option<String>,
}

/// A candidate pair of the stats.
#[derive(Clone, Debug, Default)]
pub struct ObservedPair {
    /// `succeeded`, `failed`, `in-progress`, `waiting`, `frozen`.
    pub state: String,
    /// Whether it was nominated.
    pub nominated: bool,
    /// The local candidate's stats id.
    pub local: String,
    /// The remote candidate's stats id.
    pub remote: String,
}

/// A candidate of the stats.
#[derive(Clone, Debug, Default)]
pub struct ObservedCandidate {
    /// `host`, `srflx`, `prflx`, `relay`.
    pub kind: String,
    /// The address (empty when Chrome hides a local host address).
    pub address: String,
    /// The port.
    pub port: u64,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// For a relay, how the browser reached the TURN server.
    pub relay_protocol: String,
    /// For a reflexive or relay candidate, the server that gave it.
    pub url: String,
}

impl ObservedCandidate {
    /// `srflx udp 81.217.27.201:38454` and the like.
    pub fn describe(&self) -> String {
        let address = if self.address.is_empty() {
            "(hidden)".to_owned()
        } else if self.address.contains(':') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        };
        let via = if self.relay_protocol.is_empty() {
            String::new()
        } else {
            format!(" via {} to the TURN server", self.relay_protocol)
        };
        format!(
            "{} {} {address}:{}{via}",
            self.kind, self.protocol, self.port
        )
    }
}

impl Observed {
    /// The pair a transport selected, if its checks succeeded.
    pub fn selected_pair(
        &self,
    ) -> Option<(
        &ObservedPair,
        Option<&ObservedCandidate>,
        Option<&ObservedCandidate>,
    )> {
        self.selected
            .iter()
            .filter_map(|id| self.pairs.get(id))
            .chain(self.pairs.values().filter(|p| p.nominated))
            .find(|p| p.state == "succeeded")
            .map(|p| {
                (
                    p,
                    self.candidates.get(&p.local),
                    self.candidates.get(&p.remote),
                )
            })
    }

    /// How many pairs ended in each state, for the timeline.
    pub fn pair_states(&self) -> BTreeMap<&str, usize> {
        let mut states = BTreeMap::new();
        for pair in self.pairs.values() {
            *states.entry(pair.state.as_str()).or_insert(0) += 1;
        }
        states
    }
}

/// `type: offer, sdp: v=0...` or `{"type":"offer","sdp":"v=0..."}` →
/// ("offer", "v=0...").
fn description_of(value: &str) -> Option<(String, String)> {
    if value.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(value).ok()?;
        let kind = v.get("type")?.as_str()?.to_owned();
        let sdp = v.get("sdp")?.as_str()?;
        return Some((kind, sdp.replace("\r\n", "\n")));
    }
    let rest = value.strip_prefix("type: ")?;
    let (kind, sdp) = rest.split_once(", sdp: ")?;
    Some((kind.trim().to_owned(), sdp.replace("\r\n", "\n")))
}

/// `sdpMid: 0, sdpMLineIndex: 0, candidate: candidate:...` or
/// `{"candidate":"candidate:...","sdpMid":"0","sdpMLineIndex":0}` → (0, line).
fn candidate_of(value: &str) -> Option<(usize, String)> {
    if value.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(value).ok()?;
        let line = v.get("candidate")?.as_str()?.trim();
        let index = v
            .get("sdpMLineIndex")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0);
        return (!line.is_empty()).then(|| (index, line.to_owned()));
    }
    let index = value
        .split(", ")
        .find_map(|p| p.strip_prefix("sdpMLineIndex: "))
        .and_then(|i| i.trim().parse().ok())
        .unwrap_or(0);
    let at = value.find("candidate: ")?;
    let line = value[at + "candidate: ".len()..].trim();
    (!line.is_empty()).then(|| (index, line.to_owned()))
}

/// A state as the dump wrote it: `failed` (old) or `"failed"` (new).
fn state_of(value: &str) -> String {
    serde_json::from_str::<String>(value).unwrap_or_else(|_| value.trim().to_owned())
}

/// An `icecandidateerror` value, JSON (new) or `key: value, …` text (old).
fn error_of(index: usize, value: &str) -> Option<CandidateError> {
    let field = |v: &Value, key: &str| -> String {
        match v.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    };
    let (url, code, text, host) = if value.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(value).ok()?;
        (
            field(&v, "url"),
            field(&v, "error_code"),
            field(&v, "error_text"),
            field(&v, "host_candidate"),
        )
    } else {
        // Chrome wrote one `key: value` per line; pasted dumps may join
        // them with commas.
        let get = |key: &str| {
            value
                .split(['\n', ','])
                .map(str::trim)
                .find_map(|p| p.strip_prefix(key))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        (
            get("url: "),
            get("error_code: "),
            get("error_text: "),
            get("host_candidate: "),
        )
    };
    Some(CandidateError {
        index,
        url,
        code: code.parse().ok()?,
        text,
        host,
    })
}

/// The ICE servers and policy of an `rtcConfiguration`: JSON (new) or the
/// `{ iceServers: [turn:…], iceTransportPolicy: all }` text (old).
fn configuration_of(value: &str) -> Configuration {
    let mut config = Configuration::default();
    if let Ok(v) = serde_json::from_str::<Value>(value) {
        for server in v
            .get("iceServers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match server.get("urls").or_else(|| server.get("url")) {
                Some(Value::String(u)) => config.ice_servers.push(u.clone()),
                Some(Value::Array(us)) => config
                    .ice_servers
                    .extend(us.iter().filter_map(Value::as_str).map(str::to_owned)),
                _ => {}
            }
        }
        config.ice_transport_policy = v
            .get("iceTransportPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return config;
    }
    for token in value.split(|c: char| c == ',' || c == '[' || c == ']' || c.is_whitespace()) {
        let lower = token.to_ascii_lowercase();
        if ["stun:", "stuns:", "turn:", "turns:"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            config.ice_servers.push(token.to_owned());
        }
    }
    if let Some(at) = value.find("iceTransportPolicy: ") {
        let rest = &value[at + "iceTransportPolicy: ".len()..];
        let policy: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        if !policy.is_empty() {
            config.ice_transport_policy = Some(policy);
        }
    }
    config
}

/// Milliseconds since 1970 as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn time_of_millis(ms: f64) -> Option<String> {
    if !ms.is_finite() || !(0.0..1e15).contains(&ms) {
        return None;
    }
    let total = ms as u64;
    let (secs, millis) = (total / 1000, total % 1000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

/// One entry of an update log, as either generation writes it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    value: Value,
    time: Option<String>,
    timestamp: Option<f64>,
}

impl PeerConnection {
    /// Takes in one update-log entry.
    fn push(&mut self, i: usize, entry: Entry) {
        let value = match &entry.value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let time = entry
            .time
            .or_else(|| entry.timestamp.and_then(time_of_millis));
        let lower = entry.kind.to_ascii_lowercase();
        let side = if lower.contains("remote") || lower == "addicecandidate" {
            "remote"
        } else {
            "local"
        };
        let outcome =
            lower.contains("success") || lower.contains("failure") || lower.contains("failed");
        if (lower == "setlocaldescription" || lower == "setremotedescription")
            && let Some((sdp_type, sdp)) = description_of(&value)
        {
            if self.descriptions.len() >= MAX_DESCRIPTIONS {
                self.descriptions.remove(0);
            }
            self.descriptions.push((i, side, sdp_type, sdp));
        } else if lower.contains("icecandidateerror") {
            if let Some(error) = error_of(i, &value)
                && self.errors.len() < MAX_ERRORS
            {
                self.errors.push(error);
            }
        } else if lower.contains("icecandidate")
            && !outcome
            && let Some((index, line)) = candidate_of(&value)
            && self.candidates.len() < MAX_CANDIDATES
        {
            self.candidates.push((i, side, index, line));
        }
        if self.events.len() >= MAX_EVENTS {
            return;
        }
        if lower.contains("statechange") {
            let what = format!(
                "{}: {}",
                entry.kind.strip_prefix("on").unwrap_or(&entry.kind),
                state_of(&value)
            );
            self.events.push((i, time, what));
        } else if lower.contains("description") && !lower.contains("success") {
            self.events.push((i, time, entry.kind.clone()));
        } else if lower.contains("icecandidateerror")
            || (lower.contains("icecandidate") && lower.contains("fail"))
        {
            let what = format!(
                "{}: {}",
                entry.kind,
                value.chars().take(200).collect::<String>()
            );
            self.events.push((i, time, what));
        }
    }
}

/// Why reading a dump stopped.
enum Stop {
    Walk(WalkError),
    /// The report could not take a peer connection.
    Emit(InputError),
}

impl From<WalkError> for Stop {
    fn from(e: WalkError) -> Self {
        Stop::Walk(e)
    }
}

/// The longest update-log entry or stats series read (a value past it is
/// skipped): Chrome's longest are descriptions and series of a few
/// hundred kilobytes.
const MAX_VALUE: usize = 16 * 1024 * 1024;

/// Parses a value captured at `line`; a value of another shape than
/// expected is `None` (skipped), broken JSON is damage.
fn parse<'a, T: Deserialize<'a>>(raw: &'a [u8], line: usize) -> Result<Option<T>, WalkError> {
    match serde_json::from_slice(raw) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_data() => Ok(None),
        Err(e) => Err(WalkError::Damaged {
            line: line + e.line().saturating_sub(1),
            reason: e.to_string(),
        }),
    }
}

/// The dump's top level: only `PeerConnections` is read. `found` turns
/// true when it is there.
fn read_dump<R: std::io::Read>(
    file: &str,
    w: &mut Walker<R>,
    emit: &mut Emit<'_>,
    found: &mut bool,
) -> Result<(), Stop> {
    if !w.enter_object()? {
        return Ok(());
    }
    let mut first = true;
    while let Some(key) = w.next_key(first)? {
        first = false;
        if key != "PeerConnections" {
            w.skip()?;
            continue;
        }
        *found = true;
        if !w.enter_object()? {
            return Err(Stop::Walk(WalkError::Damaged {
                line: w.line(),
                reason: "PeerConnections is no object".into(),
            }));
        }
        let mut first = true;
        while let Some(id) = w.next_key(first)? {
            first = false;
            let mut pc = PeerConnection {
                id,
                file: file.to_owned(),
                ..PeerConnection::default()
            };
            if !w.enter_object()? {
                w.skip()?;
                continue;
            }
            read_connection(w, &mut pc)?;
            emit(Item::PeerConnection(pc)).map_err(Stop::Emit)?;
        }
    }
    Ok(())
}

/// One peer connection's object, entered.
fn read_connection<R: std::io::Read>(
    w: &mut Walker<R>,
    pc: &mut PeerConnection,
) -> Result<(), WalkError> {
    let mut raw = Vec::new();
    let mut first = true;
    while let Some(key) = w.next_key(first)? {
        first = false;
        match key.as_str() {
            "updateLog" if w.enter_array()? => {
                let mut i = 0;
                let mut first = true;
                while w.next_element(first)? {
                    first = false;
                    let line = w.line();
                    if w.capture(&mut raw, MAX_VALUE)?
                        && let Some(Some(entry)) = parse::<Option<Entry>>(&raw, line)?
                    {
                        pc.push(i, entry);
                    }
                    i += 1;
                }
            }
            "stats" if w.enter_object()? => read_stats(w, &mut pc.observed, &mut raw)?,
            "rtcConfiguration" => {
                let line = w.line();
                if w.capture(&mut raw, MAX_VALUE)?
                    && let Some(value) = parse::<Value>(&raw, line)?
                {
                    pc.config = Some(match value {
                        Value::String(s) => configuration_of(&s),
                        other => configuration_of(&other.to_string()),
                    });
                }
            }
            _ => w.skip()?,
        }
    }
    Ok(())
}

/// The stats series read: (stats type, field).
const STATS_READ: [(&str, &str); 13] = [
    ("candidate-pair", "state"),
    ("candidate-pair", "nominated"),
    ("candidate-pair", "localCandidateId"),
    ("candidate-pair", "remoteCandidateId"),
    ("transport", "selectedCandidatePairId"),
    ("transport", "iceState"),
    ("candidate", "candidateType"),
    ("candidate", "address"),
    ("candidate", "ip"),
    ("candidate", "port"),
    ("candidate", "protocol"),
    ("candidate", "relayProtocol"),
    ("candidate", "url"),
];

/// One stats series; `values` is a JSON array written as a string.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Series {
    #[serde(rename = "statsType")]
    stats_type: String,
    values: Value,
}

impl Series {
    /// The last sample.
    fn last(&self) -> Option<Value> {
        match &self.values {
            Value::String(s) => {
                let mut de = serde_json::Deserializer::from_str(s);
                LastElement.deserialize(&mut de).ok().flatten()
            }
            Value::Array(a) => a.last().cloned(),
            _ => None,
        }
    }
}

/// The last element of a JSON array, without keeping the others.
struct LastElement;

impl<'de> DeserializeSeed<'de> for LastElement {
    type Value = Option<Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for LastElement {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of samples")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let mut last = None;
        while let Some(value) = seq.next_element::<Value>()? {
            last = Some(value);
        }
        Ok(last)
    }
}

/// The stats object, entered: `<id>-<field>` → series; only the series
/// of [`STATS_READ`] are parsed.
fn read_stats<R: std::io::Read>(
    w: &mut Walker<R>,
    o: &mut Observed,
    raw: &mut Vec<u8>,
) -> Result<(), WalkError> {
    let mut first = true;
    while let Some(key) = w.next_key(first)? {
        first = false;
        let Some((id, field)) = key.rsplit_once('-') else {
            w.skip()?;
            continue;
        };
        if !STATS_READ.iter().any(|(_, f)| *f == field) {
            w.skip()?;
            continue;
        }
        let line = w.line();
        if !w.capture(raw, MAX_VALUE)? {
            continue;
        }
        let Some(series) = parse::<Series>(raw, line)? else {
            continue;
        };
        let Some(last) = series.last() else { continue };
        let text = || match &last {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Old dumps give no `statsType`: their ids name it instead
        // (`RTCIceCandidatePair_…`, `RTCTransport_…`, `RTCIceCandidate_…`).
        let kind = match series.stats_type.as_str() {
            "" if id.starts_with("RTCIceCandidatePair_") => "candidate-pair",
            "" if id.starts_with("RTCTransport_") => "transport",
            "" if id.starts_with("RTCIceCandidate_") => "candidate",
            kind => kind,
        };
        if kind == "candidate-pair" {
            let pair = o.pairs.entry(id.to_owned()).or_default();
            match field {
                "state" => pair.state = text(),
                "nominated" => pair.nominated = last.as_bool().unwrap_or(false),
                "localCandidateId" => pair.local = text(),
                "remoteCandidateId" => pair.remote = text(),
                _ => {}
            }
        } else if kind == "transport" {
            match field {
                "selectedCandidatePairId" => o.selected.push(text()),
                "iceState" => o.transport_state = Some(text()),
                _ => {}
            }
        } else if kind.ends_with("candidate") {
            let candidate = o.candidates.entry(id.to_owned()).or_default();
            match field {
                "candidateType" => candidate.kind = text(),
                "address" | "ip" if candidate.address.is_empty() => candidate.address = text(),
                "port" => candidate.port = last.as_u64().unwrap_or(0),
                "protocol" => candidate.protocol = text(),
                "relayProtocol" => candidate.relay_protocol = text(),
                "url" => candidate.url = text(),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Reads a dump from `reader`, handing on each peer connection as soon as
/// it is read. `Ok(false)` if the JSON is no dump (no `PeerConnections`).
pub fn read_stream(
    file: &str,
    reader: impl std::io::Read,
    emit: &mut Emit<'_>,
) -> Result<bool, InputError> {
    let mut found = false;
    let mut walker = Walker::new(reader);
    match read_dump(file, &mut walker, emit, &mut found) {
        Ok(()) => Ok(found),
        Err(Stop::Emit(e)) => Err(e),
        Err(Stop::Walk(WalkError::Io(source))) => Err(InputError::Io {
            file: file.to_owned(),
            source,
        }),
        // What was read before the damage has been handed on already.
        Err(Stop::Walk(WalkError::Damaged { line, reason })) if found => {
            Err(InputError::Malformed {
                file: file.to_owned(),
                line,
                reason: format!(
                    "the webrtc-internals dump is damaged here ({reason}); the peer connections before this point were read"
                ),
            })
        }
        Err(Stop::Walk(WalkError::Damaged { .. })) => Ok(false),
    }
}

/// The peer connections of a dump held in memory; `None` if `text` is not one.
pub fn read(file: &str, text: &str) -> Option<Vec<Item>> {
    let mut items = Vec::new();
    let found = read_stream(file, text.as_bytes(), &mut |item| {
        items.push(item);
        Ok(())
    })
    .ok()?;
    found.then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_a_value_are_read() {
        assert_eq!(
            description_of(r#"{"type":"answer","sdp":"v=0\r\n"}"#),
            Some(("answer".into(), "v=0\n".into()))
        );
        assert_eq!(
            candidate_of(
                r#"{"sdpMid":"1","sdpMLineIndex":1,"candidate":"candidate:1 1 udp 1 10.0.0.1 5 typ host"}"#
            ),
            Some((1, "candidate:1 1 udp 1 10.0.0.1 5 typ host".into()))
        );
        assert_eq!(state_of("\"failed\""), "failed");
        assert_eq!(state_of("failed"), "failed");
        let e = error_of(3, r#"{"url":"turn:t.example:3478","address":"x","port":1,"host_candidate":"h:1","error_text":"Unauthorized","error_code":401}"#).unwrap();
        assert_eq!((e.code, e.url.as_str()), (401, "turn:t.example:3478"));
        let e = error_of(3, "url: turn:t.example:3478, address: 1.2.3.4, port: 5, host_candidate: 1.2.3.4:5, error_text: Unauthorized, error_code: 401").unwrap();
        assert_eq!((e.code, e.text.as_str()), (401, "Unauthorized"));
        let c = configuration_of(
            "{ iceServers: [turn:edge.example:3478, stun:s.example], iceTransportPolicy: relay }",
        );
        assert!(c.has_turn());
        assert_eq!(c.ice_transport_policy.as_deref(), Some("relay"));
        assert_eq!(
            time_of_millis(1_770_110_098_492.675).as_deref(),
            Some("2026-02-03T09:14:58.492Z")
        );
    }
}
