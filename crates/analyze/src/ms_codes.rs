//! What the numbers in Lync/Skype for Business diagnostics mean: the
//! `ms-client-diagnostics`/`ms-diagnostics` codes an engineer reads first,
//! and the `ICEWarn` bit flags of `CallerMediaDebug`/`CalleeMediaDebug`.
//!
//! The meanings are written here in our own words, from:
//! - Microsoft, "[MS-OCER]: Client Error Reporting Protocol", sections 7.2
//!   and 8.2 "SipStack" (server ErrorIds 1000-1999) and the front-end
//!   server ErrorIds 4000-4999 table;
//! - Microsoft support articles: "Desktop or Application sharing can't
//!   connect in a Skype for Business Online conference" (23), "Skype for
//!   Business Online users in a Microsoft 365 domain can't IM or detect
//!   users in an on-premises domain" (1017), "Newly created users can't sign
//!   in to a Lync client" (4005);
//! - Cisco, "Configure and Troubleshoot DNS and Certificate Requirements on
//!   Microsoft Federation via Expressway to Cisco Meeting Server" (live
//!   Skype for Business 1009 and 1010 responses);
//! - published client traces: "Call failed to establish due to a media
//!   connectivity failure when both endpoints are..." (a blog post, 2017:
//!   22), SIPE's and other clients' sources (52017, 52035), MSXFAQ's
//!   ICEWarn page (51004, 51007);
//! - the Lync Server Resource Kit's ICE warning table (`ICEWarn`).
//!
//! A code we found no source for is left out (`None`), rather than guessed.

/// What a diagnostics code says, and whether it says the media failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeMeaning {
    /// In a few words.
    pub meaning: &'static str,
    /// The code itself reports a media (ICE) connectivity failure.
    pub media_failure: bool,
}

/// The meaning of `code` in an `ms-client-diagnostics` header (`client`)
/// or an `ms-diagnostics` header (a server's).
pub fn code_meaning(code: u32, client: bool) -> Option<CodeMeaning> {
    let (meaning, media_failure) = match (client, code) {
        // ms-client-diagnostics: what the client says of its own call.
        (true, 22) => (
            "the call failed to establish: media connectivity failure, both endpoints internal (they could not reach each other)",
            true,
        ),
        (true, 23) => (
            "the call failed to establish: media connectivity failure between an internal and a remote endpoint (the A/V Edge is the only path between them)",
            true,
        ),
        (true, 24) => (
            "the call failed to establish: media connectivity failure between two remote endpoints (both reach each other only through their Edges)",
            true,
        ),
        (true, 25) => (
            "a federated call failed to establish: media connectivity failure, both endpoints internal to their own networks (each needs its own A/V Edge)",
            true,
        ),
        (true, 51004) => (
            "the user ended the call (an ordinary hang-up; any media debug attached is the client's report, not a failure)",
            false,
        ),
        (true, 51007) => (
            "the callee's media connectivity report (sent with an answer or a hang-up; informational, not a failure by itself)",
            false,
        ),
        (true, 52017) => ("the endpoints' encryption levels do not match", false),
        (true, 52035) => (
            "the client already has an IM session with the same conversation ID",
            false,
        ),
        // ms-diagnostics: a server's word (MS-OCER's SipStack and front-end
        // tables). These refuse or fail the signalling; none is by itself a
        // media failure.
        (false, 1002) => (
            "the caller's policy does not allow it to communicate with federated partners",
            false,
        ),
        (false, 1003) => ("the server knows no such user", false),
        (false, 1005) => ("the server has no route to the destination domain", false),
        (false, 1008) => (
            "a server could not resolve the DNS SRV record of the next hop's domain",
            false,
        ),
        // 1009 is a server (SipStack) code only: MS-OCER names it a
        // conflict between the SRV and host domains in DNS, and live Skype
        // for Business servers send it when the SRV lookup of a domain
        // returns hosts outside that domain. As an ms-client-diagnostics
        // code it is documented nowhere, so (true, 1009) stays unknown.
        (false, 1009) => (
            "DNS SRV for the destination domain points to a host outside that domain: federation needs the SRV target in the same domain",
            false,
        ),
        (false, 1010) => (
            "no certificate trust with the next-hop server: its TLS certificate is not trusted, or does not name the host that was looked up",
            false,
        ),
        (false, 1014) => (
            "a server could not resolve the DNS A record of the next hop",
            false,
        ),
        (false, 1017) => (
            "the server cannot route between this From domain and this To domain; in a hybrid deployment, a domain set up on one side only",
            false,
        ),
        (false, 4005) => (
            "the destination address is not enabled for SIP, or does not exist",
            false,
        ),
        _ => return None,
    };
    Some(CodeMeaning {
        meaning,
        media_failure,
    })
}

/// The `ICEWarn` flags of a Lync/Skype for Business media debug field, as
/// the Resource Kit's table gives them: what failed, by transport and path.
const ICE_WARN_FLAGS: [(u32, &str); 10] = [
    (0x1, "TURN server unreachable"),
    (0x2, "UDP allocation on the TURN server failed"),
    (0x4, "sending UDP through the TURN server failed"),
    (0x8, "TCP allocation on the TURN server failed"),
    (0x10, "sending TCP through the TURN server failed"),
    (0x20, "local (host-to-host) connectivity failed"),
    (0x40, "UDP NAT (server-reflexive) connectivity failed"),
    (0x80, "UDP TURN (relay) connectivity failed"),
    (0x100, "TCP NAT connectivity failed"),
    (0x200, "TCP TURN (relay) connectivity failed"),
];

/// `ICEWarn=0x320` in words: the known flags set, then any other bits as
/// hexadecimal. `None` for zero or a value that is not a number.
pub fn describe_ice_warn(value: &str) -> Option<String> {
    let v = value.trim().trim_matches('"');
    let bits = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => v.parse().ok()?,
    };
    if bits == 0 {
        return None;
    }
    let mut parts: Vec<String> = ICE_WARN_FLAGS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, what)| (*what).to_owned())
        .collect();
    let known = ICE_WARN_FLAGS.iter().fold(0, |m, (bit, _)| m | bit);
    let other = bits & !known;
    if other != 0 {
        parts.push(format!("other flags {other:#x}"));
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_warn_bits_are_named() {
        assert_eq!(
            describe_ice_warn("0x320").unwrap(),
            "local (host-to-host) connectivity failed; TCP NAT connectivity failed; TCP TURN (relay) connectivity failed"
        );
        assert!(
            describe_ice_warn("0x80012b")
                .unwrap()
                .ends_with("other flags 0x800000")
        );
        assert_eq!(describe_ice_warn("0x0"), None);
        assert_eq!(describe_ice_warn("junk"), None);
    }

    #[test]
    fn informational_codes_are_no_failure() {
        assert!(!code_meaning(51007, true).unwrap().media_failure);
        assert!(!code_meaning(51004, true).unwrap().media_failure);
        assert!(code_meaning(23, true).unwrap().media_failure);
        assert_eq!(code_meaning(23, false), None);
    }

    #[test]
    fn documented_codes_are_named() {
        let m = code_meaning(22, true).unwrap();
        assert!(m.media_failure);
        assert!(m.meaning.contains("both endpoints internal"));
        let m = code_meaning(1008, false).unwrap();
        assert!(m.meaning.contains("DNS SRV"), "{}", m.meaning);
        let m = code_meaning(1009, false).unwrap();
        assert!(m.meaning.contains("outside that domain"), "{}", m.meaning);
        assert!(
            code_meaning(1010, false)
                .unwrap()
                .meaning
                .contains("certificate")
        );
        assert!(
            code_meaning(4005, false)
                .unwrap()
                .meaning
                .contains("not enabled for SIP")
        );
        // Server codes refuse the signalling: none says the media failed.
        for code in [1002, 1003, 1005, 1008, 1009, 1010, 1014, 1017, 4005] {
            assert!(!code_meaning(code, false).unwrap().media_failure, "{code}");
        }
    }

    #[test]
    fn undocumented_codes_are_unknown() {
        // 1009 is a server code; as a client code nothing documents it.
        assert_eq!(code_meaning(1009, true), None);
        // No source found: 1018 (dropped earlier), 52001.
        assert_eq!(code_meaning(1018, false), None);
        assert_eq!(code_meaning(52001, true), None);
    }

    #[test]
    fn a_server_code_reads_well_in_a_finding() {
        let d = crate::sip::MsDiagnostics::parse(
            "ms-diagnostics",
            "1009; reason=\"No match for domain in DNS SRV results\"; source=\"sip.example.com\"",
        );
        assert_eq!(
            crate::report::describe_diagnostics(&d),
            "ms-diagnostics 1009: No match for domain in DNS SRV results (DNS SRV for the destination domain points to a host outside that domain: federation needs the SRV target in the same domain)"
        );
        assert!(!d.media_failed());
    }
}
