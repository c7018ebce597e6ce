#!/usr/bin/env bash
# Many threads on few cores: throughput, CPU time and context switches per message, for the
# workloads of examples/contention.rs, optionally against an older commit built beside.
#
#   pair            one sender, one receiver (bound 1024, u64)
#   fanout-parked   the pair, plus 63 receivers blocked in recv (woken as the clock moves)
#   fanout-idle     the pair, plus 63 receivers nobody reads
#   pairs16         16 pairs at once (32 threads)
#   forward         two forwarders (odd and even stamps) into one receiver, in order
#
# Wall-clock throughput swings 3x between runs on a shared machine, so each workload runs
# `rounds` times, interleaved with the other commit's, and the medians are printed, with the
# CPU time per message (perf's task-clock over all threads: what the run cost, which moves
# less than how long it took) and context switches per 1000 messages (wake-ups and parks).
#
# Usage: benches/contention.sh [rounds] [rev]    (default 5 rounds; rev: a commit to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
rev="${2:-}"
command -v perf >/dev/null || { echo "perf is needed (apt install linux-perf)" >&2; exit 1; }
out="$(mktemp -d)"
worktree=""
cleanup() {
  [ -n "$worktree" ] && git worktree remove --force "$worktree" >/dev/null 2>&1
  rm -rf "$out"
}
trap cleanup EXIT

cargo build --release --quiet --example contention
cp target/release/examples/contention "$out/bin.head"
trees=(head)
if [ -n "$rev" ]; then
  worktree="$out/tree"
  git worktree add --detach --quiet "$worktree" "$rev"
  # The probe uses only API older than issue 17 (see its doc), so the older tree builds it.
  cp examples/contention.rs "$worktree/examples/contention.rs"
  (cd "$worktree" && CARGO_TARGET_DIR="$out/target" cargo build --release --quiet --example contention)
  cp "$out/target/release/examples/contention" "$out/bin.rev"
  trees+=(rev)
fi

declare -A size=([pair]=2000000 [fanout-parked]=2000000 [fanout-idle]=2000000 [pairs16]=4000000
  [forward]=2000000)
workloads=(pair fanout-parked fanout-idle pairs16 forward)

for round in $(seq "$rounds"); do
  for w in "${workloads[@]}"; do
    for t in "${trees[@]}"; do
      n=${size[$w]}
      perf stat -x, -e task-clock,context-switches -o "$out/perf" "$out/bin.$t" "$w" "$n" \
        > "$out/line"
      read -r _ _ secs < "$out/line"
      cpu_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$out/perf")
      switches=$(awk -F, '$3 == "context-switches" { print $1 }' "$out/perf")
      awk -v n="$n" -v s="$secs" -v c="$cpu_ms" -v x="$switches" \
        'BEGIN { printf "%.4f %.1f %.2f\n", n / s / 1e6, c * 1e6 / n, x * 1000 / n }' \
        >> "$out/$w.$t"
    done
  done
  echo "round $round of $rounds done" >&2
done

median() { # file column -> median of that column
  sort -g -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

printf '%-14s %-5s %12s %14s %16s\n' workload tree "M msg/s" "CPU ns/msg" "switches/1k msg"
for w in "${workloads[@]}"; do
  for t in "${trees[@]}"; do
    printf '%-14s %-5s %12s %14s %16s\n' "$w" "$t" "$(median "$out/$w.$t" 1)" \
      "$(median "$out/$w.$t" 2)" "$(median "$out/$w.$t" 3)"
  done
done
echo
for t in "${trees[@]}"; do
  pair=$(median "$out/pair.$t" 1)
  for w in fanout-parked fanout-idle; do
    echo "$t: $w / pair throughput $(awk -v a="$(median "$out/$w.$t" 1)" -v b="$pair" \
      'BEGIN { printf "%.2f", a / b }')"
  done
done
if [ -n "$rev" ]; then
  for w in "${workloads[@]}"; do
    echo "$w head / $rev: throughput $(awk -v a="$(median "$out/$w.head" 1)" \
      -v b="$(median "$out/$w.rev" 1)" 'BEGIN { printf "%.2f", a / b }'), CPU per message \
$(awk -v a="$(median "$out/$w.head" 2)" -v b="$(median "$out/$w.rev" 2)" \
      'BEGIN { printf "%.2f", a / b }')"
  done
fi
