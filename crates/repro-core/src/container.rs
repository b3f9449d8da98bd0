//! The container a run happened in: what the record keeps of it, and the image references
//! repro accepts (`--image`, `REPRO_IMAGE`). Detection itself reads files, so it lives in
//! `repro-capture`; here are the pure parts.

use serde::{Deserialize, Serialize};

/// The container of a run, as far as it could be told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// `docker`, `podman`, `kubernetes`, `containerd`; absent when repro was told an image
    /// but saw no sign of a container itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The image reference as given or as the runtime names it (`python:3.11`,
    /// `ghcr.io/org/train@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image's content digest (`sha256:…`), when known: the only name that cannot move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The local image id a runtime reports (podman's `imageid`): it identifies the image on
    /// that machine, but a registry cannot be asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Where the image came from: `--image`, `REPRO_IMAGE`, `/run/.containerenv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ContainerInfo {
    /// The audit's complaint about this container, if any: an image known only by a tag
    /// (which can be re-pushed) rather than by digest, or not known at all.
    pub fn tag_only_warning(&self) -> Option<String> {
        match (&self.image, &self.digest) {
            (Some(image), None) => Some(format!("image {image} is a tag, not a digest: pass --image NAME@sha256:…")),
            (None, None) => Some(format!(
                "ran inside a {} container whose image repro cannot see: pass --image NAME@sha256:… or set REPRO_IMAGE",
                self.runtime.as_deref().unwrap_or("")
            )),
            _ => None,
        }
    }
}

/// An image reference split into its parts: `NAME[:TAG][@ALGO:HEX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub digest: Option<String>,
}

/// Parses an image reference the way the OCI distribution spec names them. The error says
/// what is wrong, without the value (the caller names it).
pub fn parse_image_reference(s: &str) -> Result<ImageRef, String> {
    const FORM: &str = "expected NAME[:TAG][@sha256:<64 hex digits>], e.g. python:3.11@sha256:…";
    if s.is_empty() || s.len() > 1024 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("empty, too long or containing spaces ({FORM})"));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, d)) => {
            let (algo, hex) = d.split_once(':').ok_or_else(|| format!("the digest {d} has no algorithm ({FORM})"))?;
            let len = match algo {
                "sha256" => 64,
                "sha512" => 128,
                _ => return Err(format!("unknown digest algorithm {algo} ({FORM})")),
            };
            if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("a {algo} digest is {len} lowercase hex digits ({FORM})"));
            }
            (rest, Some(d.to_string()))
        }
        None => (s, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a registry's port).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !t.starts_with(['.', '-']);
        if !ok {
            return Err(format!("the tag {t} is not a tag ({FORM})"));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it looks like one (a dot, a port, localhost).
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
            return Err(format!("the registry {host} is not a host name ({FORM})"));
        }
    }
    for p in &parts {
        if !path_component(p) {
            return Err(format!("the name part '{p}' must be lowercase letters, digits and . _ - ({FORM})"));
        }
    }
    Ok(ImageRef { name: name.to_string(), tag: tag.map(str::to_string), digest })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references() {
        let r = parse_image_reference("python:3.11").expect("tag");
        assert_eq!((r.name.as_str(), r.tag.as_deref(), r.digest), ("python", Some("3.11"), None));
        let r = parse_image_reference(&format!("ghcr.io:5000/org/train-img@sha256:{HEX}")).expect("digest");
        assert_eq!((r.name.as_str(), r.tag), ("ghcr.io:5000/org/train-img", None));
        assert_eq!(r.digest, Some(format!("sha256:{HEX}")));
        let r = parse_image_reference(&format!("localhost/a__b.c:v1.0-rc@sha256:{HEX}")).expect("both");
        assert_eq!(r.tag.as_deref(), Some("v1.0-rc"));
        for bad in [
            "",
            "Python:3.11",
            "python:",
            "python 3",
            "python@sha256:abc",
            &format!("python@md5:{HEX}"),
            &format!("python@sha256:{}", HEX.to_uppercase()),
            "a//b",
            "-x",
            "python:-tag",
        ] {
            assert!(parse_image_reference(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_tag_is_warned() {
        let mut c = ContainerInfo { image: Some("python:3.11".into()), ..Default::default() };
        assert!(c.tag_only_warning().is_some_and(|w| w.contains("python:3.11 is a tag")));
        c.digest = Some(format!("sha256:{HEX}"));
        assert_eq!(c.tag_only_warning(), None);
        let docker = ContainerInfo { runtime: Some("docker".into()), ..Default::default() };
        assert!(docker.tag_only_warning().is_some_and(|w| w.contains("docker container whose image")));
    }
}
