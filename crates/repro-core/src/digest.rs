use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CoreError;

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A content digest, carrying its algorithm: `blake3:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub const PREFIX: &'static str = "blake3:";

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_hash(blake3::hash(bytes))
    }

    pub fn from_hash(hash: blake3::Hash) -> Self {
        Digest(format!("{}{}", Self::PREFIX, hash.to_hex()))
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let hex = s.strip_prefix(Self::PREFIX).ok_or_else(|| CoreError::InvalidDigest(s.to_string()))?;
        if is_lower_hex(hex, 64) {
            Ok(Digest(s.to_string()))
        } else {
            Err(CoreError::InvalidDigest(s.to_string()))
        }
    }

    /// The 64 hex digits without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }

    /// The 32 raw bytes (compact, for caches that hold many digests).
    pub fn raw(&self) -> [u8; 32] {
        blake3::Hash::from_hex(self.hex()).map(|h| *h.as_bytes()).expect("a Digest is always 64 hex digits")
    }

    /// A short form for people: `blake3:1a2b3c4d5e6f`.
    pub fn short(&self) -> String {
        format!("{}{}", Self::PREFIX, &self.hex()[..12])
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Digest {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run identifier: 32 lowercase hex digits, the same shape MLflow uses for run ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// Builds a run id from 16 random bytes (the caller supplies the randomness: no I/O here).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        RunId(s)
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if is_lower_hex(s, 32) {
            Ok(RunId(s.to_string()))
        } else {
            Err(CoreError::InvalidRunId(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl TryFrom<String> for RunId {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_and_rejects_garbage() {
        let d = Digest::of_bytes(b"hello");
        assert_eq!(Digest::parse(d.as_str()).expect("valid"), d);
        assert_eq!(d.hex().len(), 64);
        for bad in ["", "blake3:", "sha256:00", "blake3:XYZ", &format!("blake3:{}", "A".repeat(64))] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn run_id_shape() {
        let id = RunId::from_bytes([0xab; 16]);
        assert_eq!(id.as_str().len(), 32);
        assert!(RunId::parse("abc").is_err());
        assert!(RunId::parse(&"g".repeat(32)).is_err());
    }
}
