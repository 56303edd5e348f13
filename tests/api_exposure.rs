//! What the built binary refuses to expose: a coordinator API open beyond loopback without a
//! token (exit 64 before anything connects, unless `--insecure-no-auth`), and the passwords of
//! the Redis and RabbitMQ URLs (in `--help` env values and in connection errors).
//!
//! Every address is on loopback; nothing here needs RabbitMQ or Redis running (the Redis URL
//! points at a closed port, so the connection fails at once).
#![forbid(unsafe_code)]

use std::process::{Command, Output};

const PASSWORD: &str = "hunter2-never-printed";

fn rollcall(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command.args(args);
    // Nothing from the developer's environment decides the outcome.
    for (key, _) in std::env::vars() {
        if key.starts_with("ROLLCALL_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run the rollcall binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Flags that would make the coordinator connect somewhere if it got that far: port 1 on
/// loopback is closed.
const FLEET: [&str; 4] = [
    "--amqp",
    "amqp://guest:guest@127.0.0.1:1/%2f",
    "--redis",
    "redis://127.0.0.1:1",
];

#[test]
fn an_open_api_beyond_loopback_is_a_usage_error() {
    let mut args = vec!["coordinator", "--listen", "0.0.0.0:0"];
    args.extend(FLEET);
    let out = rollcall(&args, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for named in [
        "--token",
        "ROLLCALL_TOKEN",
        "--insecure-no-auth",
        "0.0.0.0:0",
    ] {
        assert!(stderr.contains(named), "{named} missing from: {stderr}");
    }
}

#[test]
fn a_token_or_insecure_no_auth_lets_it_start() {
    // It then gets as far as connecting to Redis (refused: port 1), which is not exit 64.
    let mut with_token = vec!["coordinator", "--listen", "0.0.0.0:0"];
    with_token.extend(FLEET);
    let by_env = rollcall(&with_token, &[("ROLLCALL_TOKEN", "t0k")]);
    let by_flag = {
        let mut args = with_token.clone();
        args.push("--insecure-no-auth");
        rollcall(&args, &[])
    };
    let by_insecure_env = rollcall(&with_token, &[("ROLLCALL_INSECURE_NO_AUTH", "true")]);
    for out in [by_env, by_flag, by_insecure_env] {
        let stderr = text(&out.stderr);
        assert_ne!(out.status.code(), Some(64), "stderr: {stderr}");
        assert!(stderr.contains("Redis"), "got past the check: {stderr}");
    }
}

#[test]
fn help_never_shows_the_url_passwords_from_the_environment() {
    let env = [
        (
            "ROLLCALL_REDIS_URL",
            &*format!("redis://:{PASSWORD}@127.0.0.1:6379"),
        ),
        (
            "ROLLCALL_AMQP_URL",
            &*format!("amqp://rollcall:{PASSWORD}@127.0.0.1:5672/%2f"),
        ),
    ];
    for subcommand in ["coordinator", "worker"] {
        let out = rollcall(&[subcommand, "--help"], &env);
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains("ROLLCALL_REDIS_URL"), "{help}");
        assert!(
            !help.contains(PASSWORD),
            "`{subcommand} --help` shows a password"
        );
    }
}

#[test]
fn a_redis_connection_error_masks_the_password() {
    let redis = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
    for subcommand in ["coordinator", "worker"] {
        let out = rollcall(
            &[
                subcommand,
                "--amqp",
                "amqp://guest:guest@127.0.0.1:1/%2f",
                "--redis",
                &redis,
            ],
            &[],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("redis://:***@127.0.0.1:1/0"), "{stderr}");
        assert!(
            !stderr.contains(PASSWORD),
            "`{subcommand}` printed: {stderr}"
        );
    }
}
