//! Who did something, as the registry's events name them. Every door that appends an event
//! (the CLI, the native API, the MLflow API) names its actor here, so one person reads the
//! same in `repro model log` whichever door they came through. Pure: the caller gathers what
//! it knows (git identity, `$USER`, the host, the token's person) and passes it in.

/// Longest name `--as` takes.
const MAX_CLAIMED: usize = 200;

/// A name given on the command line (`--as`): trimmed, refused when empty, over 200 bytes
/// or holding control characters. The error is the whole message for the user.
pub fn claimed(who: &str) -> Result<String, String> {
    let who = who.trim();
    if who.is_empty() || who.chars().any(char::is_control) || who.len() > MAX_CLAIMED {
        return Err(format!("--as '{who}': give a name and/or e-mail, e.g. --as 'Ada Lovelace <ada@example.com>'"));
    }
    Ok(who.to_string())
}

/// The local person: git's `user.name <user.email>`, else `$USER@host`.
pub fn local(git_identity: Option<String>, user: Option<&str>, host: &str) -> String {
    git_identity.unwrap_or_else(|| format!("{}@{host}", user.unwrap_or("unknown")))
}

/// The person a server token is bound to: `Name <email>`, else the token's name, with the
/// token's id so an auditor can tell two tokens of one person apart.
pub fn token_person(name: &str, email: Option<&str>, token_id: &str) -> String {
    let who = person(name, email);
    let who = if who.is_empty() { "unnamed" } else { &who };
    format!("{who} (token {token_id}, repro serve)")
}

/// A person as `[trust]` and the registry name them: `Name <email>`, `<email>` without a
/// name, the bare name without an e-mail (empty when neither is given).
pub fn person(name: &str, email: Option<&str>) -> String {
    match email {
        Some(e) if name.is_empty() => format!("<{e}>"),
        Some(e) => format!("{name} <{e}>"),
        None => name.to_string(),
    }
}

/// Who acts through the native API when the store has no tokens.
pub const ANYONE: &str = "anyone who can reach repro serve (the store has no tokens)";

/// Who MLflow-door events are by: the MLflow API names no person for registry calls, so the
/// token that asked names them, or, on a store without tokens, the client in general.
pub fn mlflow_client(token_name: Option<&str>) -> String {
    match token_name {
        Some(name) if !name.is_empty() => format!("{name} (token, MLflow API)"),
        _ => "mlflow-client (repro serve)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_door_names_its_actor() {
        assert_eq!(claimed("  Ada <ada@x>  ").as_deref(), Ok("Ada <ada@x>"));
        assert!(claimed(" ").is_err() && claimed("a\nb").is_err() && claimed(&"a".repeat(201)).is_err());
        assert_eq!(local(Some("Ada <ada@x>".into()), Some("ada"), "h"), "Ada <ada@x>");
        assert_eq!(local(None, Some("ada"), "h"), "ada@h");
        assert_eq!(local(None, None, "h"), "unknown@h");
        assert_eq!(token_person("Ada", Some("ada@x"), "t1"), "Ada <ada@x> (token t1, repro serve)");
        assert_eq!(token_person("", Some("ada@x"), "t1"), "<ada@x> (token t1, repro serve)");
        assert_eq!(token_person("ci", None, "t2"), "ci (token t2, repro serve)");
        assert_eq!(token_person("", None, "t3"), "unnamed (token t3, repro serve)");
        assert_eq!(mlflow_client(Some("ci")), "ci (token, MLflow API)");
        assert_eq!(mlflow_client(Some("")), "mlflow-client (repro serve)");
        assert_eq!(mlflow_client(None), "mlflow-client (repro serve)");
    }
}
