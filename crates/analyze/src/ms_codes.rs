//! What the numbers in Lync/Skype for Business diagnostics mean: the
//! `ms-client-diagnostics`/`ms-diagnostics` codes an engineer reads first,
//! and the `ICEWarn` bit flags of `CallerMediaDebug`/`CalleeMediaDebug`.
//!
//! The meanings follow Microsoft's public documentation (the Lync Server
//! Resource Kit's ICE warning table, the MS-OCER error tables, Microsoft
//! support articles), written here in our own words.

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
}
