//! The deployment files under deploy/ agree with the repository and with the binary, as far as
//! that can be checked without a container engine:
//! - deploy/Dockerfile copies only paths that exist and that .dockerignore lets into the build
//!   context, builds the root package's binary and runs it, unprivileged, from a final stage
//!   that is not the Rust toolchain image;
//! - deploy/docker-compose.yml mounts only files that exist, and every `rollcall` subcommand,
//!   flag and ROLLCALL_* variable it uses is one the built binary accepts (`--help`); the
//!   workers can be scaled (no fixed container name, host port, hostname or shared network);
//!   Redis runs with its append-only file in a named volume; the rollcall config it writes
//!   inline is accepted by the binary;
//! - deploy/prometheus/prometheus.yml scrapes the ports compose serves metrics on, and its
//!   rule file exists next to it;
//! - deploy/prometheus/alerts.yml carries a runbook link per alert;
//! - deploy/grafana/rollcall.json gives every panel target an expression, uses the provisioned
//!   datasource and no template variable beyond Grafana's built-in interval/range ones;
//! - the `rollcall` commands shown in deploy/README.md, the chart's README and NOTES.txt and
//!   docs/operations.md use only flags their subcommand has.
//!
//! YAML is read line by line (the files are written in plain block style, which is all these
//! parsers accept; `tests/ops/yamllint.sh` keeps them lint-clean); the dashboard is parsed with
//! serde_json. The Helm chart has its own checks (tests/helm_chart.rs).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root: the Dockerfile's build context.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// deploy/: the directory compose resolves relative paths against.
fn deploy_dir() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Removes a `#` comment (one at the start or after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// Removes one pair of surrounding quotes.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

// ---------------------------------------------------------------------------------------------
// Cargo.toml

/// The root package's name and its `[[bin]]` names, read from the root Cargo.toml.
fn root_package() -> (String, Vec<String>) {
    let text = read(&root().join("Cargo.toml"));
    let mut section = String::new();
    let mut package = None;
    let mut bins = Vec::new();
    for line in text.lines().map(strip_comment).map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "name" {
            continue;
        }
        let value = unquote(value).to_string();
        match section.as_str() {
            "[package]" => package = Some(value),
            "[[bin]]" => bins.push(value),
            _ => {}
        }
    }
    (package.expect("root Cargo.toml has [package] name"), bins)
}

/// The binary the image must ship: the root package's single `[[bin]]`, else its package name.
fn binary_name() -> String {
    let (package, bins) = root_package();
    match bins.as_slice() {
        [] => package,
        [one] => one.clone(),
        many => panic!("root package has several [[bin]] targets: {many:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One Dockerfile instruction: keyword (upper-case) and its argument text, continuations joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if !current.is_empty() && trimmed.starts_with('#') {
            continue; // a comment line inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
                current.clear();
            }
        }
    }
    assert!(
        current.is_empty(),
        "Dockerfile ends inside a continued line"
    );
    out
}

/// A COPY instruction: its `--from` stage if any, its sources and its destination.
#[derive(Debug)]
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

fn parse_copy(args: &str) -> Copy {
    let mut from = None;
    let mut paths = Vec::new();
    for word in args.split_whitespace() {
        match word.strip_prefix("--") {
            Some(flag) => {
                if let Some(stage) = flag.strip_prefix("from=") {
                    from = Some(stage.to_string());
                }
            }
            None => paths.push(word.to_string()),
        }
    }
    assert!(
        !args.trim_start().starts_with('['),
        "use the shell form of COPY: {args}"
    );
    let dest = paths.pop().expect("COPY has a destination");
    assert!(!paths.is_empty(), "COPY {args} has no source");
    Copy {
        from,
        sources: paths,
        dest,
    }
}

/// The stages of the Dockerfile: each FROM's image and the instructions after it.
fn stages(instructions: &[Instruction]) -> Vec<(String, Vec<&Instruction>)> {
    let mut out: Vec<(String, Vec<&Instruction>)> = Vec::new();
    for ins in instructions {
        if ins.keyword == "FROM" {
            let image = ins.args.split_whitespace().next().unwrap_or_default();
            out.push((image.to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(ins);
        }
    }
    out
}

/// The patterns of .dockerignore, in order (negations keep their `!`).
fn dockerignore_patterns() -> Vec<String> {
    read(&root().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

/// Whether .dockerignore lets `path` (relative to the context) into the build context. Only
/// the subset of the syntax the file uses: `*` alone, exact paths, `dir/*/name`; the last
/// matching pattern decides (as Docker does).
fn context_includes(patterns: &[String], path: &str) -> bool {
    let path = path.trim_start_matches("./").trim_end_matches('/');
    let matches = |pattern: &str| -> bool {
        if pattern == "*" {
            return true;
        }
        let pat: Vec<&str> = pattern.split('/').collect();
        let parts: Vec<&str> = path.split('/').collect();
        // A pattern matches a path or any of its parents.
        parts.len() >= pat.len()
            && pat
                .iter()
                .zip(&parts)
                .all(|(p, part)| *p == "*" || p == part)
    };
    let mut included = true;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        if matches(pattern) {
            included = negated;
        }
    }
    included
}

#[test]
fn dockerfile_copies_existing_paths_and_ships_the_binary() {
    let text = read(&deploy_dir().join("Dockerfile"));
    let instructions = dockerfile_instructions(&text);
    let (package, _) = root_package();
    let binary = binary_name();
    let ignore = dockerignore_patterns();

    let stages = stages(&instructions);
    assert!(stages.len() >= 2, "the Dockerfile is multi-stage");
    let (runtime_image, runtime) = stages.last().expect("a final stage");
    assert!(
        !runtime_image.starts_with("rust:") && !runtime_image.contains("rust:"),
        "the final stage must not be the Rust toolchain image: {runtime_image}"
    );
    for ins in runtime.iter().filter(|i| i.keyword == "RUN") {
        for tool in [
            "cargo",
            "rustup",
            "rustc",
            "gcc",
            "clang",
            "build-essential",
            "make",
        ] {
            assert!(
                !mentions(&ins.args, tool),
                "the final stage installs or runs the build tool {tool}: {}",
                ins.args
            );
        }
    }

    // Build-context copies: every source exists under the root and passes .dockerignore.
    let copies: Vec<Copy> = instructions
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
        .map(|i| {
            assert_eq!(i.keyword, "COPY", "use COPY, not ADD");
            parse_copy(&i.args)
        })
        .collect();
    let from_context: Vec<&Copy> = copies.iter().filter(|c| c.from.is_none()).collect();
    assert!(
        !from_context.is_empty(),
        "the build copies sources from the context"
    );
    for copy in &from_context {
        for source in &copy.sources {
            assert!(
                !source.contains(['*', '?', '$']),
                "COPY source {source} must be a plain path"
            );
            assert!(
                root().join(source).exists(),
                "COPY source {source} does not exist in the build context {}",
                root().display()
            );
            assert!(
                context_includes(&ignore, source),
                "COPY source {source} is excluded by .dockerignore"
            );
        }
    }
    let copied: BTreeSet<&str> = from_context
        .iter()
        .flat_map(|c| c.sources.iter())
        .map(|s| s.trim_end_matches('/'))
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src", "crates"] {
        assert!(copied.contains(needed), "the build stage copies {needed}");
    }

    // The build command builds the root package in release mode with the lock file.
    let build = instructions
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("a RUN cargo build");
    for word in ["--release", "--locked", &format!("-p {package}")] {
        assert!(
            build.args.contains(word),
            "cargo build lacks `{word}`: {}",
            build.args
        );
    }
    let built = format!("target/release/{binary}");
    assert!(
        build.args.contains(&format!("{built} ")) || build.args.ends_with(&built),
        "the build stage takes {built} out of the target directory: {}",
        build.args
    );

    // The final stage copies the binary from a build stage and runs it unprivileged.
    let runtime_copies: Vec<Copy> = runtime
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| parse_copy(&i.args))
        .collect();
    let binary_copy = runtime_copies
        .iter()
        .find(|c| c.from.is_some() && c.sources.iter().any(|s| s.ends_with(&format!("/{binary}"))))
        .unwrap_or_else(|| panic!("the final stage copies {binary} from the build stage"));
    assert!(
        binary_copy.dest.ends_with(&format!("/{binary}")),
        "the binary is installed under its own name: {}",
        binary_copy.dest
    );

    let entrypoint = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("the final stage has an ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(&entrypoint.args)
        .unwrap_or_else(|e| panic!("ENTRYPOINT is a JSON array ({e}): {}", entrypoint.args));
    assert_eq!(
        argv.first().map(String::as_str),
        Some(binary_copy.dest.as_str()),
        "ENTRYPOINT runs the copied binary"
    );
    assert_eq!(
        Path::new(&argv[0]).file_name().and_then(|n| n.to_str()),
        Some(binary.as_str())
    );

    let user = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("the final stage sets USER");
    let name = user.args.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&name),
        "the final stage runs as a non-root user, not `{}`",
        user.args
    );
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// What the compose parser extracts from one service.
#[derive(Debug, Default)]
struct Service {
    /// Runs the rollcall image (merges the `x-rollcall` anchor or names a rollcall image).
    rollcall_image: bool,
    entrypoint: Vec<String>,
    command: Vec<String>,
    /// KEY -> VALUE of `environment:` (mapping form).
    environment: BTreeMap<String, String>,
    /// Sources of `volumes:` entries.
    volume_sources: Vec<String>,
    /// The service's own keys (`ports`, `container_name`, ...), not those merged in.
    keys: BTreeSet<String>,
}

/// The parsed compose file: services, and paths (relative to deploy/) it names as files.
#[derive(Debug, Default)]
struct Compose {
    services: BTreeMap<String, Service>,
    /// `file:` of configs/secrets, `context:` and `dockerfile:` of builds, bind mounts.
    paths: Vec<String>,
}

/// Parses a flow sequence `["a", "b"]` or a plain scalar into words.
fn flow_or_scalar(value: &str) -> Vec<String> {
    let value = value.trim();
    match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(inner) => inner
            .split(',')
            .map(|s| unquote(s).to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![unquote(value).to_string()],
    }
}

/// Reads the block (deeper-indented lines) following `lines[start]`: a list of scalars,
/// where an item `>-` / `|` is a block scalar folded into one string.
fn block_list(lines: &[&str], start: usize, parent_indent: usize) -> Vec<String> {
    let mut items = Vec::new();
    let mut i = start + 1;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        if indent(line) <= parent_indent {
            break;
        }
        let item_indent = indent(line);
        let Some(item) = line.trim().strip_prefix("- ") else {
            i += 1;
            continue;
        };
        if [">-", ">", "|", "|-"].contains(&item.trim()) {
            let mut folded = Vec::new();
            i += 1;
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > item_indent)
            {
                folded.push(lines[i].trim());
                i += 1;
            }
            items.push(folded.join(" ").trim().to_string());
            continue;
        }
        items.push(unquote(item).to_string());
        i += 1;
    }
    items
}

fn parse_compose(text: &str) -> Compose {
    let lines: Vec<&str> = text.lines().map(strip_comment).collect();
    let mut compose = Compose::default();
    let mut top = "";
    let mut service: Option<String> = None;
    let mut key4 = "";
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let depth = indent(line);
        let trimmed = line.trim();
        let (key, value) = match trimmed.split_once(':') {
            Some((k, v)) if !k.starts_with("- ") && !k.contains(' ') => (k, v.trim()),
            _ => ("", ""),
        };
        match depth {
            0 => {
                top = key;
                service = None;
            }
            2 if top == "services" && !key.is_empty() => {
                service = Some(key.to_string());
                compose.services.entry(key.to_string()).or_default();
            }
            _ => {}
        }
        if matches!(key, "file" | "context") && !value.is_empty() {
            compose.paths.push(unquote(value).to_string());
        }
        if key == "dockerfile" {
            let context = lines[..n]
                .iter()
                .rev()
                .find_map(|l| l.trim().strip_prefix("context:"))
                .map(|c| unquote(c).to_string())
                .unwrap_or_else(|| ".".into());
            compose.paths.push(format!("{context}/{}", unquote(value)));
        }
        let Some(name) = &service else { continue };
        let svc = compose
            .services
            .get_mut(name)
            .expect("service entered above");
        if depth == 4 {
            key4 = key;
            svc.keys.insert(key.to_string());
            match key {
                "<<" if value == "*rollcall" => svc.rollcall_image = true,
                "image" if value.contains("rollcall") => svc.rollcall_image = true,
                "entrypoint" => svc.entrypoint = flow_or_scalar(value),
                "command" if value.is_empty() => svc.command = block_list(&lines, n, depth),
                "command" => svc.command = flow_or_scalar(value),
                _ => {}
            }
        } else if depth == 6 && key4 == "environment" && !key.is_empty() {
            svc.environment
                .insert(key.to_string(), unquote(value).to_string());
        } else if depth == 6
            && key4 == "volumes"
            && let Some(item) = trimmed.strip_prefix("- ")
        {
            let source = unquote(item).split(':').next().unwrap_or_default();
            svc.volume_sources.push(source.to_string());
        }
    }
    compose
}

/// One `rollcall SUBCOMMAND ARGS...` a service runs.
#[derive(Debug)]
struct Invocation {
    service: String,
    args: Vec<String>,
}

/// The rollcall invocations of a service: its command under the image's rollcall entrypoint,
/// or, under a `sh -c` entrypoint, every shell command whose program is the rollcall binary.
fn invocations(name: &str, svc: &Service, binary: &str) -> Vec<Invocation> {
    if !svc.rollcall_image {
        return Vec::new();
    }
    let is_shell = matches!(
        svc.entrypoint.first().map(String::as_str),
        Some("/bin/sh" | "sh" | "/bin/bash" | "bash")
    );
    if !is_shell {
        assert!(
            svc.entrypoint.is_empty(),
            "service {name}: entrypoint {:?} is neither the image's nor a shell",
            svc.entrypoint
        );
        return vec![Invocation {
            service: name.to_string(),
            args: svc.command.clone(),
        }];
    }
    assert_eq!(svc.command.len(), 1, "service {name}: one shell script");
    svc.command[0]
        .split(['&', ';', '|', '\n'])
        .filter_map(|segment| {
            let mut words = segment.split_whitespace().peekable();
            // `exec rollcall ...` replaces the shell with rollcall (signals reach it).
            words.next_if_eq(&"exec");
            let program = words.next()?;
            (Path::new(program).file_name()?.to_str()? == binary).then(|| Invocation {
                service: name.to_string(),
                args: words
                    .filter(|w| !w.starts_with('>') && !w.starts_with('<'))
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// `rollcall SUBCOMMAND --help` of the built binary.
fn help(subcommand: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args([subcommand, "--help"])
        .output()
        .expect("run the rollcall binary");
    assert!(
        out.status.success(),
        "`rollcall {subcommand} --help` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Whether `word` (a flag or a variable name) appears in `text` as a whole word.
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let next = text[i + word.len()..].chars().next();
        let prev = text[..i].chars().next_back();
        let boundary =
            |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'));
        boundary(next) && boundary(prev)
    })
}

fn compose() -> Compose {
    parse_compose(&read(&deploy_dir().join("docker-compose.yml")))
}

#[test]
fn compose_mounts_only_existing_files() {
    let compose = compose();
    let mut paths = compose.paths.clone();
    for svc in compose.services.values() {
        paths.extend(
            svc.volume_sources
                .iter()
                .filter(|s| s.starts_with("./") || s.starts_with("../") || s.starts_with('/'))
                .cloned(),
        );
    }
    for needed in [
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/rollcall.json",
        "Dockerfile",
    ] {
        assert!(
            paths.iter().any(|p| p.ends_with(needed)),
            "compose uses deploy/{needed} (found {paths:?})"
        );
    }
    for path in &paths {
        let full = deploy_dir().join(path);
        assert!(
            full.exists(),
            "docker-compose.yml names {path}, which does not exist ({})",
            full.display()
        );
    }
    for dir in [
        "grafana/provisioning/datasources",
        "grafana/provisioning/dashboards",
    ] {
        for entry in std::fs::read_dir(deploy_dir().join(dir)).expect("provisioning directory") {
            let file = entry.expect("directory entry").path();
            let rel = file.strip_prefix(deploy_dir()).expect("under deploy/");
            assert!(
                paths.iter().any(|p| Path::new(p).ends_with(rel)),
                "provisioning file {} is not mounted by compose",
                rel.display()
            );
        }
    }
}

#[test]
fn compose_uses_only_subcommands_flags_and_variables_rollcall_has() {
    let compose = compose();
    let binary = binary_name();
    let mut subcommands = BTreeSet::new();
    for (name, svc) in &compose.services {
        let calls = invocations(name, svc, &binary);
        if svc.rollcall_image {
            assert!(
                !calls.is_empty(),
                "service {name} runs no rollcall subcommand"
            );
        }
        let mut service_help = String::new();
        for call in calls {
            let subcommand = call.args.first().expect("a subcommand").clone();
            let text = help(&subcommand);
            for flag in call.args.iter().filter(|a| a.starts_with("--")) {
                let flag = flag.split('=').next().unwrap_or(flag);
                assert!(
                    mentions(&text, flag),
                    "service {}: `rollcall {subcommand}` has no flag {flag}",
                    call.service
                );
            }
            service_help.push_str(&text);
            subcommands.insert(subcommand);
        }
        for var in svc
            .environment
            .keys()
            .filter(|k| k.starts_with("ROLLCALL_"))
        {
            if var == "ROLLCALL_LOG" {
                continue; // the log filter, read by every subcommand (crates/cli/src/lib.rs)
            }
            assert!(
                mentions(&service_help, var),
                "service {name}: {var} is not a variable its rollcall subcommand reads"
            );
        }
    }
    for needed in ["sim", "coordinator", "worker"] {
        assert!(
            subcommands.contains(needed),
            "compose runs `rollcall {needed}` (found {subcommands:?})"
        );
    }
}

#[test]
fn compose_workers_scale_and_redis_persists() {
    let compose = compose();
    let binary = binary_name();
    for (name, svc) in &compose.services {
        assert!(
            !svc.keys.contains("container_name"),
            "service {name} has a fixed container_name: it could not run twice"
        );
    }
    let workers: Vec<(&String, &Service)> = compose
        .services
        .iter()
        .filter(|(name, svc)| {
            invocations(name, svc, &binary)
                .iter()
                .any(|c| c.args.first().map(String::as_str) == Some("worker"))
        })
        .collect();
    assert!(!workers.is_empty(), "compose runs workers");
    for (name, svc) in workers {
        for fixed in ["ports", "network_mode", "hostname"] {
            assert!(
                !svc.keys.contains(fixed),
                "worker service {name} sets `{fixed}`: replicas would collide (`--scale worker=N`)"
            );
        }
    }

    let redis = compose
        .services
        .values()
        .find(|svc| svc.command.first().is_some_and(|c| c == "redis-server"))
        .expect("a service runs redis-server");
    let appendonly = redis
        .command
        .iter()
        .position(|a| a == "--appendonly")
        .and_then(|at| redis.command.get(at + 1));
    assert_eq!(
        appendonly.map(String::as_str),
        Some("yes"),
        "Redis holds campaign state: it runs with the append-only file ({:?})",
        redis.command
    );
    assert!(
        redis
            .volume_sources
            .iter()
            .any(|v| !v.is_empty() && !v.starts_with(['.', '/'])),
        "Redis keeps its data directory in a named volume"
    );
}

/// The `content:` of every top-level `configs:` entry of the compose file, by name.
fn inline_configs(text: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    let mut in_configs = false;
    let mut name = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let trimmed = strip_comment(line).trim();
        if trimmed.is_empty() {
            continue;
        }
        match indent(line) {
            0 => in_configs = trimmed == "configs:",
            2 if in_configs => name = trimmed.strip_suffix(':').map(str::to_string),
            4 if in_configs && ["content: |", "content: |-"].contains(&trimmed) => {
                let mut body = Vec::new();
                while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > 4) {
                    body.push(lines[i]);
                    i += 1;
                }
                let depth = body
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| indent(l))
                    .min()
                    .unwrap_or(0);
                let text: Vec<&str> = body.iter().map(|l| l.get(depth..).unwrap_or("")).collect();
                let key = name.clone().expect("content inside a named config");
                out.insert(key, text.join("\n").trim_end().to_string() + "\n");
            }
            _ => {}
        }
    }
    out
}

/// Every config compose writes inline is a rollcall config file the binary accepts, and the
/// same check refuses an unknown key (exit 64), so the file is really read.
#[test]
fn compose_inline_configs_are_accepted_by_the_binary() {
    let configs = inline_configs(&read(&deploy_dir().join("docker-compose.yml")));
    assert!(
        !configs.is_empty(),
        "compose writes the sandbox's rollcall config inline"
    );
    let dir = std::env::temp_dir().join(format!("rollcall-deploy-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("empty.txt");
    std::fs::write(&input, "").expect("write input");
    let verify = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .env("XDG_CACHE_HOME", &dir)
            .arg("verify")
            .arg("--config")
            .arg(config)
            .arg(&input)
            .arg("-o")
            .arg(dir.join("out.csv"))
            .output()
            .expect("run rollcall verify")
    };
    for (name, toml) in &configs {
        let good = dir.join(format!("{name}.toml"));
        std::fs::write(&good, toml).expect("write config");
        let accepted = verify(&good);
        let bad = dir.join(format!("{name}.bad.toml"));
        std::fs::write(&bad, format!("{toml}\nno_such_key = 1\n")).expect("write config");
        let refused = verify(&bad);
        assert!(
            accepted.status.success(),
            "compose config {name} is refused: {}",
            String::from_utf8_lossy(&accepted.stderr)
        );
        assert_eq!(
            refused.status.code(),
            Some(64),
            "an unknown key in {name} was not refused"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The port of the `--metrics-listen` flag of the service running `subcommand`.
fn metrics_port(compose: &Compose, subcommand: &str) -> u16 {
    let binary = binary_name();
    let call = compose
        .services
        .iter()
        .flat_map(|(name, svc)| invocations(name, svc, &binary))
        .find(|c| c.args.first().map(String::as_str) == Some(subcommand))
        .unwrap_or_else(|| panic!("compose runs rollcall {subcommand}"));
    let at = call
        .args
        .iter()
        .position(|a| a == "--metrics-listen")
        .unwrap_or_else(|| panic!("rollcall {subcommand} in compose has --metrics-listen"));
    let addr = call.args.get(at + 1).expect("--metrics-listen has a value");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("--metrics-listen {addr} has a port"))
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// Every `job_name` of prometheus.yml with the ports of its targets (static `host:port`
/// targets and DNS service discovery `port:`).
fn scrape_jobs(text: &str) -> BTreeMap<String, Vec<u16>> {
    let mut jobs: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut job = None;
    for line in text.lines().map(strip_comment).map(str::trim) {
        let line = line.trim_start_matches("- ");
        if let Some(name) = line.strip_prefix("job_name:") {
            job = Some(unquote(name).to_string());
            jobs.entry(unquote(name).to_string()).or_default();
        } else if let (Some(job), Some(targets)) = (&job, line.strip_prefix("targets:")) {
            for target in flow_or_scalar(targets) {
                let port = target.rsplit(':').next().and_then(|p| p.parse().ok());
                jobs.get_mut(job)
                    .expect("job entered above")
                    .push(port.unwrap_or_else(|| panic!("target {target} has a port")));
            }
        } else if let (Some(job), Some(port)) = (&job, line.strip_prefix("port:")) {
            let port = port.trim().parse().expect("a numeric port");
            jobs.get_mut(job).expect("job entered above").push(port);
        }
    }
    jobs
}

#[test]
fn prometheus_scrapes_the_ports_compose_serves_metrics_on() {
    let text = read(&deploy_dir().join("prometheus/prometheus.yml"));
    let jobs = scrape_jobs(&text);
    let compose = compose();
    for (job, subcommand) in [
        ("rollcall-coordinator", "coordinator"),
        ("rollcall-worker", "worker"),
    ] {
        let ports = jobs
            .get(job)
            .unwrap_or_else(|| panic!("prometheus.yml has job {job} (found {jobs:?})"));
        let port = metrics_port(&compose, subcommand);
        assert!(
            !ports.is_empty() && ports.iter().all(|p| *p == port),
            "job {job} scrapes ports {ports:?}, compose serves {subcommand} metrics on {port}"
        );
    }
    let rule_files: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("rule_files:"))
        .skip(1)
        .map_while(|l| l.strip_prefix("- "))
        .collect();
    assert!(
        !rule_files.is_empty(),
        "prometheus.yml names its rule files"
    );
    for file in rule_files {
        assert!(
            deploy_dir().join("prometheus").join(unquote(file)).exists(),
            "rule file {file} is next to prometheus.yml"
        );
    }
}

#[test]
fn every_alert_links_its_runbook_section() {
    let text = read(&deploy_dir().join("prometheus/alerts.yml"));
    let mut alert: Option<String> = None;
    let mut checked = BTreeMap::new();
    for line in text.lines().map(strip_comment).map(str::trim) {
        let line = line.trim_start_matches("- ");
        if let Some(name) = line.strip_prefix("alert:") {
            alert = Some(unquote(name).to_string());
        } else if let Some(url) = line.strip_prefix("runbook_url:") {
            let name = alert.clone().expect("runbook_url inside an alert");
            assert_eq!(
                unquote(url),
                format!("docs/operations.md#{}", name.to_lowercase()),
                "alert {name}"
            );
            checked.insert(name, true);
        } else if line.starts_with("for:") || line.starts_with("severity:") {
            assert!(alert.is_some(), "`{line}` outside an alert");
        }
    }
    let expected = [
        "RollcallBadSequence",
        "RollcallCircuitsOpenLong",
        "RollcallGreylistBacklogGrowing",
        "RollcallQueueNotDraining",
        "RollcallWorkerDown",
        "RollcallCampaignStalled",
        "RollcallCoordinatorDown",
    ];
    let found: BTreeSet<&str> = checked.keys().map(String::as_str).collect();
    assert_eq!(
        found,
        expected.into_iter().collect(),
        "alerts with a runbook_url"
    );
}

// ---------------------------------------------------------------------------------------------
// Grafana

/// The uid of the provisioned Prometheus datasource.
fn provisioned_datasource_uid() -> String {
    let text = read(&deploy_dir().join("grafana/provisioning/datasources/prometheus.yml"));
    let uids: Vec<String> = text
        .lines()
        .map(strip_comment)
        .filter_map(|l| {
            l.trim()
                .strip_prefix("uid:")
                .map(|u| unquote(u).to_string())
        })
        .collect();
    assert_eq!(uids.len(), 1, "one provisioned datasource with a uid");
    uids[0].clone()
}

/// Every panel of the dashboard, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn dashboard_targets_have_expressions_on_the_provisioned_datasource() {
    let dashboard: Value = serde_json::from_str(&read(&deploy_dir().join("grafana/rollcall.json")))
        .expect("rollcall.json is JSON");
    let uid = provisioned_datasource_uid();
    let allowed = ["$__rate_interval", "$__interval", "$__range"];
    assert_eq!(
        dashboard["templating"]["list"].as_array().map(Vec::len),
        Some(0),
        "no dashboard variables"
    );
    let mut exprs = 0;
    for panel in all_panels(&dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?");
        assert_eq!(panel["datasource"]["uid"], uid.as_str(), "panel {title}");
        let targets = panel["targets"].as_array().expect("a panel has targets");
        assert!(!targets.is_empty(), "panel {title} has targets");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], uid.as_str(), "panel {title}");
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {title}: a target without expr"
            );
            let mut rest = expr;
            while let Some(at) = rest.find('$') {
                let var = &rest[at..];
                assert!(
                    allowed.iter().any(|a| var.starts_with(a)),
                    "panel {title}: variable in {expr} is none of {allowed:?}"
                );
                rest = &rest[at + 1..];
            }
            exprs += 1;
        }
    }
    assert!(exprs > 0, "the dashboard has expressions");
}

// ---------------------------------------------------------------------------------------------
// Commands in the operator documentation

/// The code of a Markdown file: the lines of fenced blocks, with shell continuation lines
/// (`\` at the end) joined, and the inline code spans of each paragraph (a span may wrap).
fn markdown_code(text: &str) -> Vec<String> {
    fn spans(paragraph: &mut String, out: &mut Vec<String>) {
        out.extend(paragraph.split('`').skip(1).step_by(2).map(str::to_string));
        paragraph.clear();
    }
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending = String::new();
    let mut paragraph = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            spans(&mut paragraph, &mut out);
            fenced = !fenced;
            continue;
        }
        if !fenced {
            if line.trim().is_empty() {
                spans(&mut paragraph, &mut out);
            }
            paragraph.push_str(line);
            paragraph.push(' ');
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    spans(&mut paragraph, &mut out);
    out
}

/// The subcommands of the binary, from `rollcall --help`.
fn subcommands() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--help")
        .output()
        .expect("run the rollcall binary");
    let text = String::from_utf8(out.stdout).expect("help is UTF-8");
    let commands: BTreeSet<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(
        commands.contains("worker") && commands.contains("submit"),
        "`rollcall --help` did not parse: {commands:?}"
    );
    commands
}

/// Every `rollcall SUBCOMMAND ...` in `lines`: the subcommand and the flags after it, up to
/// the end of that shell command. A word counts as the program when its file name is the
/// binary's name and the next word is a subcommand (so `kubectl -n rollcall logs` is not one).
fn documented_calls(lines: &[String], binary: &str, known: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut calls = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (at, word) in words.iter().enumerate() {
            let is_program = Path::new(word).file_name().and_then(|n| n.to_str()) == Some(binary);
            let Some(sub) = words
                .get(at + 1)
                .filter(|w| is_program && known.contains(**w))
            else {
                continue;
            };
            let mut call = vec![sub.to_string()];
            for arg in &words[at + 2..] {
                if ["|", "||", "&&", ";", "&", ">", "2>"].contains(arg) || arg.starts_with('#') {
                    break;
                }
                call.push(arg.to_string());
            }
            calls.push(call);
        }
    }
    calls
}

#[test]
fn documented_commands_use_only_flags_rollcall_has() {
    let binary = binary_name();
    let known = subcommands();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = BTreeMap::new();
    for file in [
        "deploy/README.md",
        "helm/rollcall/README.md",
        "docs/operations.md",
        "helm/rollcall/templates/NOTES.txt",
    ] {
        let text = read(&root().join(file));
        let lines = if file.ends_with(".md") {
            markdown_code(&text)
        } else {
            text.lines().map(str::to_string).collect()
        };
        let calls = documented_calls(&lines, &binary, &known);
        for call in &calls {
            let sub = &call[0];
            let text = helps.entry(sub.clone()).or_insert_with(|| help(sub));
            for arg in &call[1..] {
                let flag = arg.split('=').next().unwrap_or(arg);
                let is_flag = flag.starts_with("--")
                    || (flag.len() == 2 && flag.starts_with('-') && flag != "--");
                if is_flag {
                    assert!(
                        mentions(text, flag),
                        "{file}: `rollcall {sub}` has no flag {flag} (in `rollcall {}`)",
                        call.join(" ")
                    );
                }
            }
        }
        checked.insert(file, calls.len());
    }
    for (file, n) in &checked {
        assert!(*n > 0, "{file}: no rollcall command found ({checked:?})");
    }
}
