//! The exported metrics after a real run: the embedded engine verifies the example fleet
//! (crates/sim/fleets/example.toml) on loopback under a local Prometheus recorder, and the
//! exposition must hold every rollcall metric with values that agree with the output rows.
//!
//! A current-thread runtime inside `metrics::with_local_recorder` keeps every task (engine,
//! fleet, resolver) on the thread that sees the recorder, and leaves the global one alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rollcall_engine::WorkerMetrics;
use rollcall_engine::coordinator::{InputRow, OutputRow};
use rollcall_sim::{FleetSpec, SimOptions};
use tokio::sync::{mpsc, watch};

/// Every metric rollcall exports.
const NAMES: [&str; 20] = [
    "rollcall_verifications_total",
    "rollcall_smtp_replies_total",
    "rollcall_smtp_bad_sequence_total",
    "rollcall_smtp_sessions_opened_total",
    "rollcall_smtp_sessions_active",
    "rollcall_smtp_transactions_total",
    "rollcall_smtp_pipelined_groups_total",
    "rollcall_smtp_command_duration_seconds",
    "rollcall_dns_lookup_duration_seconds",
    "rollcall_queue_published_total",
    "rollcall_queue_redelivered_total",
    "rollcall_queue_depth",
    "rollcall_campaign_addresses",
    "rollcall_site_circuits_open",
    "rollcall_greylist_pending",
    "rollcall_worker_batches_inflight",
    "rollcall_egress_sessions_opened_total",
    "rollcall_egress_rcpts_total",
    "rollcall_egress_blocks_total",
    "rollcall_egress_deferrals_total",
];

/// One sample line of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a numeric value"),
            }
        })
        .collect()
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn value(samples: &[Sample], name: &str, label: (&str, &str)) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
        .map(|s| s.value)
}

/// Runs the example fleet through the embedded engine; returns the number of output rows.
async fn verify_example_fleet() -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/fleets/example.toml");
    let spec = FleetSpec::from_file(&path).unwrap();
    let fleet = rollcall_sim::start(
        &spec,
        SimOptions {
            greylist_delay: Some(Duration::from_millis(400)),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let (config, resolver) = crate::run::simulated::test_engine(&fleet);
    let connector = rollcall_engine::connector(&config).unwrap();

    let mut rows: Vec<String> = fleet.addresses().to_vec();
    rows.push("not an address".into());
    rows.push(rows[0].clone());
    let (in_tx, in_rx) = mpsc::channel(rows.len());
    for (i, text) in rows.iter().enumerate() {
        in_tx
            .send(InputRow {
                row: i as u64 + 1,
                text: text.clone(),
                payload: (),
            })
            .await
            .unwrap();
    }
    drop(in_tx);
    let (out_tx, mut out_rx) = mpsc::channel::<OutputRow<()>>(rows.len());
    let (_stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(rollcall_engine::embedded::run(
        Arc::new(config),
        resolver,
        connector,
        Arc::new(WorkerMetrics::default()),
        in_rx,
        out_tx,
        stop,
        None,
    ));
    let mut out = 0;
    while out_rx.recv().await.is_some() {
        out += 1;
    }
    engine.await.unwrap().unwrap();
    assert_eq!(out, rows.len(), "every row comes out once");
    out
}

#[test]
fn a_run_exports_every_metric_with_bounded_labels() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let recorder = super::builder().unwrap().build_recorder();
    let handle = recorder.handle();
    let rows = metrics::with_local_recorder(&recorder, || {
        super::describe();
        super::start_at_zero();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(verify_example_fleet())
    });
    let text = handle.render();
    let samples = parse(&text);

    for name in NAMES {
        // The exporter writes HELP for registered metrics only.
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is not described:\n{text}"
        );
        let present = samples.iter().any(|s| {
            s.name == *name
                || s.name.strip_suffix("_bucket") == Some(name)
                || s.name.strip_suffix("_count") == Some(name)
        });
        assert!(present, "{name} has no sample:\n{text}");
    }

    assert_eq!(sum(&samples, "rollcall_verifications_total"), rows as f64);
    assert!(
        value(
            &samples,
            "rollcall_verifications_total",
            ("reason", "invalid_syntax")
        ) >= Some(1.0)
    );
    assert_eq!(sum(&samples, "rollcall_smtp_bad_sequence_total"), 0.0);
    assert_eq!(
        value(&samples, "rollcall_campaign_addresses", ("state", "done")),
        Some(rows as f64)
    );
    assert_eq!(
        value(&samples, "rollcall_campaign_addresses", ("state", "total")),
        Some(rows as f64)
    );
    // Every session opened was retired, every batch finished.
    assert_eq!(sum(&samples, "rollcall_smtp_sessions_active"), 0.0);
    assert_eq!(sum(&samples, "rollcall_worker_batches_inflight"), 0.0);
    let opened = sum(&samples, "rollcall_smtp_sessions_opened_total");
    assert!(opened >= 1.0, "{text}");
    let transactions = sum(&samples, "rollcall_smtp_transactions_total");
    assert!(transactions >= 1.0, "{text}");
    // No egress configured: every session went out through the one default egress, and its
    // RCPT count is every RCPT reply.
    assert_eq!(
        value(
            &samples,
            "rollcall_egress_sessions_opened_total",
            ("egress", "default")
        ),
        Some(opened),
        "{text}"
    );
    let rcpt_replies = samples
        .iter()
        .filter(|s| s.name == "rollcall_smtp_replies_total" && s.labels["command"] == "rcpt")
        .map(|s| s.value)
        .sum::<f64>();
    assert_eq!(
        value(
            &samples,
            "rollcall_egress_rcpts_total",
            ("egress", "default")
        ),
        Some(rcpt_replies),
        "{text}"
    );
    // One MAIL reply at most per transaction, and RCPT replies of every class the fleet gives.
    let mail = samples
        .iter()
        .filter(|s| s.name == "rollcall_smtp_replies_total" && s.labels["command"] == "mail")
        .map(|s| s.value)
        .sum::<f64>();
    assert!(mail >= 1.0 && mail <= transactions, "{text}");
    for class in ["2xx", "4xx", "5xx"] {
        assert!(
            samples
                .iter()
                .any(|s| s.name == "rollcall_smtp_replies_total"
                    && s.labels["command"] == "rcpt"
                    && s.labels["class"] == class),
            "no RCPT reply of class {class}:\n{text}"
        );
    }
    assert!(sum(&samples, "rollcall_smtp_pipelined_groups_total") <= transactions);
    for command in ["connect", "transaction"] {
        assert!(
            value(
                &samples,
                "rollcall_smtp_command_duration_seconds_count",
                ("command", command)
            ) >= Some(1.0),
            "no {command} timing:\n{text}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "rollcall_smtp_command_duration_seconds_count",
            ("command", "transaction")
        ),
        Some(transactions)
    );
    assert!(sum(&samples, "rollcall_dns_lookup_duration_seconds_count") >= 1.0);
    assert!(sum(&samples, "rollcall_queue_published_total") >= 1.0);
    assert!(value(&samples, "rollcall_queue_depth", ("shard", "0")).is_some());

    // Bounded labels: never an address, a domain or a host name.
    for sample in &samples {
        for (key, value) in &sample.labels {
            assert!(
                !value.contains('@') && !value.contains(".test") && !value.contains("127."),
                "label {key}={value} of {} is unbounded",
                sample.name
            );
        }
    }
}

/// The `# TYPE` of `name` in an exposition.
fn type_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("# TYPE {name} ")))
}

/// What a process exports right after `install`, before any event.
fn rendered_at_start() -> String {
    let recorder = super::builder().unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        super::describe();
        super::start_at_zero();
    });
    handle.render()
}

#[test]
fn unlabelled_metrics_exist_at_zero_before_any_event() {
    let text = rendered_at_start();
    let samples = parse(&text);
    let zeroed = super::ZERO_COUNTERS
        .iter()
        .map(|name| (name, "counter"))
        .chain(super::ZERO_GAUGES.iter().map(|name| (name, "gauge")));
    for (name, kind) in zeroed {
        assert!(NAMES.contains(name), "{name} is not a rollcall metric");
        assert_eq!(type_of(&text, name), Some(kind), "{name}:\n{text}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is not described:\n{text}"
        );
        let values: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == *name)
            .map(|s| s.value)
            .collect();
        assert_eq!(values, [0.0], "{name} has one sample, 0:\n{text}");
    }
    for name in super::ZERO_HISTOGRAMS {
        assert!(NAMES.contains(&name), "{name} is not a rollcall metric");
        assert_eq!(type_of(&text, name), Some("histogram"), "{name}:\n{text}");
        let count = format!("{name}_count");
        assert_eq!(sum(&samples, &count), 0.0, "{text}");
        assert!(
            samples.iter().any(|s| s.name == count),
            "{name} has no _count:\n{text}"
        );
        assert!(
            samples
                .iter()
                .any(|s| s.name == format!("{name}_bucket") && s.labels["le"] == "+Inf"),
            "{name} has no +Inf bucket:\n{text}"
        );
    }
    // Labelled metrics get their series from events only.
    assert!(!text.contains("rollcall_verifications_total"), "{text}");
    assert!(!text.contains("rollcall_queue_depth"), "{text}");
}

#[test]
fn site_circuits_open_is_a_gauge_of_sites_held_off() {
    let text = rendered_at_start();
    assert_eq!(type_of(&text, "rollcall_site_circuits_open"), Some("gauge"));
    assert!(
        text.contains(
            "# HELP rollcall_site_circuits_open Sites this worker holds off right now because \
             every MX host's circuit is open"
        ),
        "{text}"
    );
}

#[test]
fn process_metrics_are_sampled() {
    let recorder = super::builder().unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        super::process_collector();
    });
    let text = handle.render();
    let samples = parse(&text);
    assert_eq!(
        type_of(&text, "process_cpu_seconds_total"),
        Some("counter"),
        "{text}"
    );
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_threads",
        "process_open_fds",
    ] {
        assert_eq!(type_of(&text, name), Some("gauge"), "{name}:\n{text}");
        assert!(
            sum(&samples, name) >= 1.0,
            "{name} is not positive:\n{text}"
        );
    }
    let start = sum(&samples, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now + 1.0,
        "process started in the future: {start} > {now}"
    );
}

#[test]
fn the_exposition_parser_reads_labels_and_values() {
    let samples = parse("# HELP x y\nx_total{a=\"1\",b=\"two\"} 3\ny 0.5\n");
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].labels["b"], "two");
    assert_eq!(sum(&samples, "x_total"), 3.0);
    assert_eq!(value(&samples, "x_total", ("a", "1")), Some(3.0));
    assert_eq!(value(&samples, "y", ("a", "1")), None);
}
