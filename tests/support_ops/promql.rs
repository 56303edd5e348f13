//! The PromQL that operators watch: every `targets[].expr` of a Grafana dashboard (panels of
//! any depth, rows included) and its template variables' queries, Grafana's interval
//! variables replaced, the rule names of a Prometheus rules file (to check that Prometheus
//! loaded them all), and the series selectors of an expression (to check that a quiet alert
//! is quiet because its condition is false, not because its series are missing).

use anyhow::{Result, bail};
use serde_json::Value;

/// One query of a dashboard panel.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelQuery {
    /// The panel's title (its row's titles first, `/`-separated).
    pub panel: String,
    /// The target's refId (A, B, ...), if any.
    pub ref_id: String,
    /// The panel's type (timeseries, stat, heatmap, ...).
    pub panel_type: String,
    /// The panel's unit (`fieldConfig.defaults.unit`), if any.
    pub unit: String,
    /// The expression as written in the dashboard.
    pub expr: String,
}

/// Every non-empty `targets[].expr` under `dashboard`, and every annotation query's `expr`.
pub fn dashboard_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    walk(dashboard, "", &mut out);
    out
}

fn walk(value: &Value, path: &str, out: &mut Vec<PanelQuery>) {
    match value {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or("");
            let panel_type = map.get("type").and_then(Value::as_str).unwrap_or("");
            let unit = map
                .get("fieldConfig")
                .and_then(|c| c["defaults"]["unit"].as_str())
                .unwrap_or("");
            let here = match (path.is_empty(), title.is_empty()) {
                (_, true) => path.to_string(),
                (true, false) => title.to_string(),
                (false, false) => format!("{path} / {title}"),
            };
            if let Some(Value::Array(targets)) = map.get("targets") {
                for target in targets {
                    let Some(expr) = target.get("expr").and_then(Value::as_str) else {
                        continue;
                    };
                    if expr.trim().is_empty() {
                        continue;
                    }
                    out.push(PanelQuery {
                        panel: here.clone(),
                        ref_id: target
                            .get("refId")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        panel_type: panel_type.to_string(),
                        unit: unit.to_string(),
                        expr: expr.to_string(),
                    });
                }
            }
            // An annotation query carries its own `expr` (targets are not walked into).
            if let Some(expr) = map.get("expr").and_then(Value::as_str)
                && !expr.trim().is_empty()
            {
                let name = map.get("name").and_then(Value::as_str).unwrap_or("?");
                out.push(PanelQuery {
                    panel: format!("annotation {name}"),
                    ref_id: String::new(),
                    panel_type: "annotation".into(),
                    unit: String::new(),
                    expr: expr.to_string(),
                });
            }
            for (key, child) in map {
                if key != "targets" {
                    walk(child, &here, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, path, out);
            }
        }
        _ => {}
    }
}

/// The PromQL behind the dashboard's query variables (`templating.list[]` of type `query`),
/// as expressions that return data when the variable has values: `label_values(SEL, LABEL)`
/// becomes `count by (LABEL) (SEL)`, `query_result(EXPR)` becomes `EXPR`. A variable whose
/// query the test cannot turn into PromQL is an error naming it.
pub fn template_queries(dashboard: &Value) -> Vec<(PanelQuery, Result<String>)> {
    let Some(list) = dashboard["templating"]["list"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter(|var| var["type"] == "query")
        .map(|var| {
            let name = var["name"].as_str().unwrap_or("?");
            // Grafana writes the query as a string or as {"query": "..."}.
            let query = var["query"]
                .as_str()
                .or_else(|| var["query"]["query"].as_str())
                .unwrap_or("")
                .trim();
            let query_expr = PanelQuery {
                panel: format!("variable ${name}"),
                ref_id: String::new(),
                panel_type: "variable".into(),
                unit: String::new(),
                expr: query.to_string(),
            };
            (query_expr, variable_expr(query))
        })
        .collect()
}

fn variable_expr(query: &str) -> Result<String> {
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        let Some((selector, label)) = args.rsplit_once(',') else {
            bail!("label_values without a selector cannot be checked: {query}");
        };
        return Ok(format!("count by ({}) ({})", label.trim(), selector.trim()));
    }
    if let Some(expr) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return Ok(expr.trim().to_string());
    }
    bail!("a variable query the test cannot run: {query:?}")
}

/// Words of PromQL that are not metric names where a name could stand.
const KEYWORDS: [&str; 14] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// One token of an expression, with where it starts.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Open(char),
    Close(char),
    Other,
}

fn tokens(expr: &str) -> Result<Vec<(usize, Token<'_>)>> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            i = expr[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            loop {
                let Some(&b) = bytes.get(i) else {
                    bail!("unclosed string in {expr}");
                };
                i += if b == b'\\' && c != '`' { 2 } else { 1 };
                if b as char == c {
                    break;
                }
            }
            out.push((start, Token::Other));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            out.push((start, Token::Ident(&expr[start..i])));
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            // Numbers and durations: 0.5, 1e3, 0x1f, 5m, 1h30m.
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            out.push((start, Token::Other));
            continue;
        }
        i += c.len_utf8();
        out.push((
            start,
            match c {
                '(' | '{' | '[' => Token::Open(c),
                ')' | '}' | ']' => Token::Close(c),
                _ => Token::Other,
            },
        ));
    }
    Ok(out)
}

/// The index after the token that closes the bracket opened at `open`.
fn closing(tokens: &[(usize, Token)], open: usize) -> Result<usize> {
    let mut depth = 0usize;
    for (j, (_, token)) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Open(_) => depth += 1,
            Token::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j + 1);
                }
            }
            _ => {}
        }
    }
    bail!("unbalanced brackets")
}

/// The series selectors of a PromQL expression (`name`, `name{matchers}` or `{matchers}`), as
/// written, each once, in order of appearance. Skips function and aggregation names, label
/// lists (`by (...)`, `on (...)`, ...), range and subquery brackets and string arguments.
pub fn selectors(expr: &str) -> Result<Vec<String>> {
    let tokens = tokens(expr).map_err(|e| anyhow::anyhow!("{e}: {expr}"))?;
    let mut open = Vec::new();
    for (_, token) in &tokens {
        match token {
            Token::Open(c) => open.push(*c),
            Token::Close(c) => {
                let opened = open.pop();
                let expected = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                if opened != Some(expected) {
                    bail!("unbalanced {c} in {expr}");
                }
            }
            _ => {}
        }
    }
    if let Some(c) = open.pop() {
        bail!("unclosed {c} in {expr}");
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (start, token) = &tokens[i];
        let next = tokens.get(i + 1).map(|(_, t)| t);
        let selector = match token {
            Token::Ident(word) if LABEL_LISTS.contains(word) => {
                if next == Some(&Token::Open('(')) {
                    i = closing(&tokens, i + 1)?;
                } else {
                    i += 1;
                }
                continue;
            }
            // A keyword, a function or an aggregation (`sum (...)`, `sum by (...) (...)`).
            Token::Ident(word)
                if KEYWORDS.contains(word)
                    || next == Some(&Token::Open('('))
                    || matches!(next, Some(Token::Ident("by" | "without"))) =>
            {
                i += 1;
                continue;
            }
            Token::Ident(_) if next == Some(&Token::Open('{')) => {
                let end = closing(&tokens, i + 1)?;
                let end_at = tokens[end - 1].0 + 1;
                i = end;
                &expr[*start..end_at]
            }
            Token::Ident(word) => {
                i += 1;
                word
            }
            Token::Open('{') => {
                let end = closing(&tokens, i)?;
                let end_at = tokens[end - 1].0 + 1;
                i = end;
                &expr[*start..end_at]
            }
            Token::Open('[') => {
                i = closing(&tokens, i)?;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if !out.iter().any(|s| s == selector) {
            out.push(selector.to_string());
        }
    }
    Ok(out)
}

/// The metric name of a selector (empty for `{matchers}` alone).
pub fn metric_name(selector: &str) -> &str {
    selector.split('{').next().unwrap_or("").trim()
}

/// Grafana's built-in interval variables and what the test puts in their place.
pub const INTERVALS: [(&str, &str); 3] = [
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range", "5m"),
];

/// Replaces Grafana's interval variables (`$name` and `${name}`); fails on any other
/// variable (`$job`, `${instance}`, `[[var]]`), which the test cannot give a value.
pub fn substitute(expr: &str) -> Result<String> {
    if expr.contains("[[") {
        bail!("uses an old-style [[variable]] the test does not know: {expr}");
    }
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                bail!("unclosed ${{ in {expr}");
            };
            (&braced[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let Some((_, value)) = INTERVALS.iter().find(|(known, _)| *known == name) else {
            bail!("uses the variable ${name}, which the test does not know: {expr}");
        };
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `alert:` and `record:` names of a Prometheus rules file, in file order. Reads the
/// two keys line by line (they are plain one-line strings in any sane rules file); the rules
/// themselves are taken from Prometheus, which parsed the file.
pub fn rule_names(rules_yaml: &str) -> Vec<String> {
    rules_yaml
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("- ").unwrap_or(line).trim_start();
            let value = line
                .strip_prefix("alert:")
                .or_else(|| line.strip_prefix("record:"))?;
            let value = value.split(" #").next().unwrap_or(value).trim();
            Some(value.trim_matches(|c| c == '"' || c == '\'').to_string())
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_come_from_nested_panels_and_rows() {
        let dashboard = serde_json::json!({
            "title": "d",
            "panels": [
                {"title": "top", "targets": [{"refId": "A", "expr": "up"}, {"refId": "B", "expr": " "}]},
                {"title": "row", "type": "row", "panels": [
                    {"title": "inner", "targets": [{"refId": "A", "expr": "sum(x)"}, {"refId": "C"}]}
                ]}
            ],
            "annotations": {"list": [{"name": "deploys", "expr": "changes(y[5m]) > 0"}]}
        });
        let queries = dashboard_queries(&dashboard);
        let got: Vec<(&str, &str, &str)> = queries
            .iter()
            .map(|q| (q.panel.as_str(), q.ref_id.as_str(), q.expr.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            got,
            [
                ("annotation deploys", "", "changes(y[5m]) > 0"),
                ("d / row / inner", "A", "sum(x)"),
                ("d / top", "A", "up"),
            ]
        );
    }

    #[test]
    fn interval_variables_are_replaced_and_others_refused() {
        assert_eq!(
            substitute("rate(x[$__rate_interval]) + increase(y[${__range}]) + z[$__interval:5s]")
                .unwrap(),
            "rate(x[1m]) + increase(y[5m]) + z[15s:5s]"
        );
        assert_eq!(substitute("up == 0").unwrap(), "up == 0");
        for bad in [
            "up{job=\"$job\"}",
            "up{instance=~\"${instance}\"}",
            "up{job=\"[[job]]\"}",
            "rate(x[$__rate_interval_ms])",
            "x[${__range",
        ] {
            assert!(substitute(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_skip_functions_label_lists_ranges_and_strings() {
        let expr = "sum by (job, instance) (increase(rollcall_x_total{a=\"b}\", c=~\"d\"}[10m])) > 0\n\
                    and on (job) max without (le) (rate(y_bucket[$__rate_interval:5s]))\n\
                    / ignoring(state) group_left (k) up{job=\"w\"} offset 5m\n\
                    or label_replace(z, \"by\", \"$1\", \"on\", \"(.*)\") unless {__name__=~\"q.*\"}\n\
                    or histogram_quantile(0.5, sum(rate(h_bucket[1m])) by (le)) or vector(0)";
        assert_eq!(
            selectors(expr).unwrap(),
            [
                "rollcall_x_total{a=\"b}\", c=~\"d\"}",
                "y_bucket",
                "up{job=\"w\"}",
                "z",
                "{__name__=~\"q.*\"}",
                "h_bucket",
            ]
        );
        assert_eq!(
            selectors("x < ignoring(state) x").unwrap(),
            ["x"],
            "each selector once"
        );
        assert_eq!(metric_name("up{job=\"w\"}"), "up");
        assert_eq!(metric_name("{a=\"b\"}"), "");
        assert!(selectors("sum(x").is_err());
        assert!(selectors("x{a=\"b}").is_err());
    }

    #[test]
    fn template_variables_become_queries() {
        let dashboard = serde_json::json!({"templating": {"list": [
            {"name": "job", "type": "query", "query": "label_values(up{job=~\"rollcall-.*\"}, job)"},
            {"name": "inst", "type": "query", "query": {"query": "query_result(count by (instance) (up))"}},
            {"name": "ds", "type": "datasource", "query": "prometheus"},
            {"name": "odd", "type": "query", "query": "metrics(rollcall_.*)"}
        ]}});
        let got: Vec<(String, String)> = template_queries(&dashboard)
            .into_iter()
            .map(|(q, e)| (q.panel, e.unwrap_or_else(|e| format!("error: {e}"))))
            .collect();
        assert_eq!(got[0].1, "count by (job) (up{job=~\"rollcall-.*\"})");
        assert_eq!(got[1].1, "count by (instance) (up)");
        assert_eq!(got[2].0, "variable $odd");
        assert!(got[2].1.starts_with("error: "), "{got:?}");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn rule_names_are_read_from_alert_and_record_keys() {
        let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A1\n        expr: up == 0\n\
                    \x20     - record: job:up:sum # recorded\n        expr: sum by (job) (up)\n\
                    \x20     - expr: x\n        alert: \"A2\"\n";
        assert_eq!(rule_names(yaml), ["A1", "job:up:sum", "A2"]);
    }
}
