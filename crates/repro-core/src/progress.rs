//! Progress hooks, so the CLI can draw a bar without the crates doing the work knowing
//! about terminals.

/// Told how far a long task (hashing, copying, checking) has got.
pub trait Progress: Sync {
    fn start(&self, _what: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
