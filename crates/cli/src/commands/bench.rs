//! `rollcall bench`: the fleet benchmark. Generates a fleet with a fixed round-trip latency and
//! no retry-inducing behaviour (normal and catch-all domains, unknown mailboxes), runs the
//! embedded engine against it with a permissive shaping profile, and prints the achieved rate,
//! the theoretical bound of `docs/BENCHMARKS.md` for that fleet, their ratio, and CPU time per
//! 1,000 addresses.

use std::process::ExitCode;

use rollcall_sim::{FleetSpec, SimOptions};

use crate::io::progress::{Progress, ProgressMode};
use crate::run::simulated::{self, Knobs, report_table};

/// Flags of `rollcall bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Addresses on the generated list.
    #[arg(long, default_value_t = 200_000)]
    pub addresses: u32,
    /// Domains they are spread over (Zipf-sized).
    #[arg(long, default_value_t = 4_000)]
    pub domains: u32,
    /// Sites the domains are spread over (Zipf-sized).
    #[arg(long, default_value_t = 50)]
    pub sites: u32,
    /// Server latency per round trip, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Sessions per site (engine cap and server per-IP cap).
    #[arg(long, default_value_t = 4)]
    pub sessions: u32,
    /// RCPTs per transaction.
    #[arg(long, default_value_t = 50)]
    pub rcpt: u32,
    /// Share of listed addresses without a mailbox.
    #[arg(long, default_value_t = 0.2)]
    pub unknown_fraction: f64,
    /// Seed of the generated population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Egress source addresses to probe from: 127.0.1.1 up to N, each with `--sessions` per
    /// site (0: the machine's own address). The report then counts per egress.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=250))]
    pub egress: u32,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Progress display: auto, bar, log or off.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// The generated fleet of a benchmark run.
pub(crate) fn fleet_toml(a: &Args) -> String {
    format!(
        r#"[fleet]
address_base = "127.23.0.0"
seed = {seed}

[profiles.default]
pipelining = true
starttls = true
latency_ms = {latency}
max_conns_per_ip = {sessions}
rcpt_limit = 1000
error_soft_limit = 100000
error_hard_limit = 200000
error_delay_ms = 0

[generate]
seed = {seed}
domains = {domains}
addresses = {addresses}
sites = {sites}
hosts_per_site = 1
zipf_exponent = 1.0
unknown_fraction = {unknown}
full_fraction = 0.0
disabled_fraction = 0.0

[generate.mix]
normal = 0.9
catch_all = 0.1
greylist = 0.0
null_mx = 0.0
a_only = 0.0
nxdomain = 0.0
no_mx = 0.0
blocked = 0.0
mx_down = 0.0
mx_backup = 0.0
"#,
        seed = a.seed,
        latency = a.latency_ms,
        sessions = a.sessions,
        domains = a.domains,
        addresses = a.addresses,
        sites = a.sites,
        unknown = a.unknown_fraction,
    )
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = FleetSpec::from_toml(&fleet_toml(&args))?;
    let mut progress = Progress::new(args.progress, Some(u64::from(args.addresses)));
    let knobs = Knobs {
        sessions: args.sessions,
        rcpt_per_transaction: args.rcpt,
        with_bad_rows: false,
        egresses: args.egress,
    };
    let report = simulated::run(&spec, SimOptions::default(), knobs, None, &mut progress).await?;
    eprintln!("{}", report_table(&report));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}
