//! Session ids: 128 random bits, written as 32 lowercase hex digits. They name a session in
//! its `Location` (`/streams/{name}/whep/{id}`), so they must not be guessable: whoever
//! knows one can end the session with a DELETE.

use std::fmt;
use std::str::FromStr;

use password_hash::rand_core::{OsRng, RngCore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    /// A new random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        Self(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A path segment that is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotASessionId;

impl FromStr for SessionId {
    type Err = NotASessionId;

    /// Exactly 32 lowercase hex digits, as [`SessionId`] writes them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(NotASessionId);
        }
        u128::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| NotASessionId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_and_ids_differ() {
        let id = SessionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<SessionId>(), Ok(id));
        assert_ne!(SessionId::random(), id);
    }

    #[test]
    fn anything_else_is_not_an_id() {
        for text in [
            "",
            "0",
            "+0000000000000000000000000000000",
            "0000000000000000000000000000000G",
            "0000000000000000000000000000000A",
            "00000000000000000000000000000000 ",
            "000000000000000000000000000000000",
        ] {
            assert_eq!(text.parse::<SessionId>(), Err(NotASessionId), "{text:?}");
        }
        assert_eq!(
            "0000000000000000000000000000000a".parse::<SessionId>(),
            Ok(SessionId(10))
        );
    }
}
