//! The ICE lines of an offer or answer (RFC 8839): written for the other
//! side as candidates are gathered, and read line by line as the other
//! side's description arrives (trickle ICE, RFC 8838).

use std::fmt::Write as _;

use crate::candidate::{Candidate, CandidateLineError};

/// Writes the start of a description: one audio media section with the
/// credentials and `a=ice-options:trickle`. Candidate lines follow with
/// [`candidate_line`], then [`END_OF_CANDIDATES`].
pub fn description_header(ufrag: &str, pwd: &str, components: u16, ice_lite: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "v=0");
    let _ = writeln!(out, "o=- 0 1 IN IP4 0.0.0.0");
    let _ = writeln!(out, "s=edgeice call");
    let _ = writeln!(out, "t=0 0");
    if ice_lite {
        let _ = writeln!(out, "a=ice-lite");
    }
    let _ = writeln!(out, "m=audio 9 RTP/AVP 0");
    let _ = writeln!(out, "c=IN IP4 0.0.0.0");
    if components == 1 {
        let _ = writeln!(out, "a=rtcp-mux");
    }
    let _ = writeln!(out, "a=ice-ufrag:{ufrag}");
    let _ = writeln!(out, "a=ice-pwd:{pwd}");
    let _ = writeln!(out, "a=ice-options:trickle");
    out
}

/// One `a=candidate:` line.
pub fn candidate_line(candidate: &Candidate) -> String {
    format!("a={candidate}")
}

/// The line that ends a trickled description.
pub const END_OF_CANDIDATES: &str = "a=end-of-candidates";

/// `a=remote-candidates` (RFC 8839 §5.2): the remote candidates of the
/// selected pairs, which the controlling agent puts in its next offer.
pub fn remote_candidates_line(candidates: &[Candidate]) -> String {
    let mut line = String::from("a=remote-candidates:");
    for (i, c) in candidates.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let _ = write!(
            line,
            "{} {} {}",
            c.component,
            c.address.ip(),
            c.address.port()
        );
    }
    line
}

/// What one line of the other side's description said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteLine {
    /// Both `a=ice-ufrag` and `a=ice-pwd` are now known (reported once).
    Credentials {
        /// The user fragment.
        ufrag: String,
        /// The password.
        pwd: String,
        /// Whether `a=ice-lite` came before.
        ice_lite: bool,
    },
    /// A candidate the agent can use.
    Candidate(Candidate),
    /// A well-formed candidate the agent cannot use (TCP, mDNS name).
    Skipped {
        /// The line number (from 1).
        line: usize,
        /// Why.
        reason: String,
    },
    /// `a=end-of-candidates`.
    EndOfCandidates,
    /// `a=remote-candidates`: (component, address) the other side selected.
    RemoteCandidates(Vec<(u16, std::net::SocketAddr)>),
    /// Anything else: not about ICE.
    Other,
}

/// A line of the other side's description that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct DescriptionError {
    /// The line number (from 1).
    pub line: usize,
    /// The line, cut to 120 characters.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads a description line by line, as it grows.
#[derive(Debug, Default)]
pub struct DescriptionReader {
    line: usize,
    ufrag: Option<String>,
    pwd: Option<String>,
    ice_lite: bool,
    credentials_reported: bool,
}

/// ICE characters (RFC 8839 §5.4): letters, digits, '+' and '/'.
fn is_ice_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl DescriptionReader {
    /// A reader at the first line.
    pub fn new() -> DescriptionReader {
        DescriptionReader::default()
    }

    /// Reads the next line.
    pub fn read_line(&mut self, text: &str) -> Result<RemoteLine, DescriptionError> {
        self.line += 1;
        let line = self.line;
        let text = text.trim_end_matches(['\r', '\n']);
        let error = |reason: String| DescriptionError {
            line,
            text: text.chars().take(120).collect(),
            reason,
        };
        let trimmed = text.trim();
        if let Some(value) = trimmed.strip_prefix("a=ice-ufrag:") {
            // RFC 8839 §5.4: 4 to 256 ice-chars.
            if !is_ice_chars(value) || !(4..=256).contains(&value.len()) {
                return Err(error(
                    "ice-ufrag must be 4 to 256 letters, digits, '+' or '/'".into(),
                ));
            }
            self.ufrag = Some(value.to_string());
        } else if let Some(value) = trimmed.strip_prefix("a=ice-pwd:") {
            if !is_ice_chars(value) || !(22..=256).contains(&value.len()) {
                return Err(error(
                    "ice-pwd must be 22 to 256 letters, digits, '+' or '/'".into(),
                ));
            }
            self.pwd = Some(value.to_string());
        } else if trimmed == "a=ice-lite" {
            self.ice_lite = true;
        } else if trimmed == END_OF_CANDIDATES {
            return Ok(RemoteLine::EndOfCandidates);
        } else if trimmed.starts_with("a=remote-candidates:") {
            let parsed = edgeice_candidate::parse_remote_candidates(trimmed)
                .map_err(|e| error(e.to_string()))?;
            let mut selected = Vec::new();
            for c in parsed {
                match c.address {
                    edgeice_candidate::CandidateAddress::Ip(ip) => {
                        selected.push((c.component, std::net::SocketAddr::new(ip, c.port)));
                    }
                    edgeice_candidate::CandidateAddress::Name(name) => {
                        return Err(error(format!("{name:?} is not an IP address")));
                    }
                }
            }
            return Ok(RemoteLine::RemoteCandidates(selected));
        } else if trimmed.starts_with("a=candidate:") || trimmed.starts_with("a=x-candidate-ipv6:")
        {
            return match Candidate::parse(trimmed) {
                Ok(candidate) => Ok(RemoteLine::Candidate(candidate)),
                Err(
                    e @ (CandidateLineError::UnsupportedTransport(_)
                    | CandidateLineError::HostName(_)),
                ) => Ok(RemoteLine::Skipped {
                    line,
                    reason: e.to_string(),
                }),
                Err(e) => Err(error(e.to_string())),
            };
        } else {
            return Ok(RemoteLine::Other);
        }
        if !self.credentials_reported
            && let (Some(ufrag), Some(pwd)) = (&self.ufrag, &self.pwd)
        {
            self.credentials_reported = true;
            return Ok(RemoteLine::Credentials {
                ufrag: ufrag.clone(),
                pwd: pwd.clone(),
                ice_lite: self.ice_lite,
            });
        }
        Ok(RemoteLine::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_trickled_description() {
        let mut reader = DescriptionReader::new();
        let text = description_header("abcd", "0123456789abcdefghijklmn", 1, false)
            + "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\n"
            + "a=candidate:2 1 tcp 1 192.0.2.1 9 typ host tcptype active\n"
            + "a=candidate:3 1 SCTP 1 192.0.2.1 9 typ host\n"
            + "a=x-candidate-ipv6:4 1 UDP 2130706431 2001:db8::1 5000 typ host\n"
            + END_OF_CANDIDATES;
        let lines: Vec<RemoteLine> = text.lines().map(|l| reader.read_line(l).unwrap()).collect();
        assert!(lines.contains(&RemoteLine::Credentials {
            ufrag: "abcd".into(),
            pwd: "0123456789abcdefghijklmn".into(),
            ice_lite: false
        }));
        assert!(lines.iter().any(|l| matches!(l, RemoteLine::Candidate(_))));
        assert!(
            lines
                .iter()
                .any(|l| matches!(l, RemoteLine::Candidate(c) if c.address.is_ipv6()))
        );
        assert!(
            lines
                .iter()
                .any(|l| matches!(l, RemoteLine::Skipped { .. }))
        );
        assert_eq!(lines.last(), Some(&RemoteLine::EndOfCandidates));
    }

    #[test]
    fn remote_candidates_round_trip() {
        let c = Candidate::parse("candidate:1 2 udp 1 192.0.2.1 5001 typ host").unwrap();
        let line = remote_candidates_line(&[c]);
        assert_eq!(line, "a=remote-candidates:2 192.0.2.1 5001");
        let mut reader = DescriptionReader::new();
        assert_eq!(
            reader.read_line(&line).unwrap(),
            RemoteLine::RemoteCandidates(vec![(2, "192.0.2.1:5001".parse().unwrap())])
        );
    }

    #[test]
    fn errors_name_the_line() {
        let mut reader = DescriptionReader::new();
        reader.read_line("v=0").unwrap();
        let err = reader
            .read_line("a=candidate:1 1 udp notanumber 192.0.2.1 5000 typ host")
            .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = reader.read_line("a=ice-ufrag:no spaces").unwrap_err();
        assert_eq!(err.line, 3);
    }
}
