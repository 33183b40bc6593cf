//! The list-valued attributes: UNKNOWN-ATTRIBUTES, PASSWORD-ALGORITHM and
//! PASSWORD-ALGORITHMS. Each is a validated view over the raw value, read
//! through an iterator, so decoding allocates nothing.

use super::{AttributeError, AttributeType};

/// UNKNOWN-ATTRIBUTES: a list of 16-bit attribute types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownAttributes<'a>(&'a [u8]);

impl<'a> UnknownAttributes<'a> {
    pub(crate) fn decode(value: &'a [u8]) -> Result<Self, AttributeError> {
        if !value.len().is_multiple_of(2) {
            return Err(AttributeError::Length);
        }
        Ok(UnknownAttributes(value))
    }

    /// The types listed.
    pub fn iter(&self) -> impl Iterator<Item = AttributeType> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| AttributeType(u16::from_be_bytes([c[0], c[1]])))
    }

    /// The raw value.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Encodes `types` into `buf` and returns a view over it, for building.
    pub fn encode_into(types: &[AttributeType], buf: &'a mut Vec<u8>) -> Self {
        buf.clear();
        for t in types {
            buf.extend_from_slice(&t.0.to_be_bytes());
        }
        UnknownAttributes(buf)
    }
}

/// A password algorithm number and its parameters (RFC 8489 §18.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordAlgorithm<'a> {
    /// The algorithm: [`PasswordAlgorithm::MD5`] or [`PasswordAlgorithm::SHA256`].
    pub algorithm: u16,
    /// Its parameters (empty for both algorithms defined so far).
    pub params: &'a [u8],
}

impl<'a> PasswordAlgorithm<'a> {
    /// MD5 long-term key derivation.
    pub const MD5: u16 = 0x0001;
    /// SHA-256 long-term key derivation.
    pub const SHA256: u16 = 0x0002;

    /// Decodes one algorithm from the front of `value`, returning the rest
    /// after its padded parameters.
    pub(crate) fn decode_one(value: &'a [u8]) -> Result<(Self, &'a [u8]), AttributeError> {
        let Some((&[a0, a1, l0, l1], rest)) = value.split_first_chunk::<4>() else {
            return Err(AttributeError::Length);
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let padded = len.next_multiple_of(4);
        if rest.len() < len {
            return Err(AttributeError::Length);
        }
        let params = &rest[..len];
        let rest = rest.get(padded..).unwrap_or(&[]);
        Ok((
            PasswordAlgorithm {
                algorithm: u16::from_be_bytes([a0, a1]),
                params,
            },
            rest,
        ))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), AttributeError> {
        let len = u16::try_from(self.params.len()).map_err(|_| AttributeError::Length)?;
        out.extend_from_slice(&self.algorithm.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.params);
        out.resize(
            out.len() + (self.params.len().next_multiple_of(4) - self.params.len()),
            0,
        );
        Ok(())
    }
}

/// PASSWORD-ALGORITHMS: the list a server offers in a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordAlgorithms<'a>(&'a [u8]);

impl<'a> PasswordAlgorithms<'a> {
    pub(crate) fn decode(value: &'a [u8]) -> Result<Self, AttributeError> {
        let mut rest = value;
        while !rest.is_empty() {
            rest = PasswordAlgorithm::decode_one(rest)?.1;
        }
        Ok(PasswordAlgorithms(value))
    }

    /// The algorithms listed, in the server's order of preference.
    pub fn iter(&self) -> impl Iterator<Item = PasswordAlgorithm<'a>> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // Validated in `decode`, so this never stops early on valid input.
            let (alg, next) = PasswordAlgorithm::decode_one(rest).ok()?;
            rest = next;
            Some(alg)
        })
    }

    /// The raw value.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Encodes `algorithms` into `buf` and returns a view over it, for building.
    pub fn encode_into(
        algorithms: &[PasswordAlgorithm<'_>],
        buf: &'a mut Vec<u8>,
    ) -> Result<Self, AttributeError> {
        buf.clear();
        for alg in algorithms {
            alg.encode(buf)?;
        }
        Ok(PasswordAlgorithms(buf))
    }
}
