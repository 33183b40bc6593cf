//! SIP messages as traces and logs show them, and the SDP bodies they
//! carry — including `multipart/alternative` bodies whose OCS 2007
//! fallback part (`Content-Disposition: ...; ms-proxy-2007fallback`) must be
//! set aside, not mistaken for the real offer.

use serde::Serialize;

/// Where something was read: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The file, as named on the command line.
    pub file: String,
    /// The 1-based line number.
    pub line: usize,
    /// The text of that line.
    pub text: String,
}

/// A SIP request or response.
#[derive(Clone, Debug, Serialize)]
pub struct SipMessage {
    /// `INVITE sip:... SIP/2.0` or `SIP/2.0 200 OK`.
    pub start_line: String,
    /// Headers in order, names as written.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// The file it was read from.
    pub file: String,
    /// The line of the start line in that file.
    pub line: usize,
    /// The line where the body starts.
    pub body_line: usize,
    /// When the log says it was sent or received (`MM/DD/YYYY|HH:MM:SS.mmm`).
    pub timestamp: Option<String>,
}

/// A Lync/Skype for Business diagnostics header (`ms-client-diagnostics`,
/// `ms-diagnostics`, `ms-diagnostics-public`): why a call ended or failed,
/// as the client or server put it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MsDiagnostics {
    /// The header's name, as written.
    pub header: String,
    /// The leading number, when there is one.
    pub code: Option<u32>,
    /// The `reason="..."` parameter, when there is one.
    pub reason: Option<String>,
    /// From `CallerMediaDebug`/`CalleeMediaDebug`: (side, field, value) for
    /// the ICE warning flags and the sites and media relays each side used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub media_debug: Vec<(String, String, String)>,
}

/// The `CallerMediaDebug`/`CalleeMediaDebug` fields kept: which media
/// relay (the Edge) each side used and the ICE warning flags.
const MEDIA_DEBUG_FIELDS: [&str; 8] = [
    "ICEWarn",
    "ICEWarnEx",
    "LocalSite",
    "LocalMR",
    "RemoteSite",
    "RemoteMR",
    "LocalMRTCPPort",
    "RemoteMRTCPPort",
];

/// The value of parameter `name` (case-insensitive) in `value`, quoted or
/// not, with spaces allowed around `=` (clients write `reason ="…"`).
fn parameter<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    let lower = value.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(&name) {
        let at = from + found;
        from = at + name.len();
        // A whole parameter name: after `;`, a space or the start.
        let before = lower[..at].trim_end();
        if !(before.is_empty() || before.ends_with(';')) {
            continue;
        }
        let rest = value[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        return Some(
            match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or(quoted),
                None => rest.split(';').next().unwrap_or(rest),
            }
            .trim(),
        );
    }
    None
}

impl MsDiagnostics {
    /// Reads `51004; reason="Action initiated by user"; ...`.
    pub(crate) fn parse(header: &str, value: &str) -> Self {
        // Blogs and word processors turn the quotes typographic.
        let value = &value.replace(['\u{201c}', '\u{201d}', '\u{2033}', '\u{201e}'], "\"");
        let code = value.split(';').next().and_then(|c| c.trim().parse().ok());
        let reason = parameter(value, "reason").map(str::to_owned);
        // `CalleeMediaDebug="audio:ICEWarn=0x0,LocalSite=…,LocalMR=…"`:
        // the first media's fields.
        let mut media_debug = Vec::new();
        for side in ["CallerMediaDebug", "CalleeMediaDebug"] {
            let Some(debug) = parameter(value, side) else {
                continue;
            };
            let debug =
                debug.split_once(':').map_or(
                    debug,
                    |(kind, rest)| {
                        if kind.contains('=') { debug } else { rest }
                    },
                );
            for field in debug.split(',') {
                if let Some((k, v)) = field.split_once('=')
                    && MEDIA_DEBUG_FIELDS.contains(&k.trim())
                    && !media_debug
                        .iter()
                        .any(|(s, f, _): &(String, String, String)| s == side && f == k.trim())
                {
                    media_debug.push((side.to_owned(), k.trim().to_owned(), v.trim().to_owned()));
                }
            }
        }
        MsDiagnostics {
            header: header.to_owned(),
            code,
            reason,
            media_debug,
        }
    }

    /// Whether the header says the media could not connect: a code whose
    /// documented meaning is a media connectivity failure (22 to 25), or
    /// a reason that says so. 51007 ("Callee media connectivity diagnosis
    /// info") and 51004 (a hang-up) only carry the client's report: an
    /// answered call's 200 OK has them too.
    pub fn media_failed(&self) -> bool {
        let client = self.header.eq_ignore_ascii_case("ms-client-diagnostics");
        if let Some(meaning) = self
            .code
            .and_then(|c| crate::ms_codes::code_meaning(c, client))
            && meaning.media_failure
        {
            return true;
        }
        let reason = self.reason.as_deref().unwrap_or("").to_ascii_lowercase();
        reason.contains("connectivity failure")
            || reason.contains("connectivity failed")
            || (reason.contains("ice ") && reason.contains("fail"))
    }

    /// A media-debug field of one side (`CallerMediaDebug`/`CalleeMediaDebug`).
    pub fn media_field(&self, side: &str, field: &str) -> Option<&str> {
        self.media_debug
            .iter()
            .find(|(s, f, _)| s == side && f == field)
            .map(|(_, _, v)| v.as_str())
    }
}

/// One SDP body of a message.
#[derive(Clone, Debug)]
pub struct SdpPart<'m> {
    /// The SDP text.
    pub text: &'m str,
    /// The line in the file where the body starts.
    pub line: usize,
    /// The OCS 2007 compatibility part (`ms-proxy-2007fallback`).
    pub fallback: bool,
}

/// Compact header names (RFC 3261 §7.3.3) that matter here.
pub(crate) fn full_name(name: &str) -> &str {
    match name {
        "i" => "Call-ID",
        "c" => "Content-Type",
        "f" => "From",
        "t" => "To",
        "l" => "Content-Length",
        _ => name,
    }
}

/// Whether `line` starts a SIP message.
pub fn is_start_line(line: &str) -> bool {
    line.starts_with("SIP/2.0 ")
        || line.split_once(' ').is_some_and(|(method, rest)| {
            !method.is_empty()
                && method.bytes().all(|b| b.is_ascii_uppercase())
                && rest.trim_end().ends_with("SIP/2.0")
        })
}

impl SipMessage {
    /// Parses one message from its lines; the first must be a start line.
    pub fn parse(
        lines: &[&str],
        file: &str,
        first_line: usize,
        timestamp: Option<String>,
    ) -> Option<Self> {
        let (start, rest) = lines.split_first()?;
        if !is_start_line(start) {
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut body_at = rest.len();
        for (i, line) in rest.iter().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                body_at = i + 1;
                break;
            }
            // A folded header continues the previous one; so does a line
            // that cannot start a header (no `name:`, or a name no header
            // has, like `LocalSite=…`): a header wrapped by hand in a
            // pasted excerpt.
            let header = line.split_once(':').filter(|(name, _)| {
                // `Via :` is allowed (white space before the colon).
                let name = name.trim_end();
                !name.is_empty() && !name.contains(['=', ',', ';', '"', ' '])
            });
            match header {
                Some((name, value)) if !line.starts_with([' ', '\t']) => {
                    headers.push((full_name(name.trim()).to_owned(), value.trim().to_owned()));
                }
                _ => {
                    if let Some((_, value)) = headers.last_mut() {
                        value.push(' ');
                        value.push_str(line.trim());
                    }
                }
            }
        }
        let body_lines = rest.get(body_at..).unwrap_or(&[]);
        let body = body_lines
            .iter()
            .map(|l| l.trim_end_matches('\r'))
            .collect::<Vec<_>>()
            .join("\n");
        Some(SipMessage {
            start_line: start.trim_end_matches('\r').to_owned(),
            headers,
            body,
            file: file.to_owned(),
            line: first_line,
            body_line: first_line + 1 + body_at,
            timestamp,
        })
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Its Microsoft diagnostics headers, in order.
    pub fn ms_diagnostics(&self) -> Vec<MsDiagnostics> {
        self.headers
            .iter()
            .filter(|(name, _)| {
                [
                    "ms-client-diagnostics",
                    "ms-diagnostics",
                    "ms-diagnostics-public",
                ]
                .iter()
                .any(|known| name.eq_ignore_ascii_case(known))
            })
            .map(|(name, value)| MsDiagnostics::parse(name, value))
            .collect()
    }

    /// The request method, for a request.
    pub fn method(&self) -> Option<&str> {
        (!self.start_line.starts_with("SIP/"))
            .then(|| self.start_line.split(' ').next().unwrap_or(""))
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        self.start_line
            .strip_prefix("SIP/2.0 ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    }

    /// The method the CSeq header names (what a response answers).
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// The SDP bodies: the body itself, or the `application/sdp` parts of
    /// a multipart body.
    pub fn sdp_parts(&self) -> Vec<SdpPart<'_>> {
        let content_type = self
            .header("Content-Type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/sdp") {
            return vec![SdpPart {
                text: &self.body,
                line: self.body_line,
                fallback: false,
            }];
        }
        if !content_type.starts_with("multipart/") {
            return Vec::new();
        }
        let Some(boundary) = boundary_of(self.header("Content-Type").unwrap_or("")) else {
            return Vec::new();
        };
        let delimiter = format!("--{boundary}");
        let mut parts = Vec::new();
        let lines: Vec<&str> = self.body.split('\n').collect();
        let mut starts = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_end().starts_with(&delimiter) {
                starts.push(i);
            }
        }
        for window in starts.windows(2) {
            let (from, to) = (window[0] + 1, window[1]);
            let part = &lines[from..to];
            let mut is_sdp = false;
            let mut fallback = false;
            let mut body_from = part.len();
            for (i, line) in part.iter().enumerate() {
                if line.trim().is_empty() {
                    body_from = i + 1;
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("content-type:") && lower.contains("application/sdp") {
                    is_sdp = true;
                }
                if lower.starts_with("content-disposition:")
                    && lower.contains("ms-proxy-2007fallback")
                {
                    fallback = true;
                }
            }
            if is_sdp {
                let start_line = from + body_from.min(part.len());
                let text_start: usize = lines[..start_line].iter().map(|l| l.len() + 1).sum();
                let text_end: usize = lines[..to].iter().map(|l| l.len() + 1).sum();
                let text = self
                    .body
                    .get(text_start..text_end.min(self.body.len()))
                    .unwrap_or("");
                parts.push(SdpPart {
                    text,
                    line: self.body_line + start_line,
                    fallback,
                });
            }
        }
        parts
    }
}

/// The `boundary` parameter of a multipart Content-Type.
fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::MsDiagnostics;

    #[test]
    fn diagnostics_headers_are_read_with_or_without_quotes() {
        let d = MsDiagnostics::parse(
            "ms-client-diagnostics",
            "51004; reason=\"Action initiated by user; twice\"; CalleeMediaDebug=\"x\"",
        );
        assert_eq!(d.code, Some(51004));
        assert_eq!(d.reason.as_deref(), Some("Action initiated by user; twice"));
        let d = MsDiagnostics::parse("ms-diagnostics", "1018;Reason=Timeout;source=edge");
        assert_eq!((d.code, d.reason.as_deref()), (Some(1018), Some("Timeout")));
        let d = MsDiagnostics::parse(
            "ms-client-diagnostics",
            "52001; reason =\"Call failed due to a media connectivity failure\"",
        );
        assert_eq!(
            d.reason.as_deref(),
            Some("Call failed due to a media connectivity failure")
        );
        assert!(d.media_failed());
        let d = MsDiagnostics::parse(
            "ms-client-diagnostics",
            "51004; reason=\"Action initiated by user\"",
        );
        assert!(!d.media_failed());
        let d = MsDiagnostics::parse("ms-diagnostics", "garbage");
        assert_eq!((d.code, d.reason), (None, None));
    }
}
