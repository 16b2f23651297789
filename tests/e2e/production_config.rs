//! What production refuses in the counterparts' sections (issue 20, item 5), through the
//! operator's own command, `hcc-gateway config check` with `HCC_ENV=production`: shared secrets
//! under 16 bytes and `http` to any host that is not loopback, each problem naming its key;
//! `http` to 127.0.0.0/8, `::1` and `localhost` stays allowed, and a host that only starts like
//! a loopback address is not one.

use std::process::Command;

use hcc_tests::{binary, workspace_dir};

/// `hcc-gateway config check` on `default.toml` and a production file holding one API key
/// that is not a development key, with `vars`; its exit status and stderr.
fn config_check(vars: &[(&str, &str)]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("hcc-prodcfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(workspace_dir().join("config/default.toml"), dir.join("default.toml")).unwrap();
    std::fs::write(
        dir.join("production.toml"),
        "[[auth.keys]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4\"\n\n\
         [agencies.h46]\nma_don_vi = \"000.00.22.H46\"\nten_don_vi = \"Sở\"\ntk_thu_huong = \"1\"\nma_nh_thu_huong = \"VCB\"\nten_tk_thu_huong = \"Sở\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(binary("hcc-gateway"));
    cmd.args(["config", "check"])
        .env("HCC_CONFIG_DIR", &dir)
        .env("HCC_ENV", "production");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run hcc-gateway: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The keys of the problems printed (`key: message`, one a line).
fn keys(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(k, _)| k.trim().trim_start_matches("- ").to_string()))
        .collect()
}

const LONG: &str = "0123456789abcdef-long-enough";

#[test]
fn production_refuses_short_secrets_and_http_to_outside_hosts_each_by_its_key() {
    let bin = binary("hcc-gateway");
    assert!(bin.exists(), "{} is missing: cargo build --workspace --bins", bin.display());
    let refused = [
        ("HCC__PAYGOV__INIT_URL", "http://paygov.example.vn/init", "paygov.init_url"),
        // Looks like a loopback address; names another host.
        ("HCC__PAYGOV__BASE_URL", "http://127.0.0.1.example.vn/", "paygov.base_url"),
        ("HCC__PAYGOV__SECRET", "short-secret", "paygov.secret"),
        ("HCC__PAYGOV__BEARER_TOKEN", "tok", "paygov.bearer_token"),
        ("HCC__VNPAY__HASH_SECRET", "abc", "vnpay.hash_secret"),
        (
            "HCC__VNPAY__API_URL",
            "http://sandbox.vnpayment.vn/merchant_webapi/api/transaction",
            "vnpay.api_url",
        ),
        ("HCC__VNPAY__RETURN_URL", "http://centre.example.vn/paid", "vnpay.return_url"),
        ("HCC__DVCQG__BASE_URL", "http://dichvucong.example.vn", "dvcqg.base_url"),
        // The parser the client uses reads the host as example.vn.
        (
            "HCC__CENTRE__WEBHOOK_URL",
            "http://example.vn\\@127.0.0.1/hooks",
            "centre.webhook_url",
        ),
        ("HCC__CENTRE__WEBHOOK_SECRET", "whsec_c2hvcnQ=", "centre.webhook_secret"),
    ];
    let allowed = [
        ("HCC__PAYGOV__QUERY_URL", "http://127.0.0.2:9101/paygov/query"),
        ("HCC__PAYGOV__SERVER_IP", "203.0.113.10"),
        ("HCC__PAYGOV__PARTNER_CODE", "P"),
        ("HCC__VNPAY__TMN_CODE", "HCCDEV01"),
        ("HCC__VNPAY__PAY_URL", "http://localhost:9102/vnpay/pay"),
        ("HCC__VNPAY__SERVER_IP", "203.0.113.10"),
        ("HCC__DVCQG__PASSWORD", "portal-password"),
    ];
    let mut vars: Vec<(&str, &str)> = refused.iter().map(|(k, v, _)| (*k, *v)).collect();
    vars.extend(allowed);
    let (ok, stderr) = config_check(&vars);
    assert!(!ok, "{stderr}");
    let found = keys(&stderr);
    for (_, _, key) in refused {
        assert!(found.iter().any(|k| k == key), "{key} not refused:\n{stderr}");
    }
    for key in ["paygov.query_url", "vnpay.pay_url", "vnpay.tmn_code", "dvcqg.password"] {
        assert!(!found.iter().any(|k| k == key), "{key} refused:\n{stderr}");
    }
    assert!(stderr.contains("must be https when HCC_ENV=production"), "{stderr}");
    assert!(stderr.contains("shorter than 16 bytes"), "{stderr}");
    // No secret is repeated in the answer.
    assert!(!stderr.contains("short-secret") && !stderr.contains("c2hvcnQ"), "{stderr}");

    // The same sections with https, ::1 and long secrets pass.
    let good = [
        ("HCC__PAYGOV__INIT_URL", "https://paygov.example.vn/init"),
        ("HCC__PAYGOV__BASE_URL", "http://[::1]:9101/paygov"),
        ("HCC__PAYGOV__QUERY_URL", "http://127.0.0.2:9101/paygov/query"),
        ("HCC__PAYGOV__SECRET", LONG),
        ("HCC__PAYGOV__BEARER_TOKEN", LONG),
        ("HCC__PAYGOV__SERVER_IP", "203.0.113.10"),
        ("HCC__PAYGOV__PARTNER_CODE", "P"),
        ("HCC__VNPAY__TMN_CODE", "HCCDEV01"),
        ("HCC__VNPAY__HASH_SECRET", LONG),
        (
            "HCC__VNPAY__API_URL",
            "https://sandbox.vnpayment.vn/merchant_webapi/api/transaction",
        ),
        ("HCC__VNPAY__PAY_URL", "http://localhost:9102/vnpay/pay"),
        ("HCC__VNPAY__RETURN_URL", "https://centre.example.vn/paid"),
        ("HCC__VNPAY__SERVER_IP", "203.0.113.10"),
        ("HCC__DVCQG__BASE_URL", "https://dichvucong.example.vn"),
        ("HCC__CENTRE__WEBHOOK_URL", "https://centre.example.vn/hooks"),
        ("HCC__CENTRE__WEBHOOK_SECRET", "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYg=="),
    ];
    let (ok, stderr) = config_check(&good);
    assert!(ok, "{stderr}");
}
