//! Redis as a data centre runs it (issue 29 item 5): in standalone, Sentinel and Cluster mode
//! the gateway logs in as an ACL user (`queue.redis_username`, `queue.redis_password`, the
//! sentinels' own `queue.sentinel_password`) or speaks TLS (`rediss://`, `queue.redis_ca`),
//! takes a dossier and delivers it, which reads it back from Redis. A wrong password or a CA
//! that did not sign the servers' certificates stops start-up with an error naming the key,
//! and the error never holds a password.

use hcc_config::QueueBackendKind;
use hcc_gateway::app::{Application, Workers};
use hcc_tests::secured::{Guard, PASSWORD, SENTINEL_PASSWORD, Secured, USER};
use hcc_tests::*;

type Vars = Vec<(&'static str, String)>;

async fn deploy(start: fn(Guard) -> Secured, guard: Guard) -> Secured {
    tokio::task::spawn_blocking(move || start(guard))
        .await
        .unwrap_or_else(|e| panic!("the deployment did not start: {e}"))
}

fn with(d: &Secured, extra: Vars) -> Vars {
    let mut v = d.queue_vars();
    v.extend(extra);
    v
}

/// The ACL user's settings, the password from a file (`queue.redis_password_file`).
fn acl_vars(dir: &std::path::Path) -> Vars {
    let file = dir.join("redis-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    vec![
        ("HCC__QUEUE__REDIS_USERNAME", USER.into()),
        ("HCC__QUEUE__REDIS_PASSWORD_FILE", file.display().to_string()),
    ]
}

fn ca_vars(d: &Secured, trusted: bool) -> Vars {
    let pki = d.pki.as_ref().unwrap_or_else(|| panic!("a TLS deployment has a PKI"));
    let ca = if trusted { pki.ca() } else { pki.other_ca() };
    vec![("HCC__QUEUE__REDIS_CA", ca.display().to_string())]
}

/// The gateway on `d` with `vars` takes a dossier, delivers it to the portal (claiming it back
/// from Redis), and its keys are on the data nodes.
async fn takes_and_delivers(d: &Secured, vars: Vars) {
    let (portal, _state) = portal();
    let mut vars = with(d, vars);
    vars.push(("HCC__DVCQG__BASE_URL", portal.url()));
    let s = settings(QueueBackendKind::Redis, &vars);
    let prefix = s.queue.key_prefix.clone();
    let app = spawn_app(s, Workers::On).await;
    app.wait_ready().await;
    let r = app.post_dossier(&dossier("000.00.22.H46-241201-0001", 1)).await;
    assert_eq!(r.status(), 202, "the dossier was not taken");
    let id = json(r).await["id"].as_str().unwrap_or_default().to_string();
    app.wait_message(&id, "delivered").await;
    assert!(d.count_keys(&prefix) > 0, "nothing under {prefix} on the data nodes");
    app.stop().await;
}

/// Start-up with `vars` on `d` fails, naming `key`, and the error holds no password.
async fn refused(d: &Secured, vars: Vars, key: &str) {
    let s = settings(QueueBackendKind::Redis, &with(d, vars));
    let err = match Application::build(s, Workers::Off).await {
        Ok(_) => panic!("start-up went on; it should have stopped naming {key}"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(key), "{key} not named in: {err}");
    for secret in [PASSWORD, SENTINEL_PASSWORD, "not-the-password"] {
        assert!(!err.contains(secret), "the error shows a password: {err}");
    }
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hcc-redis-auth-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn wrong_password() -> Vars {
    vec![
        ("HCC__QUEUE__REDIS_USERNAME", USER.into()),
        ("HCC__QUEUE__REDIS_PASSWORD", "not-the-password".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_with_an_acl_user() {
    let d = deploy(Secured::standalone, Guard::Acl).await;
    let dir = temp_dir();
    takes_and_delivers(&d, acl_vars(&dir)).await;
    refused(&d, wrong_password(), "queue.redis_password").await;
    // No credentials at all: the default user is off (NOAUTH).
    refused(&d, vec![], "queue.redis_password").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_tls() {
    let d = deploy(Secured::standalone, Guard::Tls).await;
    takes_and_delivers(&d, ca_vars(&d, true)).await;
    refused(&d, ca_vars(&d, false), "queue.redis_ca").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_with_an_acl_user_and_a_sentinel_password() {
    let d = deploy(Secured::sentinel, Guard::Acl).await;
    let dir = temp_dir();
    let mut vars = acl_vars(&dir);
    vars.push(("HCC__QUEUE__SENTINEL_PASSWORD", SENTINEL_PASSWORD.into()));
    takes_and_delivers(&d, vars).await;
    // The sentinels' password right, the data nodes' wrong, and the other way round.
    let mut data_wrong = wrong_password();
    data_wrong.push(("HCC__QUEUE__SENTINEL_PASSWORD", SENTINEL_PASSWORD.into()));
    refused(&d, data_wrong, "queue.redis_password").await;
    let mut sentinel_wrong = acl_vars(&dir);
    sentinel_wrong.push(("HCC__QUEUE__SENTINEL_PASSWORD", "not-the-password".into()));
    refused(&d, sentinel_wrong, "queue.sentinel_password").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_over_tls() {
    let d = deploy(Secured::sentinel, Guard::Tls).await;
    takes_and_delivers(&d, ca_vars(&d, true)).await;
    refused(&d, ca_vars(&d, false), "queue.redis_ca").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_with_an_acl_user() {
    let d = deploy(Secured::cluster, Guard::Acl).await;
    let dir = temp_dir();
    takes_and_delivers(&d, acl_vars(&dir)).await;
    refused(&d, wrong_password(), "queue.redis_password").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_tls() {
    let d = deploy(Secured::cluster, Guard::Tls).await;
    takes_and_delivers(&d, ca_vars(&d, true)).await;
    refused(&d, ca_vars(&d, false), "queue.redis_ca").await;
}
