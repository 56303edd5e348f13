//! Config parsing, validation and precedence.

use super::error::EXAMPLE_CONFIG;
use super::*;
use clap::Parser;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    engine: EngineFlags,
}

fn flags(args: &[&str]) -> EngineFlags {
    let mut argv = vec!["rollcall"];
    argv.extend_from_slice(args);
    Flags::try_parse_from(argv).unwrap().engine
}

const FILE: &str = r#"
[identity]
helo = "mx-probe.example.com"
mail_from = "bounce@example.com"
egress = "192.0.2.10"

[smtp]
port = 2525
tls = "require"
connect_timeout = "5s"
command_timeout = "30s"

[dns]
servers = ["127.0.0.1:5353", "::1"]
allow_private_targets = true
timeout = "500ms"

[retry]
greylist = "7s,15s,30s"
defer = ["1s", "2s"]

[shaping.default]
max_sessions = 3

[[shaping.site]]
pattern = "*.example.net"
max_sessions = 1
rcpt_per_minute = 10

[engine]
batch_size = 20
"#;

#[test]
fn valid_file_parses_every_section() {
    let c = Config::from_toml(FILE).unwrap();
    assert_eq!(c.identity.helo.as_deref(), Some("mx-probe.example.com"));
    assert_eq!(c.identity.egress, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(c.smtp.port, Some(2525));
    assert_eq!(c.smtp.tls, Some(TlsSetting::Require));
    assert_eq!(c.smtp.connect_timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        c.dns.servers,
        Some(vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ])
    );
    assert_eq!(c.dns.timeout, Some(Duration::from_millis(500)));
    assert_eq!(
        c.retry.greylist,
        Some(vec![
            Duration::from_secs(7),
            Duration::from_secs(15),
            Duration::from_secs(30)
        ])
    );
    assert_eq!(
        c.retry.defer,
        Some(vec![Duration::from_secs(1), Duration::from_secs(2)])
    );
    assert_eq!(c.shaping.default.max_sessions, Some(3));
    assert_eq!(c.shaping.site.len(), 1);
    assert_eq!(c.shaping.site[0].pattern, "*.example.net");
    assert_eq!(c.shaping.site[0].shaping.rcpt_per_minute, Some(10));
    assert_eq!(c.engine.batch_size, Some(20));
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(Config::from_toml("").unwrap(), Config::default());
    let s = build_engine_config(&Config::default(), &flags(&[]), "probe.example.org").unwrap();
    assert!(s.helo_defaulted);
    assert_eq!(s.engine.helo_name, "probe.example.org");
    assert_eq!(s.engine.mail_from, "verify@probe.example.org");
    assert_eq!(s.engine.smtp_port, 25);
    assert_eq!(s.engine.greylist_retry.len(), 5);
    assert!(!s.engine.allow_private_targets);
    assert!(s.resolver.nameservers.is_empty());
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let err =
        Config::from_toml("[identity]\nhelo = \"a.example\"\nhelo_name = \"x\"\n").unwrap_err();
    let line = err.to_string();
    assert!(line.contains("line 3"), "{line}");
    assert!(line.contains("`identity.helo_name`"), "{line}");
    assert!(line.contains("unknown field"), "{line}");
    assert!(line.contains(EXAMPLE_CONFIG), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn unknown_section_and_unknown_shaping_key_are_rejected() {
    let err = Config::from_toml("[smpt]\nport = 25\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `smpt`"), "{err}");
    let err = Config::from_toml("[[shaping.site]]\npattern = \"*.x.com\"\nmax_sesions = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_sesions"), "{err}");
}

#[test]
fn bad_values_name_the_setting() {
    let err = Config::from_toml("[smtp]\nconnect_timeout = \"10\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`smtp.connect_timeout`"), "{err}");
    assert!(err.contains("no unit"), "{err}");
    let err = Config::from_toml("[smtp]\ntls = \"always\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`smtp.tls`"), "{err}");
    let err = Config::from_toml("[dns]\nservers = [\"resolver\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`dns.servers`") && err.contains("ADDR:PORT"),
        "{err}"
    );
    let err = Config::from_toml("[retry]\ngreylist = \"6m,10x\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`retry.greylist`") && err.contains("unknown unit"),
        "{err}"
    );
}

#[test]
fn merged_values_are_checked() {
    let c = Config::from_toml("[engine]\nbatch_size = 0\n").unwrap();
    let err = build_engine_config(&c, &flags(&[]), "a.example")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`engine.batch_size`"), "{err}");
    let err = build_engine_config(
        &Config::default(),
        &flags(&["--helo", "bad name"]),
        "a.example",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`identity.helo`"), "{err}");
    let err = build_engine_config(
        &Config::default(),
        &flags(&["--mail-from", "nobody"]),
        "a.example",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`identity.mail_from`"), "{err}");
    let s = build_engine_config(
        &Config::default(),
        &flags(&["--mail-from", "<>"]),
        "a.example",
    )
    .unwrap();
    assert_eq!(s.engine.mail_from, "");
}

#[test]
fn file_values_apply_when_no_flag_is_given() {
    let c = Config::from_toml(FILE).unwrap();
    let s = build_engine_config(&c, &flags(&[]), "unused.example").unwrap();
    assert!(!s.helo_defaulted);
    assert_eq!(s.engine.helo_name, "mx-probe.example.com");
    assert_eq!(s.engine.mail_from, "bounce@example.com");
    assert_eq!(s.engine.smtp_port, 2525);
    assert_eq!(s.engine.tls, TlsMode::Require);
    assert_eq!(s.engine.connect_timeout, Duration::from_secs(5));
    assert_eq!(
        s.engine.greeting_timeout,
        EngineConfig::default().greeting_timeout
    );
    assert_eq!(s.engine.greylist_retry[0], Duration::from_secs(7));
    assert!(s.engine.allow_private_targets && s.resolver.allow_private_targets);
    assert_eq!(s.engine.batch_size, 20);
    assert_eq!(s.engine.shaping.default.max_sessions, 3);
    assert_eq!(s.engine.shaping.rules[0].pattern, "*.example.net");
    assert_eq!(s.resolver.nameservers.len(), 2);
    assert_eq!(s.resolver.timeout, Duration::from_millis(500));
}

#[test]
fn flags_override_the_file() {
    let c = Config::from_toml(FILE).unwrap();
    let f = flags(&[
        "--helo",
        "flag.example.org",
        "--smtp-port",
        "2626",
        "--tls",
        "never",
        "--dns",
        "127.0.0.2:53",
        "--dns",
        "127.0.0.3",
        "--greylist-retry",
        "1s,2s",
        "--connect-timeout",
        "2s",
        "--batch-size",
        "7",
    ]);
    let s = build_engine_config(&c, &f, "unused.example").unwrap();
    assert_eq!(s.engine.helo_name, "flag.example.org");
    // mail_from still comes from the file: only what a flag sets is overridden.
    assert_eq!(s.engine.mail_from, "bounce@example.com");
    assert_eq!(s.engine.smtp_port, 2626);
    assert_eq!(s.engine.tls, TlsMode::Never);
    assert_eq!(
        s.resolver.nameservers,
        vec![
            "127.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "127.0.0.3:53".parse().unwrap()
        ]
    );
    assert_eq!(
        s.engine.greylist_retry,
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(s.engine.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.engine.batch_size, 7);
}

#[test]
fn bad_flag_values_are_refused_by_the_parser() {
    let mut argv = vec!["rollcall", "--greylist-retry", "6m,ten"];
    assert!(Flags::try_parse_from(&argv).is_err());
    argv = vec!["rollcall", "--dns", "nameserver.example"];
    assert!(Flags::try_parse_from(&argv).is_err());
}

#[test]
fn nameserver_forms() {
    assert_eq!(
        parse_nameserver("127.0.0.1").unwrap(),
        "127.0.0.1:53".parse().unwrap()
    );
    assert_eq!(
        parse_nameserver("[::1]:5353").unwrap(),
        "[::1]:5353".parse().unwrap()
    );
    assert!(parse_nameserver("127.0.0.1:99999").is_err());
}

#[test]
fn example_config_parses_and_builds() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(EXAMPLE_CONFIG);
    let c = Config::from_file(&path).unwrap();
    assert!(c.identity.helo.is_some());
    assert!(c.shaping.site.iter().any(|r| r.pattern.contains("google")));
    assert!(c.shaping.site.iter().any(|r| r.pattern.contains("outlook")));
    assert!(c.shaping.site.iter().any(|r| r.pattern.contains("yahoo")));
    let settings = build_engine_config(&c, &EngineFlags::default(), "unused.example").unwrap();
    // The example's [cache] says the built-in TTLs out loud.
    assert_eq!(settings.cache, CachePolicy::default());
    assert_eq!(c.cache.deliverable, Some(Duration::from_secs(30 * 86_400)));
}

#[test]
fn cache_ttls_come_from_the_file_in_days_and_unknown_keys_are_refused() {
    let c = Config::from_toml("[cache]\ndeliverable = \"2d\"\nunknown = \"1h\"\n").unwrap();
    let policy = c.cache.policy();
    assert_eq!(policy.deliverable, Duration::from_secs(2 * 86_400));
    assert_eq!(policy.unknown, Duration::from_secs(3600));
    assert_eq!(policy.undeliverable, CachePolicy::default().undeliverable);
    let err = Config::from_toml("[cache]\ndelivrable = \"2d\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("delivrable"), "{err}");
}

#[test]
fn the_lab_preset_sets_what_a_sim_lab_needs_and_a_file_overrides_it() {
    let lab = Config::load(None, true).unwrap();
    let settings = build_engine_config(&lab, &EngineFlags::default(), "lab.test").unwrap();
    assert!(settings.engine.allow_private_targets);
    assert_eq!(settings.engine.smtp_port, 2525);
    assert_eq!(
        settings.resolver.nameservers,
        vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(settings.engine.greylist_retry[0], Duration::from_secs(7));
    assert_eq!(settings.engine.shaping.default.max_sessions, 8);
    let plain = build_engine_config(&Config::default(), &EngineFlags::default(), "x.test").unwrap();
    assert!(
        !plain.engine.allow_private_targets,
        "the preset only with --lab"
    );

    let dir = std::env::temp_dir().join(format!("rollcall-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("over-lab.toml");
    std::fs::write(
        &path,
        "[smtp]\nport = 2600\n\n[shaping.default]\nmax_sessions = 3\n",
    )
    .unwrap();
    let over = Config::load(Some(&path), true).unwrap();
    let settings = build_engine_config(&over, &EngineFlags::default(), "lab.test").unwrap();
    assert_eq!(settings.engine.smtp_port, 2600, "the file's setting wins");
    assert_eq!(settings.engine.shaping.default.max_sessions, 3);
    assert_eq!(
        settings.engine.shaping.default.rcpt_per_transaction, 100,
        "the preset's other settings of a table the file also sets stay"
    );
    assert!(settings.engine.allow_private_targets);
    std::fs::write(&path, "[smtp]\nport = \"x\"\n").unwrap();
    let err = Config::load(Some(&path), true).unwrap_err().to_string();
    assert!(
        err.contains("line 2"),
        "a bad file under --lab names its own line: {err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_says_so() {
    let err = Config::from_file(Path::new("/nonexistent/rollcall.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("--config"));
}

const EGRESS_FILE: &str = r#"
[identity]
helo = "probe.example.com"
mail_from = "verify@example.com"

[[egress]]
name = "a"
bind = "127.0.1.1"
helo = "a.prober.test"

[[egress]]
name = "p1"
proxy = "socks5://127.0.0.1:1080"
proxy_exit = "127.0.0.9"
helo = "p1.prober.test"
mail_from = "bounce@p1.prober.test"
"#;

#[test]
fn egress_tables_become_the_engines_egresses() {
    let file = Config::from_toml(EGRESS_FILE).unwrap();
    let settings = build_engine_config(&file, &flags(&[]), "host.example").unwrap();
    let list = &settings.engine.egresses;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "a");
    assert_eq!(list[0].bind, Some("127.0.1.1".parse().unwrap()));
    assert_eq!(list[0].helo, "a.prober.test");
    assert_eq!(list[0].mail_from, "verify@example.com", "the run's sender");
    assert_eq!(list[1].proxy.as_deref(), Some("socks5://127.0.0.1:1080"));
    assert_eq!(
        list[1].visible_address(),
        Some("127.0.0.9".parse().unwrap())
    );
    assert_eq!(list[1].mail_from, "bounce@p1.prober.test");
}

#[test]
fn egress_flags_win_over_the_file_one_egress_per_address() {
    let file = Config::from_toml(EGRESS_FILE).unwrap();
    let settings = build_engine_config(
        &file,
        &flags(&["--egress", "127.0.1.1", "--egress", "127.0.1.2,127.0.1.3"]),
        "host.example",
    )
    .unwrap();
    let names: Vec<&str> = settings
        .engine
        .egresses
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    assert!(
        settings
            .engine
            .egresses
            .iter()
            .all(|e| e.helo == "probe.example.com")
    );
    let none = build_engine_config(&Config::default(), &flags(&[]), "host.example").unwrap();
    assert!(
        none.engine.egresses.is_empty(),
        "no egress: the default one"
    );
    assert_eq!(none.engine.egress_list().len(), 1);
}

#[test]
fn bad_egress_tables_are_refused_naming_the_setting() {
    for (toml, setting) in [
        (
            "[[egress]]\nname = \"a\"\n[[egress]]\nname = \"a\"\n",
            "egress",
        ),
        ("[[egress]]\nname = \"a b\"\n", "egress.name"),
        (
            "[[egress]]\nname = \"a\"\nproxy = \"socks5://proxy.example:1080\"\n",
            "egress.proxy",
        ),
        (
            "[[egress]]\nname = \"a\"\nbind = \"127.0.0.1\"\nproxy = \"socks5://127.0.0.1:1080\"\n",
            "egress",
        ),
    ] {
        let file = Config::from_toml(toml).unwrap();
        match build_engine_config(&file, &flags(&[]), "host.example") {
            Err(ConfigError::Invalid { setting: s, .. }) => assert_eq!(s, setting, "{toml}"),
            other => panic!("{toml}: {other:?}"),
        }
    }
    assert!(Config::from_toml("[[egress]]\nname = \"a\"\nport = 1\n").is_err());
}
