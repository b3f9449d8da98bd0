//! The `repro` binary: parse arguments, call the libraries, render. See `lib.rs`.

// The static (musl) build brings its own allocator: musl's serialises the threads that hash
// and walk in parallel (see Cargo.toml).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    repro_cli::main()
}
