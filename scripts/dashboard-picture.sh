#!/usr/bin/env bash
# Makes docs/screenshots/grafana-dashboard.png: the Grafana dashboard (deploy/grafana/
# hcc-gateway.json) drawn from its own queries, run against a real Prometheus that scraped a
# real gateway while hcc-demo, then scripts/dashboard_picture.py drive, sent it traffic
# (portal outages included).
#
# Grafana is not packaged in the registries this project uses, so scripts/dashboard_picture.py
# draws the panels instead of Grafana. Everything below it is real: the gateway, its /metrics,
# Prometheus and the PromQL.
#
# Needs: Debian's prometheus (apt-get install --no-install-recommends prometheus), python3,
# the hcc-demo binary (cargo build --bin hcc-demo), and a Redis for the queue (else the demo's
# embedded queue). Run from the repository root:
#   scripts/dashboard-picture.sh [OUT.png]
# The traffic: hcc-demo's own scenario (HCC_PICTURE_DOSSIERS dossiers, 1000, with its short
# portal outage), then HCC_PICTURE_RATE (100) dossier updates a second for
# HCC_PICTURE_DRIVE_SECS (150) with the mock portal answering 503 to everything from
# HCC_PICTURE_OUTAGE_AT (40) for HCC_PICTURE_OUTAGE_SECS (45), then HCC_PICTURE_TAIL_SECS (20)
# of quiet; a fee is paid through the mock PayGov every 2 s meanwhile. The evidence log is on,
# stamped by mock-tsa when it is built. Prometheus scrapes the gateway every second throughout.
# HCC_PICTURE_HOLD_SECS keeps Prometheus and the gateway up that long after, to query by hand.
# Other environment: HCC_BIN_DIR (target/debug), HCC_PICTURE_REDIS (redis://127.0.0.1:6379/13;
# the demo writes under its own random key prefix there, removed at the end).
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-docs/screenshots/grafana-dashboard.png}
bin_dir=${HCC_BIN_DIR:-target/debug}
redis_url=${HCC_PICTURE_REDIS:-redis://127.0.0.1:6379/13}
dossiers=${HCC_PICTURE_DOSSIERS:-1000}
tail_secs=${HCC_PICTURE_TAIL_SECS:-20}
drive_secs=${HCC_PICTURE_DRIVE_SECS:-150}
rate=${HCC_PICTURE_RATE:-100}
outage_at=${HCC_PICTURE_OUTAGE_AT:-40}
outage_secs=${HCC_PICTURE_OUTAGE_SECS:-45}
scrape=1

command -v prometheus >/dev/null || { echo "needs prometheus: apt-get install -y --no-install-recommends prometheus" >&2; exit 1; }
[ -x "$bin_dir/hcc-demo" ] || { echo "needs $bin_dir/hcc-demo: cargo build --bin hcc-demo" >&2; exit 1; }

work=$(mktemp -d)
venv=${HCC_PICTURE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hcc-dashboard-picture-venv}
pids=()
demo_prefixes() { redis-cli -u "$redis_url" --scan --pattern 'hcc-demo-*' 2>/dev/null | cut -d: -f1 | sort -u; }
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # The demo's queue keys in Redis: only the key prefix this run's demo made.
    if [ -f "$work/prefixes.before" ]; then
        demo_prefixes | comm -13 "$work/prefixes.before" - | while read -r prefix; do
            redis-cli -u "$redis_url" --scan --pattern "${prefix}*" | xargs -r -d '\n' -n 500 redis-cli -u "$redis_url" unlink >/dev/null
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib==3.11.2
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gw_port=$(free_port)
prom_port=$(free_port)

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: ${scrape}s
  evaluation_interval: ${scrape}s
scrape_configs:
  - job_name: hcc-gateway
    static_configs:
      - targets: ["127.0.0.1:${gw_port}"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:${prom_port}" >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:${prom_port}"
for _ in $(seq 1 60); do
    curl -fs "$prom/-/ready" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fs "$prom/-/ready" >/dev/null || { cat "$work/prometheus.log" >&2; exit 1; }

# The evidence log on, so that its panels have something to show; stamped every 5 s by the mock
# time-stamping authority when it is built (cargo build --bin mock-tsa --bin hcc-gateway).
evidence_env=(HCC__EVIDENCE__ENABLED=true "HCC__EVIDENCE__DIR=$work/evidence")
if [ -x "$bin_dir/mock-tsa" ] && [ -x "$bin_dir/hcc-gateway" ] && command -v openssl >/dev/null; then
    tsa_port=$(free_port)
    "$bin_dir/hcc-gateway" keys dev "$work/pki" >"$work/keys.log" 2>&1
    "$bin_dir/mock-tsa" --bind "127.0.0.1:${tsa_port}" --keys "$work/pki" >"$work/tsa.log" 2>&1 &
    pids+=($!)
    evidence_env+=("HCC__EVIDENCE__TSA_URL=http://127.0.0.1:${tsa_port}" "HCC__EVIDENCE__TSA_CA=$work/pki/root.pem"
        HCC__EVIDENCE__BATCH_SECS=5)
else
    echo "no mock-tsa: the evidence chain is written but not stamped" >&2
fi

redis_args=()
if redis-cli -u "$redis_url" ping >/dev/null 2>&1; then
    redis_args=(--redis "$redis_url")
    demo_prefixes >"$work/prefixes.before"
else
    echo "no Redis at $redis_url: the demo uses its embedded queue" >&2
fi

start=$(date +%s)
env "${evidence_env[@]}" HCC__SERVER__BIND="127.0.0.1:${gw_port}" "$bin_dir/hcc-demo" "${redis_args[@]}" --dossiers "$dossiers" \
    >"$work/demo.out" 2>"$work/demo.err" &
demo=$!
pids+=("$demo")
# The demo prints "Still serving" once its scenario is done; it gives up by itself after 5 min.
for _ in $(seq 1 800); do
    grep -q "Still serving" "$work/demo.out" 2>/dev/null && break
    kill -0 "$demo" 2>/dev/null || break
    sleep 0.5
done
grep -q "gateway       : http://127.0.0.1:${gw_port}" "$work/demo.out" ||
    { echo "the demo did not serve on port ${gw_port}:" >&2; cat "$work/demo.out" "$work/demo.err" >&2; exit 1; }
grep -q "Still serving" "$work/demo.out" ||
    { echo "the demo did not complete:" >&2; cat "$work/demo.out" >&2; tail -c 2000 "$work/demo.err" >&2; exit 1; }
grep -v "[█▀▄]" "$work/demo.out" | tail -n 25
# Then steady traffic, with the portal down for a while: the outage the dashboard is for.
portal=$(sed -n 's|^  mock portal   : \(http://[^/]*\)/_mock/stats$|\1|p' "$work/demo.out")
[ -n "$portal" ] || { echo "the demo printed no mock portal URL" >&2; exit 1; }
"$venv/bin/python" scripts/dashboard_picture.py drive --gateway "http://127.0.0.1:${gw_port}" \
    --portal "$portal" --seconds "$drive_secs" --rate "$rate" --outage-at "$outage_at" --outage-secs "$outage_secs"
sleep "$tail_secs"
end=$(date +%s)

mkdir -p "$(dirname "$out")"
"$venv/bin/python" scripts/dashboard_picture.py draw --prometheus "$prom" --start "$start" --end "$end" \
    --scrape-interval "$scrape" --dashboard deploy/grafana/hcc-gateway.json --out "$out"
echo "wrote $out ($(stat -c %s "$out") bytes, $((end - start)) s of traffic and scrapes)"
if [ "${HCC_PICTURE_HOLD_SECS:-0}" -gt 0 ]; then
    echo "Prometheus at $prom, gateway at http://127.0.0.1:${gw_port}, for ${HCC_PICTURE_HOLD_SECS} s" \
        "(range $start to $end)"
    sleep "$HCC_PICTURE_HOLD_SECS"
fi
