//! The whole command line parsed as the binary parses it: `rollcall COMMAND FLAGS...`.

use clap::Parser as _;

use super::{Cli, Command};

#[test]
fn client_commands_parse() {
    assert!(
        Cli::try_parse_from([
            "rollcall",
            "watch",
            "c1",
            "--coordinator",
            "http://127.0.0.1:1"
        ])
        .is_ok()
    );
    assert!(
        Cli::try_parse_from(["rollcall", "submit", "list.txt", "--wait", "-o", "out.csv"]).is_ok()
    );
    // -o without --wait would silently write nothing.
    assert!(Cli::try_parse_from(["rollcall", "submit", "list.txt", "-o", "out.csv"]).is_err());
    assert!(
        Cli::try_parse_from([
            "rollcall",
            "coordinator",
            "--amqp",
            "amqp://127.0.0.1",
            "--redis",
            "redis://127.0.0.1",
            "--listen",
            "127.0.0.1:0",
        ])
        .is_ok()
    );
    let limited = Cli::try_parse_from([
        "rollcall",
        "coordinator",
        "--amqp",
        "amqp://127.0.0.1",
        "--redis",
        "redis://127.0.0.1",
        "--max-rows",
        "10",
        "--keep-finished",
        "0",
    ]);
    match limited.map(|cli| cli.command) {
        Ok(Command::Coordinator(args)) => {
            assert_eq!((args.api.max_rows, args.api.keep_finished), (10, 0));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn worker_flags_parse_with_the_engine_flags() {
    let cli = Cli::try_parse_from([
        "rollcall",
        "worker",
        "--amqp",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "--redis",
        "redis://127.0.0.1:6379",
        "--shards",
        "8",
        "--max-shards",
        "4",
        "--smtp-port",
        "2525",
        "--allow-private",
        "--metrics-listen",
        "127.0.0.1:9100",
        "--worker-id",
        "w1",
    ])
    .unwrap();
    let Command::Worker(args) = cli.command else {
        panic!("not the worker command");
    };
    assert_eq!(args.fleet.shards, 8);
    assert_eq!(args.max_shards, Some(4));
    assert_eq!(args.fleet.prefix, "rollcall");
    assert_eq!(args.engine.smtp_port, Some(2525));
    assert!(args.engine.allow_private);
    assert_eq!(args.worker_id.as_deref(), Some("w1"));
    assert_eq!(
        args.fleet.metrics_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
}

#[test]
fn worker_needs_a_broker_and_a_store() {
    // Absent from the environment of the test run, the URLs must come from flags.
    if std::env::var_os("ROLLCALL_AMQP_URL").is_none() {
        assert!(
            Cli::try_parse_from(["rollcall", "worker", "--redis", "redis://127.0.0.1"]).is_err()
        );
    }
}
