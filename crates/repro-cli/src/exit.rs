//! What `repro` exits with. Scripts and CI branch on these, so they are one enum, named once.

use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, or the checked thing passed.
    Ok,
    /// 1: the checked thing failed: an incomplete audit, damage fsck found, a refused
    /// promotion or `--strict` run, a replay that did not reproduce.
    CheckFailed,
    /// 2: bad input or an error; the one `error:` line on stderr says what to do.
    Error,
    /// `repro run`: the command's own exit status (clamped to 0..=255).
    Command(u8),
}

impl Exit {
    /// `Ok` when the check passed, else `CheckFailed`.
    pub fn check(passed: bool) -> Exit {
        if passed {
            Exit::Ok
        } else {
            Exit::CheckFailed
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::CheckFailed => 1,
            Exit::Error => 2,
            Exit::Command(c) => c,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}
