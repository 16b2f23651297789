use std::collections::HashMap;
use std::path::PathBuf;

use super::*;

/// The part of the portal's section these tests read. Its owner (the dvcqg adapter) types the
/// whole section; here only the loader's work on it is under test.
#[derive(serde::Deserialize)]
struct PortalLogin {
    #[serde(default)]
    madonvi: String,
    #[serde(default)]
    password: Secret,
}

fn portal_login(s: &Settings) -> PortalLogin {
    s.section("dvcqg")
        .expect("default.toml has a dvcqg section")
        .parse()
        .expect("parses")
}

fn source(env_name: &str, vars: &[(&str, &str)]) -> Source {
    Source {
        dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        env_name: env_name.into(),
        vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
    }
}

#[test]
fn local_profile_loads_with_memory_queue_and_dev_keys() {
    let s = load(&source("local", &[])).unwrap();
    assert_eq!(s.queue.backend, QueueBackendKind::Memory);
    assert_eq!(s.auth.keys.len(), 3);
    assert_eq!(s.server.bind, "127.0.0.1:8080");
    assert_eq!(portal_login(&s).madonvi, "000.00.22.H46");
}

#[test]
fn environment_overrides_files_and_parses_types() {
    let s = load(&source(
        "local",
        &[
            ("HCC__SERVER__BIND", "0.0.0.0:9000"),
            ("HCC__QUEUE__BACKEND", "redis"),
            ("HCC__DELIVERY__CONCURRENCY", "7"),
            ("HCC__DVCQG__PASSWORD", "12345"),
        ],
    ))
    .unwrap();
    assert_eq!(s.server.bind, "0.0.0.0:9000");
    assert_eq!(s.queue.backend, QueueBackendKind::Redis);
    assert_eq!(s.delivery.concurrency, 7);
    // A numeric-looking secret stays a string.
    assert_eq!(portal_login(&s).password.expose(), "12345");
}

#[test]
fn secrets_can_come_from_files() {
    let dir = std::env::temp_dir().join(format!("hcc-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pw");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let s = load(&source("local", &[("HCC__DVCQG__PASSWORD_FILE", file.to_str().unwrap())])).unwrap();
    assert_eq!(portal_login(&s).password.expose(), "from-a-file");
    let err = load(&source("local", &[("HCC__PAYGOV__SECRET_FILE", "/nonexistent/secret")])).unwrap_err();
    assert_eq!(err.problems()[0].key, "paygov.secret_file");
}

#[test]
fn bad_values_name_their_key() {
    let err = load(&source("local", &[("HCC__DELIVERY__CONCURRENCY", "many")])).unwrap_err();
    assert!(err.problems()[0].key.contains("delivery.concurrency"), "{err}");
    let err = load(&source("local", &[("HCC__SERVER__BIND", "nowhere")])).unwrap_err();
    assert_eq!(err.problems()[0].key, "server.bind");
    let err = load(&source("local", &[("HCC__DELIVERY__LEASE_MS", "5000")])).unwrap_err();
    assert_eq!(err.problems()[0].key, "delivery.lease_ms");
    let err = load(&source("local", &[("HCC__QUEUE__BACKEND", "kafka")])).unwrap_err();
    assert!(err.problems()[0].key.contains("queue.backend"), "{err}");
}

#[test]
fn production_refuses_dev_keys_and_memory_queue() {
    // There is no production.toml here, so production gets default.toml plus these variables
    // and, to exercise the dev-key rule, the local profile's keys copied in by hand.
    let dir = std::env::temp_dir().join(format!("hcc-config-prod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("default.toml"),
        dir.join("default.toml"),
    )
    .unwrap();
    let local = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("local.toml")).unwrap();
    std::fs::write(dir.join("production.toml"), local).unwrap();
    let src = Source {
        dir,
        env_name: "production".into(),
        vars: HashMap::new(),
    };
    let err = load(&src).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"queue.backend"), "{keys:?}");
    assert!(keys.contains(&"auth.keys[0]") && keys.contains(&"auth.keys[2]"), "{keys:?}");
}

#[test]
fn production_refuses_a_plain_http_timestamp_authority_unless_pinned_or_loopback() {
    let tsa_problems = |vars: &[(&str, &str)]| -> Vec<String> {
        let s = load(&source("local", vars)).unwrap();
        s.problems(true)
            .into_iter()
            .filter(|p| p.key.starts_with("signing."))
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    };
    let refused = tsa_problems(&[("HCC__SIGNING__TSA_URL", "http://tsa.example.vn/tsr")]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("signing.tsa_url: must be https") && refused[0].contains("signing.tsa_ca"),
        "{refused:?}"
    );
    for ok in [
        vec![("HCC__SIGNING__TSA_URL", "https://tsa.example.vn/tsr")],
        vec![("HCC__SIGNING__TSA_URL", "http://127.0.0.1:9104/")],
        vec![("HCC__SIGNING__TSA_URL", "http://localhost:9104/")],
        vec![("HCC__SIGNING__TSA_URL", "http://[::1]:9104/")],
        vec![
            ("HCC__SIGNING__TSA_URL", "http://tsa.example.vn/tsr"),
            ("HCC__SIGNING__TSA_CA", "/etc/hcc/tsa-ca.pem"),
        ],
    ] {
        assert!(tsa_problems(&ok).is_empty(), "{ok:?}: {:?}", tsa_problems(&ok));
    }
    // Outside production, http is not refused here.
    let s = load(&source("local", &[("HCC__SIGNING__TSA_URL", "http://tsa.example.vn/tsr")])).unwrap();
    assert!(s.problems(false).iter().all(|p| p.key != "signing.tsa_url"));
    // A loopback-looking name is not loopback.
    assert_eq!(tsa_problems(&[("HCC__SIGNING__TSA_URL", "http://127.0.0.1.evil.vn/")]).len(), 1);
}

#[test]
fn secrets_do_not_print() {
    let s = load(&source("local", &[])).unwrap();
    let dump = format!("{s:?}");
    assert!(!dump.contains("hcc-dev-password"));
    assert!(!dump.contains("paygov-dev-secret"));
}

#[test]
fn destination_overrides_apply_to_one_destination() {
    let s = load(&source("local", &[("HCC__DESTINATIONS__DVCQG__CONCURRENCY", "3")])).unwrap();
    assert_eq!(s.delivery_for("dvcqg").concurrency, 3);
    assert_eq!(s.delivery_for("centre").concurrency, s.delivery.concurrency);
}

#[test]
fn breaker_and_backoff_keys_have_defaults_and_per_destination_overrides() {
    let s = load(&source(
        "local",
        &[
            ("HCC__DESTINATIONS__DVCQG__BREAKER_FAILURE_RATE_PERCENT", "60"),
            ("HCC__DESTINATIONS__DVCQG__BREAKER_MIN_CALLS", "60"),
            ("HCC__DESTINATIONS__DVCQG__BREAKER_WINDOW_MS", "20000"),
            ("HCC__DESTINATIONS__DVCQG__BREAKER_HALF_OPEN_PROBES", "5"),
            ("HCC__DESTINATIONS__DVCQG__BACKOFF_HEALTHY_MAX_MS", "15000"),
        ],
    ))
    .unwrap();
    let d = s.delivery_for("centre");
    assert_eq!(
        (
            d.breaker_failure_rate_percent,
            d.breaker_min_calls,
            d.breaker_window_ms,
            d.breaker_half_open_probes,
            d.breaker_failure_threshold,
            d.breaker_cooldown_ms,
            d.backoff_healthy_max_ms,
            d.backoff_max_ms
        ),
        (50, 40, 10_000, 3, 0, 30_000, 30_000, 600_000)
    );
    let p = s.delivery_for("dvcqg");
    assert_eq!(
        (
            p.breaker_failure_rate_percent,
            p.breaker_min_calls,
            p.breaker_window_ms,
            p.breaker_half_open_probes,
            p.backoff_healthy_max_ms
        ),
        (60, 60, 20_000, 5, 15_000)
    );
}

#[test]
fn default_toml_states_the_built_in_delivery_defaults() {
    // A section left out of a file falls back to the built-in defaults; default.toml documents
    // them, so the two must agree.
    let s = load(&source("local", &[])).unwrap();
    let d = DeliverySettings::default();
    assert_eq!(
        (
            s.delivery.backoff_healthy_max_ms,
            s.delivery.breaker_failure_rate_percent,
            s.delivery.breaker_min_calls,
            s.delivery.breaker_window_ms,
            s.delivery.breaker_half_open_probes,
            s.delivery.breaker_failure_threshold,
            s.delivery.breaker_cooldown_ms
        ),
        (
            d.backoff_healthy_max_ms,
            d.breaker_failure_rate_percent,
            d.breaker_min_calls,
            d.breaker_window_ms,
            d.breaker_half_open_probes,
            d.breaker_failure_threshold,
            d.breaker_cooldown_ms
        )
    );
}

#[test]
fn the_streak_key_of_older_configs_is_still_accepted() {
    // Older configs (and the test harness) set the consecutive-failures rule; it stays a valid,
    // optional second rule.
    let s = load(&source("local", &[("HCC__DELIVERY__BREAKER_FAILURE_THRESHOLD", "50")])).unwrap();
    assert_eq!(s.delivery.breaker_failure_threshold, 50);
    let s = load(&source("local", &[("HCC__DESTINATIONS__CENTRE__BREAKER_FAILURE_THRESHOLD", "0")])).unwrap();
    assert_eq!(s.delivery_for("centre").breaker_failure_threshold, 0);
}

#[test]
fn bad_breaker_and_backoff_values_name_their_key() {
    for (var, key) in [
        (
            "HCC__DELIVERY__BREAKER_FAILURE_RATE_PERCENT",
            "delivery.breaker_failure_rate_percent",
        ),
        ("HCC__DELIVERY__BREAKER_MIN_CALLS", "delivery.breaker_min_calls"),
        ("HCC__DELIVERY__BREAKER_WINDOW_MS", "delivery.breaker_window_ms"),
        ("HCC__DELIVERY__BREAKER_HALF_OPEN_PROBES", "delivery.breaker_half_open_probes"),
        ("HCC__DELIVERY__BACKOFF_HEALTHY_MAX_MS", "delivery.backoff_healthy_max_ms"),
        (
            "HCC__DESTINATIONS__DVCQG__BREAKER_HALF_OPEN_PROBES",
            "destinations.dvcqg.breaker_half_open_probes",
        ),
    ] {
        let err = load(&source("local", &[(var, "0")])).unwrap_err();
        assert_eq!(err.problems()[0].key, key, "{err}");
    }
    let err = load(&source("local", &[("HCC__DELIVERY__BREAKER_FAILURE_RATE_PERCENT", "101")])).unwrap_err();
    assert_eq!(err.problems()[0].key, "delivery.breaker_failure_rate_percent");
}

#[test]
fn the_payment_providers_sections_are_kept_for_them_and_never_printed() {
    let s = load(&source("local", &[("HCC__BANKS__VCB__CERT", "/etc/hcc/vcb.pem")])).expect("loads");
    for name in ["paygov", "vnpay", "vietqr", "banks", "payments"] {
        assert!(s.section(name).is_some(), "{name} is kept raw for the payments");
    }
    assert_eq!(
        s.unclaimed_sections(&[
            "paygov",
            "vnpay",
            "vietqr",
            "banks",
            "payments",
            "dvcqg",
            "centre",
            "inbound",
            "dvclt",
            "catalogue",
            "emc",
            "evidence"
        ]),
        vec![]
    );
    // local.toml's PayGov secret is in a raw section now; Debug still never shows it.
    assert!(s.section("paygov").is_some_and(|p| !format!("{p:?}").contains("paygov-dev-secret")));
}

#[test]
fn a_section_the_core_does_not_type_is_kept_for_its_owner_and_parsed_by_it() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Echo {
        url: String,
        limit: u32,
    }
    // From the environment every value is a string: the owner's types still apply.
    let s = load(&source("local", &[("HCC__ECHO__URL", "http://x"), ("HCC__ECHO__LIMIT", "7")])).expect("loads");
    let echo: Echo = s.section("echo").expect("kept").parse().expect("parses");
    assert_eq!((echo.url.as_str(), echo.limit), ("http://x", 7));
    // The destinations' and payment providers' sections are kept the same way.
    let owners = [
        "echo",
        "dvcqg",
        "centre",
        "paygov",
        "vnpay",
        "vietqr",
        "banks",
        "payments",
        "inbound",
        "dvclt",
        "catalogue",
        "emc",
        "evidence",
    ];
    assert_eq!(s.unclaimed_sections(&owners), vec![]);
    let unclaimed = s.unclaimed_sections(&owners[1..]);
    assert_eq!(unclaimed.len(), 1);
    assert_eq!(unclaimed[0].key, "echo");
    // A wrong type names the key inside the section.
    let bad = crate::Section::from_toml("echo", "url = \"u\"\nlimit = \"many\"\n").expect("toml");
    let err = bad.parse::<Echo>().expect_err("limit is not a number");
    assert!(err.key.starts_with("echo"), "{err:?}");
    let unknown = crate::Section::from_toml("echo", "url = \"u\"\nlimit = 1\nlimt = 2\n").expect("toml");
    assert!(unknown.parse::<Echo>().is_err());
}

#[test]
fn redis_modes_take_nodes_as_a_list_or_comma_separated_from_the_environment() {
    let s = load(&source(
        "local",
        &[
            ("HCC__QUEUE__BACKEND", "redis"),
            ("HCC__QUEUE__REDIS_MODE", "sentinel"),
            ("HCC__QUEUE__REDIS_NODES", "redis://127.0.0.1:26379, redis://127.0.0.1:26380,"),
            ("HCC__QUEUE__SENTINEL_MASTER", "hcc"),
            ("HCC__QUEUE__MIN_REPLICAS", "1"),
        ],
    ))
    .unwrap();
    assert_eq!(s.queue.redis_mode, RedisMode::Sentinel);
    let nodes: Vec<&str> = s.queue.redis_nodes.iter().map(Secret::expose).collect();
    assert_eq!(nodes, ["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"]);
    assert_eq!(s.queue.min_replicas, 1);
    assert_eq!(s.queue.replica_timeout_ms, 1000);

    let dir = std::env::temp_dir().join(format!("hcc-config-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("default.toml"),
        dir.join("default.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("local.toml"),
        "[queue]\nredis_mode = \"cluster\"\nredis_nodes = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n",
    )
    .unwrap();
    let s = load(&Source {
        dir: dir.clone(),
        env_name: "local".into(),
        vars: HashMap::new(),
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(s.queue.redis_mode, RedisMode::Cluster);
    assert_eq!(s.queue.redis_nodes.len(), 2);
    assert_eq!(s.queue.redis_nodes[1].expose(), "redis://127.0.0.1:7001");

    // Sentinel mode without nodes or a master name, and a replica wait of 0, are refused by key.
    let err = load(&source(
        "local",
        &[
            ("HCC__QUEUE__BACKEND", "redis"),
            ("HCC__QUEUE__REDIS_MODE", "sentinel"),
            ("HCC__QUEUE__MIN_REPLICAS", "1"),
            ("HCC__QUEUE__REPLICA_TIMEOUT_MS", "0"),
        ],
    ))
    .unwrap_err()
    .to_string();
    for key in ["queue.redis_nodes", "queue.sentinel_master", "queue.replica_timeout_ms"] {
        assert!(err.contains(key), "{key} not named in {err}");
    }
    let err = load(&source("local", &[("HCC__QUEUE__REDIS_MODE", "raft")])).unwrap_err();
    assert!(err.to_string().contains("queue.redis_mode"), "{err}");
}

#[test]
fn redis_credentials_and_tls_take_effect_or_are_refused_by_key() {
    let dir = std::env::temp_dir().join(format!("hcc-config-redis-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("redis-password");
    std::fs::write(&pw, "from-a-file\n").unwrap();
    let s = load(&source(
        "local",
        &[
            ("HCC__QUEUE__BACKEND", "redis"),
            ("HCC__QUEUE__REDIS_MODE", "sentinel"),
            ("HCC__QUEUE__REDIS_NODES", "rediss://10.0.0.1:26379,rediss://10.0.0.2:26379"),
            ("HCC__QUEUE__SENTINEL_MASTER", "hcc"),
            ("HCC__QUEUE__REDIS_USERNAME", "hcc-gateway"),
            ("HCC__QUEUE__REDIS_PASSWORD_FILE", pw.to_str().unwrap()),
            ("HCC__QUEUE__SENTINEL_PASSWORD", "sentinels"),
            ("HCC__QUEUE__REDIS_CA", "/etc/hcc-gateway/redis-ca.pem"),
        ],
    ))
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(s.queue.redis_username, "hcc-gateway");
    assert_eq!(s.queue.redis_password.expose(), "from-a-file");
    assert_eq!(s.queue.sentinel_password.expose(), "sentinels");
    assert_eq!(s.queue.redis_ca, "/etc/hcc-gateway/redis-ca.pem");
    assert!(!format!("{:?}", s.queue).contains("from-a-file"), "a password shows in Debug");

    // A user without a password, a sentinel password outside sentinel mode, a CA no URL uses.
    let err = load(&source(
        "local",
        &[
            ("HCC__QUEUE__BACKEND", "redis"),
            ("HCC__QUEUE__REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("HCC__QUEUE__REDIS_USERNAME", "hcc-gateway"),
            ("HCC__QUEUE__SENTINEL_PASSWORD", "sentinels"),
            ("HCC__QUEUE__REDIS_CA", "/etc/hcc-gateway/redis-ca.pem"),
        ],
    ))
    .unwrap_err();
    let keys = keys_of(&err);
    for key in ["queue.redis_username", "queue.sentinel_password", "queue.redis_ca"] {
        assert!(keys.contains(&key), "{key} not named in {err}");
    }
    // Some nodes over TLS and some not.
    let err = load(&source(
        "local",
        &[
            ("HCC__QUEUE__BACKEND", "redis"),
            ("HCC__QUEUE__REDIS_MODE", "cluster"),
            ("HCC__QUEUE__REDIS_NODES", "rediss://10.0.0.1:7000,redis://10.0.0.2:7000"),
        ],
    ))
    .unwrap_err();
    assert_eq!(keys_of(&err), ["queue.redis_nodes"], "{err}");
}

fn keys_of(err: &ConfigError) -> Vec<&str> {
    err.problems().iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn a_token_key_needs_every_pkcs11_key_and_its_certificate() {
    let dir = std::env::temp_dir().join(format!("hcc-config-pkcs11-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pin = dir.join("pin");
    std::fs::write(&pin, "246810\n").unwrap();
    let full = [
        ("HCC__SIGNING__PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"),
        ("HCC__SIGNING__PKCS11_TOKEN", "hcc-gateway"),
        ("HCC__SIGNING__PKCS11_PIN_FILE", pin.to_str().unwrap()),
        ("HCC__SIGNING__PKCS11_KEY_LABEL", "gateway"),
        ("HCC__SIGNING__CERTIFICATE", "/etc/hcc/gateway-chain.pem"),
    ];
    let s = load(&source("local", &full)).unwrap();
    assert!(s.signing.uses_pkcs11());
    // The PIN is a secret read from its file, and never printed.
    assert_eq!(s.signing.pkcs11_pin.expose(), "246810");
    assert!(!format!("{:?}", s.signing).contains("246810"));

    // Each one left out is named.
    for (i, (missing, _)) in full.iter().enumerate() {
        let partial: Vec<(&str, &str)> = full.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, kv)| *kv).collect();
        let err = load(&source("local", &partial)).unwrap_err();
        let want = missing
            .trim_start_matches("HCC__SIGNING__")
            .trim_end_matches("_FILE")
            .to_ascii_lowercase();
        assert_eq!(keys_of(&err), vec![format!("signing.{want}")], "{err}");
    }

    // With PKCS#12 as well: refused, there is one signing key.
    let mut both = full.to_vec();
    both.push(("HCC__SIGNING__PKCS12", "/etc/hcc/gateway.p12"));
    let err = load(&source("local", &both)).unwrap_err();
    assert_eq!(keys_of(&err), vec!["signing.pkcs12"], "{err}");

    // A certificate without a token key would be silently ignored: refused.
    let err = load(&source("local", &[("HCC__SIGNING__CERTIFICATE", "/etc/hcc/gateway-chain.pem")])).unwrap_err();
    assert_eq!(keys_of(&err), vec!["signing.certificate"], "{err}");

    // Neither: no signing identity, no problem.
    assert!(!load(&source("local", &[])).unwrap().signing.uses_pkcs11());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_agencies_with_one_ma_don_vi_are_refused_naming_the_second() {
    // local.toml has `agencies.quang-ninh` with MaDonVi 000.00.22.H46.
    let second = |ma: &str| -> Vec<(String, String)> {
        [
            ("HCC__AGENCIES__UONG-BI__MA_DON_VI", ma),
            ("HCC__AGENCIES__UONG-BI__TEN_DON_VI", "Bo phan mot cua thanh pho Uong Bi"),
            ("HCC__AGENCIES__UONG-BI__TK_THU_HUONG", "0011004999999"),
            ("HCC__AGENCIES__UONG-BI__MA_NH_THU_HUONG", "970436"),
            ("HCC__AGENCIES__UONG-BI__TEN_TK_THU_HUONG", "UBND TP UONG BI"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    fn vars(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    let own = second("000.00.23.H46");
    let s = load(&source("local", &vars(&own))).unwrap();
    assert_eq!(s.agencies.len(), 2, "two agencies, each with its own MaDonVi");
    let same = second("000.00.22.H46");
    let err = load(&source("local", &vars(&same))).unwrap_err();
    assert_eq!(keys_of(&err), ["agencies.uong-bi.ma_don_vi"], "{err}");
    assert!(err.to_string().contains("agencies.quang-ninh.ma_don_vi"), "{err}");
}

#[test]
fn production_takes_http_only_to_loopback_hosts_as_the_client_parses_them() {
    let refused = |v: &str, production: bool| {
        let mut p = Vec::new();
        check_outside_url(&mut p, "x.url", v, production);
        p.iter().any(|p| p.key == "x.url")
    };
    for ok in [
        "https://paygov.example.vn/init",
        "http://127.0.0.1:9101/paygov",
        "http://127.3.4.5/",
        "http://[::1]:8080/",
        "http://localhost:9102/pay",
        "http://LOCALHOST/",
        "http://2130706433/",
    ] {
        assert!(!refused(ok, true), "{ok}");
    }
    for bad in [
        "http://paygov.example.vn/init",
        "http://127.0.0.1.example.vn/",
        "http://localhost.example.vn/",
        "http://example.vn\\@127.0.0.1/",
        "http://example.vn#@127.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://10.0.0.1/",
        "ftp://127.0.0.1/",
    ] {
        assert!(refused(bad, true), "{bad}");
    }
    assert!(!refused("http://paygov.example.vn/init", false), "outside production http is taken");
}

#[test]
fn production_refuses_shared_secrets_under_16_bytes() {
    let refused = |v: &str, production: bool| {
        let mut p = Vec::new();
        check_shared_secret(&mut p, "x.secret", &Secret::new(v), production, "x");
        !p.is_empty()
    };
    assert!(refused("", true) && refused("s3cret", true) && refused("  0123456789abcde  ", true));
    assert!(!refused("0123456789abcdef", true));
    assert!(!refused("s3cret", false));
}

#[test]
fn traces_are_off_by_default_and_their_keys_are_checked_by_name() {
    let s = load(&source("local", &[])).unwrap();
    assert!(!s.telemetry.enabled(), "off unless an endpoint is set");
    assert!(s.trace_withheld_from().is_empty());
    let s = load(&source(
        "local",
        &[
            ("HCC__TELEMETRY__OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("HCC__DESTINATIONS__DVCQG__PROPAGATE_TRACE", "false"),
            ("HCC__DESTINATIONS__EMC__PROPAGATE_TRACE", "true"),
        ],
    ))
    .unwrap();
    assert_eq!(s.telemetry.traces_url(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(s.trace_withheld_from(), vec!["dvcqg".to_string()]);
    let s = load(&source(
        "local",
        &[("HCC__TELEMETRY__OTLP_ENDPOINT", "https://otel.example.vn/v1/traces")],
    ))
    .unwrap();
    assert_eq!(
        s.telemetry.traces_url(),
        "https://otel.example.vn/v1/traces",
        "a whole traces URL is kept"
    );
    for (key, value, named) in [
        ("HCC__TELEMETRY__OTLP_ENDPOINT", "otel:4318", "telemetry.otlp_endpoint"),
        ("HCC__TELEMETRY__SAMPLE_RATIO", "1.5", "telemetry.sample_ratio"),
        ("HCC__TELEMETRY__EXPORT_TIMEOUT_MS", "0", "telemetry.export_timeout_ms"),
        ("HCC__TELEMETRY__MAX_QUEUED_SPANS", "0", "telemetry.max_queued_spans"),
    ] {
        let err = load(&source("local", &[(key, value)])).unwrap_err();
        assert!(keys_of(&err).contains(&named), "{key}={value}: {err}");
    }
}
