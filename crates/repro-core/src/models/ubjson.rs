//! XGBoost's UBJSON model (`save_model("m.ubj")`, the default format since 2.1): the same
//! document as its JSON, `{"learner": …, "version": [3, 2, 0]}`, in Universal Binary JSON.
//! Only enough of UBJSON is read to walk the top-level object, skip every value but
//! `version`, and read that one array of integers.
//!
//! UBJSON: a one-byte type marker, then the value; integers and floats big-endian; strings
//! (and object keys, which omit the `S` marker) are a length (an integer value) then bytes;
//! containers end with `]`/`}`, or state `#count` (and `$type` for all their items) up front.

use super::{Format, ModelFile};

/// Nesting beyond this is not a model (and would otherwise recurse without bound).
const MAX_DEPTH: usize = 64;

pub(super) fn xgboost(bytes: &[u8]) -> Option<ModelFile> {
    // `{` then a key's length marker: JSON would have `"` or whitespace there.
    if bytes.first() != Some(&b'{') || !matches!(bytes.get(1), Some(b'i' | b'U' | b'I' | b'l' | b'L' | b'#' | b'$')) {
        return None;
    }
    let mut r = Reader { bytes, at: 1 };
    let (typed, count) = r.container_header()?;
    let mut learner = false;
    let mut version = None;
    let mut seen = 0u64;
    loop {
        match count {
            Some(n) if seen == n => break,
            None if r.peek()? == b'}' => break,
            _ => {}
        }
        let key = r.string_body()?;
        let marker = match typed {
            Some(t) => t,
            None => r.byte()?,
        };
        match key {
            b"version" => {
                version = r.version(marker);
                if version.is_none() {
                    break; // not where the reader can go on from
                }
            }
            b"learner" => {
                learner = true;
                r.skip(marker, 0)?;
            }
            _ => r.skip(marker, 0)?,
        }
        if version.is_some() && learner {
            break;
        }
        seen += 1;
    }
    if !learner {
        return None;
    }
    let mut m = ModelFile::new(Format::XgboostUbjson);
    m.library = Some("xgboost".into());
    m.version = version;
    Some(m)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    /// An integer value of type `marker`.
    fn int(&mut self, marker: u8) -> Option<i64> {
        Some(match marker {
            b'i' => i64::from(self.take(1)?[0] as i8),
            b'U' => i64::from(self.take(1)?[0]),
            b'I' => i64::from(i16::from_be_bytes(self.take(2)?.try_into().ok()?)),
            b'l' => i64::from(i32::from_be_bytes(self.take(4)?.try_into().ok()?)),
            b'L' => i64::from_be_bytes(self.take(8)?.try_into().ok()?),
            _ => return None,
        })
    }

    /// A length: an integer value with its marker, never negative.
    fn length(&mut self) -> Option<usize> {
        let marker = self.byte()?;
        usize::try_from(self.int(marker)?).ok()
    }

    /// A string's length and bytes (object keys, and `S`/`H` values after their marker).
    fn string_body(&mut self) -> Option<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    /// After `[` or `{`: the optional `$type` and `#count`.
    fn container_header(&mut self) -> Option<(Option<u8>, Option<u64>)> {
        let mut typed = None;
        if self.peek()? == b'$' {
            self.at += 1;
            typed = Some(self.byte()?);
            if self.peek()? != b'#' {
                return None; // a type must come with a count
            }
        }
        let mut count = None;
        if self.peek()? == b'#' {
            self.at += 1;
            count = Some(self.length()? as u64);
        }
        Some((typed, count))
    }

    /// The size of a fixed-size value of type `marker`, `None` for the others.
    fn fixed(marker: u8) -> Option<usize> {
        match marker {
            b'Z' | b'N' | b'T' | b'F' => Some(0),
            b'i' | b'U' | b'C' => Some(1),
            b'I' => Some(2),
            b'l' | b'd' => Some(4),
            b'L' | b'D' => Some(8),
            _ => None,
        }
    }

    /// Skips one value of type `marker` (already read).
    fn skip(&mut self, marker: u8, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(n) = Self::fixed(marker) {
            return self.take(n).map(|_| ());
        }
        match marker {
            b'S' | b'H' => self.string_body().map(|_| ()),
            b'[' | b'{' => {
                let object = marker == b'{';
                let close = if object { b'}' } else { b']' };
                let (typed, count) = self.container_header()?;
                match (typed, count) {
                    // A typed run of fixed-size values (XGBoost's weight arrays): skipped whole.
                    (Some(t), Some(n)) if !object && Self::fixed(t).is_some() => {
                        let size = Self::fixed(t)?;
                        self.take(usize::try_from(n).ok()?.checked_mul(size)?).map(|_| ())
                    }
                    (_, Some(n)) => {
                        for _ in 0..n {
                            self.item(object, typed, depth)?;
                        }
                        Some(())
                    }
                    (_, None) => {
                        while self.peek()? != close {
                            self.item(object, typed, depth)?;
                        }
                        self.at += 1;
                        Some(())
                    }
                }
            }
            _ => None,
        }
    }

    /// One item of a container: a key first in an object, then the value (its marker unless typed).
    fn item(&mut self, object: bool, typed: Option<u8>, depth: usize) -> Option<()> {
        if object {
            self.string_body()?;
        }
        let marker = match typed {
            Some(t) => t,
            None => self.byte()?,
        };
        self.skip(marker, depth + 1)
    }

    /// `version`: an array of up to four small integers, typed or not.
    fn version(&mut self, marker: u8) -> Option<String> {
        if marker != b'[' {
            return None;
        }
        let (typed, count) = self.container_header()?;
        let mut parts = Vec::new();
        loop {
            match count {
                Some(n) if parts.len() as u64 == n => break,
                None if self.peek()? == b']' => {
                    self.at += 1;
                    break;
                }
                _ => {}
            }
            if parts.len() >= 4 {
                return None;
            }
            let m = match typed {
                Some(t) => t,
                None => self.byte()?,
            };
            let v = self.int(m)?;
            parts.push(u64::try_from(v).ok()?);
        }
        (!parts.is_empty()).then(|| parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
    }
}
