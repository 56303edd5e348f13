# The one list of what a developer runs. Get `just` with `cargo install just` (or apt-get install just).

# Run the whole test suite (the README's test command).
test:
    cargo test --workspace

# fmt check + clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Import circles between the source files of each crate (exit 1 if any).
circles:
    python3 scripts/import-circles.py

# Unused dependencies (installs cargo-machete when missing).
machete:
    bash scripts/machete.sh

# Lines per crate, the largest files and the longest functions (exit 1 if a function of engine
# or cli is over 80 lines).
shape:
    python3 scripts/code-shape.py --max-fn 80 engine cli

# Install/start the interop Postfix on loopback and run the interop tests against it.
interop:
    bash tests/interop/postfix.sh up
    cargo test --test interop_postfix -- --nocapture

# Criterion benches.
bench:
    cargo bench --workspace

# What CI runs.
ci:
    bash .ci/run

# The main job: the embedded engine against the bundled simulated fleet.
demo:
    cargo run --release -- demo
