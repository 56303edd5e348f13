//! Providers: who runs a domain's mail (from its MX host names) and the rules that provider's
//! replies need, as data.
//!
//! Owns `ProviderSpec` (one provider: MX patterns, the most RCPTs per transaction, whether a
//! 250 can be believed, its own reply rows), `ProviderTable` (the built-in rules of
//! `providers.toml` with a user's entries ahead of them) and the verdict cap of a provider
//! whose acceptance proves nothing (`ProviderSpec::cap`). The rows are read before the generic
//! reply table (`classify_with`); everything they do not cover is the generic table's. It does
//! not group hosts into sites for politeness (`site` does) and does not send anything.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::classify::{Classification, ReadReply, classify_with};
use crate::verdict::{Reason, Status, Verdict};
use crate::{CommandKind, EnhancedCode, Reply};

/// The `provider` of a domain whose MX hosts match no rule.
pub const SELF_HOSTED: &str = "self_hosted";

/// One reply row of a provider: every field given must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRule {
    /// The command the reply answers (`rcpt_to`, `mail_from`, ...); default `rcpt_to`.
    #[serde(default = "rcpt_to")]
    pub command: String,
    /// The basic code.
    #[serde(default)]
    pub code: Option<u16>,
    /// The enhanced code, `5.7.0`.
    #[serde(default)]
    pub enhanced: Option<String>,
    /// A phrase the reply's text contains (compared without case, white space collapsed).
    #[serde(default)]
    pub text: Option<String>,
    /// What the reply means: a `Classification` label (`blocked`, `retry:rate_limited`,
    /// `undeliverable:mailbox_not_found`...).
    pub means: String,
}

fn rcpt_to() -> String {
    CommandKind::RcptTo.as_str().to_string()
}

/// One provider's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The `provider` column: `google`, `outlook_com`, ...
    pub name: String,
    /// MX host patterns: `*.x` matches any host under `x`; anything else one host exactly.
    pub mx: Vec<String>,
    /// Only these mail domains (Gmail's own, say); empty: any domain on those hosts.
    #[serde(default)]
    pub domains: Vec<String>,
    /// The most RCPTs one transaction carries at this provider (with the site's shaping, the
    /// smaller wins).
    #[serde(default)]
    pub rcpt_per_transaction: Option<u32>,
    /// A 250 at RCPT proves nothing here (the provider bounces after DATA): an accepted
    /// address is at most `risky/accepts_all`, and no catch-all probe is sent.
    #[serde(default)]
    pub accepts_all: bool,
    /// Reply rows read before the generic table, in order.
    #[serde(default, rename = "reply")]
    pub replies: Vec<ReplyRule>,
}

/// A reply row ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    command: CommandKind,
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    text: Option<String>,
    means: Classification,
}

/// A provider's rules, checked and ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRules {
    rule: ProviderSpec,
    rows: Vec<Row>,
}

impl ProviderRules {
    /// The provider of domains whose MX hosts match no rule: no rows, no limits.
    pub fn self_hosted() -> Arc<ProviderRules> {
        static SELF: OnceLock<Arc<ProviderRules>> = OnceLock::new();
        SELF.get_or_init(|| {
            Arc::new(ProviderRules {
                rule: ProviderSpec {
                    name: SELF_HOSTED.into(),
                    mx: Vec::new(),
                    domains: Vec::new(),
                    rcpt_per_transaction: None,
                    accepts_all: false,
                    replies: Vec::new(),
                },
                rows: Vec::new(),
            })
        })
        .clone()
    }

    /// Checks a rule: known commands, codes and labels, a label's reason of the right status.
    pub fn new(rule: ProviderSpec) -> Result<ProviderRules, String> {
        let name = &rule.name;
        let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
        if name.is_empty() || !name.bytes().all(word) {
            return Err(format!(
                "provider `{name}`: names are lowercase letters, digits and `_`"
            ));
        }
        if rule.mx.is_empty() {
            return Err(format!("provider `{name}`: give at least one mx pattern"));
        }
        if rule.rcpt_per_transaction == Some(0) {
            return Err(format!(
                "provider `{name}`: rcpt_per_transaction must be >= 1"
            ));
        }
        let rows = rule
            .replies
            .iter()
            .enumerate()
            .map(|(i, r)| row(r).map_err(|e| format!("provider `{name}`, reply {}: {e}", i + 1)))
            .collect::<Result<Vec<Row>, String>>()?;
        Ok(ProviderRules { rule, rows })
    }

    /// The name (the `provider` column).
    pub fn name(&self) -> &str {
        &self.rule.name
    }

    /// The rule as written.
    pub fn rule(&self) -> &ProviderSpec {
        &self.rule
    }

    /// The most RCPTs per transaction, when the provider limits them.
    pub fn rcpt_per_transaction(&self) -> Option<u32> {
        self.rule.rcpt_per_transaction
    }

    /// Whether a 250 at RCPT proves nothing here.
    pub fn accepts_all(&self) -> bool {
        self.rule.accepts_all
    }

    /// What `reply` to `command` means at this provider: its rows first, then the generic
    /// table.
    pub fn classify(&self, command: CommandKind, reply: &Reply) -> Classification {
        if self.rows.is_empty() {
            return crate::classify(command, reply);
        }
        classify_with(command, reply, |read| {
            self.rows
                .iter()
                .find(|row| row.matches(command, read))
                .map(|row| row.means)
        })
    }

    /// The verdict as this provider allows it: where a 250 proves nothing, an acceptance
    /// (`deliverable`, or risky because of the domain's catch-all or a role local part) is
    /// `risky/accepts_all`. A refusal, a full mailbox, a disposable domain and every unknown
    /// stay as they are.
    pub fn cap(&self, verdict: Verdict) -> Verdict {
        let capped = self.rule.accepts_all
            && (verdict.status() == Status::Deliverable
                || matches!(verdict.reason(), Reason::CatchAll | Reason::RoleAccount));
        if !capped {
            return verdict;
        }
        let flags = verdict.flags;
        Verdict::new(Reason::AcceptsAll, verdict.evidence)
            .with_flags(flags)
            .with_detail(format!(
                "accepted, but {} accepts every recipient at RCPT and bounces unknown ones later",
                self.rule.name
            ))
    }

    fn serves(&self, domain: &str, mx_hosts: &[&str]) -> bool {
        (self.rule.domains.is_empty() || self.rule.domains.iter().any(|d| d == domain))
            && mx_hosts
                .iter()
                .any(|h| self.rule.mx.iter().any(|p| host_matches(p, h)))
    }
}

fn row(r: &ReplyRule) -> Result<Row, String> {
    let command = CommandKind::from_name(&r.command)
        .ok_or_else(|| format!("unknown command `{}`", r.command))?;
    if let Some(code) = r.code
        && !(200..=599).contains(&code)
    {
        return Err(format!("code {code} is not an SMTP reply code"));
    }
    let enhanced = match &r.enhanced {
        Some(e) => Some(EnhancedCode::parse(e).ok_or_else(|| format!("`{e}` is not X.Y.Z"))?),
        None => None,
    };
    if let (Some(code), Some(e)) = (r.code, enhanced)
        && u16::from(e.class) != code / 100
    {
        return Err(format!("code {code} and enhanced code {e} disagree"));
    }
    let means = Classification::from_label(&r.means)
        .ok_or_else(|| format!("`{}` is not a classification", r.means))?;
    let status_ok = match means {
        Classification::Undeliverable(reason) => reason.status() == Status::Undeliverable,
        Classification::Risky(reason) => reason.status() == Status::Risky,
        _ => true,
    };
    if !status_ok {
        return Err(format!("`{}`: the reason has another status", r.means));
    }
    let text = r.text.as_deref().map(|t| {
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    });
    if text.as_deref() == Some("") {
        return Err("text is empty".into());
    }
    Ok(Row {
        command,
        code: r.code,
        enhanced,
        text,
        means,
    })
}

impl Row {
    fn matches(&self, command: CommandKind, read: &ReadReply) -> bool {
        self.command == command
            && self.code.is_none_or(|c| c == read.code)
            && self.enhanced.is_none_or(|e| Some(e) == read.enhanced)
            && self.text.as_deref().is_none_or(|t| read.text.contains(t))
    }
}

/// `*.x` matches any host under `x`, anything else one host exactly (without case, trailing
/// dots ignored).
fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            // Bytes, not a str slice: a non-ASCII name must not split a character.
            let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
            host.len() > suffix.len() + 1
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && host[host.len() - suffix.len() - 1] == b'.'
        }
        None => host.eq_ignore_ascii_case(pattern.trim_end_matches('.')),
    }
}

/// The built-in rules, as shipped.
const BUILTIN: &str = include_str!("providers.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default, rename = "provider")]
    providers: Vec<ProviderSpec>,
}

/// Every provider rule, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTable {
    providers: Vec<Arc<ProviderRules>>,
}

impl Default for ProviderTable {
    fn default() -> Self {
        ProviderTable::builtin()
    }
}

impl ProviderTable {
    /// The rules of `providers.toml` (checked by this crate's tests, so they load).
    pub fn builtin() -> ProviderTable {
        static BUILT: OnceLock<ProviderTable> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                ProviderTable::from_toml(BUILTIN)
                    .unwrap_or_else(|e| panic!("the built-in providers.toml: {e}"))
            })
            .clone()
    }

    /// Rules from a file in `providers.toml`'s format.
    pub fn from_toml(text: &str) -> Result<ProviderTable, String> {
        let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        ProviderTable::from_rules(file.providers)
    }

    fn from_rules(rules: Vec<ProviderSpec>) -> Result<ProviderTable, String> {
        let providers = rules
            .into_iter()
            .map(|r| ProviderRules::new(r).map(Arc::new))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ProviderTable { providers })
    }

    /// The built-in rules with `user`'s ahead: a user entry replaces the built-in entry of the
    /// same name (whole), a new name is tried before every built-in one.
    pub fn with_overrides(user: Vec<ProviderSpec>) -> Result<ProviderTable, String> {
        let builtin = ProviderTable::builtin();
        let mut table = ProviderTable::from_rules(user)?;
        for (i, a) in table.providers.iter().enumerate() {
            if table.providers[..i].iter().any(|b| b.name() == a.name()) {
                return Err(format!("provider `{}` is given twice", a.name()));
            }
        }
        let replaced: Vec<String> = table.providers.iter().map(|p| p.name().into()).collect();
        table.providers.extend(
            builtin
                .providers
                .into_iter()
                .filter(|p| !replaced.iter().any(|n| n == p.name())),
        );
        Ok(table)
    }

    /// The provider of `domain` (ASCII, lowercase) whose mail goes to `mx_hosts`: the first
    /// rule matching one of the hosts (and listing the domain, when it lists domains), else
    /// `self_hosted`.
    pub fn detect(&self, domain: &str, mx_hosts: &[&str]) -> Arc<ProviderRules> {
        self.providers
            .iter()
            .find(|p| p.serves(domain, mx_hosts))
            .cloned()
            .unwrap_or_else(ProviderRules::self_hosted)
    }

    /// Every provider, in the order they are tried.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderRules> {
        self.providers.iter().map(|p| &**p)
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&ProviderRules> {
        self.providers().find(|p| p.name() == name)
    }
}

#[cfg(test)]
mod tests;
