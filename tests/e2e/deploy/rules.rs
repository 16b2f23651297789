//! The alert rules (promtool) and the dashboard, against promtool and a live gateway's /metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_tests::*;
use serde_json::{Value, json};

use super::promql::*;
use super::{TempDir, deploy_dir, read, run, tool_available};
use crate::payments::create;

fn dashboard() -> Value {
    let path = deploy_dir().join("grafana/hcc-gateway.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = d["panels"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner.iter());
        }
        out.push(p);
    }
    out
}

/// The panels' PromQL queries.
fn dashboard_queries(d: &Value) -> Vec<String> {
    panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

/// The template variables' queries (`label_values(...)`).
fn dashboard_variable_queries(d: &Value) -> Vec<String> {
    d["templating"]["list"]
        .as_array()
        .map(|vars| {
            vars.iter()
                .filter(|v| v["type"] == "query")
                .filter_map(|v| v["query"]["query"].as_str().or(v["query"].as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A dashboard query with Grafana's variables replaced, as Prometheus would receive it.
fn as_prometheus_gets_it(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (name, after) = match tail.strip_prefix('{') {
            Some(t) => {
                let end = t.find('}').unwrap_or(t.len());
                (&t[..end], &t[(end + 1).min(t.len())..])
            }
            None => {
                let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
                (&tail[..end], &tail[end..])
            }
        };
        out.push_str(match name {
            "__rate_interval" | "__interval" => "1m",
            "__range" => "6h",
            "job" => "hcc-gateway",
            _ => ".*",
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[test]
fn the_dashboard_is_importable_and_queries_through_its_datasource_input() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    assert!(
        d["uid"].as_str().is_some_and(|u| !u.is_empty()) && d["id"].is_null(),
        "uid set, id null"
    );
    let all = panels(&d);
    let mut ids = BTreeSet::new();
    for p in &all {
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("a panel without an id: {p}"));
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(p["gridPos"]["w"].as_u64().is_some() && p["gridPos"]["h"].as_u64().is_some(), "{p}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {:?}", p["title"]);
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {:?} has no queries", p["title"]));
        assert!(!targets.is_empty(), "panel {:?} has no queries", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {:?}", p["title"]);
        }
    }
    for v in d["templating"]["list"].as_array().expect("templating") {
        assert_eq!(v["datasource"]["uid"], "${DS_PROMETHEUS}", "variable {:?}", v["name"]);
    }
    // What the issue asks the dashboard to show, by the metric showing it.
    let text = dashboard_queries(&d).join("\n");
    for m in [
        "hcc_http_requests_total",
        "hcc_delivery_attempts_total",
        "hcc_delivery_duration_seconds_bucket",
        "hcc_queue_messages",
        "hcc_queue_oldest_ready_age_seconds",
        "hcc_breaker_state",
        "hcc_payments_total",
        "hcc_evidence_unstamped_age_seconds",
    ] {
        assert!(text.contains(m), "the dashboard shows nothing of {m}");
    }
    assert!(
        text.contains(r#"state="dead""#) && text.contains(r#"state="blocked""#),
        "dead and blocked counts"
    );
    assert!(text.contains("histogram_quantile(0.99"), "latency percentiles");
}

// ---------------------------------------------------------------------------------------------
// promtool.

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass_with_every_alert_both_firing_and_quiet() {
    if !tool_available("promtool", "--version", "prometheus") {
        return;
    }
    let rules_path = deploy_dir().join("prometheus/alerts.yml");
    let tests_path = deploy_dir().join("prometheus/alerts_test.yml");
    let (ok, out, err) = run(Command::new("promtool").args(["check", "rules"]).arg(&rules_path));
    assert!(ok, "promtool check rules:\n{out}{err}");
    let rules = alert_rules(&read(&rules_path));
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "promtool counts other rules than this test read ({}):\n{out}",
        rules.len()
    );
    assert!(rules.len() >= 9, "{rules:?}");

    // Each rule: an expression, a severity, a summary, a description and its runbook.
    let mut seen = BTreeSet::new();
    for r in &rules {
        assert!(seen.insert(r.name.clone()), "{} twice", r.name);
        assert!(!r.expr.is_empty(), "{}: no expr", r.name);
        assert!(
            matches!(r.severity.as_deref(), Some("critical" | "warning" | "info")),
            "{}: severity {:?}",
            r.name,
            r.severity
        );
        for a in ["summary", "description"] {
            assert!(r.annotations.get(a).is_some_and(|v| !v.is_empty()), "{}: no {a}", r.name);
        }
        assert_eq!(
            r.annotations.get("runbook_url").map(String::as_str),
            Some(format!("docs/operations.md#{}", r.name.to_ascii_lowercase()).as_str()),
            "{}: the runbook is its section of docs/operations.md",
            r.name
        );
    }

    let (ok, out, err) = run(Command::new("promtool").args(["test", "rules"]).arg(&tests_path));
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}{err}");

    // Every alert is tested firing (an exp_alerts list with entries) and quiet (an empty one).
    let test_text = read(&tests_path);
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in test_text.split("- eval_time:").skip(1) {
        let Some(name) = case
            .lines()
            .find_map(|l| l.trim().strip_prefix("alertname:"))
            .map(|n| n.trim().to_string())
        else {
            continue;
        };
        if case.contains("exp_alerts: []") {
            quiet.insert(name);
        } else if case.contains("exp_labels:") {
            firing.insert(name);
        }
    }
    for r in &rules {
        assert!(firing.contains(&r.name), "{} is never tested firing", r.name);
        assert!(quiet.contains(&r.name), "{} is never tested quiet", r.name);
    }

    // The dashboard's queries are PromQL Prometheus accepts: checked as recording rules.
    let d = dashboard();
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 20, "{queries:?}");
    let dir = TempDir::new("promql");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let expr = serde_json::to_string(&as_prometheus_gets_it(q)).unwrap_or_default();
        yaml.push_str(&format!("      - record: dashboard:query{i}\n        expr: {expr}\n"));
    }
    let file = dir.0.join("dashboard-queries.yml");
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out, err) = run(Command::new("promtool").args(["check", "rules"]).arg(&file));
    assert!(ok, "the dashboard's queries:\n{out}{err}");
}

// ---------------------------------------------------------------------------------------------
// Against a live gateway.

/// The exposition's sample names, each with the label names it carries.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            let mut sc = Scanner {
                s: &line.as_bytes()[end..],
                i: 0,
            };
            labels.extend(sc.matchers());
        }
    }
    out
}

/// Metrics the rules use that Prometheus and the blackbox exporter make, not the gateway.
const NOT_THE_GATEWAYS: &[&str] = &["up", "probe_success"];
/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_and_the_dashboard_name_only_metrics_and_labels_a_live_gateway_exports() {
    // A portal to deliver to, the payment providers and a bank, and the evidence log on: every
    // family of /metrics then has samples (a family with none is not written at all).
    let e = payment_env("deploy");
    let app = spawn_app(
        e.settings(&[
            ("HCC__DVCQG__BASE_URL", e.portal.url()),
            ("HCC__EVIDENCE__ENABLED", "true".into()),
            ("HCC__EVIDENCE__DIR", e.dir.join("evidence").to_string_lossy().into_owned()),
        ]),
        Workers::On,
    )
    .await;
    let id = accepted_id(app.post_dossier(&dossier("DEPLOY-METRICS-1", 1)).await).await;
    app.wait_message(&id, "delivered").await;
    create(&app, "paygov", 120_000).await;
    let unmatched = e
        .bank_credit(
            json!({"reference": "LE PHI", "amount_vnd": 10_000, "bank_ref": "FTDEPLOY1", "remittance": "ustrd",
                            "url": app.url("/v1/callbacks/banks/devbank/camt054")}),
        )
        .await;
    assert!(unmatched.to_string().contains("no_reference"), "{unmatched}");
    let text = eventually("every family on /metrics", Duration::from_secs(20), || async {
        let text = app.metrics().await;
        let names = exported(&text);
        [
            "hcc_delivery_attempts_total",
            "hcc_payments_total",
            "hcc_bank_unmatched_total",
            "hcc_evidence_records",
        ]
        .iter()
        .all(|m| names.contains_key(*m))
        .then_some(text)
    })
    .await;
    app.stop().await;
    let names = exported(&text);
    let every_label: BTreeSet<String> = names
        .values()
        .flatten()
        .cloned()
        .chain(TARGET_LABELS.iter().map(|l| l.to_string()))
        .collect();

    let d = dashboard();
    let rules = alert_rules(&read(&deploy_dir().join("prometheus/alerts.yml")));
    assert!(rules.len() >= 9, "{rules:?}");
    let mut sources: Vec<(String, String)> = rules.iter().map(|r| (format!("alert {}", r.name), r.expr.clone())).collect();
    sources.extend(dashboard_queries(&d).into_iter().map(|q| ("dashboard".to_string(), q)));
    sources.extend(
        dashboard_variable_queries(&d)
            .into_iter()
            .map(|q| ("dashboard variable".to_string(), q)),
    );

    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (source, expr) in &sources {
        let n = promql_names(expr);
        assert!(!n.metrics.is_empty(), "{source}: no metric found in {expr}");
        for (metric, labels) in &n.metrics {
            used.insert(metric.clone());
            if NOT_THE_GATEWAYS.contains(&metric.as_str()) {
                continue;
            }
            let Some(has) = names.get(metric) else {
                problems.push(format!("{source}: {metric} is not on /metrics"));
                continue;
            };
            for l in labels {
                if !has.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!("{source}: {metric} has no label {l} (it has {has:?})"));
                }
            }
        }
        for l in &n.grouping {
            if !every_label.contains(l) {
                problems.push(format!("{source}: no metric has the label {l}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n/metrics:\n{text}");
    // The check saw the gateway's figures, not an empty reading of the files.
    for m in [
        "hcc_queue_oldest_ready_age_seconds",
        "hcc_breaker_state",
        "hcc_queue_messages",
        "hcc_bank_unmatched_total",
        "hcc_bank_unmatched_open",
        "hcc_queue_unreplicated_writes_total",
        "hcc_payments_pending_overdue",
        "hcc_evidence_unstamped_age_seconds",
        "hcc_delivery_duration_seconds_bucket",
    ] {
        assert!(used.contains(m), "{m} is used nowhere: {used:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// systemd.
