#!/usr/bin/env bash
# An auditor's check of hcc-gateway's evidence log, with nothing but the files, bash,
# coreutils (sha256sum, base64), sed, grep and openssl: no gateway, no database.
#
#   bash evidence-audit.sh EVIDENCE_DIR TSA_CA.pem
#
# For every chain (the files evidence-INSTANCE-YYYY-MM-DD.jsonl of one INSTANCE, day by day):
#   - each line is `HASH JSON`, and HASH is `sha256sum` of the JSON text;
#   - each record's "prev" is the HASH of the line before it (64 zeros for the first), and its
#     "seq" is one more;
#   - each stamp record's token (base64 DER) is an RFC 3161 token that `openssl ts -verify`
#     accepts for the digest in its "covers", and "covers" is the HASH of the record numbered
#     "covers_seq" earlier in the chain.
# A last line without its newline at the very end of a chain (a process killed mid-write) is
# reported and skipped. Exits 1 at the first break, naming the file, line and record.
set -euo pipefail

dir=${1:?usage: evidence-audit.sh EVIDENCE_DIR TSA_CA.pem}
ca=${2:?usage: evidence-audit.sh EVIDENCE_DIR TSA_CA.pem}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

field() { # field NAME JSON: a string or number field's value
  printf '%s' "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p"
}
fail() { echo "FAILED: $*"; exit 1; }

zero=0000000000000000000000000000000000000000000000000000000000000000
instances=$(ls "$dir" | sed -n 's/^evidence-\(.*\)-[0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}\.jsonl$/\1/p' | sort -u)
[ -n "$instances" ] || fail "no evidence files in $dir"
for inst in $instances; do
  prev=$zero; seq=0; stamps=0; records=0
  : > "$work/hashes"
  files=$(ls "$dir" | grep -E "^evidence-${inst}-[0-9]{4}-[0-9]{2}-[0-9]{2}\.jsonl$" | sort)
  last_file=$(printf '%s\n' "$files" | tail -n 1)
  for f in $files; do
    n=0
    total=$(wc -l < "$dir/$f")
    while IFS= read -r line || [ -n "$line" ]; do
      n=$((n + 1))
      if [ "$n" -gt "$total" ]; then
        [ "$f" = "$last_file" ] || fail "$f line $n: the line is cut short"
        echo "note: $f line $n is cut short (a crash while writing); not counted"
        break
      fi
      hash=${line%% *}
      json=${line#* }
      id="$inst:$((seq + 1))"
      [ "$(printf '%s' "$json" | sha256sum | cut -c1-64)" = "$hash" ] \
        || fail "record $id ($f line $n): its hash does not match its content"
      [ "$(field prev "$json")" = "$prev" ] \
        || fail "record $id ($f line $n): its prev is not the hash of the record before it"
      [ "$(field seq "$json")" = "$((seq + 1))" ] \
        || fail "record $id ($f line $n): its seq is not $((seq + 1)): a record is missing or added"
      seq=$((seq + 1))
      echo "$seq $hash" >> "$work/hashes"
      if [ "$(field type "$json")" = stamp ]; then
        covers=$(field covers "$json")
        covers_seq=$(field covers_seq "$json")
        grep -qx "$covers_seq $covers" "$work/hashes" \
          || fail "record $id ($f line $n): the stamp does not cover record $covers_seq of this chain"
        field token "$json" | base64 -d > "$work/token.tsr" \
          || fail "record $id ($f line $n): the token is not base64"
        openssl ts -verify -digest "$covers" -in "$work/token.tsr" -token_in -CAfile "$ca" > "$work/ts.log" 2>&1 \
          || fail "record $id ($f line $n): openssl ts -verify refuses the token: $(tail -n 2 "$work/ts.log")"
        stamps=$((stamps + 1))
      fi
      records=$((records + 1))
      prev=$hash
    done < "$dir/$f"
  done
  echo "chain $inst: $records records, $stamps stamps verified"
done
echo "OK: every chain holds"
