#!/usr/bin/env bash
# Unused dependencies: runs cargo-machete over the workspace (every Cargo.toml under the
# repository root), installing it first when it is missing.
#
#   scripts/machete.sh            # exit 0: nothing unused; 1: something is
#
# cargo-machete reads the sources for each dependency's crate name, so it can be wrong both
# ways: a dependency used only through a macro or a re-export looks unused. Such false
# positives are listed in the crate's Cargo.toml under
# `[package.metadata.cargo-machete] ignored = [...]`, each with a comment saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-machete >/dev/null 2>&1; then
    cargo install cargo-machete --locked
fi
exec cargo machete "$@"
