//! A test's Prometheus configuration derived from the shipped one
//! (deploy/prometheus/prometheus.yml): the same jobs, rule files, labels and relabelling, but
//! every job's targets replaced by one loopback address of the test, every interval 1 s, and
//! nothing sent anywhere (no alerting, no remote write/read).
//!
//! A line-based rewrite of the block-style YAML Prometheus configs are written in: it keeps
//! every line it does not need to change, so the result stays the shipped file in all that
//! matters to the expressions. `promtool check config` validates the result.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// The interval the test scrapes and evaluates at.
pub const INTERVAL: &str = "1s";

/// Top-level sections dropped: they send data or alerts to other machines.
const DROPPED_SECTIONS: [&str; 3] = ["alerting", "remote_write", "remote_read"];

/// Interval keys set to [`INTERVAL`] wherever they appear (scrape_timeout may not exceed
/// scrape_interval).
const INTERVAL_KEYS: [&str; 3] = ["scrape_interval", "scrape_timeout", "evaluation_interval"];

/// One line: its indentation, and the text after it.
struct Line<'a> {
    indent: usize,
    text: &'a str,
    raw: &'a str,
}

impl<'a> Line<'a> {
    fn new(raw: &'a str) -> Self {
        let text = raw.trim_start_matches(' ');
        Line {
            indent: raw.len() - text.len(),
            text: text.trim_end(),
            raw,
        }
    }

    /// Blank or comment only: belongs to whatever block it is in.
    fn is_filler(&self) -> bool {
        self.text.is_empty() || self.text.starts_with('#')
    }

    /// The key of a `key: value` or `- key: value` line.
    fn key(&self) -> Option<&'a str> {
        let text = self
            .text
            .strip_prefix("- ")
            .unwrap_or(self.text)
            .trim_start();
        let (key, _) = text.split_once(':')?;
        let key = key.trim();
        (!key.is_empty() && !key.contains(' ') && !key.starts_with('#')).then_some(key)
    }

    /// The value of a `key: value` line, without a trailing comment or quotes.
    fn value(&self) -> Option<&'a str> {
        let (_, value) = self.text.split_once(':')?;
        let value = value.split(" #").next().unwrap_or(value).trim();
        Some(value.trim_matches(|c| c == '"' || c == '\''))
    }
}

/// Rewrites `config` (the text of the shipped prometheus.yml in `config_dir`): the targets of
/// each job named in `targets` become that address; a job not in `targets` is an error, as is
/// anything the rewrite would silently lose (static labels in a replaced discovery block).
pub fn rewrite(
    config: &str,
    config_dir: &Path,
    targets: &BTreeMap<&str, SocketAddr>,
) -> Result<String> {
    let lines: Vec<Line> = config.lines().map(Line::new).collect();
    let mut out = Vec::new();
    let mut jobs_seen = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.is_filler() || line.indent > 0 {
            out.push(line.raw.to_string());
            i += 1;
            continue;
        }
        let end = block_end(&lines, i, 0);
        match line.key() {
            Some(section) if DROPPED_SECTIONS.contains(&section) => {}
            Some("global") => out.extend(lines[i..end].iter().map(set_interval)),
            Some("rule_files") => rule_files(&lines[i..end], config_dir, &mut out)?,
            Some("scrape_configs") => {
                out.push(line.raw.to_string());
                scrape_configs(&lines[i + 1..end], targets, &mut out, &mut jobs_seen)?;
            }
            _ => out.extend(lines[i..end].iter().map(|l| l.raw.to_string())),
        }
        i = end;
    }
    for job in targets.keys() {
        if !jobs_seen.iter().any(|seen| seen == job) {
            bail!("the shipped config has no job {job}");
        }
    }
    out.push(String::new());
    Ok(out.join("\n"))
}

/// The end (exclusive) of the block starting at `start`: the next non-filler line indented
/// `indent` or less.
fn block_end(lines: &[Line], start: usize, indent: usize) -> usize {
    (start + 1..lines.len())
        .find(|&j| !lines[j].is_filler() && lines[j].indent <= indent)
        .unwrap_or(lines.len())
}

fn set_interval(line: &Line) -> String {
    match line.key() {
        Some(key) if INTERVAL_KEYS.contains(&key) && !line.text.starts_with("- ") => {
            format!("{}{key}: {INTERVAL}", " ".repeat(line.indent))
        }
        _ => line.raw.to_string(),
    }
}

/// `rule_files:` with every path made absolute against the shipped config's directory.
fn rule_files(block: &[Line], config_dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let absolute = |path: &str| -> String {
        let path = path.trim().trim_matches(|c| c == '"' || c == '\'');
        let joined = config_dir.join(path);
        format!("{:?}", joined.display().to_string())
    };
    out.push("rule_files:".into());
    let inline = block[0].value().unwrap_or("");
    if let Some(list) = inline.strip_prefix('[') {
        let list = list.strip_suffix(']').context("rule_files: unclosed [")?;
        for path in list.split(',').filter(|p| !p.trim().is_empty()) {
            out.push(format!("  - {}", absolute(path)));
        }
        return Ok(());
    }
    for line in &block[1..] {
        if line.is_filler() {
            continue;
        }
        let Some(path) = line.text.strip_prefix("- ") else {
            bail!("rule_files: cannot read {:?}", line.raw);
        };
        let path = path.split(" #").next().unwrap_or(path);
        out.push(format!("  - {}", absolute(path)));
    }
    Ok(())
}

/// The items of `scrape_configs:`, each job's discovery replaced by its test target.
fn scrape_configs(
    block: &[Line],
    targets: &BTreeMap<&str, SocketAddr>,
    out: &mut Vec<String>,
    jobs_seen: &mut Vec<String>,
) -> Result<()> {
    let mut i = 0;
    while i < block.len() {
        let line = &block[i];
        if line.is_filler() {
            out.push(line.raw.to_string());
            i += 1;
            continue;
        }
        if !line.text.starts_with("- ") {
            bail!(
                "scrape_configs: expected a `- job_name:` item at {:?}",
                line.raw
            );
        }
        let end = block_end(block, i, line.indent);
        let job = scrape_job(&block[i..end], targets)?;
        jobs_seen.push(job.name);
        out.extend(job.lines);
        i = end;
    }
    Ok(())
}

/// A rewritten scrape job.
struct Job {
    name: String,
    lines: Vec<String>,
}

fn scrape_job(item: &[Line], targets: &BTreeMap<&str, SocketAddr>) -> Result<Job> {
    // The item's keys sit where the text after "- " starts.
    let key_indent = item[0].indent + 2;
    let name = item
        .iter()
        .filter(|l| l.indent == key_indent || std::ptr::eq(*l, &item[0]))
        .find(|l| l.key() == Some("job_name"))
        .and_then(Line::value)
        .context("a scrape job without job_name")?
        .to_string();
    let target = targets.get(name.as_str()).with_context(|| {
        format!("the shipped config scrapes job {name}, which the test does not run")
    })?;

    let mut lines = Vec::new();
    let mut i = 0;
    while i < item.len() {
        let line = &item[i];
        let own_key = i == 0 || (!line.is_filler() && line.indent == key_indent);
        let end = if own_key && i > 0 {
            block_end(item, i, key_indent)
        } else {
            i + 1
        };
        let key = if own_key { line.key() } else { None };
        match key {
            Some(k) if k == "static_configs" || k.ends_with("_sd_configs") => {
                if let Some(labels) = item[i..end].iter().find(|l| l.key() == Some("labels")) {
                    bail!(
                        "job {name}: the test replaces {k} and would lose {:?}",
                        labels.raw.trim()
                    );
                }
            }
            Some(k) if INTERVAL_KEYS.contains(&k) && i > 0 => lines.push(set_interval(line)),
            _ => lines.extend(item[i..end].iter().map(|l| l.raw.to_string())),
        }
        i = end;
    }
    let pad = " ".repeat(key_indent);
    lines.push(format!("{pad}static_configs:"));
    lines.push(format!("{pad}  - targets: [\"{target}\"]"));
    Ok(Job { name, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "\
# comment
global:
  scrape_interval: 5s
  scrape_timeout: 4s   # less than the interval
  evaluation_interval: 15s
  external_labels:
    system: rollcall

rule_files:
  - alerts.yml
  - \"more/*.yml\"

alerting:
  alertmanagers:
    - static_configs:
        - targets: [\"alertmanager:9093\"]

scrape_configs:
  # the coordinator
  - job_name: rollcall-coordinator
    static_configs:
      - targets: [\"coordinator:9464\"]

  - job_name: \"rollcall-worker\"
    scrape_interval: 10s
    dns_sd_configs:
      - names: [\"worker\"]
        type: A
        port: 9465
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
";

    fn targets() -> BTreeMap<&'static str, SocketAddr> {
        BTreeMap::from([
            ("rollcall-coordinator", "127.0.0.1:1001".parse().unwrap()),
            ("rollcall-worker", "127.0.0.1:1002".parse().unwrap()),
        ])
    }

    #[test]
    fn the_shipped_config_is_aimed_at_the_test() {
        let got = rewrite(SHIPPED, Path::new("/deploy/prometheus"), &targets()).unwrap();
        let expected = "\
# comment
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
  external_labels:
    system: rollcall

rule_files:
  - \"/deploy/prometheus/alerts.yml\"
  - \"/deploy/prometheus/more/*.yml\"
scrape_configs:
  # the coordinator
  - job_name: rollcall-coordinator
    static_configs:
      - targets: [\"127.0.0.1:1001\"]
  - job_name: \"rollcall-worker\"
    scrape_interval: 1s
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
    static_configs:
      - targets: [\"127.0.0.1:1002\"]
";
        assert_eq!(got, expected);
    }

    #[test]
    fn flow_rule_files_and_missing_or_unknown_jobs() {
        let flow = "rule_files: [a.yml, 'b.yml']\nscrape_configs:\n  - job_name: rollcall-coordinator\n    static_configs:\n      - targets: [x:1]\n  - job_name: rollcall-worker\n    static_configs:\n      - targets: [y:2]\n";
        let got = rewrite(flow, Path::new("/d"), &targets()).unwrap();
        assert!(
            got.starts_with("rule_files:\n  - \"/d/a.yml\"\n  - \"/d/b.yml\"\n"),
            "{got}"
        );

        let one_job = "scrape_configs:\n  - job_name: rollcall-coordinator\n    static_configs:\n      - targets: [x:1]\n";
        let err = rewrite(one_job, Path::new("/d"), &targets()).unwrap_err();
        assert!(err.to_string().contains("no job rollcall-worker"), "{err}");

        let extra = format!(
            "{one_job}  - job_name: node\n    static_configs:\n      - targets: [n:9100]\n"
        );
        let err = rewrite(&extra, Path::new("/d"), &targets()).unwrap_err();
        assert!(err.to_string().contains("job node"), "{err}");
    }

    #[test]
    fn static_labels_are_not_dropped_silently() {
        let labelled = "scrape_configs:\n  - job_name: rollcall-worker\n    static_configs:\n      - targets: [y:2]\n        labels:\n          zone: a\n";
        let err = rewrite(labelled, Path::new("/d"), &targets()).unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
