//! The systemd unit (systemd-analyze) and its environment example (a valid production configuration).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use hcc_tests::*;

use super::{TempDir, deploy_dir, read, run, tool_available};

/// `key=value` lines of a unit, comments and section headers left out.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `server.shutdown_grace_secs` as config/default.toml sets it (no profile, no override).
fn default_shutdown_grace_secs() -> u64 {
    let source = hcc_config::Source {
        dir: workspace_dir().join("config"),
        env_name: "defaults-only".into(),
        vars: Default::default(),
    };
    hcc_config::load(&source)
        .unwrap_or_else(|e| panic!("config/default.toml: {e}"))
        .server
        .shutdown_grace_secs
}

const UNIT_EXEC_START: &str = "ExecStart=/usr/local/bin/hcc-gateway serve";

#[test]
fn the_systemd_unit_verifies_without_a_warning_and_stays_hardened() {
    if !tool_available("systemd-analyze", "--version", "systemd") {
        return;
    }
    let unit = read(&deploy_dir().join("systemd/hcc-gateway.service"));
    let d = directives(&unit);
    let get = |k: &str| -> Vec<&str> { d.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str()).collect() };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "hcc-gateway"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("EnvironmentFile", "/etc/hcc-gateway/env"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert!(get(key).contains(&want), "{key}={want} (the unit has {:?})", get(key));
    }
    assert_eq!(get("ExecStart"), ["/usr/local/bin/hcc-gateway serve"]);
    // SIGTERM lets requests, then deliveries, finish for shutdown_grace_secs each, then stops
    // the background tasks (10 s) and writes the audit lines (15 s): the stop timeout covers it.
    let grace = default_shutdown_grace_secs();
    let stop = get("TimeoutStopSec");
    let stop_secs: u64 = stop
        .first()
        .and_then(|v| v.strip_suffix('s').unwrap_or(v).parse().ok())
        .unwrap_or_else(|| panic!("TimeoutStopSec in seconds: {stop:?}"));
    assert!(
        stop_secs > 2 * grace + 25,
        "TimeoutStopSec={stop_secs} s, shutdown_grace_secs={grace}"
    );

    // The binary is not installed here: a copy of the unit starts a stand-in, and nothing else
    // differs.
    let dir = TempDir::new("systemd");
    let stand_in = dir.0.join("hcc-gateway");
    std::fs::write(&stand_in, "#!/bin/sh\nexit 0\n").unwrap_or_else(|e| panic!("{e}"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(unit.lines().filter(|l| *l == UNIT_EXEC_START).count(), 1, "one {UNIT_EXEC_START}");
    let copy = unit.replace(UNIT_EXEC_START, &format!("ExecStart={} serve", stand_in.display()));
    let copy_path = dir.0.join("hcc-gateway.service");
    std::fs::write(&copy_path, copy).unwrap_or_else(|e| panic!("{e}"));
    // `verify` exits 0 on an unknown or misplaced key and only prints a warning: any output
    // is a failure.
    let (ok, out, err) = run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy_path));
    assert!(
        ok && out.trim().is_empty() && err.trim().is_empty(),
        "systemd-analyze verify:\n{out}{err}"
    );
    // The exposure score of `systemd-analyze security` (0-100 internally, shown /10): 2.0 at most.
    let (ok, out, err) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&copy_path));
    assert!(ok, "systemd-analyze security:\n{out}{err}");
}

/// The environment example's assignments, comments and blank lines left out.
fn env_example() -> Vec<(String, String)> {
    read(&deploy_dir().join("systemd/hcc-gateway.env.example"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not KEY=value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

const CREDENTIALS: &str = "/run/credentials/hcc-gateway.service/";

#[test]
fn the_environment_example_is_a_valid_production_configuration_with_no_secret_in_it() {
    let vars = env_example();
    assert!(vars.iter().any(|(k, v)| k == "HCC_ENV" && v == "production"), "{vars:?}");
    // Secrets only by file, from the unit's credentials.
    for (k, v) in &vars {
        let secretish = ["PASSWORD", "SECRET", "TOKEN", "_PIN", "DVCQG_KEY", "REDIS_URL"]
            .iter()
            .any(|w| k.contains(w));
        if secretish {
            assert!(
                k.ends_with("_FILE") && v.starts_with(CREDENTIALS),
                "{k}: a secret comes from a file in {CREDENTIALS}"
            );
        }
        if let Some(name) = v.strip_prefix(CREDENTIALS) {
            assert!(name.starts_with("hcc_"), "{k}: LoadCredential=hcc:... names its files hcc_<file>");
        }
    }

    // The example as the service would load it: the unit's folders moved under a temporary
    // root, each credential a placeholder of the right shape, and production.toml with the one
    // thing production requires that the environment cannot say (an API key's hash).
    let root = TempDir::new("env");
    let moved = |v: &str| {
        v.replace(CREDENTIALS, &format!("{}/credentials/", root.0.display()))
            .replace("/etc/hcc-gateway", &format!("{}/etc", root.0.display()))
            .replace("/var/lib/hcc-gateway", &format!("{}/state", root.0.display()))
    };
    let mkdir = |p: &str| std::fs::create_dir_all(root.0.join(p)).unwrap_or_else(|e| panic!("{e}"));
    mkdir("credentials");
    mkdir("etc/trust");
    mkdir("state");
    std::fs::copy(workspace_dir().join("config/default.toml"), root.0.join("etc/default.toml")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        root.0.join("etc/production.toml"),
        format!(
            "[[auth.keys]]\nname = \"centre\"\nrole = \"centre\"\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &vars {
        let v = moved(v);
        if k.ends_with("_FILE") || k == "HCC__SIGNING__PKCS12" {
            let placeholder = match k.as_str() {
                "HCC__QUEUE__REDIS_URL_FILE" => redis_url(),
                "HCC__CENTRE__WEBHOOK_SECRET_FILE" => format!("whsec_{}", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"),
                _ => "a-placeholder-secret-of-enough-length".to_string(),
            };
            std::fs::write(&v, format!("{placeholder}\n")).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        env.insert(k.clone(), v);
    }
    let source = hcc_config::Source {
        dir: PathBuf::from(&env["HCC_CONFIG_DIR"]),
        env_name: env["HCC_ENV"].clone(),
        vars: env
            .iter()
            .filter(|(k, _)| k.starts_with("HCC__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let s = hcc_config::load(&source).unwrap_or_else(|e| panic!("the environment example does not load: {e}"));
    assert!(s.is_production());
    let problems = hcc_gateway::app::check_sections(&s, &hcc_adapters::standard());
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(s.queue.redis_url.expose(), redis_url(), "queue.redis_url from its file");
    assert_eq!(s.server.bind, "0.0.0.0:8080");
}
