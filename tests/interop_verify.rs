//! `rollcall verify` against the real interop Postfix: DNS for `example.test` comes from a
//! simulated fleet whose only host is external (the Postfix listener on 127.0.0.25:2525), and
//! every row's verdict must equal that fleet's truth, which lists the mailboxes Postfix knows
//! (tests/interop/postfix.sh: alice, bob, carol).
//!
//! If Postfix is not answering, the test fails under CI (`CI` set) and is skipped, loudly,
//! everywhere else.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use rollcall_sim::{FleetSpec, SimOptions};
use serde_json::Value;

const POSTFIX: &str = "127.0.0.25:2525";

const FLEET: &str = r#"
[fleet]
address_base = "127.29.0.0"

[[host]]
name = "mx.example.test"
address = "127.0.0.25"
external = true

[[site]]
name = "interop"
mx = [{ host = "mx.example.test", preference = 10 }]

[[domain]]
name = "example.test"
site = "interop"
mailboxes = { "alice" = "valid", "bob" = "valid", "carol" = "valid" }
verify = ["nobody", "ghost"]
"#;

fn postfix_answers() -> bool {
    let Ok(addr) = POSTFIX.parse::<SocketAddr>() else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_postfix_matches_truth() {
    if !postfix_answers() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "Postfix interop listener {POSTFIX} is not answering; run: bash tests/interop/postfix.sh up"
            );
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED interop_verify: Postfix is not answering on {POSTFIX}.\n\
             !!!!!!!! run: bash tests/interop/postfix.sh up   (under CI this is a failure)\n"
        );
        return;
    }
    let spec = FleetSpec::from_toml(FLEET).expect("fleet parses");
    let fleet = rollcall_sim::start(
        &spec,
        SimOptions {
            smtp_port: Some(2525),
            ..SimOptions::default()
        },
    )
    .await
    .expect("fleet (DNS only) starts");
    let dir = std::env::temp_dir().join(format!("rollcall-interop-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list.txt");
    let out = dir.join("out.jsonl");
    std::fs::write(&list, fleet.addresses().join("\n")).unwrap();

    let dns = fleet.dns_addr().to_string();
    let (list_arg, out_arg) = (list.clone(), out.clone());
    let status = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("verify")
            .arg(&list_arg)
            .args(["-o"])
            .arg(&out_arg)
            .args(["--format", "jsonl", "--progress", "off", "--allow-private"])
            .args(["--dns", &dns, "--smtp-port", "2525"])
            .args([
                "--helo",
                "interop.rollcall.test",
                "--mail-from",
                "probe@rollcall.test",
            ])
            .args(["--connect-timeout", "5s", "--command-timeout", "20s"])
            .status()
    })
    .await
    .unwrap()
    .expect("rollcall runs");
    assert!(status.success(), "rollcall verify exited with {status}");

    let text = std::fs::read_to_string(&out).unwrap();
    let rows: HashMap<String, Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["address"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    assert_eq!(
        rows.len(),
        fleet.truth().len(),
        "one row per address:\n{text}"
    );
    for truth in fleet.truth() {
        let row = &rows[&truth.address];
        assert_eq!(
            row["status"],
            name(&truth.status),
            "{}: {row}",
            truth.address
        );
        assert_eq!(
            row["reason"],
            name(&truth.reason),
            "{}: {row}",
            truth.address
        );
        assert_eq!(row["mx"], "mx.example.test", "{row}");
    }
    assert_eq!(rows["alice@example.test"]["smtp_code"], 250);
    assert_eq!(rows["nobody@example.test"]["enhanced_code"], "5.1.1");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
