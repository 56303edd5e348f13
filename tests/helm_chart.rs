//! Static checks of the Helm chart (`helm/rollcall`) that need neither Helm nor a cluster.
//!
//! Owns: that every `.Values` path a template reads exists in `values.yaml` and every leaf of
//! `values.yaml` is read by some template (the rule, at `value_paths`: a path read whole, as in
//! `toYaml .Values.x` or `with .Values.x`, covers its subtree; `$v := .Values.x` aliases and
//! reads relative to the dot inside `with` are followed; `.Values` where the dot is not the
//! root is an error); that templates call only helpers
//! `_helpers.tpl` defines and that it defines none unused; that every flag and `ROLLCALL_*`
//! variable the Deployments pass exists in the real binary's `--help`, and every required one
//! is given; that named ports resolve; that metric names are ones the binary exports; that the
//! chart's default config file is accepted by the binary; that `docs/operations.md` has a
//! runbook heading per alert. Does not own: YAML style (`tests/ops/yamllint.sh`) nor how
//! Kubernetes renders the chart (`helm lint` / `helm template`, see the chart's README).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use yaml_rust2::{Yaml, YamlLoader};

/// A dotted path under `.Values`, one segment per key.
type ValuesPath = Vec<String>;

/// The alerts whose runbook sections `docs/operations.md` must have.
const ALERTS: [&str; 7] = [
    "RollcallBadSequence",
    "RollcallCircuitsOpenLong",
    "RollcallGreylistBacklogGrowing",
    "RollcallQueueNotDraining",
    "RollcallWorkerDown",
    "RollcallCampaignStalled",
    "RollcallCoordinatorDown",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("helm/rollcall")
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn load_yaml(path: &Path) -> Result<Yaml> {
    let text = read(path)?;
    let mut docs =
        YamlLoader::load_from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        docs.len() == 1,
        "{}: expected one YAML document",
        path.display()
    );
    Ok(docs.remove(0))
}

/// Every file under `templates/`, by file name.
fn templates() -> Result<BTreeMap<String, String>> {
    let dir = chart().join("templates");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("template file name")?
            .to_string();
        files.insert(name, read(&path)?);
    }
    ensure!(
        files.contains_key("_helpers.tpl"),
        "templates/_helpers.tpl is missing"
    );
    Ok(files)
}

/// The text inside each `{{ ... }}` action of a template, in order.
fn actions(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(&after[..end]);
        rest = &after[end + 2..];
    }
    out
}

/// Reads `seg(.seg)*` (identifier characters) at the start of `s`.
fn read_path(s: &str) -> ValuesPath {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(s.len());
    s[..end]
        .split('.')
        .take_while(|seg| !seg.is_empty())
        .map(str::to_string)
        .collect()
}

/// What `.` is at a point of a template.
#[derive(Debug, Clone, PartialEq)]
enum Dot {
    /// The chart's root context: the top level of a template file, and the body of a `define`
    /// (every helper of this chart is called with the root, or with a dict that is not read
    /// through `.Values`).
    Root,
    /// A subtree of the values: inside `with .Values.P` (or `with $alias.P`).
    Values(ValuesPath),
    /// Something else: an element inside `range`, or `with` of a pipeline that is not a
    /// values path.
    Other,
}

/// One open block (`if`, `with`, `range`, `define`...): the dot outside it and inside it.
struct Frame {
    outside: Dot,
    inside: Dot,
}

/// The action's text without its trim markers and whitespace, and without string literals
/// (whose dots are not field accesses).
fn action_code(action: &str) -> String {
    let body = action
        .trim()
        .trim_start_matches('-')
        .trim_end_matches('-')
        .trim();
    let mut out = String::with_capacity(body.len());
    let mut quote = None;
    for c in body.chars() {
        match (quote, c) {
            (None, '"' | '`') => {
                quote = Some(c);
                out.push_str("\"\"");
            }
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, _) => out.push(c),
        }
    }
    out
}

/// A values path that `expr` denotes entirely (nothing after it): `.Values.a.b`,
/// `$.Values.a.b`, `$alias.c`, or, when the dot is a values subtree, `.c`.
fn values_path_of(
    expr: &str,
    dot: &Dot,
    aliases: &HashMap<String, ValuesPath>,
) -> Option<ValuesPath> {
    let expr = expr.trim();
    let whole = |text: &str, base: ValuesPath| -> Option<ValuesPath> {
        let tail = read_path(text);
        let consumed: usize = tail.iter().map(String::len).sum::<usize>() + tail.len().max(1) - 1;
        (consumed == text.len()).then(|| base.into_iter().chain(tail).collect())
    };
    if let Some(text) = expr.strip_prefix("$.Values.").or_else(|| {
        (*dot == Dot::Root)
            .then(|| expr.strip_prefix(".Values."))
            .flatten()
    }) {
        return whole(text, Vec::new()).filter(|p| !p.is_empty());
    }
    if let Some(rest) = expr.strip_prefix('$') {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let base = aliases.get(&rest[..name_len])?.clone();
        return match &rest[name_len..] {
            "" => Some(base),
            tail => whole(tail.strip_prefix('.')?, base),
        };
    }
    match (dot, expr.strip_prefix('.')) {
        (Dot::Values(base), Some(text)) if !text.is_empty() => whole(text, base.clone()),
        _ => None,
    }
}

/// The `.Values` paths one template reads.
///
/// The rule: a path counts as read where an action names it, through `.Values.a.b` (at the
/// root) or `$.Values.a.b` (anywhere), through a variable (`$as := .Values.worker.autoscaling`
/// then `$as.keda.enabled`; variables of variables too), or relative to the dot inside
/// `with .Values.a` (`.b` there reads `a.b`). Naming a path reads its whole subtree, as
/// `toYaml .Values.a` and `with .Values.a }}{{ toYaml . }}` do: `with`/`range` over a values
/// path count as reading it. Inside `range`, the dot is a list element and is not followed.
/// Comments (`{{/* */}}`) and string literals are not reads.
///
/// Errors on `.Values` (or `.Release`, `.Chart`...) read from the dot where the dot is not
/// the root (inside `with`/`range`): Helm would look the name up in the values subtree or
/// the list element instead, which is a bug (use `$.Values`).
fn value_paths(template: &str) -> Result<BTreeSet<ValuesPath>> {
    let mut aliases: HashMap<String, ValuesPath> = HashMap::new();
    let mut used = BTreeSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut dot = Dot::Root;
    for action in actions(template) {
        let code = action_code(action);
        if code.starts_with("/*") {
            continue;
        }
        let first = code.split_whitespace().next().unwrap_or("");
        let pipeline = code[first.len()..].trim();
        // Block keywords: the pipeline is evaluated with the dot outside the block.
        let (eval_dot, next): (Dot, Option<Dot>) = match first {
            "if" => (dot.clone(), Some(dot.clone())),
            "with" => (
                dot.clone(),
                Some(
                    values_path_of(pipeline, &dot, &aliases)
                        .map(Dot::Values)
                        .unwrap_or(Dot::Other),
                ),
            ),
            "range" => (dot.clone(), Some(Dot::Other)),
            "define" | "block" => (Dot::Root, Some(Dot::Root)),
            "else" => {
                let frame = stack.last().context("`else` outside a block")?;
                let outside = frame.outside.clone();
                let inside = match pipeline.strip_prefix("with ") {
                    Some(p) => values_path_of(p, &outside, &aliases)
                        .map(Dot::Values)
                        .unwrap_or(Dot::Other),
                    None => outside.clone(),
                };
                dot = outside.clone();
                (outside, Some(inside))
            }
            "end" => {
                let frame = stack.pop().context("`end` without a block")?;
                dot = frame.outside;
                continue;
            }
            _ => (dot.clone(), None),
        };
        // Variable assignments of a values path: aliases, not reads by themselves.
        let assigned = code
            .split_once(":=")
            .filter(|(lhs, _)| lhs.trim().starts_with('$') && !lhs.trim().contains(' '));
        if let Some((lhs, rhs)) = assigned
            && let Some(path) = values_path_of(rhs, &eval_dot, &aliases)
        {
            aliases.insert(lhs.trim()[1..].to_string(), path);
            continue;
        }
        used.extend(reads(&code, &eval_dot, &aliases)?);
        match (first, next) {
            ("else", Some(inside)) => {
                stack.last_mut().context("`else` outside a block")?.inside = inside.clone();
                dot = inside;
            }
            (_, Some(inside)) => {
                stack.push(Frame {
                    outside: eval_dot,
                    inside: inside.clone(),
                });
                dot = inside;
            }
            (_, None) => {}
        }
    }
    ensure!(stack.is_empty(), "{} block(s) not closed", stack.len());
    Ok(used)
}

/// The values paths one action (string literals removed) reads, with `dot` as the dot.
fn reads(
    code: &str,
    dot: &Dot,
    aliases: &HashMap<String, ValuesPath>,
) -> Result<BTreeSet<ValuesPath>> {
    let mut used = BTreeSet::new();
    let bytes = code.as_bytes();
    for (at, _) in code.match_indices('.') {
        let prev = at.checked_sub(1).map(|i| bytes[i] as char);
        let path = read_path(&code[at + 1..]);
        if path.is_empty() {
            continue; // the dot itself, or `..`
        }
        match prev {
            // `$.Values.x`: the root, wherever we are.
            Some('$') => {
                if path[0] == "Values" && path.len() > 1 {
                    used.insert(path[1..].to_vec());
                }
            }
            // A field of something else (`$x.y`, `.a.b`'s `.b`, `(f).y`): not the dot.
            Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == ')' || c == '.' => {}
            // A field of the dot.
            _ => match dot {
                Dot::Root => {
                    if path[0] == "Values" && path.len() > 1 {
                        used.insert(path[1..].to_vec());
                    }
                }
                Dot::Values(base) => {
                    ensure!(
                        ![
                            "Values",
                            "Release",
                            "Chart",
                            "Capabilities",
                            "Template",
                            "Files"
                        ]
                        .contains(&path[0].as_str()),
                        "`.{}` inside `with` of .Values.{}: the dot is not the root there \
                         (use `$.{}`)",
                        dotted(&path),
                        dotted(base),
                        dotted(&path)
                    );
                    used.insert(base.iter().chain(&path).cloned().collect());
                }
                Dot::Other => ensure!(
                    !["Values", "Release", "Chart"].contains(&path[0].as_str()),
                    "`.{}` inside `range` or `with`: the dot is not the root there (use `$.{}`)",
                    dotted(&path),
                    dotted(&path)
                ),
            },
        }
    }
    // Variables that alias a values path: `$as.keda.enabled`, `$as`.
    for (at, _) in code.match_indices('$') {
        let rest = &code[at + 1..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let Some(base) = aliases.get(&rest[..name_len]) else {
            continue;
        };
        let mut path = base.clone();
        if let Some(tail) = rest[name_len..].strip_prefix('.') {
            path.extend(read_path(tail));
        }
        used.insert(path);
    }
    Ok(used)
}

/// The node at `path` in `values`, if every segment is a key of a mapping.
fn lookup<'a>(values: &'a Yaml, path: &[String]) -> Option<&'a Yaml> {
    path.iter().try_fold(values, |node, key| match node {
        Yaml::Hash(map) => map.get(&Yaml::String(key.clone())),
        _ => None,
    })
}

/// Paths of the leaves of `values`: scalars, lists and empty mappings.
fn leaves(node: &Yaml, prefix: &mut ValuesPath, out: &mut Vec<ValuesPath>) {
    match node {
        Yaml::Hash(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                prefix.push(key);
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn dotted(path: &[String]) -> String {
    path.join(".")
}

#[test]
fn every_value_read_is_defined_and_every_value_defined_is_read() -> Result<()> {
    let values = load_yaml(&chart().join("values.yaml"))?;
    let templates = templates()?;
    let mut used: BTreeMap<ValuesPath, String> = BTreeMap::new();
    for (name, text) in &templates {
        for path in value_paths(text).with_context(|| format!("templates/{name}"))? {
            used.entry(path).or_insert_with(|| name.clone());
        }
    }
    ensure!(
        used.len() > 20,
        "suspiciously few .Values paths found: {}",
        used.len()
    );

    let missing: Vec<String> = used
        .iter()
        .filter(|(path, _)| lookup(&values, path).is_none())
        .map(|(path, file)| format!(".Values.{} (in {file})", dotted(path)))
        .collect();

    let mut all_leaves = Vec::new();
    leaves(&values, &mut Vec::new(), &mut all_leaves);
    ensure!(
        all_leaves.len() > 20,
        "suspiciously few leaves in values.yaml"
    );
    let unused: Vec<String> = all_leaves
        .iter()
        .filter(|leaf| !used.keys().any(|path| leaf.starts_with(path)))
        .map(|leaf| dotted(leaf))
        .collect();

    ensure!(
        missing.is_empty() && unused.is_empty(),
        "read by a template but not in values.yaml: {missing:#?}\n\
         in values.yaml but read by no template: {unused:#?}"
    );
    Ok(())
}

/// Names after `keyword "` in `text` (`define "x"`, `include "x"`, `template "x"`).
fn quoted_after(text: &str, keyword: &str) -> BTreeSet<String> {
    let needle = format!("{keyword} \"");
    text.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &text[at + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

#[test]
fn templates_call_only_the_helpers_defined_and_every_helper_is_called() -> Result<()> {
    let templates = templates()?;
    let helpers = &templates["_helpers.tpl"];
    let defined = quoted_after(helpers, "define");
    ensure!(
        defined.len() > 5,
        "too few helpers found in _helpers.tpl: {defined:?}"
    );
    for (name, text) in &templates {
        if name != "_helpers.tpl" {
            let stray = quoted_after(text, "define");
            ensure!(
                stray.is_empty(),
                "{name} defines helpers {stray:?}: keep them in _helpers.tpl"
            );
        }
    }
    let mut called = BTreeSet::new();
    for text in templates.values() {
        called.extend(quoted_after(text, "include"));
        called.extend(quoted_after(text, "template"));
    }
    let undefined: Vec<_> = called.difference(&defined).collect();
    let uncalled: Vec<_> = defined.difference(&called).collect();
    ensure!(
        undefined.is_empty() && uncalled.is_empty(),
        "called but not defined: {undefined:?}; defined but never called: {uncalled:?}"
    );
    Ok(())
}

/// What one subcommand's `--help` offers.
#[derive(Debug, Default)]
struct Help {
    /// Every long flag, with its environment variable when it has one.
    flags: BTreeMap<String, Option<String>>,
    /// Flags the usage line requires.
    required: BTreeSet<String>,
}

/// Long flags (`--name`) at the start of `s`'s words.
fn long_flags(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .to_string()
        })
}

fn help_of(subcommand: &str) -> Result<Help> {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args([subcommand, "--help"])
        .output()
        .with_context(|| format!("running rollcall {subcommand} --help"))?;
    ensure!(
        out.status.success(),
        "rollcall {subcommand} --help failed: {out:?}"
    );
    let text = String::from_utf8(out.stdout)?;
    let mut help = Help::default();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(usage) = trimmed.strip_prefix("Usage:") {
            help.required.extend(long_flags(usage));
        } else if trimmed.starts_with("--") || trimmed.starts_with("-h, --") {
            let flag = long_flags(trimmed)
                .next()
                .context("flag line without a flag")?;
            help.flags.insert(flag.clone(), None);
            current = Some(flag);
        } else if let Some(env) = trimmed.strip_prefix("[env: ") {
            let name: String = env
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(flag) = &current {
                help.flags.insert(flag.clone(), Some(name));
            }
        }
    }
    ensure!(
        help.flags.contains_key("--config") && help.flags.len() > 10,
        "rollcall {subcommand} --help did not parse: {help:?}"
    );
    Ok(help)
}

/// The body of `define "name"` in the helpers.
fn helper_body<'a>(helpers: &'a str, name: &str) -> Result<&'a str> {
    let start = helpers
        .find(&format!("define \"{name}\""))
        .with_context(|| format!("helper {name} not defined"))?;
    let body = &helpers[start..];
    let end = body.find("{{- end }}\n\n").unwrap_or(body.len());
    Ok(&body[..end])
}

/// `ROLLCALL_*` names in `text`.
fn env_names(text: &str) -> BTreeSet<String> {
    text.match_indices("ROLLCALL_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

/// Flags in a Deployment's container `args`, outside template actions and comments.
fn deployment_flags(template: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| {
            let outside: String = line
                .split("{{")
                .map(|p| p.split("}}").last().unwrap_or(p))
                .collect();
            long_flags(&outside).collect::<Vec<_>>()
        })
        .collect()
}

fn check_deployment(subcommand: &str, file: &str) -> Result<()> {
    let templates = templates()?;
    let template = templates
        .get(file)
        .with_context(|| format!("{file} missing"))?;
    ensure!(
        template.contains(&format!("args:\n            - {subcommand}\n")),
        "{file}: the first argument is not `{subcommand}`"
    );
    ensure!(
        template.contains("include \"rollcall.commonEnv\""),
        "{file} does not include the common environment"
    );
    let help = help_of(subcommand)?;

    let flags = deployment_flags(template);
    ensure!(flags.contains("--config"), "{file}: --config not passed");
    let unknown: Vec<_> = flags
        .iter()
        .filter(|f| !help.flags.contains_key(*f))
        .collect();
    ensure!(
        unknown.is_empty(),
        "{file}: flags `rollcall {subcommand}` does not have: {unknown:?}"
    );

    let mut envs = env_names(template);
    envs.extend(env_names(helper_body(
        &templates["_helpers.tpl"],
        "rollcall.commonEnv",
    )?));
    let known: BTreeSet<&String> = help.flags.values().flatten().collect();
    // Variables read outside clap (the log filter) are named as literals in the CLI's root.
    let cli_root = read(&repo().join("crates/cli/src/lib.rs"))?;
    let unknown: Vec<_> = envs
        .iter()
        .filter(|e| !known.contains(e) && !cli_root.contains(&format!("\"{e}\"")))
        .collect();
    ensure!(
        unknown.is_empty(),
        "{file}: variables `rollcall {subcommand}` does not read: {unknown:?}"
    );

    for flag in &help.required {
        let env = help.flags.get(flag).cloned().flatten();
        let given = flags.contains(flag) || env.as_ref().is_some_and(|e| envs.contains(e));
        ensure!(given, "{file}: required {flag} (env {env:?}) is not given");
    }
    Ok(())
}

#[test]
fn the_coordinator_gets_only_flags_and_variables_it_has() -> Result<()> {
    check_deployment("coordinator", "coordinator-deployment.yaml")
}

#[test]
fn the_worker_gets_only_flags_and_variables_it_has() -> Result<()> {
    check_deployment("worker", "worker-deployment.yaml")
}

/// Names of the container ports a Deployment template declares.
fn container_ports(template: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = template.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].trim_start().starts_with("containerPort:"))
        .filter_map(|w| {
            w[0].trim()
                .strip_prefix("- name:")
                .map(|n| n.trim().to_string())
        })
        .collect()
}

#[test]
fn named_ports_resolve_and_listeners_use_their_ports() -> Result<()> {
    let templates = templates()?;
    let coordinator = &templates["coordinator-deployment.yaml"];
    let worker = &templates["worker-deployment.yaml"];
    let expected: BTreeSet<String> = ["grpc", "metrics"].map(String::from).into();
    ensure!(
        container_ports(coordinator) == expected,
        "coordinator ports: {:?}",
        container_ports(coordinator)
    );
    let metrics_only: BTreeSet<String> = ["metrics".to_string()].into();
    ensure!(
        container_ports(worker) == metrics_only,
        "worker ports: {:?}",
        container_ports(worker)
    );

    // Every symbolic port reference (Services, NetworkPolicies, ServiceMonitor) names one.
    for (name, text) in &templates {
        for line in text.lines() {
            let trimmed = line.trim().trim_start_matches("- ");
            let Some(value) = trimmed
                .strip_prefix("targetPort:")
                .or_else(|| trimmed.strip_prefix("port:"))
            else {
                continue;
            };
            let value = value.trim();
            if value.starts_with("{{") || value.parse::<u16>().is_ok() {
                continue;
            }
            ensure!(
                expected.contains(value),
                "{name}: port `{value}` is not a container port"
            );
        }
    }

    // The listeners bind the ports the containers declare, and the probe checks the API port.
    let grpc = "{{ .Values.coordinator.grpcPort }}";
    ensure!(
        coordinator.contains("\"port\" .Values.coordinator.grpcPort)"),
        "--listen not on grpcPort"
    );
    ensure!(
        coordinator.contains(&format!("containerPort: {grpc}")),
        "grpc containerPort"
    );
    ensure!(
        coordinator
            .matches(&format!("grpc:\n              port: {grpc}"))
            .count()
            == 2,
        "readiness and liveness must be gRPC probes on the API port"
    );
    for (file, text) in [("coordinator", coordinator), ("worker", worker)] {
        ensure!(
            text.contains("--metrics-listen={{ include \"rollcall.listenAddress\" (dict \"host\" .Values.listenHost \"port\" .Values.metrics.port) }}")
                && text.contains("containerPort: {{ .Values.metrics.port }}"),
            "{file}: metrics listener and container port disagree"
        );
    }
    Ok(())
}

/// `rollcall_*` names in `text`, except crate names: a log filter's target
/// (`rollcall_engine=debug`) or a Rust path (`rollcall_core::classify`).
fn metric_names(text: &str) -> BTreeSet<String> {
    text.match_indices("rollcall_")
        .filter(|(at, _)| {
            // Not part of a longer word.
            *at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric()
        })
        .filter_map(|(at, _)| {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let next = text[at + name.len()..].chars().next();
            (!matches!(next, Some('=' | ':'))).then_some(name)
        })
        .map(|name| name.trim_end_matches('_').to_string())
        .filter(|name| name.len() > "rollcall_".len())
        .collect()
}

/// The metrics the binary describes (crates/cli/src/metrics.rs).
fn exported_metrics() -> Result<BTreeSet<String>> {
    let source = read(&repo().join("crates/cli/src/metrics.rs"))?;
    let names: BTreeSet<String> = source
        .match_indices("\"rollcall_")
        .map(|(at, _)| source[at + 1..].split('"').next().unwrap_or("").to_string())
        .collect();
    ensure!(
        names.contains("rollcall_queue_depth"),
        "metrics.rs did not parse: {names:?}"
    );
    Ok(names)
}

/// A name in prose may be a family: `rollcall_smtp_command_duration_seconds_bucket`.
fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| exported.contains(base))
        })
}

#[test]
fn metric_names_in_the_chart_and_the_runbook_are_exported() -> Result<()> {
    let exported = exported_metrics()?;
    let mut sources = vec![(
        "values.yaml".to_string(),
        read(&chart().join("values.yaml"))?,
    )];
    sources.extend(templates()?);
    sources.push((
        "docs/operations.md".into(),
        read(&repo().join("docs/operations.md"))?,
    ));
    let mut seen = 0;
    for (name, text) in &sources {
        for metric in metric_names(text) {
            // Names of queues and keys (`rollcall.shard.3`) use dots, never `rollcall_`.
            seen += 1;
            ensure!(
                is_exported(&metric, &exported),
                "{name}: `{metric}` is not a rollcall metric"
            );
        }
    }
    ensure!(seen > 5, "too few metric names found: {seen}");
    Ok(())
}

#[test]
fn the_runbook_has_a_section_per_alert() -> Result<()> {
    let doc = read(&repo().join("docs/operations.md"))?;
    let headings: BTreeSet<&str> = doc.lines().filter_map(|l| l.strip_prefix("### ")).collect();
    let mut alerts: BTreeSet<String> = ALERTS.map(String::from).into();
    // The shipped alert rules, when present, must all have a section too.
    let rules = repo().join("deploy/prometheus/alerts.yml");
    if rules.exists() {
        let text = read(&rules)?;
        for (at, _) in text.match_indices("alert:") {
            let name = text[at + "alert:".len()..]
                .lines()
                .next()
                .unwrap_or("")
                .trim();
            alerts.insert(name.trim_matches('"').to_string());
        }
    }
    let missing: Vec<_> = alerts
        .iter()
        .filter(|a| !headings.contains(a.as_str()))
        .collect();
    ensure!(
        missing.is_empty(),
        "docs/operations.md lacks `### NAME` sections for {missing:?}"
    );
    Ok(())
}

#[test]
fn the_chart_metadata_matches_the_package() -> Result<()> {
    let chart_yaml = load_yaml(&chart().join("Chart.yaml"))?;
    let field = |key: &str| chart_yaml[key].as_str().map(str::to_string);
    ensure!(
        field("apiVersion").as_deref() == Some("v2"),
        "Chart.yaml apiVersion must be v2"
    );
    ensure!(
        field("name").as_deref() == Some("rollcall"),
        "Chart.yaml name must be rollcall"
    );
    ensure!(
        field("appVersion").as_deref() == Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion {:?} is not the package version {}",
        field("appVersion"),
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}

#[test]
fn the_default_config_file_is_accepted_by_the_binary() -> Result<()> {
    let values = load_yaml(&chart().join("values.yaml"))?;
    let toml = values["config"]["rollcallToml"]
        .as_str()
        .context("config.rollcallToml is not a string")?;
    let dir = std::env::temp_dir().join(format!("rollcall-helm-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (config, input, output) = (
        dir.join("rollcall.toml"),
        dir.join("empty.txt"),
        dir.join("out.csv"),
    );
    std::fs::write(&config, toml)?;
    std::fs::write(&input, "")?;
    let run = |config: &Path| -> Result<std::process::Output> {
        Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("verify")
            .arg("--no-cache")
            .arg("--config")
            .arg(config)
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .context("running rollcall verify")
    };
    let accepted = run(&config)?;
    // The same check refuses a config with an unknown key (exit 64), so it does read the file.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, format!("{toml}\nno_such_key = 1\n"))?;
    let refused = run(&bad)?;
    std::fs::remove_dir_all(&dir).ok();
    if !accepted.status.success() {
        bail!(
            "the chart's config.rollcallToml is refused: {}",
            String::from_utf8_lossy(&accepted.stderr)
        );
    }
    ensure!(
        refused.status.code() == Some(64),
        "an unknown key was not refused: {refused:?}"
    );
    Ok(())
}

fn read_paths(template: &str) -> Vec<String> {
    value_paths(template)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .iter()
        .map(|p| dotted(p))
        .collect()
}

#[test]
fn alias_and_whole_map_reads_are_followed() {
    let template = "{{- $as := .Values.worker.autoscaling }}{{- $keda := $as.keda }}\n\
                    {{ $keda.enabled }} {{ toYaml .Values.worker.resources }} {{ $.Values.fleet.prefix }}\n\
                    {{/* a comment: .Values.not.read */}}{{ include \"x\" (dict \"a\" \".Values.no\") }}";
    assert_eq!(
        read_paths(template),
        [
            "fleet.prefix",
            "worker.autoscaling.keda.enabled",
            "worker.resources"
        ]
    );
}

#[test]
fn with_scopes_the_dot_and_range_leaves_it() {
    let template = "{{- with .Values.identity }}{{ .helo }}{{ $.Values.logLevel }}{{ end }}\n\
                    {{- with .Values.worker.extraEnv }}{{ toYaml . }}{{ else }}{{ .Values.fleet.shards }}{{ end }}\n\
                    {{- range $i := until (int .Values.fleet.shards) }}{{ $.Values.fleet.prefix }}{{ end }}\n\
                    {{- define \"h\" }}{{ with .Values.a }}{{ if .b }}{{ .c.d }}{{ end }}{{ end }}{{ end }}";
    assert_eq!(
        read_paths(template),
        [
            "a",
            "a.b",
            "a.c.d",
            "fleet.prefix",
            "fleet.shards",
            "identity",
            "identity.helo",
            "logLevel",
            "worker.extraEnv"
        ]
    );
    // `.Values` where the dot is not the root is a bug Helm would not report.
    for bad in [
        "{{ with .Values.identity }}{{ .Values.logLevel }}{{ end }}",
        "{{ range .Values.worker.extraEnv }}{{ .Values.logLevel }}{{ end }}",
        "{{ with .Values.identity }}{{ .Release.Name }}{{ end }}",
        "{{ if .Values.a }}",
    ] {
        assert!(value_paths(bad).is_err(), "accepted: {bad}");
    }
}

/// How many blocks (`if`, `with`, `range`, `define`, `block`) are open at the end of `text`.
fn open_blocks(text: &str) -> usize {
    let mut depth = 0usize;
    for action in actions(text) {
        let code = action_code(action);
        match code.split_whitespace().next().unwrap_or("") {
            "if" | "with" | "range" | "define" | "block" => depth += 1,
            "end" => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

/// The coordinator listens on `listenHost` (0.0.0.0 by default), where the binary refuses to
/// serve without a token: the Deployment passes ROLLCALL_TOKEN whatever the values, and the
/// chart's Secret holds a token whenever no existing Secret is named (auth.token, the one a
/// previous release stored, or a generated one).
#[test]
fn the_coordinator_always_gets_a_token() -> Result<()> {
    let templates = templates()?;
    let deployment = &templates["coordinator-deployment.yaml"];
    let at = deployment
        .find("- name: ROLLCALL_TOKEN")
        .context("coordinator-deployment.yaml passes no ROLLCALL_TOKEN")?;
    ensure!(
        open_blocks(&deployment[..at]) == 0,
        "coordinator-deployment.yaml passes ROLLCALL_TOKEN only under a condition"
    );

    let secret = &templates["secret.yaml"];
    ensure!(
        secret.contains("$token := not .Values.auth.existingSecret"),
        "secret.yaml must store a token whenever auth.existingSecret is empty"
    );
    ensure!(
        secret.contains("include \"rollcall.token\""),
        "secret.yaml must store the token of the rollcall.token helper"
    );
    let token = helper_body(&templates["_helpers.tpl"], "rollcall.token")?;
    for needed in ["lookup", "randAlphaNum", ".Values.auth.token"] {
        ensure!(
            token.contains(needed),
            "the rollcall.token helper does not use {needed}"
        );
    }
    Ok(())
}
