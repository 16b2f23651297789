#!/usr/bin/env bash
# Fuzzes the parsers that read outside input (docs/fuzzing.md): builds every cargo-fuzz target
# in fuzz/ once, makes the seed corpora (tests/fixtures, fuzz/seeds, and the signed seeds of
# `cargo run -p hcc-signing --example fuzz_seeds`), then runs each target for a bounded time and
# prints its executions. Fails when a target crashes, times out or runs out of memory, naming
# the input libFuzzer saved (fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]     (default 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing). CI runs
# `scripts/fuzz.sh 30` from scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
if [ $# -gt 0 ]; then shift; fi
all_targets=(camt054 xml_c14n xml_dsig pdf_verify pades_prepare vnpay_query paygov_json dossier portal_answer tsp_response cms_verify inbound)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
# Per input: a hang is a finding too. Per process: a parser that balloons is one.
timeout_secs="${HCC_FUZZ_TIMEOUT:-10}"
rss_mb="${HCC_FUZZ_RSS_MB:-2048}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "==> installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "==> seed corpora"
corpus=fuzz/corpus
for t in "${targets[@]}"; do mkdir -p "$corpus/$t" "fuzz/artifacts/$t"; done
seed() { # seed TARGET FILE...: copies fixtures into a target's corpus
  local t="$1"; shift
  [ -d "$corpus/$t" ] && cp "$@" "$corpus/$t/"
  return 0
}
for t in camt054 xml_c14n xml_dsig; do seed "$t" tests/fixtures/xml/*.xml; done
for t in pdf_verify pades_prepare; do seed "$t" tests/fixtures/pdf/*.pdf; done
seed dossier tests/fixtures/dossier.json tests/fixtures/progress.json
for t in "${targets[@]}"; do
  if [ -d "fuzz/seeds/$t" ]; then seed "$t" "fuzz/seeds/$t"/*; fi
done
cargo run -q -p hcc-signing --example fuzz_seeds -- fuzz

# HCC_FUZZ_BUILD=release (the default: optimised, one codegen unit, the most executions per
# second; a cold build took 37 min on the shared 2-core machine, lopdf most of it) or dev
# (unoptimised: a cold build in about 3 min, fewer executions; what the CI smoke run uses).
build="${HCC_FUZZ_BUILD:-release}"
case "$build" in
  release) build_flags=(); profile_dir=release ;;
  dev) build_flags=(--dev); profile_dir=debug ;;
  *) echo "HCC_FUZZ_BUILD must be release or dev, not $build" >&2; exit 2 ;;
esac
echo "==> building the fuzz targets (cargo +nightly fuzz build, $build)"
start=$(date +%s)
# cargo-fuzz builds with one codegen unit; HCC_FUZZ_CODEGEN_UNITS=16 builds faster on many cores.
(cd fuzz && cargo +nightly fuzz build "${build_flags[@]}" ${HCC_FUZZ_CODEGEN_UNITS:+--codegen-units "$HCC_FUZZ_CODEGEN_UNITS"})
echo "    built in $(( $(date +%s) - start )) s"
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$host/$profile_dir"

failed=()
summary=()
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${secs} s"
  log="fuzz/artifacts/$t/last-run.log"
  set +e
  "$bin_dir/$t" -max_total_time="$secs" -timeout="$timeout_secs" -rss_limit_mb="$rss_mb" \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "$corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus_size=$(find "$corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-14s %10s executions  %5s corpus files  exit %s' "$t" "${execs:-?}" "$corpus_size" "$rc")")
  echo "    ${summary[-1]}"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    grep -E 'ERROR|panicked|SUMMARY|Test unit written to|Timeout|out-of-memory' "$log" | head -20 >&2 || true
    echo "    log: $log" >&2
  fi
done

echo "==> fuzz summary (${secs} s per target)"
printf '    %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found a crash in: ${failed[*]} (the inputs are in fuzz/artifacts/<target>/; replay one with $bin_dir/<target> FILE)" >&2
  exit 1
fi
