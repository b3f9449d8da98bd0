//! The container of a run: what the runtime exposes (`repro_capture::container`), and the
//! image the user names with `--image` or `REPRO_IMAGE`, which wins (docker and Kubernetes
//! do not tell a container its image, and a digest is the only name that cannot move).

use repro_core::container::{parse_image_reference, ContainerInfo};

use super::*;

/// The container to record, or `None` outside one with no image named. A malformed image
/// reference is bad input: refused before anything is recorded.
pub(super) fn container(opts: &RunOptions) -> Result<Option<ContainerInfo>> {
    let given = match (&opts.image, opts.vars.get("REPRO_IMAGE").filter(|v| !v.is_empty())) {
        (Some(i), _) => Some((i.as_str(), "--image")),
        (None, Some(i)) => Some((i.as_str(), "REPRO_IMAGE")),
        (None, None) => None,
    };
    let parsed = given
        .map(|(value, source)| {
            parse_image_reference(value).map(|r| (value, source, r)).map_err(|why| {
                ExecError::Usage(format!("{source} {value:?} is not an image reference: {why}", value = value))
            })
        })
        .transpose()?;
    // Tests point detection at a folder of their own; a run looks at `/`.
    let root = opts.vars.get("REPRO_CONTAINER_ROOT").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    let detected = repro_capture::container::detect(&root, &opts.vars);
    Ok(match (detected, parsed) {
        (detected, Some((value, source, r))) => Some(ContainerInfo {
            image: Some(value.to_string()),
            digest: r.digest,
            source: Some(source.to_string()),
            ..detected.unwrap_or_default()
        }),
        (detected, None) => detected,
    })
}
