//! Telling whether the process that owns a running run is still alive, across pid reuse.

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

/// This machine's host name.
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into())
}

/// The login name of the current user, from the password database (not the environment,
/// which a CI job or container may leave empty).
pub fn username() -> Option<String> {
    #[cfg(unix)]
    {
        let mut buf = vec![0 as libc::c_char; 4096];
        // SAFETY: passwd is plain data; getpwuid_r writes into `pwd` and `buf` only.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe { libc::getpwuid_r(libc::getuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
            let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
            return Some(name.to_string_lossy().into_owned());
        }
    }
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
