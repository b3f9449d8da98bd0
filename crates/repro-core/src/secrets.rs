//! Credentials in URLs: found, and removed before anything is recorded.
//!
//! A record is immutable once its lineage digest covers it, so a secret that reaches one
//! can never be taken out again. Capture therefore strips what pip strips from
//! `direct_url.json` (and what conda strips from channel URLs): the password of a URL's
//! user info, a user name that is itself a token (`https://ghp_…@github.com`), credential
//! query parameters (`token=`, `X-Amz-Signature=`, `sig=` …) and conda's `/t/<token>/`.
//! What stays: a user without a password (`ssh://git@host/r.git`), scp-style addresses
//! (`git@host:r.git`, not URLs), and `${VAR}` placeholders, which installers expand from
//! the environment and which are not secrets.
//!
//! [`strip_url`] removes a credential (for what is recorded); [`mask_url`] replaces it
//! with `***` (for showing a record made before stripping existed). The `_text` forms do
//! the same to every URL inside a text (a requirements file, an output line).

use std::borrow::Cow;
use std::fmt;

use crate::record::{DeclaredEnvironment, RunRecord};

/// What kind of credential a URL held. Says where it was, never what it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `scheme://user:PASSWORD@host`.
    Password,
    /// `scheme://TOKEN@host`: a user name that is a token.
    TokenUser,
    /// A query parameter (or fragment parameter) that carries a credential, by its name.
    Parameter(&'static str),
    /// conda's `/t/<TOKEN>/` path segment.
    CondaToken,
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Password => f.write_str("a password in the URL's user info"),
            Credential::TokenUser => f.write_str("a token as the URL's user name"),
            Credential::Parameter(name) => write!(f, "the credential parameter `{name}` of the URL"),
            Credential::CondaToken => f.write_str("a conda token (/t/…/) in the URL's path"),
        }
    }
}

/// A credential found in a text, with the 1-based line of its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub line: usize,
    pub credential: Credential,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strip,
    Mask,
}

/// What a masked credential is shown as.
pub const MASK: &str = "***";

/// The URL without its credentials, and what was removed. Anything that is not a
/// `scheme://` URL comes back unchanged.
pub fn strip_url(url: &str) -> (Cow<'_, str>, Vec<Credential>) {
    rewrite_url(url, Mode::Strip)
}

/// The URL with each credential replaced by `***`, and what was replaced.
pub fn mask_url(url: &str) -> (Cow<'_, str>, Vec<Credential>) {
    rewrite_url(url, Mode::Mask)
}

/// Every URL in `text` without its credentials, with the line each was on.
pub fn strip_text(text: &str) -> (Cow<'_, str>, Vec<Found>) {
    rewrite_text(text, Mode::Strip)
}

/// Every URL in `text` with its credentials replaced by `***`.
pub fn mask_text(text: &str) -> Cow<'_, str> {
    rewrite_text(text, Mode::Mask).0
}

/// Whether `text` holds a URL with a credential.
pub fn has_credentials(text: &str) -> bool {
    // Cheap test first: every URL has a `://`.
    text.contains("://") && !rewrite_text(text, Mode::Mask).1.is_empty()
}

/// Query and fragment parameters whose value is a credential (compared lowercased).
const SECRET_PARAMETERS: [&str; 21] = [
    "access_token",
    "api-key",
    "api_key",
    "apikey",
    "auth",
    "auth_token",
    "client_secret",
    "id_token",
    "passwd",
    "password",
    "private_token",
    "refresh_token",
    "secret",
    "sig",
    "signature",
    "token",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-signature",
    "x-goog-credential",
    "x-goog-signature",
];

/// Prefixes of the tokens hosting services issue, so that one used as a user name is
/// recognised whatever its length.
const TOKEN_PREFIXES: [&str; 13] =
    ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "glrt-", "hf_", "pypi-", "npm_", "xox"];

/// `${NAME}`, one or more of them and nothing else: pip and uv expand these from the
/// environment, so the file holds a name, not a secret.
pub fn is_placeholder(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix("${") else { return false };
        let Some(end) = inner.find('}') else { return false };
        let name = &inner[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        rest = &inner[end + 1..];
    }
    true
}

/// Whether a user name (with no password) is a token: a known token prefix, or a long
/// random-looking word. A person's name or `git` is not.
fn is_token_user(user: &str) -> bool {
    if user.is_empty() || is_placeholder(user) {
        return false;
    }
    if TOKEN_PREFIXES.iter().any(|p| user.starts_with(p)) && user.len() > 8 {
        return true;
    }
    let word = user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.%".contains(&b));
    let digit = user.bytes().any(|b| b.is_ascii_digit());
    let letter = user.bytes().any(|b| b.is_ascii_alphabetic());
    word && digit && letter && user.len() >= 20
}

/// conda's token segment: `[A-Za-z0-9_-]`, long enough not to be a folder name.
fn is_conda_token(seg: &str) -> bool {
    seg.len() >= 8 && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && !is_placeholder(seg)
}

fn secret_parameter(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAMETERS.iter().copied().find(|p| *p == lower)
}

fn is_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'.' || b == b'-')
}

/// `a=1&token=x&b=2` without (or with masked) credential parameters; `None` when nothing changed.
fn rewrite_parameters(params: &str, mode: Mode, found: &mut Vec<Credential>) -> Option<String> {
    let mut changed = false;
    let mut kept: Vec<Cow<'_, str>> = Vec::new();
    for p in params.split('&') {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        match secret_parameter(name) {
            Some(known) if !value.is_empty() && value != MASK && !is_placeholder(value) => {
                found.push(Credential::Parameter(known));
                changed = true;
                if mode == Mode::Mask {
                    kept.push(Cow::Owned(format!("{name}={MASK}")));
                }
            }
            _ => kept.push(Cow::Borrowed(p)),
        }
    }
    changed.then(|| kept.join("&"))
}

fn rewrite_url(url: &str, mode: Mode) -> (Cow<'_, str>, Vec<Credential>) {
    let mut found = Vec::new();
    let Some(sep) = url.find("://") else { return (Cow::Borrowed(url), found) };
    let scheme = &url[..sep];
    if !is_scheme(scheme) {
        return (Cow::Borrowed(url), found);
    }
    let after = &url[sep + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(authority_end);

    // User info: up to the last `@` of the authority (a password may hold an unescaped `@`).
    let mut userinfo_changed = false;
    let host = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
            match userinfo.split_once(':') {
                Some((_, password)) if !password.is_empty() && !is_placeholder(password) => {
                    found.push(Credential::Password);
                    userinfo_changed = true;
                }
                None if is_token_user(userinfo) => {
                    found.push(Credential::TokenUser);
                    userinfo_changed = true;
                }
                _ => {}
            }
            if userinfo_changed {
                host
            } else {
                authority
            }
        }
        None => authority,
    };

    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };

    let mut new_path: Option<String> = None;
    if path.contains("/t/") {
        let mut current = path.to_string();
        // Removing one `/t/<token>` can bring another `t` next to a token: repeat until none.
        loop {
            let segments: Vec<&str> = current.split('/').collect();
            let mut out: Vec<&str> = Vec::with_capacity(segments.len());
            let mut hit = false;
            let mut i = 0;
            while i < segments.len() {
                if segments[i] == "t" && segments.get(i + 1).is_some_and(|s| is_conda_token(s)) {
                    found.push(Credential::CondaToken);
                    hit = true;
                    if mode == Mode::Mask {
                        out.extend(["t", MASK]);
                    }
                    i += 2;
                    continue;
                }
                out.push(segments[i]);
                i += 1;
            }
            if !hit {
                break;
            }
            current = out.join("/");
            new_path = Some(current.clone());
            if mode == Mode::Mask {
                break;
            }
        }
    }
    let new_query = query.and_then(|q| rewrite_parameters(q, mode, &mut found));
    let new_fragment = fragment.and_then(|f| rewrite_parameters(f, mode, &mut found));

    if found.is_empty() {
        return (Cow::Borrowed(url), found);
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    if userinfo_changed && mode == Mode::Mask {
        out.push_str(MASK);
        out.push('@');
    }
    out.push_str(host);
    out.push_str(new_path.as_deref().unwrap_or(path));
    match (query, &new_query) {
        (Some(_), Some(q)) if q.is_empty() => {}
        (Some(_), Some(q)) => {
            out.push('?');
            out.push_str(q);
        }
        (Some(q), None) => {
            out.push('?');
            out.push_str(q);
        }
        (None, _) => {}
    }
    match (fragment, &new_fragment) {
        (Some(_), Some(f)) if f.is_empty() => {}
        (Some(_), Some(f)) => {
            out.push('#');
            out.push_str(f);
        }
        (Some(f), None) => {
            out.push('#');
            out.push_str(f);
        }
        (None, _) => {}
    }
    (Cow::Owned(out), found)
}

/// Characters that end a URL inside a text: whitespace, quotes and what no URL holds
/// unescaped. `{` and `}` do not: `${VAR}` placeholders live inside URLs.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\' | '^' | '|')
}

fn rewrite_text(text: &str, mode: Mode) -> (Cow<'_, str>, Vec<Found>) {
    let (mut out, mut found) = one_pass(text, mode);
    // A URL inside another's path (`https://u:p@h/x/https://v:q@g`) is seen once the outer
    // one is rewritten; lines never change (no URL holds a newline), so findings keep theirs.
    // This ends: a pass that finds something strips (the text gets shorter) or masks (`***`
    // is never found again, and masking creates no credential), and there are finitely many.
    while let Cow::Owned(current) = &out {
        let (next, more) = one_pass(current, mode);
        if more.is_empty() {
            break;
        }
        found.extend(more);
        let next = next.into_owned();
        out = Cow::Owned(next);
    }
    found.sort_by_key(|f| f.line);
    (out, found)
}

fn one_pass(text: &str, mode: Mode) -> (Cow<'_, str>, Vec<Found>) {
    let mut found = Vec::new();
    if !text.contains("://") {
        return (Cow::Borrowed(text), found);
    }
    let mut out = String::new();
    // `copied`: how much of `text` is already in `out`; `line`/`counted`: the line at `counted`.
    let (mut copied, mut cursor, mut line, mut counted) = (0usize, 0usize, 1usize, 0usize);
    while let Some(rel) = text[cursor..].find("://") {
        let sep = cursor + rel;
        // The scheme: back over scheme characters, not before what is already copied.
        let start = text[copied..sep]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '+' || c == '.' || c == '-'))
            .map_or(copied, |(i, c)| copied + i + c.len_utf8());
        let end = text[sep + 3..].find(ends_url).map_or(text.len(), |i| sep + 3 + i);
        // A URL without credentials may carry another inside it (`?next=https://…`): look on
        // from its `://`, not from its end.
        cursor = sep + 3;
        if start == sep {
            continue;
        }
        let (rewritten, creds) = rewrite_url(&text[start..end], mode);
        if creds.is_empty() {
            continue;
        }
        cursor = end;
        line += text[counted..start].bytes().filter(|&b| b == b'\n').count();
        counted = start;
        found.extend(creds.into_iter().map(|credential| Found { line, credential }));
        out.push_str(&text[copied..start]);
        out.push_str(&rewritten);
        copied = end;
    }
    if found.is_empty() {
        return (Cow::Borrowed(text), found);
    }
    out.push_str(&text[copied..]);
    (Cow::Owned(out), found)
}

/// Where a record holds a URL credential (a run recorded before capture stripped them):
/// one line per place, naming the field and the kind of credential, never its value.
pub fn find_in_record(record: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let mut look = |place: String, text: &str| {
        let (_, found) = rewrite_text(text, Mode::Mask);
        let mut kinds: Vec<String> = found.iter().map(|f| f.credential.to_string()).collect();
        kinds.dedup();
        if !kinds.is_empty() {
            out.push(format!("{place}: {}", kinds.join(", ")));
        }
    };
    if let Some(remote) = &record.code.remote {
        look("the git remote (code.remote)".into(), remote);
    }
    if let Some(python) = &record.environment.python {
        for p in &python.packages {
            if let Some(url) = &p.url {
                look(format!("the URL of installed package {} (environment.python.packages)", p.name), url);
            }
        }
    }
    if let Some(declared) = &record.environment.declared {
        out.extend(find_in_declared(declared));
    }
    out
}

/// Where a declared environment's parsed requirements hold a URL credential.
pub fn find_in_declared(declared: &DeclaredEnvironment) -> Vec<String> {
    let mut out = Vec::new();
    for r in &declared.requirements {
        let fields = [Some(r.name.as_str()), Some(r.spec.as_str()), r.url.as_deref(), r.channel.as_deref()];
        let mut kinds: Vec<String> = fields
            .into_iter()
            .flatten()
            .flat_map(|t| rewrite_text(t, Mode::Mask).1)
            .map(|f| f.credential.to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        if !kinds.is_empty() {
            // A bare-URL requirement is named by its URL: show where it is, not its name.
            let name = if r.name.contains("://") { "given by URL" } else { r.name.as_str() };
            out.push(format!(
                "the declared requirement {name} at {} (environment.declared): {}",
                r.origin,
                kinds.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn strip(u: &str) -> String {
        strip_url(u).0.into_owned()
    }

    #[test]
    fn user_info_with_a_password_goes() {
        assert_eq!(strip("https://oauth2:glpat-abc123@gitlab.example/r.git"), "https://gitlab.example/r.git");
        assert_eq!(strip("https://x-access-token:ghs_zzz@github.com/o/r"), "https://github.com/o/r");
        assert_eq!(strip("https://alice:s3cr%40t@pypi.corp/simple/"), "https://pypi.corp/simple/");
        // An unescaped `@` in the password: the host is after the last one.
        assert_eq!(strip("https://u:p@ss@host:8443/x"), "https://host:8443/x");
        assert_eq!(strip_url("https://u:p@h/").1, vec![Credential::Password]);
        assert_eq!(mask_url("https://oauth2:TOKEN@host/r.git").0, "https://***@host/r.git");
    }

    #[test]
    fn a_token_as_user_goes_a_person_or_git_stays() {
        assert_eq!(
            strip("https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(strip("https://0123456789abcdef0123456789abcdef01234567@github.com/o/r"), "https://github.com/o/r");
        for keep in [
            "ssh://git@github.com/o/r.git",
            "git@github.com:o/r.git",
            "https://alice@host/r.git",
            "https://first.last@host/r.git",
            "git+ssh://git@host/r.git@0123abcd",
        ] {
            assert_eq!(strip(keep), keep);
        }
    }

    #[test]
    fn placeholders_are_not_secrets() {
        for keep in [
            "https://${PYPI_USER}:${PYPI_TOKEN}@pypi.corp/simple",
            "https://user:${TOKEN}@pypi.corp/simple",
            "https://${GITHUB_TOKEN}@github.com/o/r.git",
            "https://h/x?token=${TOKEN}",
            "https://conda.corp/t/${CONDA_TOKEN}/main",
        ] {
            assert_eq!(strip(keep), keep);
        }
        assert!(!is_placeholder("${A}x"));
        assert!(!is_placeholder("${}"));
        assert!(is_placeholder("${A}${B_2}"));
    }

    #[test]
    fn credential_parameters_go_others_stay() {
        assert_eq!(strip("https://h/f.whl?token=abc&v=1"), "https://h/f.whl?v=1");
        assert_eq!(strip("https://h/f.whl?token=abc"), "https://h/f.whl");
        assert_eq!(
            strip("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Credential=AK%2F1&X-Amz-Signature=ff&X-Amz-Date=1"),
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Date=1"
        );
        assert_eq!(
            strip("https://acct.blob.core.windows.net/c/f?sv=1&sig=abc%3D"),
            "https://acct.blob.core.windows.net/c/f?sv=1"
        );
        assert_eq!(strip("https://h/p.whl#sha256=00ff&token=x"), "https://h/p.whl#sha256=00ff");
        assert_eq!(mask_url("https://h/x?access_token=abc").0, "https://h/x?access_token=***");
        let keep = "https://h/p.whl?version=1#sha256=00ff&egg=p";
        assert_eq!(strip(keep), keep);
        assert_eq!(strip_url("https://h/?Token=1").1, vec![Credential::Parameter("token")]);
    }

    #[test]
    fn conda_tokens_go() {
        assert_eq!(
            strip("https://conda.anaconda.org/t/ab-12345678-abcd-1234/my-channel/linux-64/x.conda"),
            "https://conda.anaconda.org/my-channel/linux-64/x.conda"
        );
        assert_eq!(mask_url("https://repo.corp/t/abcdefgh123/main").0, "https://repo.corp/t/***/main");
        let keep = "https://repo.corp/t/x/main";
        assert_eq!(strip(keep), keep);
    }

    #[test]
    fn text_keeps_everything_but_the_credentials() {
        let text = "--index-url https://oauth2:SECRET1@pypi.corp/simple\n\
                    numpy==1.26.4\n\
                    \"pkg @ git+https://ghp_abcdefghij0123456789@github.com/o/r.git@0123abc\"\n\
                    url = 'https://h/f.whl?sig=SECRET3'\n\
                    ssh://git@host/r.git and https://ok.example/x\n";
        let (clean, found) = strip_text(text);
        for secret in ["SECRET1", "ghp_", "SECRET3"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert_eq!(
            clean,
            "--index-url https://pypi.corp/simple\nnumpy==1.26.4\n\"pkg @ git+https://github.com/o/r.git@0123abc\"\n\
             url = 'https://h/f.whl'\nssh://git@host/r.git and https://ok.example/x\n"
        );
        let lines: Vec<usize> = found.iter().map(|f| f.line).collect();
        assert_eq!(lines, vec![1, 3, 4]);
        assert_eq!(mask_text("see https://u:p@h/x."), "see https://***@h/x.");
        assert!(matches!(strip_text("no urls here"), (Cow::Borrowed(_), ref f) if f.is_empty()));
    }

    #[test]
    fn nested_urls_lose_every_credential() {
        let deep: String = (0..100).map(|i| format!("https://u:p{i}@h{i}/")).collect();
        let (clean, found) = strip_text(&deep);
        assert_eq!(found.len(), 100);
        assert!(!has_credentials(&clean) && !clean.contains('@'), "{clean}");
        assert!(!has_credentials(&mask_text(&deep)));
    }

    #[test]
    fn records_name_where_a_credential_sits() {
        let mut r = crate::record::sample::record();
        assert!(find_in_record(&r).is_empty());
        r.code.remote = Some("https://oauth2:TOKEN@host/r.git".into());
        if let Some(p) = r.environment.python.as_mut() {
            p.packages[0].url = Some("https://u:PW@files.corp/numpy.whl".into());
        }
        if let Some(d) = r.environment.declared.as_mut() {
            d.requirements[1].url = Some("https://h/x.whl?token=TOK".into());
        }
        let found = find_in_record(&r);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("the git remote (code.remote): a password"), "{found:?}");
        assert!(found[1].contains("installed package numpy"), "{found:?}");
        assert!(found[2].contains("scikit-learn at requirements.txt:2"), "{found:?}");
        assert!(found.iter().all(|f| !f.contains("TOKEN") && !f.contains("PW") && !f.contains("TOK")));
    }

    /// A URL-ish string: scheme, optional user info, host, path, query, fragment.
    fn url() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["https", "http", "git+https", "ssh", "file", "s3"]),
            prop::option::of(("[a-z0-9_.-]{0,12}", prop::option::of("[A-Za-z0-9%@!*]{0,12}"))),
            "[a-z0-9.-]{1,12}(:[0-9]{1,5})?",
            "(/[A-Za-z0-9._~-]{0,10}){0,4}",
            prop::option::of(prop::collection::vec(("[A-Za-z_-]{1,10}", "[A-Za-z0-9%]{0,8}"), 0..4)),
            prop::option::of("[a-z0-9=&]{0,12}"),
        )
            .prop_map(|(scheme, user, host, path, query, fragment)| {
                let mut u = format!("{scheme}://");
                if let Some((name, password)) = user {
                    u.push_str(&name);
                    if let Some(p) = password {
                        u.push(':');
                        u.push_str(&p);
                    }
                    u.push('@');
                }
                u.push_str(&host);
                u.push_str(&path);
                if let Some(q) = query {
                    u.push('?');
                    u.push_str(&q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
                }
                if let Some(f) = fragment {
                    u.push('#');
                    u.push_str(&f);
                }
                u
            })
    }

    proptest! {
        #[test]
        fn stripping_is_idempotent_and_leaves_nothing(u in url()) {
            let (once, _) = strip_url(&u);
            let (twice, again) = strip_url(&once);
            prop_assert_eq!(&once, &twice);
            prop_assert!(again.is_empty(), "{} still holds {:?}", once, again);
            let (masked, _) = mask_url(&u);
            prop_assert!(!has_credentials(&masked), "{}", masked);
        }

        #[test]
        fn a_planted_secret_never_survives(
            u in url(),
            secret in "[A-Za-z0-9]{12,24}",
            how in 0..4u8,
        ) {
            let (scheme, rest) = u.split_once("://").expect("a URL");
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let planted = match how {
                0 => format!("{scheme}://user:{secret}@{rest}"),
                1 => format!("{scheme}://ghp_{secret}@{rest}"),
                2 => format!("{scheme}://{rest}{}token={secret}", if rest.contains(['?', '#']) { '&' } else { '?' }),
                _ => format!("{scheme}://{}/t/{secret}/main", rest.split(['/', '?', '#']).next().unwrap_or("")),
            };
            let text = format!("x = \"{planted}\"\n-i {planted} # c\n");
            let (clean, found) = strip_text(&text);
            prop_assert!(!clean.contains(&secret), "{} -> {}", text, clean);
            prop_assert!(!found.is_empty());
            prop_assert_eq!(clean.lines().count(), 2);
            prop_assert!(!mask_text(&text).contains(&secret));
        }

        #[test]
        fn text_without_credentials_is_untouched(s in "\\PC{0,80}") {
            let (clean, found) = strip_text(&s);
            if found.is_empty() {
                prop_assert_eq!(clean.as_ref(), s.as_str());
            }
            let (again, more) = strip_text(&clean);
            prop_assert!(more.is_empty());
            prop_assert_eq!(again.as_ref(), clean.as_ref());
        }

        #[test]
        fn texts_of_urls_strip_once_for_all(
            parts in prop::collection::vec((url(), prop::sample::select(vec![" ", "\n", "\"", "'", "=", " @ ", "/t/"])), 1..6),
        ) {
            let text: String = parts.iter().map(|(u, sep)| format!("{u}{sep}")).collect();
            let (once, _) = strip_text(&text);
            let (twice, again) = strip_text(&once);
            prop_assert!(again.is_empty(), "{} -> {} still holds {:?}", text, once, again);
            prop_assert_eq!(once.as_ref(), twice.as_ref());
            prop_assert!(!has_credentials(&mask_text(&text)));
        }

        #[test]
        fn any_text_is_safe(s in any::<String>()) {
            let _ = strip_text(&s);
            let _ = mask_text(&s);
            let _ = strip_url(&s);
        }
    }
}
