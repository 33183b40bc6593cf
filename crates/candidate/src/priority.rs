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
