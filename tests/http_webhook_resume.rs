//! Webhooks survive a coordinator killed with SIGKILL (RabbitMQ and Redis; skipped loudly
//! without them, a failure under CI). A receiver in this test first takes results and refuses
//! completions: campaign 1 finishes, every result delivered, its completion refused. Then it
//! refuses everything: campaign 2 is left running with some results out (no worker takes its
//! probes), their delivery refused. The coordinator is killed, the receiver starts accepting,
//! a new coordinator on the same prefix goes on. Then: every row of both campaigns was
//! delivered, each row always under one delivery id (a delivery sent again keeps its id and
//! its rows), campaign 1's delivered results were not sent again, exactly one completion id
//! per campaign, every signature valid. No timing is asserted; every wait is bounded.
#![forbid(unsafe_code)]

mod support_dist;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support_dist::{
    Deployment, Procs, Scratch, Sim, free_port, serial, services_available, unique_tag, wait_for,
};

const TOKEN: &str = "webhook-resume-token";
const SECRET: &str = "resume-s3cret";
const WAIT: Duration = Duration::from_secs(180);

fn http_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/http")
        .join(name)
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Attempt {
    id: String,
    accepted: bool,
    signed: bool,
    body: Value,
}

/// What the receiver answers 200 to (503 to the rest).
const RESULTS_ONLY: u8 = 0;
const NOTHING: u8 = 1;
const EVERYTHING: u8 = 2;

/// A webhook receiver on loopback answering as `mode` says; keeps every attempt.
struct Receiver {
    port: u16,
    mode: Arc<AtomicU8>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a receiver port");
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(RESULTS_ONLY));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (m, att) = (mode.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, att) = (m.clone(), att.clone());
                std::thread::spawn(move || {
                    // A broken exchange is the coordinator's retry to make.
                    let _ = handle(stream, &m, &att);
                });
            }
        });
        Receiver {
            port,
            mode,
            attempts,
        }
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }
}

fn handle(
    stream: TcpStream,
    mode: &AtomicU8,
    attempts: &Mutex<Vec<Attempt>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut headers = BTreeMap::new();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let id = headers
        .get("rollcall-webhook-id")
        .cloned()
        .unwrap_or_default();
    let signed = signature_valid(&headers, &body);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let accepted = match mode.load(Ordering::SeqCst) {
        RESULTS_ONLY => parsed["type"] == "results",
        NOTHING => false,
        _ => true,
    };
    attempts.lock().unwrap().push(Attempt {
        id,
        accepted,
        signed,
        body: parsed,
    });
    let status = if accepted {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    stream.flush()
}

/// `rollcall-signature: t=T,v1=HEX` is HMAC-SHA256(secret, "T.BODY"), with T the timestamp
/// header.
fn signature_valid(headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let Some(signature) = headers.get("rollcall-signature") else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_string()),
            Some(("v1", value)) => v1 = Some(value.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if headers.get("rollcall-webhook-timestamp") != Some(&t) {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut signed = t.into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    let expected: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

/// Starts a coordinator serving HTTP on `http`; waits until it listens.
fn start_coordinator(
    procs: &mut Procs,
    scratch: &Scratch,
    deployment: &Deployment,
    sim: &Sim,
    name: &str,
    http: u16,
) {
    let mut args: Vec<String> = vec![
        "coordinator".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--http-listen".into(),
        format!("127.0.0.1:{http}"),
        "--token".into(),
        TOKEN.into(),
        "--webhook-batch-ms".into(),
        "200".into(),
        "--webhook-retry-first-ms".into(),
        "100".into(),
        "--webhook-retry-max-ms".into(),
        "300".into(),
        // Never given up within the test: a delivery refused now is one to resume.
        "--webhook-attempts".into(),
        "100000".into(),
    ];
    args.extend(deployment.fleet_args());
    args.extend(sim.engine_args());
    procs.spawn(scratch, name, &args);
    wait_for(
        &format!("{name} to listen on {http}"),
        Duration::from_secs(60),
        || {
            if let Some(status) = procs.try_wait(name) {
                panic!("{name} exited with {status}:\n{}", procs.log(name));
            }
            TcpStream::connect(("127.0.0.1", http))
                .is_ok()
                .then_some(())
        },
    );
}

/// `curl` with the token; the answer's JSON.
fn call(method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut command = Command::new("curl");
    command.args(["-sS", "--fail-with-body", "-X", method, url]);
    command.args(["-H", &format!("authorization: Bearer {TOKEN}")]);
    if let Some(body) = body {
        command.args(["-H", "content-type: application/json", "--data-binary"]);
        command.arg(body.to_string());
    }
    let out = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{method} {url} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"))
}

fn submit(base: &str, name: &str, addresses: &[String], hook: u16) -> String {
    let created = call(
        "POST",
        &format!("{base}/v1/campaigns"),
        Some(&serde_json::json!({
            "name": name,
            "addresses": addresses,
            "webhook": {"url": format!("http://127.0.0.1:{hook}/hook"), "secret": SECRET},
        })),
    );
    created["campaign_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no campaign_id in {created}"))
        .to_string()
}

fn state_of(base: &str, campaign: &str) -> String {
    call("GET", &format!("{base}/v1/campaigns/{campaign}"), None)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn of_campaign<'a>(
    attempts: &'a [Attempt],
    campaign: &'a str,
    kind: &'a str,
) -> impl Iterator<Item = &'a Attempt> + 'a {
    attempts
        .iter()
        .filter(move |a| a.body["campaign_id"] == campaign && a.body["type"] == kind)
}

/// Rows of a results delivery.
fn rows_of(attempt: &Attempt) -> BTreeSet<u64> {
    attempt.body["results"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["row"].as_u64()).collect())
        .unwrap_or_default()
}

fn after_all(receiver: &Receiver) -> Vec<Attempt> {
    receiver.attempts()
}

#[test]
fn webhooks_resume_after_the_coordinator_is_killed() {
    const TEST: &str = "webhooks_resume_after_the_coordinator_is_killed";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let tag = unique_tag();
    let scratch = Scratch::new("http-webhook-resume", &tag);
    let deployment = Deployment::new(&tag);
    let mut procs = Procs::default();
    let mut sim = Sim::start(&mut procs, &scratch, "sim", &http_file("fleet.toml"));
    sim.config = http_file("rollcall.toml");
    let receiver = Receiver::start();

    let http = free_port();
    let base = format!("http://127.0.0.1:{http}");
    start_coordinator(
        &mut procs,
        &scratch,
        &deployment,
        &sim,
        "coordinator-1",
        http,
    );
    deployment.start_worker(&mut procs, &scratch, &sim, "w1", None, &[]);

    // Campaign 1 runs to its end: its results are taken, its completion refused.
    let first_list = sim.addresses.clone();
    let first = submit(&base, "finished", &first_list, receiver.port);
    wait_for("campaign 1 to be done", WAIT, || {
        (state_of(&base, &first) == "done").then_some(())
    });
    wait_for("campaign 1's completion to be refused once", WAIT, || {
        of_campaign(&receiver.attempts(), &first, "completed")
            .next()
            .map(drop)
    });

    // Campaign 2: no worker takes its probes, so it stays running with only the entries that
    // settle at the coordinator (not addresses) out; their delivery is refused.
    receiver.mode.store(NOTHING, Ordering::SeqCst);
    procs.kill("w1");
    let mut second_list: Vec<String> = (0..4).map(|i| format!("not an address {i}")).collect();
    // New addresses on the fleet's domains: none in the result cache, each needs a probe.
    second_list.extend(
        sim.addresses
            .iter()
            .filter_map(|a| a.rsplit_once('@'))
            .take(6)
            .enumerate()
            .map(|(i, (_, domain))| format!("resume{i}@{domain}")),
    );
    let second = submit(&base, "running", &second_list, receiver.port);
    wait_for(
        "a results delivery of campaign 2 to be refused",
        WAIT,
        || {
            of_campaign(&receiver.attempts(), &second, "results")
                .any(|a| !a.accepted)
                .then_some(())
        },
    );
    assert_eq!(state_of(&base, &second), "running");
    let before = receiver.attempts();
    let first_rows: BTreeSet<u64> = of_campaign(&before, &first, "results")
        .filter(|a| a.accepted)
        .flat_map(rows_of)
        .collect();
    assert_eq!(
        first_rows.len(),
        first_list.len(),
        "campaign 1's results all taken before the kill"
    );

    procs.kill("coordinator-1");
    receiver.mode.store(EVERYTHING, Ordering::SeqCst);
    let http = free_port();
    let base = format!("http://127.0.0.1:{http}");
    start_coordinator(
        &mut procs,
        &scratch,
        &deployment,
        &sim,
        "coordinator-2",
        http,
    );
    deployment.start_worker(&mut procs, &scratch, &sim, "w2", None, &[]);

    for (campaign, list) in [(&first, &first_list), (&second, &second_list)] {
        wait_for(
            &format!("campaign {campaign}'s completion to be delivered after the restart"),
            WAIT,
            || {
                of_campaign(&receiver.attempts(), campaign, "completed")
                    .any(|a| a.accepted)
                    .then_some(())
            },
        );
        let attempts = receiver.attempts();
        let all: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| a.body["campaign_id"] == campaign.as_str())
            .collect();
        assert!(all.iter().all(|a| a.signed), "a bad signature: {all:?}");
        assert!(
            all.iter().all(|a| a.body["delivery_id"] == a.id.as_str()),
            "the id header is the body's delivery_id"
        );
        // Every attempt of one delivery carries the same rows; each row has one delivery id.
        let mut rows_by_id: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        let mut id_by_row: BTreeMap<u64, &str> = BTreeMap::new();
        let mut delivered = BTreeSet::new();
        for attempt in of_campaign(&attempts, campaign, "results") {
            let rows = rows_of(attempt);
            let kept = rows_by_id
                .entry(&attempt.id)
                .or_insert_with(|| rows.clone());
            assert_eq!(*kept, rows, "delivery {} sent with other rows", attempt.id);
            for row in &rows {
                let id = id_by_row.entry(*row).or_insert(&attempt.id);
                assert_eq!(
                    *id, attempt.id,
                    "row {row} of {campaign} delivered under two ids"
                );
            }
            if attempt.accepted {
                delivered.extend(rows);
            }
        }
        let expected: BTreeSet<u64> = (0..list.len() as u64).collect();
        assert_eq!(
            delivered, expected,
            "every row of {campaign} delivered at least once"
        );
        let completions: BTreeSet<&str> = of_campaign(&attempts, campaign, "completed")
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(
            completions.len(),
            1,
            "one completion id for {campaign}: {completions:?}"
        );
        let done = of_campaign(&attempts, campaign, "completed")
            .find(|a| a.accepted)
            .unwrap();
        assert_eq!(done.body["progress"]["state"], "done");
        assert_eq!(done.body["progress"]["done"], list.len() as u64);
    }
    // Campaign 1's results, all delivered before the kill, were not sent again.
    assert_eq!(
        of_campaign(&after_all(&receiver), &first, "results").count(),
        of_campaign(&before, &first, "results").count(),
        "campaign 1's delivered results sent again after the restart"
    );
    assert_eq!(state_of(&base, &first), "done");
    assert_eq!(state_of(&base, &second), "done");
    // Attempts made before the kill were resumed, not re-cut: the refused delivery of
    // campaign 2 was taken later under its id.
    let after = receiver.attempts();
    for refused in before
        .iter()
        .filter(|a| !a.accepted && a.body["type"] == "results")
    {
        assert!(
            after.iter().any(|a| a.accepted && a.id == refused.id),
            "delivery {} refused before the kill was never taken",
            refused.id
        );
    }
    drop(procs);
    drop(deployment);
}
