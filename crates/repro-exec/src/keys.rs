//! Signing keys on disk: `repro key generate` writes an ed25519 key pair as PEM files that
//! OpenSSL, Python's `cryptography` and securesystemslib read too (PKCS#8 for the private
//! key, SubjectPublicKeyInfo for the public one); signing and verifying load them back.
//!
//! The private key file is never readable by anyone but its owner, not even for an instant:
//! it is created 0600 under a temporary name and only then linked into place. Loading a
//! private key that group or others may read is refused, as ssh does.
//!
//! Every signed statement (provenance, a signed BOM, a replay verdict) is stored the same
//! way, by [`store_signed`], which lives here so the registry and replay both use it
//! without using each other.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::SubjectPublicKeyInfoRef;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes, ObjectIdentifier,
    PrivateKeyInfo, SecretDocument, ALGORITHM_OID,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use repro_core::provenance::{self as prov, sslib_keyid, PAYLOAD_TYPE};
use repro_core::Digest;
use repro_store::Store;
use zeroize::{Zeroize as _, Zeroizing};

use crate::{ExecError, Result};

/// The private key's file name in a key folder.
pub const PRIVATE_KEY_FILE: &str = "repro.key";
/// The public key's file name in a key folder.
pub const PUBLIC_KEY_FILE: &str = "repro.pub";

/// The private key to sign with: `--key`, else `$REPRO_KEY_DIR` / the config folder's `repro.key`.
pub fn signing_key_path(key: Option<&Path>) -> Result<PathBuf> {
    if let Some(k) = key {
        return Ok(k.to_path_buf());
    }
    let dir = default_key_dir().ok_or_else(|| {
        ExecError::Usage(
            "no key given and no home folder to look in; pass --key FILE (from `repro key generate`)".into(),
        )
    })?;
    let path = dir.join(PRIVATE_KEY_FILE);
    if !path.exists() {
        return Err(ExecError::Usage(format!(
            "no signing key at {}; create one with `repro key generate`, or pass --key FILE",
            path.display()
        )));
    }
    Ok(path)
}

/// Signs an in-toto statement into a DSSE envelope and stores the envelope (one JSON line)
/// and the PEM public key as objects: every signed statement a version or replay carries is
/// kept this way. Returns the key id and the two objects.
pub(crate) fn store_signed(store: &Store, key: &SigningKey, payload: &[u8]) -> Result<(String, Digest, Digest)> {
    let envelope = prov::sign_envelope(key, PAYLOAD_TYPE, payload);
    let envelope = store.objects.put_bytes(format!("{}\n", envelope.to_json_line()).as_bytes())?;
    let public_key = store.objects.put_bytes(public_pem(&key.verifying_key()).as_bytes())?;
    Ok((sslib_keyid(&key.verifying_key()), envelope, public_key))
}

/// Key files are a few hundred bytes; anything much larger is some other file given by
/// mistake, and is not read whole into memory to find that out.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The folder keys live in by default: `$REPRO_KEY_DIR`, else `$XDG_CONFIG_HOME/repro`,
/// else `$HOME/.config/repro`. `None` when none of these is set.
pub fn default_key_dir() -> Option<PathBuf> {
    key_dir_from(std::env::var_os("REPRO_KEY_DIR"), std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME"))
}

/// The folder `repro key generate` writes to: `--out DIR`, else [`default_key_dir`].
pub fn key_dir(out: Option<PathBuf>) -> Result<PathBuf> {
    match out {
        Some(d) => Ok(d),
        None => {
            default_key_dir().ok_or_else(|| ExecError::Usage("no home folder to put the key in; pass --out DIR".into()))
        }
    }
}

/// The public key `repro key show` shows: the file given, else your own (`repro.pub` in the
/// key folder).
pub fn shown_key_file(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(f) => Ok(f),
        None => default_key_dir()
            .map(|d| d.join(PUBLIC_KEY_FILE))
            .ok_or_else(|| ExecError::Usage("no home folder to look in; pass the key file".into())),
    }
}

/// A key file's public half: a public key, or a private key's (a `.key` names both).
pub fn any_public_key(path: &Path) -> Result<VerifyingKey> {
    match load_public_key(path) {
        Ok(k) => Ok(k),
        Err(_) => Ok(load_signing_key(path)?.verifying_key()),
    }
}

/// Your own key, when there is one: its public file and keyid.
pub fn own_key() -> Option<(PathBuf, String)> {
    let p = default_key_dir()?.join(PUBLIC_KEY_FILE);
    let k = load_public_key(&p).ok()?;
    Some((p, repro_core::provenance::sslib_keyid(&k)))
}

/// The key a bundle's manifest is signed with: none with `--unsigned`, else
/// [`optional_signer`] (unsigned when you have no key, and the export warns).
pub fn bundle_signer(key: Option<&Path>, unsigned: bool) -> Result<Option<SigningKey>> {
    if unsigned {
        return Ok(None);
    }
    optional_signer(key)
}

/// The key to sign with where signing is welcome but not required (a bundle's manifest, a
/// replay's verdict): the `--key` given, else your own private key when there is one, else
/// none. A key that is there but unreadable is an error, never a silent "unsigned".
pub fn optional_signer(key: Option<&Path>) -> Result<Option<SigningKey>> {
    match key {
        Some(k) => load_signing_key(k).map(Some),
        None => default_key_dir()
            .map(|d| d.join(PRIVATE_KEY_FILE))
            .filter(|p| p.exists())
            .map(|p| load_signing_key(&p))
            .transpose(),
    }
}

/// [`default_key_dir`] with the variables passed in, so tests need not change the
/// process environment.
fn key_dir_from(repro: Option<OsString>, xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(repro) {
        return Some(dir);
    }
    // The XDG spec says a relative XDG_CONFIG_HOME is invalid and to be ignored.
    if let Some(xdg) = set(xdg).filter(|p| p.is_absolute()) {
        return Some(xdg.join("repro"));
    }
    set(home).map(|h| h.join(".config").join("repro"))
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedKey {
    pub private: PathBuf,
    pub public: PathBuf,
    /// The securesystemslib key id, which signatures carry.
    pub keyid: String,
}

fn key_error(path: &Path, message: impl Into<String>) -> ExecError {
    ExecError::Key { path: path.to_path_buf(), message: message.into() }
}

/// The public key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), LF line ends.
pub fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).expect("an ed25519 public key always encodes")
}

/// Creates a new key pair in `dir` (made 0700 when it does not exist): `repro.key` (PKCS#8
/// PEM, 0600) and `repro.pub` (SPKI PEM). Refuses when either file is already there.
pub fn generate(dir: &Path) -> Result<GeneratedKey> {
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(already_there(path));
        }
    }
    if dir.exists() && !dir.is_dir() {
        return Err(key_error(dir, "is not a folder; pass --out DIR naming a folder for the key pair"));
    }
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(ExecError::io("create key folder", dir))?;
    }

    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice())
        .map_err(|e| key_error(dir, format!("cannot get randomness from the operating system: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (no embedded public key): the form `openssl genpkey -algorithm ed25519`
    // writes, which every PKCS#8 reader takes.
    let mut pkcs8 = KeypairBytes { secret_key: *seed, public_key: None };
    let private_pem = pkcs8.to_pkcs8_pem(LineEnding::LF);
    // KeypairBytes wipes itself only when the ed25519 crate's own zeroize feature is on.
    pkcs8.secret_key.zeroize();
    let private_pem = private_pem.map_err(|e| key_error(&private, format!("cannot encode the private key: {e}")))?;
    let verifying = key.verifying_key();

    let private_tmp = write_temp(dir, PRIVATE_KEY_FILE, private_pem.as_bytes(), 0o600)?;
    let public_tmp = match write_temp(dir, PUBLIC_KEY_FILE, public_pem(&verifying).as_bytes(), 0o644) {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&private_tmp);
            return Err(e);
        }
    };
    let published = publish(&private_tmp, &private).and_then(|()| {
        publish(&public_tmp, &public).inspect_err(|_| {
            // Half a key pair would make the next `generate` refuse for no good reason.
            let _ = fs::remove_file(&private);
        })
    });
    let _ = fs::remove_file(&private_tmp);
    let _ = fs::remove_file(&public_tmp);
    published?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(ExecError::io("sync key folder", dir))?;
    Ok(GeneratedKey { private, public, keyid: sslib_keyid(&verifying) })
}

fn already_there(path: &Path) -> ExecError {
    key_error(path, "a key is already there and will not be overwritten; pass --out DIR to write the new key elsewhere")
}

/// Writes `bytes` to a new file in `dir` created with `mode` (so never wider, whatever
/// happens next), synced, and returns its path.
fn write_temp(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| key_error(dir, format!("cannot get randomness from the operating system: {e}")))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!(".{name}.tmp-{}-{suffix}", std::process::id()));
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&path)?;
        // The umask can only narrow the mode; setting it exactly keeps the owner able to
        // read the key even under an odd umask.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&path);
        return Err(ExecError::Io { action: "write", path, source: e });
    }
    Ok(path)
}

/// Gives the finished temp file its final name without ever replacing a file: a hard link
/// fails when the name exists, where a rename would silently clobber a key someone made
/// meanwhile. File systems without hard links fall back to a rename.
fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(already_there(dest)),
        Err(_) if dest.symlink_metadata().is_err() => fs::rename(tmp, dest).map_err(ExecError::io("write", dest)),
        Err(_) => Err(already_there(dest)),
    }
}

/// Reads a small file, refusing what is clearly not a key file.
fn read_key_file(path: &Path) -> Result<(Zeroizing<String>, fs::Metadata)> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            key_error(path, "no such key file; `repro key generate` creates a key pair, or pass --key FILE")
        }
        _ => ExecError::Io { action: "read", path: path.to_path_buf(), source: e },
    })?;
    let meta = file.metadata().map_err(ExecError::io("read", path))?;
    if meta.is_dir() {
        return Err(key_error(path, "is a folder; pass the key file in it (repro.key or repro.pub)"));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(key_error(path, format!("is {} bytes: not a key file", meta.len())));
    }
    // Sized up front so reading never reallocates and leaves copies of a private key behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_KEY_FILE).read_to_end(&mut bytes).map_err(ExecError::io("read", path))?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok((Zeroizing::new(text), meta)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(key_error(path, "not a PEM key file (not text)"))
        }
    }
}

/// The label of the first PEM block, if the text has one.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(&text[start..start + len])
}

fn algorithm_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "an RSA key".into(),
        "1.2.840.10045.2.1" => "an elliptic-curve (ECDSA) key".into(),
        "1.3.101.110" => "an X25519 key".into(),
        "1.3.101.113" => "an Ed448 key".into(),
        other => format!("a key of algorithm {other}"),
    }
}

const NOT_PEM: &str = "not a PEM key file (expected -----BEGIN PRIVATE KEY----- or -----BEGIN PUBLIC KEY-----)";

/// Loads the private key to sign with, from PKCS#8 PEM.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let (text, meta) = read_key_file(path)?;
    match pem_label(&text) {
        Some("PRIVATE KEY") => {}
        Some("PUBLIC KEY") => {
            return Err(key_error(path, "is a public key; signing needs the private key (repro.key), pass --key FILE"))
        }
        Some("ENCRYPTED PRIVATE KEY") => return Err(key_error(
            path,
            "is an encrypted private key, which repro does not read; decrypt it with `openssl pkey -in FILE -out NEW`",
        )),
        Some("OPENSSH PRIVATE KEY") => {
            return Err(key_error(path, "is an OpenSSH key; repro reads PKCS#8 PEM, as `repro key generate` writes"))
        }
        Some(label @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY" | "DSA PRIVATE KEY")) => {
            return Err(key_error(
                path,
                format!("is a {label}, not an ed25519 key; create one with `repro key generate`"),
            ))
        }
        Some(other) => return Err(key_error(path, format!("holds a PEM '{other}', not a private key"))),
        None => return Err(key_error(path, NOT_PEM)),
    }
    let mode = PermissionsExt::mode(&meta.permissions()) & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_error(
            path,
            format!(
                "permissions {mode:04o} are too open: a private key must be readable by its owner only; run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    let (_, doc) =
        SecretDocument::from_pem(&text).map_err(|e| key_error(path, format!("not a valid PEM private key ({e})")))?;
    let info = PrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|e| key_error(path, format!("not a valid PKCS#8 private key ({e})")))?;
    if info.algorithm.oid != ALGORITHM_OID {
        return Err(key_error(path, format!("holds {}, not an ed25519 key", algorithm_name(&info.algorithm.oid))));
    }
    SigningKey::from_pkcs8_der(doc.as_bytes())
        .map_err(|e| key_error(path, format!("not a valid ed25519 private key ({e})")))
}

/// A public key from SubjectPublicKeyInfo PEM text (as stored in the object store or the
/// tokens table); refuses weak keys as [`load_public_key`] does.
pub fn parse_public_pem(pem: &str) -> std::result::Result<VerifyingKey, String> {
    let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| format!("not an ed25519 public key ({e})"))?;
    if key.is_weak() {
        return Err("a weak (small-order) ed25519 key".into());
    }
    Ok(key)
}

/// The public key file `--key FILE` names: the path as given when it exists, else, for a
/// bare file name (`--key repro.pub`), that file in the key folder `repro key generate`
/// writes to ([`default_key_dir`]). A missing key names both places.
pub fn public_key_file(given: &Path) -> Result<PathBuf> {
    if given.exists() {
        return Ok(given.to_path_buf());
    }
    let bare = given.parent().is_none_or(|p| p.as_os_str().is_empty());
    if let Some(dir) = default_key_dir().filter(|_| bare) {
        let in_dir = dir.join(given);
        if in_dir.exists() {
            return Ok(in_dir);
        }
        return Err(key_error(
            given,
            format!(
                "no such key file here or in {} (where `repro key generate` writes keys; REPRO_KEY_DIR moves it)",
                dir.display()
            ),
        ));
    }
    Ok(given.to_path_buf())
}

/// Loads a public key to verify with, from SubjectPublicKeyInfo PEM.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey> {
    let (text, _) = read_key_file(path)?;
    match pem_label(&text) {
        Some("PUBLIC KEY") => {}
        Some(label) if label.contains("PRIVATE KEY") => {
            return Err(key_error(
                path,
                "is a private key; verifying needs the public key: pass the .pub file next to it (repro.pub)",
            ));
        }
        Some(other) => return Err(key_error(path, format!("holds a PEM '{other}', not a public key"))),
        None => return Err(key_error(path, NOT_PEM)),
    }
    let (_, doc) = ed25519_dalek::pkcs8::Document::from_pem(&text)
        .map_err(|e| key_error(path, format!("not a valid PEM public key ({e})")))?;
    let info = SubjectPublicKeyInfoRef::try_from(doc.as_bytes())
        .map_err(|e| key_error(path, format!("not a valid public key ({e})")))?;
    if info.algorithm.oid != ALGORITHM_OID {
        return Err(key_error(path, format!("holds {}, not an ed25519 key", algorithm_name(&info.algorithm.oid))));
    }
    let key = VerifyingKey::from_public_key_der(doc.as_bytes())
        .map_err(|e| key_error(path, format!("not a valid ed25519 public key ({e})")))?;
    if key.is_weak() {
        // A small-order key "verifies" forged signatures under lax checks; no honest key is one.
        return Err(key_error(path, "is a weak (small-order) ed25519 key, which no real key pair has"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use repro_core::provenance::{sign_envelope, verify_envelope, PAYLOAD_TYPE};

    use super::*;

    /// Made by `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` (OpenSSL 3.0).
    const OPENSSL_ED25519_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIB7E9QxvbOvzL4TAT2yhYghba6n5i9X2PIrMWkkvSWEG
-----END PRIVATE KEY-----
";
    const OPENSSL_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAjpsBDTbD8Hw5dtW05a0tnnXv5d1IZIboqGwUuvvIrVs=
-----END PUBLIC KEY-----
";
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, and its public key.
    const OPENSSL_P256_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvDbYAHTHT/jJJhUt
Pz5YCz6fta+wYSf+zMHWlydAyX2hRANCAARCQkJAb0//ifrv0p0DmUhl7NvcMo4F
4ZQnRzb79Pk/XwBgHZjBeQo9BodaR5PKoOHl4sA2WE5n0VjqRlIUWYLa
-----END PRIVATE KEY-----
";
    const OPENSSL_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQkJCQG9P/4n679KdA5lIZezb3DKO
BeGUJ0c2+/T5P18AYB2YwXkKPQaHWkeTyqDh5eLANlhOZ9FY6kZSFFmC2g==
-----END PUBLIC KEY-----
";

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        let e = r.expect_err("an error").to_string();
        assert!(!e.contains('\n'), "one line: {e}");
        e
    }

    #[test]
    fn generate_then_load_round_trips() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b/keys");
        let g = generate(&dir).expect("generate");
        assert_eq!(g.private, dir.join("repro.key"));
        assert_eq!(g.public, dir.join("repro.pub"));
        assert_eq!(mode(&g.private), 0o600);
        assert_eq!(mode(&dir), 0o700, "a new key folder is private");
        let private_text = fs::read_to_string(&g.private).expect("read");
        assert!(private_text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{private_text}");
        let public_text = fs::read_to_string(&g.public).expect("read");
        assert!(public_text.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{public_text}");
        let leftovers: Vec<_> = fs::read_dir(&dir).expect("ls").filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temp files left: {leftovers:?}");

        let signing = load_signing_key(&g.private).expect("load private");
        let verifying = load_public_key(&g.public).expect("load public");
        assert_eq!(signing.verifying_key(), verifying);
        assert_eq!(g.keyid, sslib_keyid(&verifying));
        assert_eq!(public_pem(&verifying), public_text);
        let env = sign_envelope(&signing, PAYLOAD_TYPE, b"{}");
        verify_envelope(&env, &verifying).expect("verifies");

        // Two keys are two keys.
        let other = generate(&tmp.path().join("other")).expect("second key");
        assert_ne!(other.keyid, g.keyid);
    }

    #[test]
    fn generate_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let g = generate(tmp.path()).expect("generate");
        let before = fs::read(&g.private).expect("read");
        let e = err(generate(tmp.path()));
        assert!(e.contains("repro.key") && e.contains("--out"), "{e}");
        assert_eq!(fs::read(&g.private).expect("read"), before, "untouched");

        // Either file alone blocks, named in the message.
        let only_pub = tempfile::tempdir().expect("tempdir");
        write(only_pub.path(), "repro.pub", "x", 0o644);
        let e = err(generate(only_pub.path()));
        assert!(e.contains("repro.pub") && e.contains("already there"), "{e}");
        assert!(!only_pub.path().join("repro.key").exists(), "nothing written");

        let e = err(generate(&only_pub.path().join("repro.pub")));
        assert!(e.contains("is not a folder"), "{e}");
    }

    #[test]
    fn generate_keeps_an_existing_folders_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let g = generate(tmp.path()).expect("generate");
        assert_eq!(mode(tmp.path()), 0o755);
        assert_eq!(mode(&g.private), 0o600);
    }

    #[test]
    fn reads_keys_openssl_made() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let key = load_signing_key(&write(tmp.path(), "k", OPENSSL_ED25519_KEY, 0o600)).expect("openssl key");
        let public = load_public_key(&write(tmp.path(), "p", OPENSSL_ED25519_PUB, 0o644)).expect("openssl pub");
        assert_eq!(key.verifying_key(), public);
        assert_eq!(public_pem(&public), OPENSSL_ED25519_PUB, "the same SPKI bytes OpenSSL writes");
        // And ours is the PKCS#8 form OpenSSL writes: same length, same header bytes.
        let ours =
            KeypairBytes { secret_key: key.to_bytes(), public_key: None }.to_pkcs8_pem(LineEnding::LF).expect("encode");
        assert_eq!(ours.as_str(), OPENSSL_ED25519_KEY);
        // PKCS#8 v2 (with the public key embedded) reads too.
        let v2 = key.to_pkcs8_pem(LineEnding::LF).expect("encode v2");
        let back = load_signing_key(&write(tmp.path(), "v2", &v2, 0o400)).expect("v2");
        assert_eq!(back.to_bytes(), key.to_bytes());
    }

    #[test]
    fn load_signing_key_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        let e = err(load_signing_key(&d.join("missing.key")));
        assert!(e.contains("missing.key") && e.contains("no such key file") && e.contains("repro key generate"), "{e}");

        let e = err(load_signing_key(d));
        assert!(e.contains("is a folder"), "{e}");

        let e = err(load_signing_key(&write(d, "text", "hello\n", 0o600)));
        assert!(e.contains("not a PEM key file"), "{e}");

        let e = err(load_signing_key(&write(d, "bin", "\u{0}\u{ff}", 0o600)));
        assert!(e.contains("not a PEM key file"), "{e}");
        fs::write(d.join("bin"), [0u8, 0xff, 0xfe]).expect("write");
        let e = err(load_signing_key(&d.join("bin")));
        assert!(e.contains("not text"), "{e}");

        let e = err(load_signing_key(&write(d, "repro.pub", OPENSSL_ED25519_PUB, 0o644)));
        assert!(e.contains("is a public key") && e.contains("private key"), "{e}");

        let e = err(load_signing_key(&write(d, "ec.key", OPENSSL_P256_KEY, 0o600)));
        assert!(e.contains("elliptic-curve") && e.contains("not an ed25519 key"), "{e}");

        let e = err(load_signing_key(&write(
            d,
            "rsa.key",
            "-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n",
            0o600,
        )));
        assert!(e.contains("RSA PRIVATE KEY") && e.contains("not an ed25519 key"), "{e}");

        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let e = err(load_signing_key(&write(d, "enc.key", enc, 0o600)));
        assert!(e.contains("encrypted"), "{e}");

        let e = err(load_signing_key(&write(
            d,
            "broken.key",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            0o600,
        )));
        assert!(e.contains("not a valid PEM private key"), "{e}");

        let big = "-----BEGIN PRIVATE KEY-----\n".to_string() + &"A".repeat(70_000);
        let e = err(load_signing_key(&write(d, "big.key", &big, 0o600)));
        assert!(e.contains("not a key file"), "{e}");
    }

    #[test]
    fn load_signing_key_refuses_open_permissions() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for m in [0o644, 0o640, 0o604, 0o660] {
            let path = write(tmp.path(), "repro.key", OPENSSL_ED25519_KEY, m);
            let e = err(load_signing_key(&path));
            assert!(e.contains(&format!("{m:04o}")) && e.contains("too open") && e.contains("chmod 600"), "{e}");
        }
        for m in [0o600, 0o400] {
            let path = write(tmp.path(), "repro.key", OPENSSL_ED25519_KEY, m);
            load_signing_key(&path).expect("owner-only is fine");
        }
    }

    #[test]
    fn load_public_key_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        let e = err(load_public_key(&d.join("nope.pub")));
        assert!(e.contains("no such key file"), "{e}");

        let e = err(load_public_key(&write(d, "repro.key", OPENSSL_ED25519_KEY, 0o600)));
        assert!(e.contains("is a private key") && e.contains(".pub"), "{e}");

        let e = err(load_public_key(&write(d, "ec.pub", OPENSSL_P256_PUB, 0o644)));
        assert!(e.contains("elliptic-curve") && e.contains("not an ed25519 key"), "{e}");

        let e = err(load_public_key(&write(d, "x.pub", "ssh-ed25519 AAAA user@host\n", 0o644)));
        assert!(e.contains("not a PEM key file"), "{e}");

        let cert = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let e = err(load_public_key(&write(d, "c.pem", cert, 0o644)));
        assert!(e.contains("CERTIFICATE") && e.contains("not a public key"), "{e}");

        // The identity point: a valid encoding, but of a small-order key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("decodes");
        let e = err(load_public_key(&write(d, "weak.pub", &public_pem(&weak), 0o644)));
        assert!(e.contains("weak"), "{e}");
    }

    #[test]
    fn key_dir_order() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(key_dir_from(s("/k"), s("/x"), s("/h")), Some(PathBuf::from("/k")));
        assert_eq!(key_dir_from(None, s("/x"), s("/h")), Some(PathBuf::from("/x/repro")));
        assert_eq!(key_dir_from(s(""), s(""), s("/h")), Some(PathBuf::from("/h/.config/repro")));
        assert_eq!(key_dir_from(None, s("relative"), s("/h")), Some(PathBuf::from("/h/.config/repro")));
        assert_eq!(key_dir_from(None, None, None), None);
    }
}
