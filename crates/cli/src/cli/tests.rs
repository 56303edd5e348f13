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

/// Every on/off flag that a `ROLLCALL_*` variable can set takes the spellings a shell user
/// writes (`1`/`0`, `yes`/`no`, `on`/`off`, `true`/`false`), not only `true`/`false`.
#[test]
fn boolean_variables_take_yes_and_1() {
    fn walk(cmd: &clap::Command, bad: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let on_off = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            let Some(env) = arg.get_env().filter(|_| on_off) else {
                continue;
            };
            let names: Vec<String> = arg
                .get_value_parser()
                .possible_values()
                .map(|values| values.map(|v| v.get_name().to_string()).collect())
                .unwrap_or_default();
            if !["yes", "1", "no", "0"]
                .iter()
                .all(|v| names.iter().any(|n| n == v))
            {
                bad.push(format!("{} {:?}", cmd.get_name(), env));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, bad);
        }
    }
    let mut bad = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut bad);
    assert!(bad.is_empty(), "take only true/false: {bad:?}");
}
