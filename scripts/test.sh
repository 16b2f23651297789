#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs and starts what the tests need (Redis;
# xmlsec1 and openssl, the judges of the signature tests; poppler-utils (pdfsig, pdftotext),
# pyHanko and qpdf for the PAdES tests; SoftHSM2 and OpenSC for the PKCS#11 token tests;
# Python's standardwebhooks; opentelemetry-proto, which decodes the trace tests' spans; schemathesis, the outside judge of the OpenAPI document;
# Chromium and playwright-core for the dashboard test; zbarimg (zbar-tools) and the npm package
# vietnam-qr-pay, the outside judges of the VietQR codes; promtool (Debian prometheus) and
# systemd-analyze for the deployment files),
# then runs formatting and lint checks, builds the binaries the crash tests spawn, runs
# every test, and fuzzes every outside parser for about 30 s each (scripts/fuzz.sh,
# docs/fuzzing.md; HCC_FUZZ_SECONDS sets it). CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v xmlsec1 >/dev/null 2>&1 || need_apt+=(xmlsec1)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v pdfsig >/dev/null 2>&1 || need_apt+=(poppler-utils)
command -v qpdf >/dev/null 2>&1 || need_apt+=(qpdf)
# SoftHSM2 holds the signing key in a PKCS#11 token for the token tests; pkcs11-tool (OpenSC)
# generates keys in it and reports how they are protected.
command -v softhsm2-util >/dev/null 2>&1 || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need_apt+=(opensc)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# zbarimg reads the VietQR PNGs back (tests/support zbar_decode).
command -v zbarimg >/dev/null 2>&1 || need_apt+=(zbar-tools)
# systemd-analyze verifies deploy/systemd's unit (tests/e2e/deploy.rs).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# promtool checks and unit-tests deploy/prometheus's alert rules (tests/e2e/deploy.rs). It comes
# with Debian's Prometheus server, which is not wanted here: installed without its recommended
# node exporter, and its service stopped and disabled again where systemd runs.
need_promtool=()
command -v promtool >/dev/null 2>&1 || need_promtool+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ] || [ ${#need_promtool[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]} ${need_promtool[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  if [ ${#need_apt[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
  if [ ${#need_promtool[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_promtool[@]}" >/dev/null
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
  fi
fi

# Playwright's driver (no browser download: the tests use Debian's chromium).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "==> installing playwright-core for the dashboard test"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

# vietnam-qr-pay decodes the VietQR payloads independently of the gateway (tests/judges/vietqr).
if [ ! -d tests/judges/vietqr/node_modules/vietnam-qr-pay ]; then
  echo "==> installing vietnam-qr-pay for the VietQR tests"
  (cd tests/judges/vietqr && npm ci --no-audit --no-fund --silent)
fi

# An independent Standard Webhooks verifier for the webhook tests.
if ! python3 -c "import standardwebhooks" >/dev/null 2>&1; then
  echo "==> installing the standardwebhooks Python package"
  python3 -m pip install -q standardwebhooks
fi

# pyHanko validates and makes PAdES signatures in tests/e2e/pades.rs (tests/support/pyhanko_tool.py).
if ! python3 -c "import pyhanko.sign, pyhanko_certvalidator" >/dev/null 2>&1; then
  echo "==> installing pyHanko"
  python3 -m pip install -q pyHanko pyhanko-certvalidator
fi

# opentelemetry-proto decodes the OTLP/HTTP protobuf the trace tests receive
# (tests/support/otlp_receiver.py, tests/e2e/traces.rs): the OpenTelemetry project's own classes.
if ! python3 -c "import opentelemetry.proto.collector.trace.v1.trace_service_pb2" >/dev/null 2>&1; then
  echo "==> installing opentelemetry-proto"
  python3 -m pip install -q opentelemetry-proto
fi

# schemathesis fuzzes the live gateway against its OpenAPI document (tests/e2e/schema.rs); here
# a missing tool fails that test instead of skipping it.
SCHEMATHESIS_VERSION=4.32.5
if [ "$(schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
export HCC_REQUIRE_TOOLS=1

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/hcc-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/hcc-redis --logfile /tmp/hcc-redis/redis.log
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> the service crate, with no mock code (the demo and the bench live in tools/)"
if cargo tree -p hcc-gateway -e normal --prefix none | grep '^hcc-mocks ' >/dev/null; then
  echo "hcc-mocks is a dependency of the service (cargo tree -p hcc-gateway -e normal)" >&2
  exit 1
fi
cargo build -p hcc-gateway --bins
prod_bin="${CARGO_TARGET_DIR:-target}/debug/hcc-gateway"
if nm -C "$prod_bin" | grep 'hcc_mocks::' >/dev/null; then
  echo "$prod_bin links mock code" >&2
  exit 1
fi
if "$prod_bin" demo --help >/dev/null 2>&1; then
  echo "$prod_bin still has the demo sub-command" >&2
  exit 1
fi
echo "==> building binaries (the crash tests run the real hcc-gateway)"
cargo build --workspace --bins
echo "==> tests"
cargo test --workspace
echo "==> fuzzing (scripts/fuzz.sh)"
# The unoptimised build: a cold optimised one takes longer than the rest of the suite.
HCC_FUZZ_BUILD="${HCC_FUZZ_BUILD:-dev}" bash scripts/fuzz.sh "${HCC_FUZZ_SECONDS:-30}"
