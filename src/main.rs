//! The `rollcall` binary: a thin shell over `rollcall-cli`.
#![forbid(unsafe_code)]

/// mimalloc rather than the system allocator: see `mimalloc` in the workspace manifest.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rollcall_cli::main()
}
