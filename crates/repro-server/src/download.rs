//! Serving one stored object as a download, shared by the MLflow artifact routes and the
//! web UI's file links: re-hashed before a byte is sent, streamed, and typed so that a
//! browser saves logged bytes rather than running them.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Streams one stored object as a download named `name`: re-hashed from disk first (a
/// damaged object is an error, never served), then sent in chunks, so a model of
/// gigabytes never sits in memory. The web UI's file downloads are served by this too.
pub(crate) async fn send_object(
    s: &std::sync::Arc<crate::State>,
    digest: repro_core::Digest,
    name: &str,
) -> Result<Response, ApiError> {
    use tokio::io::AsyncReadExt;
    let (file, size) = s
        .with_meta(move |_, st| {
            let size = match st.objects.verify(&digest)? {
                repro_store::objects::Verified::Ok { bytes } => bytes,
                repro_store::objects::Verified::Missing => {
                    return Err(repro_store::StoreError::ObjectMissing(digest).into())
                }
                repro_store::objects::Verified::Corrupt => {
                    return Err(repro_store::StoreError::ObjectCorrupt(digest).into())
                }
            };
            // verify fetched it into the cache when the store has a remote.
            let object = st.objects.fetch(&digest)?;
            let file = std::fs::File::open(&object)
                .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", object.display())))?;
            Ok((file, size))
        })
        .await?;
    let chunks = futures_util::stream::unfold(tokio::fs::File::from_std(file), |mut f| async move {
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type(name).to_string()),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
            // Logged bytes are the client's: a browser saves them, never renders them here.
            (axum::http::header::CONTENT_DISPOSITION, attachment(name)),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

/// The type a download is served as, by MLflow's rule (`_guess_mime_type`): text-like
/// extensions and extensionless `MLmodel`/`MLproject` are `text/plain`, others as the
/// extension says, unknown ones `application/octet-stream`. Whatever a browser would run
/// (HTML, XHTML, SVG) is `text/plain`: logged bytes are the client's, and with `nosniff`
/// (on every response, `guard.rs`) and `attachment` they are saved, never rendered here.
pub(crate) fn content_type(name: &str) -> &'static str {
    const TEXT: &[&str] = &[
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "mlmodel",
        "mlproject",
    ];
    let file = name.rsplit('/').next().unwrap_or(name);
    let extension = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => file,
    };
    if TEXT.iter().any(|t| t.eq_ignore_ascii_case(extension)) {
        return "text/plain";
    }
    match mime_guess::from_path(file).first_raw() {
        Some("text/html" | "application/xhtml+xml" | "image/svg+xml") => "text/plain",
        Some(known) => known,
        None => "application/octet-stream",
    }
}

/// `Content-Disposition: attachment` naming the file as Werkzeug (MLflow's server) does: a
/// name of token characters bare, any other ASCII name quoted with what could end the
/// quoted string or the header replaced, and the exact name percent-encoded as RFC 6266's
/// `filename*` for browsers that read it.
pub(crate) fn attachment(name: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let exact = crate::request::encode_attr(name);
    if !name.is_empty() && name.chars().all(token) {
        return format!("attachment; filename={name}; filename*=UTF-8''{exact}");
    }
    let plain: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}
