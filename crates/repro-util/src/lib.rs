//! Small facts about the machine that capture, store and exec all need: the clock
//! ([`clock`]), who and where we run ([`host`]), a file's digest ([`hash`]) and a small file
//! written atomically and durably ([`fs`]).
//!
//! Depends on `repro-core` only (for [`repro_core::Digest`]); it keeps nothing, so
//! observing the world (`repro-capture`) does not need the store.

pub mod clock;
pub mod fs;
pub mod hash;
pub mod host;
