#!/usr/bin/env bash
# Instructions per message, counted by callgrind (deterministic, unlike wall-clock time on a
# shared machine): one pair moving u64s with bound 1024, one sender thread and one receiver.
#
#   crossbeam  one crossbeam-channel bounded(1024) hop
#   ours       clocked-dispatch, send -> recv
#   batched    clocked-dispatch, send_all -> recv_many, runs of 256
#
# Each workload runs with n and 2n messages; (I(2n) - I(n)) / n cancels start-up and
# shutdown. Usage: benches/instructions.sh [n]   (default n = 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt install valgrind)" >&2; exit 1; }
cargo build --release --quiet --example profile_pair
bin=target/release/examples/profile_pair
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

count() { # workload messages -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^(summary|totals):/ { print $2; exit }' "$out/$1.$2"
}

declare -A per
for w in crossbeam ours batched; do
  small=$(count "$w" "$n")
  large=$(count "$w" $((2 * n)))
  per[$w]=$(awk -v a="$small" -v b="$large" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
done

printf '%-10s %12s %18s\n' workload "instr/msg" "ratio to crossbeam"
for w in crossbeam ours batched; do
  printf '%-10s %12s %18s\n' "$w" "${per[$w]}" \
    "$(awk -v x="${per[$w]}" -v c="${per[crossbeam]}" 'BEGIN { printf "%.2fx", x / c }')"
done
