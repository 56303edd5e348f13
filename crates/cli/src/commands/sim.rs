//! `rollcall sim`: runs the simulated mail fleet standalone on loopback until Ctrl-C.
//!
//! Owns the flags, the startup report (where each host and the DNS server listen), the
//! optional truth and address-list files, and the final counters. The fleet itself is
//! `rollcall_sim`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use rollcall_sim::{FleetSpec, SimOptions};

use crate::exit::EX_USAGE;

/// Flags of `rollcall sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fleet file (TOML): hosts, profiles, sites, domains and/or a `[generate]` population.
    /// See crates/sim/README.md; examples in crates/sim/fleets/.
    #[arg(long, value_name = "FILE")]
    fleet: PathBuf,

    /// SMTP port every host of the fleet listens on (each host on its own 127.x.y.z
    /// address). 0 picks a random free port.
    #[arg(long, value_name = "PORT", default_value_t = 2525)]
    smtp_port: u16,

    /// Where the DNS server listens (UDP and TCP). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5353")]
    dns_listen: SocketAddr,

    /// Write the ground truth (one JSON object per address) to this file.
    #[arg(long, value_name = "OUT.jsonl")]
    truth: Option<PathBuf>,

    /// Write the list of addresses to verify (one per line) to this file.
    #[arg(long, value_name = "OUT.txt")]
    addresses: Option<PathBuf>,

    /// Override the fleet file's greylist delay, e.g. `5s`, `300ms`, `2m`.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    greylist_delay: Option<Duration>,
}

/// Parses `300ms`, `5s`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 5s, 300ms, 2m)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// The longest greylist delay the `--lab` retries (7s, 15s, 30s) get past.
const LAB_GREYLIST_REACH: Duration = Duration::from_secs(52);

/// The `rollcall verify` command line that verifies this fleet's list against it.
fn verify_command(list: Option<&Path>, dns: SocketAddr, smtp_port: Option<u16>) -> String {
    let list = list.map_or_else(
        || "LIST.txt (write it with --addresses LIST.txt)".to_string(),
        |p| shell_word(&p.display().to_string()),
    );
    let mut command = format!("rollcall verify {list} --lab -o results.csv");
    if dns != SocketAddr::from(([127, 0, 0, 1], 5353)) {
        command.push_str(&format!(" --dns {dns}"));
    }
    if let Some(port) = smtp_port.filter(|p| *p != 2525) {
        command.push_str(&format!(" --smtp-port {port}"));
    }
    command
}

/// `word` as one shell word: as it is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._/-+:@%=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What the running fleet is: its DNS and SMTP addresses, its list, and the verify command
/// aimed at it.
fn print_banner(fleet: &rollcall_sim::Fleet, list: Option<&Path>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "dns      {} (udp+tcp)", fleet.dns_addr())?;
    for h in fleet.hosts() {
        let state = if h.down { "  (down)" } else { "" };
        writeln!(stdout, "smtp     {:<21} {}{state}", h.addr, h.name)?;
    }
    writeln!(
        stdout,
        "{} addresses to verify, greylist delay {:?}; Ctrl-C stops",
        fleet.addresses().len(),
        fleet.greylist_delay()
    )?;
    let port = fleet.hosts().first().map(|h| h.addr.port());
    writeln!(
        stdout,
        "verify   {}",
        verify_command(list, fleet.dns_addr(), port)
    )?;
    if fleet.greylist_delay() > LAB_GREYLIST_REACH {
        writeln!(
            stdout,
            "         (--lab retries greylisted addresses for 1m at most: restart with \
             --greylist-delay 5s to see them pass)"
        )?;
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = match FleetSpec::from_file(&args.fleet) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rollcall sim: {e} (fix --fleet {})", args.fleet.display());
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let opts = SimOptions {
        smtp_port: (args.smtp_port != 0).then_some(args.smtp_port),
        dns_listen: args.dns_listen,
        greylist_delay: args.greylist_delay,
    };
    let fleet = rollcall_sim::start(&spec, opts)
        .await
        .context("starting the fleet")?;

    if let Some(path) = &args.truth {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        fleet
            .write_truth_jsonl(BufWriter::new(file))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.addresses {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::new(file);
        for a in fleet.addresses() {
            writeln!(out, "{a}").with_context(|| format!("writing {}", path.display()))?;
        }
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }

    print_banner(&fleet, args.addresses.as_deref())?;

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    let counters = fleet.counters();
    fleet.shutdown().await;

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "totals   {}",
        serde_json::to_string(&counters.totals)?
    )?;
    for (name, c) in &counters.hosts {
        if c.connections > 0 {
            writeln!(stdout, "{name}  {}", serde_json::to_string(c)?)?;
        }
    }
    // Per client address (each egress of the probers), summed over hosts.
    for (ip, c) in &counters.clients {
        writeln!(stdout, "client {ip}  {}", serde_json::to_string(c)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_verify_command_names_only_what_differs_from_the_lab_preset() {
        let default_dns = SocketAddr::from(([127, 0, 0, 1], 5353));
        assert_eq!(
            verify_command(Some(Path::new("list.txt")), default_dns, Some(2525)),
            "rollcall verify list.txt --lab -o results.csv"
        );
        assert_eq!(
            verify_command(
                Some(Path::new("my list.txt")),
                SocketAddr::from(([127, 0, 0, 1], 40053)),
                Some(2600)
            ),
            "rollcall verify 'my list.txt' --lab -o results.csv --dns 127.0.0.1:40053 \
             --smtp-port 2600"
        );
        assert!(verify_command(None, default_dns, Some(2525)).contains("--addresses"));
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
