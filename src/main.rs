//! The `rollcall` binary: a thin shell over `rollcall-cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    rollcall_cli::main()
}
