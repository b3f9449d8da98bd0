//! The `repro` binary: parse arguments, call the libraries, render. See `lib.rs`.

fn main() -> std::process::ExitCode {
    repro_cli::main()
}
