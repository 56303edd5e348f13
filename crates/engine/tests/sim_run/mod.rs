//! The embedded engine over a running simulated fleet: a list in, every output row (keyed by
//! row number, each checked to come out once) and the run's summary out. The fleet's DNS
//! server answers the lookups; `config` says everything else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rollcall_dns::{MxResolver, ResolverConfig};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::{InputRow, OutputRow};
use rollcall_engine::summary::Summary;
use rollcall_sim::Fleet;
use tokio::sync::{mpsc, watch};

/// Verifies `rows` (row numbers from 1) against `fleet` with `config`.
pub async fn verify_on_fleet(
    fleet: &Fleet,
    config: EngineConfig,
    rows: Vec<String>,
) -> (HashMap<u64, OutputRow<()>>, Summary) {
    let connector = rollcall_engine::connector(&config).expect("identity is valid");
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(1),
        ..ResolverConfig::default()
    })
    .expect("resolver");
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<OutputRow<()>>(64);
    let (_stop_tx, stop) = watch::channel(false);
    let feeder = tokio::spawn(async move {
        for (i, text) in rows.into_iter().enumerate() {
            let row = InputRow {
                row: i as u64 + 1,
                text,
                payload: (),
            };
            if in_tx.send(row).await.is_err() {
                return;
            }
        }
    });
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
    let mut out = HashMap::new();
    while let Some(row) = out_rx.recv().await {
        assert!(out.insert(row.row, row).is_none(), "a row came out twice");
    }
    feeder.await.unwrap();
    let summary = engine.await.unwrap().expect("engine ran");
    (out, summary)
}
