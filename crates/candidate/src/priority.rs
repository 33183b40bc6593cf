//! Candidate priorities: the 32-bit number of RFC 8445 §5.1.2, and the
//! decimal "q-value" of MS-ICE draft 6.

use std::fmt;

/// A candidate's priority as written in its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Priority {
    /// RFC 8445: `2^24 * type preference + 2^8 * local preference +
    /// (256 - component)`.
    Ice(u32),
    /// MS-ICE draft 6: a decimal between 0 and 1 (`0.830`), kept in
    /// thousandths.
    QValue(u16),
}

impl Priority {
    /// The type preference (0..=126; host 126, relay 0 by RFC advice).
    pub fn type_preference(&self) -> Option<u8> {
        match self {
            Priority::Ice(p) => Some((p >> 24) as u8),
            Priority::QValue(_) => None,
        }
    }

    /// The local preference (0..=65535): which interface or server.
    pub fn local_preference(&self) -> Option<u16> {
        match self {
            Priority::Ice(p) => Some(((p >> 8) & 0xFFFF) as u16),
            Priority::QValue(_) => None,
        }
    }

    /// The local preference read as MS-ICE2 (Lync, Skype for Business)
    /// packs it: see [`MsIce2LocalPreference`]. Meaningful only for
    /// candidates from an MS-ICE2 agent.
    pub fn ms_ice2_local_preference(&self) -> Option<MsIce2LocalPreference> {
        self.local_preference()
            .map(MsIce2LocalPreference::from_local_preference)
    }

    /// The component the low byte says (`256 - byte`), for a check against
    /// the line's own component ID.
    pub fn component(&self) -> Option<u16> {
        match self {
            Priority::Ice(p) => Some(256 - u16::from((p & 0xFF) as u8)),
            Priority::QValue(_) => None,
        }
    }

    /// Reads `0.830`-style q-values: at most three decimals, at most 1.
    pub(crate) fn parse_qvalue(token: &str) -> Option<Priority> {
        let (whole, frac) = token.split_once('.').unwrap_or((token, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole: u16 = match whole {
            "0" => 0,
            "1" => 1,
            _ => return None,
        };
        let mut thousandths = whole * 1000;
        let mut scale = 100;
        for digit in frac.bytes() {
            thousandths += u16::from(digit - b'0') * scale;
            scale /= 10;
        }
        (thousandths <= 1000).then_some(Priority::QValue(thousandths))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Priority::Ice(p) => write!(f, "{p}"),
            Priority::QValue(q) => write!(f, "{}.{:03}", q / 1000, q % 1000),
        }
    }
}

/// The bit fields an MS-ICE2 agent packs into the 16-bit local
/// preference: 4 bits of transport preference, 3 bits of TCP direction
/// preference, and 9 bits left for the interface (or relay server) order.
///
/// Lync and Skype for Business write UDP as transport 15 and TCP as 6, and
/// an active TCP candidate as direction 5, a passive one as 2; UDP fills
/// the direction bits (7). So `TCP-PASS 6556159` reads as TCP, passive,
/// interface 9. The layout is the one those clients' priorities show and
/// libnice's MS-ICE2 mode writes; the values outside it are kept as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsIce2LocalPreference {
    /// Bits 15–12: the transport preference (15 UDP, 6 TCP).
    pub transport: u8,
    /// Bits 11–9: the TCP direction preference (5 active, 2 passive).
    pub direction: u8,
    /// Bits 8–0: what is left for the agent's own order of interfaces
    /// and relay servers.
    pub other: u16,
}

impl MsIce2LocalPreference {
    /// Splits a local preference into its MS-ICE2 fields.
    pub fn from_local_preference(local_preference: u16) -> Self {
        MsIce2LocalPreference {
            transport: (local_preference >> 12) as u8,
            direction: ((local_preference >> 9) & 0x7) as u8,
            other: local_preference & 0x1FF,
        }
    }

    /// The transport the transport bits stand for, when they are one of
    /// the values MS-ICE2 agents write.
    pub fn transport_name(&self) -> Option<&'static str> {
        match self.transport {
            15 => Some("UDP"),
            6 => Some("TCP"),
            _ => None,
        }
    }

    /// The TCP role the direction bits stand for, when they are one of
    /// the values MS-ICE2 agents write.
    pub fn direction_name(&self) -> Option<&'static str> {
        match self.direction {
            5 => Some("active"),
            2 => Some("passive"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_an_rfc_priority() {
        // Host, local preference 65535, component 1.
        let p = Priority::Ice(2130706431);
        assert_eq!(p.type_preference(), Some(126));
        assert_eq!(p.local_preference(), Some(65535));
        assert_eq!(p.component(), Some(1));
    }

    #[test]
    fn splits_ms_ice2_local_preferences() {
        // Relay candidates as a Lync client writes them.
        let passive = Priority::Ice(6556159).ms_ice2_local_preference().unwrap();
        assert_eq!(
            (passive.transport, passive.direction, passive.other),
            (6, 2, 9)
        );
        assert_eq!(passive.transport_name(), Some("TCP"));
        assert_eq!(passive.direction_name(), Some("passive"));
        let active = Priority::Ice(7075839).ms_ice2_local_preference().unwrap();
        assert_eq!(active.direction_name(), Some("active"));
        let udp = Priority::Ice(16648703).ms_ice2_local_preference().unwrap();
        assert_eq!((udp.transport, udp.direction, udp.other), (15, 7, 9));
        assert_eq!(udp.transport_name(), Some("UDP"));
        assert_eq!(udp.direction_name(), None);
        assert_eq!(Priority::QValue(830).ms_ice2_local_preference(), None);
    }

    #[test]
    fn reads_q_values() {
        assert_eq!(Priority::parse_qvalue("0.830"), Some(Priority::QValue(830)));
        assert_eq!(Priority::parse_qvalue("1"), Some(Priority::QValue(1000)));
        assert_eq!(Priority::parse_qvalue("0.5"), Some(Priority::QValue(500)));
        assert_eq!(Priority::parse_qvalue("1.5"), None);
        assert_eq!(Priority::parse_qvalue("0.8301"), None);
        assert_eq!(Priority::parse_qvalue("x"), None);
        assert_eq!(Priority::QValue(830).to_string(), "0.830");
    }
}
