//! Telling whether the process that owns a running run is still alive, across pid reuse.

// Re-exported: the server and exec name the host and user through here.
pub use repro_util::host::{hostname, username};

/// An identity for the current process: pid plus its start time (Linux: clock ticks since
/// boot from /proc; elsewhere empty), so a recycled pid is not mistaken for the owner.
pub fn current() -> (u32, String) {
    let pid = std::process::id();
    (pid, start_time(pid).unwrap_or_default())
}

/// Whether the process `pid` started at `start` still runs on this machine.
pub fn alive(pid: u32, start: &str) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: kill with signal 0 only checks for existence and permission.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return false;
        }
    }
    match start_time(pid) {
        Some(now) => start.is_empty() || now == start,
        None => cfg!(not(target_os = "linux")),
    }
}

#[cfg(target_os = "linux")]
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 22 overall is the 20th after the name.
    rest.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(not(target_os = "linux"))]
fn start_time(_pid: u32) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_a_dead_child_is_not() {
        let (pid, start) = current();
        assert!(alive(pid, &start));
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let cpid = child.id();
        child.wait().expect("wait");
        assert!(!alive(cpid, "1"));
    }
}
