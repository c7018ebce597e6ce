#!/usr/bin/env bash
# Instructions per message, counted by callgrind (deterministic, unlike wall-clock time on a
# shared machine): u64s from a sender thread into a timely count on one worker.
#
#   handle           crossbeam bounded(1024) -> InputHandle, advance_to before every record
#   handle-batched   the same, advance_to once per drained batch (up to 1024 records)
#   source           dispatcher -> Source::build (each value at its stamp)
#   source-batched   dispatcher -> Source::build_batched ((value, stamp), a batch per message)
#
# All threads count (the sender, the dispatcher, the worker). Each workload runs with n and
# 2n messages; (I(2n) - I(n)) / n cancels start-up and shutdown. Waits that spin (timely's
# idle spin, the channels' back-off) count too, so repeated runs differ by a few percent.
# Usage: clocked-timely/benches/instructions.sh [n]   (default n = 100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-100000}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt install valgrind)" >&2; exit 1; }
cargo build --release --quiet -p clocked-timely --example profile_source
bin=target/release/examples/profile_source
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

count() { # workload messages -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^(summary|totals):/ { print $2; exit }' "$out/$1.$2"
}

workloads=(handle handle-batched source source-batched)
declare -A per
for w in "${workloads[@]}"; do
  small=$(count "$w" "$n")
  large=$(count "$w" $((2 * n)))
  per[$w]=$(awk -v a="$small" -v b="$large" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
done

printf '%-15s %12s %18s\n' workload "instr/msg" "handle / this"
for w in "${workloads[@]}"; do
  printf '%-15s %12s %18s\n' "$w" "${per[$w]}" \
    "$(awk -v x="${per[$w]}" -v c="${per[handle]}" 'BEGIN { printf "%.2fx", c / x }')"
done
