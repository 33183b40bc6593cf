//! `edgeice serve`'s own log: its per-session records (`session-start`,
//! `session-end`) and refused requests (`refused`), in either log format —
//! JSON lines (`--log-format json`, fields at the top level or under
//! `fields`) or text (`... INFO edgeice::session: message key=value ...`).
//!
//! A session that ended is explained as soon as its end is read (data went
//! to the peer and nothing came back, the relay was never used...);
//! refusals are counted by reason, user, source and peer, and explained at
//! the end. What is kept is bounded: open sessions and refusal groups have
//! caps, findings of one kind past [`LISTED_PER_CODE`] are counted only.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::diagnose::{Finding, Severity};
use crate::sip::Evidence;

/// One record of the log: its fields, as text.
#[derive(Clone, Debug)]
pub struct Record {
    /// Where it was read.
    pub evidence: Evidence,
    /// `event`, `session`, `user`, `reason`... as written.
    pub fields: BTreeMap<String, String>,
}

impl Record {
    fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }

    fn number(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v.max(0.0) as u64)
    }
}

/// Removes terminal colour codes (a log written by a terminal-minded
/// logger): `ESC [ ... letter`.
fn strip_ansi(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether a file's first line is `edgeice serve`'s log: a JSON record
/// of an `edgeice` target, a text line of one, or the server's
/// `edgeice: listening on` announcements.
pub fn is_start(line: &str) -> bool {
    let line = strip_ansi(line);
    let line = line.trim();
    if line.starts_with('{') {
        return line.contains("\"edgeice")
            && serde_json::from_str::<Value>(line).is_ok_and(|v| {
                v.get("target")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t == "edgeice" || t.starts_with("edgeice::"))
            });
    }
    line.starts_with("edgeice: ") || line.contains(" edgeice::")
}

/// The record on `line`, if it is one of the server's session or refusal
/// records (other lines are not).
pub fn parse(file: &str, number: usize, line: &str) -> Option<Record> {
    let clean = strip_ansi(line);
    let text = clean.trim();
    let fields = if text.starts_with('{') {
        json_fields(text)?
    } else {
        text_fields(text)?
    };
    let event = fields.get("event")?;
    if !matches!(event.as_str(), "session-start" | "session-end" | "refused") {
        return None;
    }
    // Long lines are cut in the evidence; the fields are whole.
    let shown: String = text.chars().take(600).collect();
    Some(Record {
        evidence: Evidence {
            file: file.to_owned(),
            line: number,
            text: shown,
        },
        fields,
    })
}

fn json_fields(text: &str) -> Option<BTreeMap<String, String>> {
    let Value::Object(top) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    let mut fields = BTreeMap::new();
    let mut add = |object: &serde_json::Map<String, Value>| {
        for (key, value) in object {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                Value::Object(_) => continue,
                other => other.to_string(),
            };
            fields.insert(key.clone(), value);
        }
    };
    add(&top);
    // Without flatten_event, tracing-subscriber puts them under "fields".
    if let Some(Value::Object(inner)) = top.get("fields") {
        add(inner);
    }
    Some(fields)
}

/// `key=value` pairs from ` event=` on: values quoted (`"a b"`, with `\"`
/// and `\\`) or up to the next space.
fn text_fields(text: &str) -> Option<BTreeMap<String, String>> {
    let start = text.find(" event=")? + 1;
    let mut rest = &text[start..];
    let mut fields = BTreeMap::new();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            break;
        }
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        fields.insert(key.to_owned(), value);
        rest = tail.trim_start();
    }
    Some(fields)
}

/// Findings of one code listed; the rest are counted in one more.
pub const LISTED_PER_CODE: usize = 20;

/// Sessions started and not yet ended that are remembered.
const MAX_OPEN: usize = 100_000;

/// Distinct refusal groups remembered.
const MAX_GROUPS: usize = 10_000;

/// Refusals of one kind from one source.
#[derive(Debug)]
struct Group {
    count: u64,
    /// Lines the server left out for its rate limit (`suppressed`).
    suppressed: u64,
    first: Record,
}

/// What the server log has shown so far.
#[derive(Debug, Default)]
pub struct ServeLog {
    open: HashMap<String, Record>,
    refusals: BTreeMap<(String, String, String, String), Group>,
    findings: Vec<Finding>,
    /// Findings by code, listed or not.
    per_code: BTreeMap<&'static str, usize>,
    ended: u64,
    /// Sessions that relayed both ways.
    both_ways: u64,
    /// The last peer refused to each client address: (peer, rule), to
    /// explain a session without permissions.
    refused_peers: HashMap<String, (String, String)>,
    /// Sessions whose id came again (a restart) before their end.
    orphans: Vec<Record>,
}

impl ServeLog {
    /// Reads one record.
    pub fn push(&mut self, record: Record) {
        match record.get("event") {
            "session-start" => {
                if self.open.len() < MAX_OPEN {
                    let id = record.get("session").to_owned();
                    // The same id again: the server restarted (ids start at
                    // 1 in each process) and the old session never ended.
                    if let Some(old) = self.open.insert(id, record)
                        && self.orphans.len() < MAX_GROUPS
                    {
                        self.orphans.push(old);
                    }
                }
            }
            "session-end" => {
                self.ended += 1;
                if record.number("packets_to_peer") > 0 && record.number("packets_to_client") > 0 {
                    self.both_ways += 1;
                }
                let start = self.open.remove(record.get("session"));
                let refused = self.refused_peers.remove(record.get("client"));
                if let Some(finding) = explain_session(start.as_ref(), &record, refused) {
                    self.add(finding);
                }
            }
            _ => {
                if record.get("reason") == "peer-forbidden" && self.refused_peers.len() < MAX_GROUPS
                {
                    let refused = (record.get("peer").to_owned(), record.get("rule").to_owned());
                    self.refused_peers
                        .insert(record.get("client").to_owned(), refused);
                }
                let key = (
                    record.get("reason").to_owned(),
                    record.get("user").to_owned(),
                    record.get("ip").to_owned(),
                    format!("{} {}", record.get("peer"), record.get("rule")),
                );
                let suppressed = record.number("suppressed");
                if let Some(group) = self.refusals.get_mut(&key) {
                    group.count += 1;
                    group.suppressed += suppressed;
                } else if self.refusals.len() < MAX_GROUPS {
                    self.refusals.insert(
                        key,
                        Group {
                            count: 1,
                            suppressed,
                            first: record,
                        },
                    );
                }
            }
        }
    }

    fn add(&mut self, finding: Finding) {
        let n = self.per_code.entry(finding.code).or_default();
        *n += 1;
        if *n <= LISTED_PER_CODE {
            self.findings.push(finding);
        }
    }

    /// Everything found, once the log is read.
    pub fn findings(mut self) -> Vec<Finding> {
        let refusals = std::mem::take(&mut self.refusals);
        for ((reason, user, ip, _), group) in refusals {
            let finding = explain_refusal(&reason, &user, &ip, &group);
            self.add(finding);
        }
        let orphans = std::mem::take(&mut self.orphans);
        if let Some(first) = orphans.first() {
            self.add(Finding {
                code: "session-not-ended",
                severity: Severity::Info,
                message: format!(
                    "{} session(s) started and never ended before the server started again \
                     (it was killed, or crashed): the first, session {} of user {} from {}",
                    orphans.len(),
                    first.get("session"),
                    first.get("user"),
                    first.get("client")
                ),
                fix: "Stop the server with SIGTERM (systemctl stop): it then ends every \
                      session with its record."
                    .to_owned(),
                call_id: None,
                evidence: vec![first.evidence.clone()],
            });
        }
        if !self.open.is_empty() {
            let mut ids: Vec<&String> = self.open.keys().collect();
            ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
            let shown: Vec<&str> = ids.iter().take(10).map(|s| s.as_str()).collect();
            let mut evidence: Vec<Evidence> = Vec::new();
            if let Some(first) = ids.first().and_then(|id| self.open.get(*id)) {
                evidence.push(first.evidence.clone());
            }
            self.add(Finding {
                code: "session-not-ended",
                severity: Severity::Info,
                message: format!(
                    "{} session(s) started and did not end in the log (still live when it \
                     was cut, or the server was killed): {}",
                    self.open.len(),
                    shown.join(", ")
                ),
                fix: "Read a later log, or `edgeice sessions` on the running server.".to_owned(),
                call_id: None,
                evidence,
            });
        }
        if self.ended > 0 {
            self.findings.push(Finding {
                code: "serve-log-sessions",
                severity: Severity::Info,
                message: format!(
                    "{} session(s) ended in the log, {} of them relayed both ways",
                    self.ended, self.both_ways
                ),
                fix: "Sessions without a finding of their own relayed both ways.".to_owned(),
                call_id: None,
                evidence: Vec::new(),
            });
        }
        let mut findings = self.findings;
        for (code, count) in &self.per_code {
            if *count > LISTED_PER_CODE {
                findings.push(Finding {
                    code,
                    severity: Severity::Info,
                    message: format!(
                        "{} more session findings of kind {code} are not listed",
                        count - LISTED_PER_CODE
                    ),
                    fix: String::new(),
                    call_id: None,
                    evidence: Vec::new(),
                });
            }
        }
        findings
    }
}

/// What a session's end says about it, if anything is wrong.
fn explain_session(
    start: Option<&Record>,
    end: &Record,
    refused: Option<(String, String)>,
) -> Option<Finding> {
    let to_peer = end.number("packets_to_peer");
    let to_client = end.number("packets_to_client");
    let bytes_to_peer = end.number("bytes_to_peer");
    let dropped = end.number("dropped_from_peers");
    let peers = end.number("peers");
    let peer_addrs = match end.get("peer_addrs") {
        "" => "?".to_owned(),
        addrs => addrs.replace(',', ", "),
    };
    let who = format!(
        "session {} (user {} from {} over {}, relay {}, ended {} after {} s)",
        end.get("session"),
        end.get("user"),
        end.get("client"),
        end.get("transport"),
        end.get("relay"),
        end.get("reason"),
        end.get("duration_s"),
    );
    let mut evidence: Vec<Evidence> = start.map(|s| s.evidence.clone()).into_iter().collect();
    evidence.push(end.evidence.clone());
    let (code, severity, message, fix) = if to_peer > 0 && to_client == 0 {
        let mut message = format!(
            "{who}: permission created for peer {peer_addrs}, data sent to the peer \
             ({to_peer} packets, {bytes_to_peer} bytes), nothing ever came back: the peer never \
             answered"
        );
        let fix = if dropped > 0 {
            message.push_str(&format!(
                "; {dropped} datagrams reached the relay from addresses no permission covers, \
                 so the peer answers from another address than the one permitted"
            ));
            "The peer's answers come from another IP than the client permitted (a peer \
             behind a NAT that maps its relay traffic elsewhere, or a multihomed peer): the \
             client must permit the address the peer really sends from (its ICE candidates)."
        } else {
            "The peer's firewall or NAT drops what the relay sends, or the peer is not \
             running: check that it accepts datagrams from the relay's address (a peer behind \
             a symmetric NAT needs a relay of its own), and that the address permitted is \
             the peer's real one."
        };
        ("session-peer-never-answered", Severity::Error, message, fix)
    } else if to_client > 0 && to_peer == 0 {
        (
            "session-client-never-sent",
            Severity::Warning,
            format!(
                "{who}: the peer ({peer_addrs}) sent {to_client} packets through the relay, \
                 the client sent none"
            ),
            "The client received but never sent: its media or ICE checks towards the peer \
             did not start (a one-way call).",
        )
    } else if peers > 0 && to_peer == 0 {
        (
            "session-relay-unused",
            Severity::Warning,
            format!(
                "{who}: permission created for peer {peer_addrs}, but nothing was relayed \
                 either way"
            ),
            "The client permitted the peer but sent nothing through the relay: ICE chose \
             another path, or the call ended before media.",
        )
    } else if let (0, Some((peer, rule))) = (peers, refused) {
        (
            "session-peer-refused",
            Severity::Error,
            format!(
                "{who}: no permission was ever created: the client asked for peer {peer}, \
                 refused by policy rule {rule}"
            ),
            "The server's peer policy refuses that peer (see the refused-peer-forbidden \
             finding): allow its range with --allow-peer if the relay must reach it, or \
             have the client use an address the policy permits.",
        )
    } else if peers == 0 {
        (
            "session-no-permission",
            Severity::Info,
            format!("{who}: no permission was ever created, the relay was never used"),
            "Usual for a relay candidate gathered and not chosen by ICE; if the call \
             needed the relay, the client never got as far as permitting its peer.",
        )
    } else {
        return None;
    };
    Some(Finding {
        code,
        severity,
        message,
        fix: fix.to_owned(),
        call_id: None,
        evidence,
    })
}

fn explain_refusal(reason: &str, user: &str, ip: &str, group: &Group) -> Finding {
    let first = &group.first;
    let times = match group.count {
        1 => "once".to_owned(),
        n => format!("{n} times"),
    };
    let times = if group.suppressed > 0 {
        format!(
            "{times} (and {} more times the server did not log)",
            group.suppressed
        )
    } else {
        times
    };
    let method = first.get("method");
    let (code, severity, message, fix) = match reason {
        "wrong-password" => (
            "refused-wrong-password",
            Severity::Error,
            format!("{method} refused {times}: wrong password for user {user} from {ip}"),
            format!(
                "The password the client has for {user} is not the server's (or not for \
                 its realm): check what the application hands out; if {ip} is guessing, \
                 block it (a fail2ban filter on `refused .* from <HOST>: wrong password`)."
            ),
        ),
        "unknown-user" => (
            "refused-unknown-user",
            Severity::Error,
            format!("{method} refused {times}: unknown user {user} from {ip}"),
            "The server has no such user: add it (`edgeice user add`), or for REST API \
             credentials check the shared secret and that the user name's expiry is in the \
             future."
                .to_owned(),
        ),
        "guessing-backoff" => (
            "refused-guessing-backoff",
            Severity::Warning,
            format!(
                "{method} refused {times} without a check: user {user} from {ip} is held back \
                 after repeated wrong passwords"
            ),
            "Fix the client's password; the backoff ends by itself once it stops guessing."
                .to_owned(),
        ),
        "peer-forbidden" => {
            let rule = first.get("rule");
            (
                "refused-peer-forbidden",
                Severity::Error,
                format!(
                    "{method} refused {times}: peer {} refused by policy rule {rule} \
                     (user {user} from {ip})",
                    first.get("peer")
                ),
                match rule {
                    r if r.starts_with("deny-peer") => format!(
                        "The peer is in a --deny-peer range ({}): remove it there if the \
                         relay should reach it.",
                        r.trim_start_matches("deny-peer ")
                    ),
                    "deny-private-peers" => "The server refuses private peers \
                        (--deny-private-peers): allow this range with --allow-peer if the \
                        relay must reach it."
                        .to_owned(),
                    _ => format!(
                        "Built-in rule {rule} protects the server's own network; allow the \
                         range with --allow-peer only if the relay must reach it."
                    ),
                },
            )
        }
        "user-quota" => (
            "refused-quota",
            Severity::Warning,
            format!("{method} refused {times}: user {user} holds as many allocations as allowed"),
            "Raise --max-allocations-per-user, or find why the client leaks allocations."
                .to_owned(),
        ),
        "total-quota" => (
            "refused-quota",
            Severity::Error,
            format!("{method} refused {times}: the server holds as many allocations as allowed"),
            "Raise --max-allocations (and the open-file limit with it), or add a server."
                .to_owned(),
        ),
        "no-relay-port" => (
            "refused-no-relay-port",
            Severity::Error,
            format!("{method} refused {times} with 508: no relay port could be bound"),
            "Widen --relay-ports, or raise the open-file limit (LimitNOFILE=).".to_owned(),
        ),
        "too-many-permissions" | "too-many-channels" => (
            "refused-allocation-full",
            Severity::Warning,
            format!("{method} refused {times} with 508: {reason} (user {user} from {ip})"),
            "Raise --max-permissions-per-allocation or --max-channels-per-allocation if \
             such clients are legitimate."
                .to_owned(),
        ),
        "bad-request" => (
            "refused-bad-request",
            Severity::Warning,
            format!("{method} refused {times} with 400 Bad Request (user {user} from {ip})"),
            "The client sends requests the server cannot accept (a missing or malformed \
             attribute, a TCP relay asked over UDP...): a client bug, or a scanner."
                .to_owned(),
        ),
        _ => (
            "refused-other",
            Severity::Info,
            format!(
                "{method} refused {times} with error {} (user {user} from {ip})",
                first.get("code")
            ),
            String::new(),
        ),
    };
    Finding {
        code,
        severity,
        message,
        fix,
        call_id: None,
        evidence: vec![first.evidence.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_read_quoted_or_bare() {
        let line = "2026-12-02T01:52:08.4Z  WARN edgeice::refused: refused Allocate from \
                    192.0.2.1: wrong password for user a b event=\"refused\" \
                    reason=\"wrong-password\" code=401 user=\"a \\\"b\\\"\" ip=192.0.2.1";
        let record = parse("f", 1, line).unwrap();
        assert_eq!(record.get("reason"), "wrong-password");
        assert_eq!(record.get("code"), "401");
        assert_eq!(record.get("user"), "a \"b\"");
        assert_eq!(record.get("ip"), "192.0.2.1");
        assert!(parse("f", 2, "2026 INFO edgeice::serve: listening").is_none());
    }

    #[test]
    fn a_session_left_open_by_a_restart_is_said() {
        let mut log = ServeLog::default();
        let start = r#"{"event":"session-start","session":1,"user":"u","client":"192.0.2.1:5000","target":"edgeice::session"}"#;
        log.push(parse("f", 1, start).unwrap());
        log.push(parse("f", 9, start).unwrap());
        let findings = log.findings();
        assert!(
            findings
                .iter()
                .any(|f| f.code == "session-not-ended" && f.message.contains("started again")),
            "{findings:?}"
        );
    }

    #[test]
    fn a_session_whose_peer_never_answered_is_an_error() {
        let mut log = ServeLog::default();
        let start = r#"{"level":"INFO","event":"session-start","session":7,"user":"u","client":"192.0.2.1:5000","target":"edgeice::session"}"#;
        let end = r#"{"level":"INFO","fields":{"event":"session-end","session":7,"user":"u","client":"192.0.2.1:5000","peers":1,"peer_addrs":"198.51.100.9","packets_to_peer":50,"bytes_to_peer":6000,"packets_to_client":0,"dropped_from_peers":0,"reason":"expired","duration_s":600.0},"target":"edgeice::session"}"#;
        log.push(parse("f", 1, start).unwrap());
        log.push(parse("f", 2, end).unwrap());
        let findings = log.findings();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(findings[1].code, "serve-log-sessions");
        assert_eq!(findings[0].code, "session-peer-never-answered");
        assert!(findings[0].message.contains("198.51.100.9"));
        assert!(findings[0].message.contains("50 packets"));
        assert_eq!(findings[0].evidence.len(), 2);
    }
}
