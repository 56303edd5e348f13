//! The house keeps its shape: no two source files of a crate import each other in a loop, and
//! no function of the engine or the CLI runs past 80 lines. The checks are the scripts a
//! developer runs by hand (`just circles`, `just shape`), run here so CI holds them.

use std::path::Path;
use std::process::Command;

fn run_script(args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args(args)
        .current_dir(root)
        .output()
        .expect("python3 runs (the machine's CPython 3.11)");
    assert!(
        out.status.success(),
        "python3 {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_import_circles_between_files() {
    run_script(&["scripts/import-circles.py"]);
}

#[test]
fn no_long_functions_in_engine_and_cli() {
    run_script(&["scripts/code-shape.py", "--max-fn", "80", "engine", "cli"]);
}
