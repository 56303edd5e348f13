//! `rollcall doctor`: checks a machine's ways out (its egresses) before a run. For each egress:
//! does its HELO name resolve to the address servers see (`helo_resolves`), does that address
//! have forward-confirmed reverse DNS (`fcrdns`), can its MAIL FROM domain receive mail
//! (`mail_from_domain`), and does an SMTP session open from it to each target
//! (`smtp_connect`, through the proxy for a proxy egress).
//!
//! Owns the flags, the order of the checks, the report (one line per check, or one JSON array)
//! and the exit code: 0 when nothing failed, 1 when a check failed, 64 for bad flags or
//! config. What one check found is `doctor::finding`, the DNS checks are in `doctor::names`, the
//! targets and the SMTP check in `doctor::outbound`; DNS answers come from `rollcall_dns::MxResolver` (the configured
//! nameservers), sessions from `rollcall_smtp::Session`. Server and DNS text reach the
//! terminal only through `console::shown`.

mod finding;
mod names;
mod outbound;

use std::process::ExitCode;

use futures_util::future::join_all;
use rollcall_dns::MxResolver;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::egress::Egress;
use serde::Serialize;

use crate::config::EngineFlags;
use crate::exit::EX_USAGE;
use crate::io::console::{self, shown};
use crate::run::settings::load_settings;

use finding::{Finding, Status};
use outbound::Target;

const AFTER_HELP: &str = "\
Checks, for every egress (the [[egress]] tables, --egress IP, or the one default egress):
  helo_resolves     the HELO name's A/AAAA records include the address servers see from the
                    egress (its bind address, or a proxy's proxy_exit); SKIP when unknown
  fcrdns            that address has a PTR record whose name resolves back to it
                    (forward-confirmed reverse DNS); a PTR name other than the HELO name is
                    noted in the detail
  mail_from_domain  the MAIL FROM domain has an MX (not a null MX) or an A/AAAA record; SKIP
                    for the null sender <>
  smtp_connect      from the egress (its bind address, or through its proxy) to each --target
                    and each MX host of each --target-domain: connect, greeting, EHLO,
                    STARTTLS when offered, QUIT; SKIP without a target
Targets in private or loopback ranges are refused unless --allow-private. DNS questions go to
the configured servers (--dns, [dns] servers).

Output: `STATUS  egress NAME  CHECK: DETAIL` per check (a `fix:` line under a FAIL or SKIP
that has one) and a summary line; with --json, one JSON array of {egress, check, target,
status, detail, fix} instead.

Exit codes: 0 nothing failed, 1 a check failed, 64 bad flags or config.";

/// Flags of `rollcall doctor`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// Test outbound SMTP to this host: an IP, IP:PORT, [IPv6]:PORT, NAME or NAME:PORT (port:
    /// --smtp-port, 25 by default; a name is resolved with the configured DNS). Repeatable.
    #[arg(long = "target", value_name = "HOST[:PORT]")]
    targets: Vec<String>,

    /// Test outbound SMTP to the MX hosts of DOMAIN (at most 5, most preferred first; the
    /// domain itself when it has no MX), looked up with the configured DNS. Repeatable.
    #[arg(long = "target-domain", value_name = "DOMAIN")]
    target_domains: Vec<String>,

    /// Print one JSON array of checks (egress, check, target, status, detail, fix) on stdout
    /// instead of lines.
    #[arg(long)]
    json: bool,

    /// Boxed: the engine flags are large, and `Command` holds one variant per command.
    #[command(flatten)]
    engine: Box<EngineFlags>,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
struct Check {
    egress: String,
    check: &'static str,
    /// The target of an `smtp_connect` check.
    target: Option<String>,
    status: Status,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn new(egress: &Egress, check: &'static str, target: Option<&str>, found: Finding) -> Check {
        Check {
            egress: egress.name.clone(),
            check,
            target: target.map(str::to_string),
            status: found.status,
            detail: found.detail,
            fix: found.fix,
        }
    }
}

/// What every egress's checks share.
struct Doctor {
    engine: EngineConfig,
    dns: MxResolver,
    targets: Vec<Target>,
    /// No HELO name was configured: the run-wide one is a guess.
    helo_defaulted: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = match load_settings(&args.engine) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    let port = settings.engine.smtp_port;
    let mut specs = Vec::new();
    for text in &args.targets {
        match outbound::parse_target(text, port) {
            Ok(spec) => specs.push(spec),
            Err(reason) => return usage(format_args!("--target `{}`: {reason}", shown(text))),
        }
    }
    for domain in &args.target_domains {
        match outbound::parse_domain(domain) {
            Ok(spec) => specs.push(spec),
            Err(reason) => {
                return usage(format_args!(
                    "--target-domain `{}`: {reason}",
                    shown(domain)
                ));
            }
        }
    }
    let dns = match MxResolver::new(settings.resolver) {
        Ok(dns) => dns,
        Err(e) => {
            return usage(format_args!(
                "DNS: {e} (fix: --dns ADDR[:PORT] or [dns] servers)"
            ));
        }
    };
    let targets =
        outbound::resolve(&dns, &specs, port, settings.engine.allow_private_targets).await;
    let doctor = Doctor {
        engine: settings.engine,
        dns,
        targets,
        helo_defaulted: settings.helo_defaulted,
    };
    let egresses = doctor.engine.egress_list();
    let checks: Vec<Check> = join_all(egresses.iter().map(|e| doctor.egress(e)))
        .await
        .into_iter()
        .flatten()
        .collect();
    report(&checks, egresses.len(), args.json);
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    Ok(if failed {
        // At least one check failed.
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

impl Doctor {
    /// Every check of one egress, in report order. The three DNS checks run at once, then one
    /// SMTP session per target, all at once.
    async fn egress(&self, egress: &Egress) -> Vec<Check> {
        let defaulted = self.helo_defaulted && egress.helo == self.engine.helo_name;
        let (helo, fcrdns, mail_from) = tokio::join!(
            names::helo_resolves(&self.dns, egress, defaulted),
            names::fcrdns(&self.dns, egress),
            names::mail_from_domain(&self.dns, egress),
        );
        let mut checks = vec![
            Check::new(egress, "helo_resolves", None, helo),
            Check::new(egress, "fcrdns", None, fcrdns),
            Check::new(egress, "mail_from_domain", None, mail_from),
        ];
        if self.targets.is_empty() {
            checks.push(Check::new(
                egress,
                "smtp_connect",
                None,
                Finding::skip(
                    "no target given",
                    Some(
                        "add --target HOST[:PORT] or --target-domain DOMAIN to test outbound \
                         SMTP (port 25) from this egress"
                            .into(),
                    ),
                ),
            ));
            return checks;
        }
        let sessions = join_all(
            self.targets
                .iter()
                .map(|t| outbound::smtp_connect(&self.engine, egress, t)),
        )
        .await;
        for (target, found) in self.targets.iter().zip(sessions) {
            checks.push(Check::new(
                egress,
                "smtp_connect",
                Some(&target.label),
                found,
            ));
        }
        checks
    }
}

/// Writes the report on stdout: lines and a summary, or one JSON array (the summary then goes
/// to stderr).
fn report(checks: &[Check], egresses: usize, json: bool) {
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let summary = format!(
        "doctor: {} passed, {} failed, {} skipped ({} egress{})",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
        egresses,
        if egresses == 1 { "" } else { "es" }
    );
    if json {
        match serde_json::to_string_pretty(checks) {
            Ok(text) => console::out_line(text),
            Err(e) => console::err_line(format_args!("rollcall doctor: cannot write JSON: {e}")),
        }
        console::err_line(summary);
        return;
    }
    for line in checks.iter().flat_map(lines) {
        console::out_line(line);
    }
    console::out_line(summary);
}

/// The text lines of one check: `STATUS  egress NAME  CHECK: DETAIL`, then `      fix: ...`
/// under a FAIL or SKIP that has one.
fn lines(check: &Check) -> Vec<String> {
    let mut out = vec![format!(
        "{}  egress {}  {}: {}",
        check.status.label(),
        check.egress,
        check.check,
        shown(&check.detail)
    )];
    if check.status != Status::Pass
        && let Some(fix) = &check.fix
    {
        out.push(format!("      fix: {}", shown(fix)));
    }
    out
}

fn usage(message: std::fmt::Arguments<'_>) -> anyhow::Result<ExitCode> {
    console::err_line(format_args!("rollcall doctor: {message}"));
    Ok(ExitCode::from(EX_USAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Status, fix: Option<&str>) -> Check {
        Check {
            egress: "a".into(),
            check: "fcrdns",
            target: None,
            status,
            detail: "127.0.1.2 has no PTR record\r\x1b[2J".into(),
            fix: fix.map(str::to_string),
        }
    }

    #[test]
    fn lines_show_status_egress_check_and_escaped_detail() {
        let fail = lines(&check(Status::Fail, Some("set the PTR")));
        assert_eq!(
            fail,
            [
                "FAIL  egress a  fcrdns: 127.0.1.2 has no PTR record\\x0d\\x1b[2J",
                "      fix: set the PTR",
            ]
        );
        // A PASS never shows a fix line; a SKIP shows how to lift it.
        assert_eq!(lines(&check(Status::Pass, Some("x"))).len(), 1);
        assert_eq!(lines(&check(Status::Skip, Some("x"))).len(), 2);
        assert_eq!(lines(&check(Status::Skip, None)).len(), 1);
    }

    #[test]
    fn json_holds_every_field_with_lowercase_status() {
        let v = serde_json::to_value([check(Status::Skip, None)]).unwrap();
        assert_eq!(v[0]["status"], "skip");
        assert_eq!(v[0]["check"], "fcrdns");
        assert_eq!(v[0]["egress"], "a");
        assert!(v[0]["fix"].is_null() && v[0]["target"].is_null());
        assert!(v[0]["detail"].as_str().unwrap().contains('\u{1b}'));
    }
}
