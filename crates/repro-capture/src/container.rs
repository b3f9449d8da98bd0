//! Whether the run happens inside a container, and what the runtime says of its image.
//!
//! Every check reads below `root` (`/` for a run; a temp folder in tests): `/.dockerenv`
//! (docker writes it, empty), `/run/.containerenv` (podman writes `image="…"` and
//! `imageid="…"` there), `/proc/1/cgroup` naming docker, kubepods or containerd, and the
//! `KUBERNETES_SERVICE_HOST` variable every pod gets. Docker and Kubernetes do not tell a
//! container its image; the user does, with `--image` or `REPRO_IMAGE` (see `repro-exec`).

use std::collections::BTreeMap;
use std::path::Path;

use repro_core::container::{parse_image_reference, ContainerInfo};

/// The container `root` is the filesystem of, or `None` when nothing says it is one.
pub fn detect(root: &Path, vars: &BTreeMap<String, String>) -> Option<ContainerInfo> {
    if let Ok(text) = std::fs::read_to_string(root.join("run/.containerenv")) {
        let (image, image_id) = parse_containerenv(&text);
        let digest = image.as_deref().and_then(|i| parse_image_reference(i).ok()).and_then(|r| r.digest);
        let source = image.is_some().then(|| "/run/.containerenv".to_string());
        return Some(ContainerInfo { runtime: Some("podman".into()), image, digest, image_id, source });
    }
    let cgroup = std::fs::read_to_string(root.join("proc/1/cgroup")).unwrap_or_default();
    let runtime = if vars.get("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()) {
        Some("kubernetes")
    } else if root.join(".dockerenv").exists() {
        Some("docker")
    } else {
        runtime_from_cgroup(&cgroup)
    }?;
    Some(ContainerInfo { runtime: Some(runtime.into()), ..Default::default() })
}

/// `image` and `imageid` from podman's `/run/.containerenv` (`key="value"` lines; rootless
/// podman writes only `engine` and `rootless`, so both may be absent).
pub fn parse_containerenv(text: &str) -> (Option<String>, Option<String>) {
    let mut image = None;
    let mut id = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').to_string();
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "image" => image = Some(value),
            "imageid" => id = Some(value),
            _ => {}
        }
    }
    (image, id)
}

/// The runtime `/proc/1/cgroup` names, if any (cgroup v1 paths such as
/// `/docker/<id>`, `/kubepods/…`, `/system.slice/containerd.service`; under cgroup v2 a
/// container usually sees `0::/` and this finds nothing).
pub fn runtime_from_cgroup(text: &str) -> Option<&'static str> {
    let paths: Vec<&str> = text.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect();
    if paths.iter().any(|p| p.contains("kubepods")) {
        Some("kubernetes")
    } else if paths.iter().any(|p| p.contains("docker")) {
        Some("docker")
    } else if paths.iter().any(|p| p.contains("containerd")) {
        Some("containerd")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn podman_containerenv() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
        let text = format!(
            "engine=\"podman-4.9.3\"\nname=\"train\"\nid=\"abc\"\nimage=\"docker.io/library/python:3.11@sha256:{HEX}\"\nimageid=\"{HEX}\"\nrootless=0\n"
        );
        std::fs::write(dir.path().join("run/.containerenv"), text).expect("write");
        let c = detect(dir.path(), &BTreeMap::new()).expect("a container");
        assert_eq!(c.runtime.as_deref(), Some("podman"));
        assert_eq!(c.image, Some(format!("docker.io/library/python:3.11@sha256:{HEX}")));
        assert_eq!(c.digest, Some(format!("sha256:{HEX}")));
        assert_eq!(c.image_id.as_deref(), Some(HEX));
        assert_eq!(c.source.as_deref(), Some("/run/.containerenv"));

        // Rootless podman names no image: a container, image unknown.
        std::fs::write(dir.path().join("run/.containerenv"), "engine=\"podman-4.9.3\"\nrootless=1\n").expect("write");
        let c = detect(dir.path(), &BTreeMap::new()).expect("a container");
        assert_eq!((c.image, c.digest, c.source), (None, None, None));
    }

    #[test]
    fn docker_kubernetes_and_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(detect(dir.path(), &BTreeMap::new()), None);
        let k8s = BTreeMap::from([("KUBERNETES_SERVICE_HOST".to_string(), "10.0.0.1".to_string())]);
        assert_eq!(detect(dir.path(), &k8s).and_then(|c| c.runtime).as_deref(), Some("kubernetes"));
        std::fs::create_dir_all(dir.path().join("proc/1")).expect("mkdir");
        std::fs::write(dir.path().join("proc/1/cgroup"), "12:memory:/docker/4f2a\n0::/\n").expect("write");
        assert_eq!(detect(dir.path(), &BTreeMap::new()).and_then(|c| c.runtime).as_deref(), Some("docker"));
        std::fs::write(dir.path().join("proc/1/cgroup"), "0::/\n").expect("write");
        assert_eq!(detect(dir.path(), &BTreeMap::new()), None);
        std::fs::write(dir.path().join(".dockerenv"), "").expect("write");
        assert_eq!(detect(dir.path(), &BTreeMap::new()).and_then(|c| c.runtime).as_deref(), Some("docker"));
    }

    #[test]
    fn cgroup_lines() {
        assert_eq!(runtime_from_cgroup("11:cpu:/kubepods/burstable/pod1/abc\n"), Some("kubernetes"));
        assert_eq!(runtime_from_cgroup("1:name=systemd:/system.slice/containerd.service\n"), Some("containerd"));
        assert_eq!(runtime_from_cgroup("0::/user.slice/user-1000.slice\n"), None);
        assert_eq!(runtime_from_cgroup(""), None);
    }
}
