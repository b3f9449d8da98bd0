//! The `repro` command line: clap definitions (`cli`), the global flags resolved once
//! (`context`), one file per command (`commands/`), one renderer per view that writes text or
//! `--json` (`render/`), and the exit statuses (`exit`).

mod cli;
mod commands;
mod context;
mod exit;
mod files;
mod progress;
mod remote;
mod render;
mod source;

use std::io::Write;
use std::process::ExitCode;

pub use exit::Exit;

pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own text on stdout.
            let _ = e.print();
            return Exit::Ok.into();
        }
        Err(e) => {
            let args: Vec<String> = std::env::args().collect();
            let _ = writeln!(render::err(), "error: {}", usage_error(&e, &args));
            return Exit::Error.into();
        }
    };
    init_tracing(cli.verbose);
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return Exit::Ok.into();
            }
            // Through the human writer: an error may quote a run name, a path or a URL.
            let _ = writeln!(render::err(), "error: {}", one_line(&format!("{e:#}")));
            Exit::Error.into()
        }
    }
}

/// The command line, with `--help` naming every variable repro reads (completions and the
/// manual pages are made from it too).
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = cli::Cli::command();
    let long =
        format!("{}\n\n{}", cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default(), context::variables_help());
    cmd.after_long_help(long)
}

fn parse() -> Result<cli::Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(std::env::args_os())?;
    cli::Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// clap's usage error as one line: its `error:` sentence, any tip it gives, and where the help
/// for the command the user was typing is.
fn usage_error(e: &clap::Error, args: &[String]) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(msg) = line.strip_prefix("error:") {
            parts.push(msg.trim().to_string());
        } else if let Some(tip) = line.strip_prefix("tip:") {
            parts.push(tip.trim().to_string());
        } else if let Some(values) = line.strip_prefix("[possible values:") {
            parts.push(format!("one of: {}", values.trim_end_matches(']').trim()));
        }
    }
    if parts.is_empty() {
        parts.push(one_line(&text));
    }
    format!("{}; see `{} --help`", parts.join("; "), command_path(args))
}

/// The deepest (sub)command named on the command line, e.g. `repro model promote`.
fn command_path(args: &[String]) -> String {
    use clap::CommandFactory;
    let mut cmd = cli::Cli::command();
    let mut path = vec!["repro".to_string()];
    for a in args.iter().skip(1) {
        if a == "--" {
            break;
        }
        if a.starts_with('-') {
            continue;
        }
        if let Some(sub) = cmd.find_subcommand(a).cloned() {
            path.push(sub.get_name().to_string());
            cmd = sub;
        }
    }
    path.join(" ")
}

/// Errors are one line: a multi-line message from a dependency is folded.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}
