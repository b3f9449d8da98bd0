//! DSSE: pre-authentication encoding, envelopes, signing and verifying with ed25519.

use super::*;

/// DSSE base64: we write standard base64 with padding; the DSSE spec asks readers to take
/// the URL-safe alphabet and missing padding too.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// DSSE v1 pre-authentication encoding: what is actually signed, so that the payload type
/// is covered and no payload can be read as another type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Lowercase hex SHA-256.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(super) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key id securesystemslib (1.x) gives an ed25519 key by default: SHA-256 of the
/// canonical JSON `{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`.
/// Using the same id lets `securesystemslib.dsse.Envelope.verify` and in-toto tooling
/// match our signatures to the key without being told the id.
///
/// Not the id of securesystemslib's legacy `keys` API (before 1.0, and in-toto's old key
/// files), which also hashed `"keyid_hash_algorithms":["sha256","sha512"]` and so gives
/// another id for the same key; the `Signer`/`SSlibKey` API uses this form (0.31 and 1.x alike).
pub fn sslib_keyid(key: &VerifyingKey) -> String {
    // Keys already in sorted order, no whitespace, and hex needs no escaping: this string
    // is the canonical form.
    let canonical =
        format!(r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#, hex(key.as_bytes()));
    hex_sha256(canonical.as_bytes())
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// An unauthenticated hint of which key signed ([`sslib_keyid`] for ours); may be empty.
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

pub(super) fn envelope_error(message: impl Into<String>) -> CoreError {
    CoreError::Envelope(message.into())
}

fn b64_decode(field: &str, text: &str) -> Result<Vec<u8>, CoreError> {
    LENIENT_STANDARD
        .decode(text)
        .or_else(|_| LENIENT_URL_SAFE.decode(text))
        .map_err(|e| envelope_error(format!("`{field}` is not base64 ({e})")))
}

impl Envelope {
    /// The envelope as compact JSON on one line (no trailing newline): keys `payload`,
    /// `payloadType`, `signatures` [{`keyid`, `sig`}], byte fields in standard base64.
    pub fn to_json_line(&self) -> String {
        let signatures: Vec<Value> =
            self.signatures.iter().map(|s| json!({"keyid": s.keyid, "sig": STANDARD.encode(&s.sig)})).collect();
        json!({
            "payload": STANDARD.encode(&self.payload),
            "payloadType": self.payload_type,
            "signatures": signatures,
        })
        .to_string()
    }

    /// Reads one envelope (surrounding whitespace allowed). Unknown fields are ignored, as
    /// DSSE readers do; a missing `keyid` reads as empty.
    pub fn parse(text: &str) -> Result<Envelope, CoreError> {
        let value: Value = serde_json::from_str(text.trim()).map_err(|e| envelope_error(format!("not JSON ({e})")))?;
        let obj = value.as_object().ok_or_else(|| envelope_error("expected a JSON object"))?;
        let string = |obj: &Map<String, Value>, field: &str, what: &str| -> Result<String, CoreError> {
            match obj.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(envelope_error(format!("`{what}` must be a string"))),
                None => Err(envelope_error(format!("`{what}` is missing"))),
            }
        };
        let payload_type = string(obj, "payloadType", "payloadType")?;
        let payload = b64_decode("payload", &string(obj, "payload", "payload")?)?;
        let list = match obj.get("signatures") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(envelope_error("`signatures` must be a list")),
            None => return Err(envelope_error("`signatures` is missing")),
        };
        let mut signatures = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let sig_obj =
                item.as_object().ok_or_else(|| envelope_error(format!("`signatures[{i}]` must be an object")))?;
            let sig_field = format!("signatures[{i}].sig");
            let sig = b64_decode(&sig_field, &string(sig_obj, "sig", &sig_field)?)?;
            let keyid = match sig_obj.get("keyid") {
                None | Some(Value::Null) => String::new(),
                Some(_) => string(sig_obj, "keyid", &format!("signatures[{i}].keyid"))?,
            };
            signatures.push(Signature { keyid, sig });
        }
        Ok(Envelope { payload_type, payload, signatures })
    }
}

/// Signs `payload` (over its PAE) with one signature whose keyid is [`sslib_keyid`].
pub fn sign_envelope(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_string(),
        payload: payload.to_vec(),
        signatures: vec![Signature { keyid: sslib_keyid(&key.verifying_key()), sig: sig.to_bytes().to_vec() }],
    }
}

/// Checks that a signature carrying `key`'s keyid verifies over the envelope's PAE
/// (strict ed25519: no malleable or small-order signatures). Does not look at the payload
/// type: [`open_statement`] does.
pub fn verify_envelope(env: &Envelope, key: &VerifyingKey) -> Result<(), CoreError> {
    let keyid = sslib_keyid(key);
    if env.signatures.is_empty() {
        return Err(CoreError::Signature("the envelope has no signatures".into()));
    }
    let mine: Vec<&Signature> = env.signatures.iter().filter(|s| s.keyid == keyid).collect();
    if mine.is_empty() {
        let others: Vec<&str> =
            env.signatures.iter().map(|s| if s.keyid.is_empty() { "(no keyid)" } else { s.keyid.as_str() }).collect();
        return Err(CoreError::Signature(format!(
            "no signature by key {keyid}; the envelope is signed by {}: pass the public key that signed it",
            others.join(", ")
        )));
    }
    let message = pae(&env.payload_type, &env.payload);
    for s in &mine {
        let Ok(bytes) = <[u8; 64]>::try_from(s.sig.as_slice()) else { continue };
        if key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok() {
            return Ok(());
        }
    }
    let sizes = if mine.iter().all(|s| s.sig.len() != 64) { " (not a 64-byte ed25519 signature)" } else { "" };
    Err(CoreError::Signature(format!(
        "the signature by key {keyid} does not verify{sizes}: the payload or the signature changed after signing"
    )))
}
