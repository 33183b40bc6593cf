//! An SDP body cut into media sections, with their ICE credentials and
//! candidate lines (RFC 8839, and Lync's `a=x-candidate-ipv6`).

use serde::Serialize;

/// One `m=` section.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Media {
    /// `audio`, `video`, `application`...
    pub kind: String,
    /// `a=ice-ufrag` (section, else session level).
    pub ufrag: Option<String>,
    /// Whether `a=ice-pwd` is present (its value is a secret: not kept).
    pub has_pwd: bool,
    /// Candidate lines: (line number in the file, text). JSON reports
    /// write each as a decoded [`crate::decoded::CandidateReport`].
    #[serde(serialize_with = "crate::decoded::serialize_candidates")]
    pub candidates: Vec<(usize, String)>,
    /// Whether `a=remote-candidates` is present (the controlling side's
    /// choice, sent in a re-INVITE: a promotion).
    pub remote_candidates: bool,
    /// The `c=` address (section, else session level) and its line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<(usize, String)>,
}

/// An SDP description.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Description {
    /// The media sections.
    pub media: Vec<Media>,
}

/// Parses `text`, whose first line is line `first_line` of its file.
pub fn parse(text: &str, first_line: usize) -> Description {
    let mut session_ufrag = None;
    let mut session_pwd = false;
    let mut session_connection = None;
    let mut media: Vec<Media> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let line_no = first_line + i;
        if let Some(m) = line.strip_prefix("m=") {
            media.push(Media {
                kind: m.split_whitespace().next().unwrap_or("").to_owned(),
                ufrag: session_ufrag.clone(),
                has_pwd: session_pwd,
                connection: session_connection.clone(),
                ..Media::default()
            });
            continue;
        }
        if let Some(c) = line.strip_prefix("c=") {
            // `c=IN IP4 10.0.0.1` (a multicast `/ttl` suffix dropped).
            if let Some(address) = c.split_whitespace().nth(2) {
                let address = address.split('/').next().unwrap_or(address).to_owned();
                match media.last_mut() {
                    Some(m) => m.connection = Some((line_no, address)),
                    None => session_connection = Some((line_no, address)),
                }
            }
            continue;
        }
        let Some(attribute) = line.strip_prefix("a=") else {
            continue;
        };
        let current = media.last_mut();
        if let Some(ufrag) = attribute.strip_prefix("ice-ufrag:") {
            match current {
                Some(m) => m.ufrag = Some(ufrag.trim().to_owned()),
                None => session_ufrag = Some(ufrag.trim().to_owned()),
            }
        } else if attribute.starts_with("ice-pwd:") {
            match current {
                Some(m) => m.has_pwd = true,
                None => session_pwd = true,
            }
        } else if attribute.starts_with("candidate:") || attribute.starts_with("x-candidate-ipv6:")
        {
            if let Some(m) = current {
                m.candidates.push((line_no, line.to_owned()));
            }
        } else if attribute.starts_with("remote-candidates:")
            && let Some(m) = current
        {
            m.remote_candidates = true;
        }
    }
    Description { media }
}
