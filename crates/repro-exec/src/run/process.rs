//! The command's process: spawn, wait, forward signals, tee the logs and store them.

use super::*;

pub(super) struct TempDir(pub(super) PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

type ExitStatus = (i32, Option<i32>);

pub(super) fn spawn_and_wait(
    mut cmd: Command,
    program: &str,
    work: &Path,
    stdout_to_stderr: bool,
) -> Result<(ExitStatus, Logs)> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::iterator::SignalsInfo;

    // Register before spawning so no signal slips between the two.
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        .map_err(|e| ExecError::Spawn { program: program.into(), source: e })?;
    let handle = signals.handle();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            handle.close();
            let err = if e.kind() == std::io::ErrorKind::NotFound {
                ExecError::Capture(repro_capture::CaptureError::CommandNotFound(program.to_string()))
            } else {
                ExecError::Spawn { program: program.into(), source: e }
            };
            return Err(err);
        }
    };
    let pid = child.id() as libc::pid_t;
    let forwarder = std::thread::spawn(move || {
        for info in signals.forever() {
            // Ctrl-C from the terminal reaches the whole foreground group, the command
            // included; forward only signals sent to repro alone (they carry a sender).
            if info.signal == SIGINT && info.process.is_none() {
                continue;
            }
            // SAFETY: plain kill(2) on the child we spawned.
            unsafe {
                libc::kill(pid, info.signal);
            }
        }
    });
    let so = work.join("stdout");
    let se = work.join("stderr");
    let out_pipe = child.stdout.take().expect("stdout is piped");
    let err_pipe = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel::<(bool, u64)>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let echo: Box<dyn Write> =
            if stdout_to_stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
        let n = tee(out_pipe, echo, &so);
        let _ = tx.send((true, n));
    });
    std::thread::spawn(move || {
        let n = tee(err_pipe, std::io::stderr(), &se);
        let _ = tx2.send((false, n));
    });
    let status = child.wait().map_err(|e| ExecError::Spawn { program: program.into(), source: e });
    // A grandchild the command left behind may keep the pipes open for ever; once the
    // command itself has ended, give the streams a moment to drain, then record what came.
    let (mut out_bytes, mut err_bytes) = (0, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, n)) => out_bytes = n,
            Ok((false, n)) => err_bytes = n,
            Err(_) => break,
        }
    }
    handle.close();
    let _ = forwarder.join();
    let status = status?;
    let exit = {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => (c, None),
                (None, Some(s)) => (128 + s, Some(s)),
                _ => (1, None),
            }
        }
        #[cfg(not(unix))]
        {
            (status.code().unwrap_or(1), None)
        }
    };
    // Digests are filled in by `store_logs`; here we only know the sizes.
    Ok((exit, Logs { stdout: None, stderr: None, stdout_bytes: out_bytes, stderr_bytes: err_bytes }))
}

/// Copies a child's stream to our own and to a file. Our terminal going away (EPIPE)
/// must not stop the capture.
fn tee(mut from: impl Read, mut to: impl Write, file: &Path) -> u64 {
    let mut f = fs::File::create(file).ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut to_ok = true;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        total += n as u64;
        if to_ok && (to.write_all(&buf[..n]).is_err() || to.flush().is_err()) {
            to_ok = false;
        }
        if let Some(fh) = f.as_mut() {
            if fh.write_all(&buf[..n]).is_err() {
                f = None;
            }
        }
    }
    total
}

/// Stores the captured stdout and stderr files as objects.
pub(super) fn store_logs(store: &Store, work: &Path, logs: &mut Logs) -> Result<()> {
    let batch = store.objects.batch()?;
    for (name, slot, size) in
        [("stdout", &mut logs.stdout, &mut logs.stdout_bytes), ("stderr", &mut logs.stderr, &mut logs.stderr_bytes)]
    {
        let p = work.join(name);
        if let Ok(bytes) = fs::read(&p) {
            let d = repro_core::Digest::of_bytes(&bytes);
            batch.add_bytes(&d, &bytes)?;
            *slot = Some(d);
            *size = bytes.len() as u64;
        }
    }
    batch.commit()?;
    Ok(())
}
