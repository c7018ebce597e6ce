#!/usr/bin/env bash
# clockd serve vs redis-server pub/sub, same machine, same run, loopback only.
#
#   bash clockd/benches/broker.sh [SECONDS] [ROUNDS]
#   DATA=1 bash clockd/benches/broker.sh ...   # clockd with --data: every message journaled
#
# Installs redis-server from the Debian package if it is missing (the tests never need it),
# builds clockd, starts both servers on free loopback ports, and runs `clockd bench` against
# each in turn, ROUNDS times per workload (interleaved, so that drift on a shared machine hits
# both alike). Prints one line per run and the median ratio clockd / redis per workload.
set -euo pipefail
seconds=${1:-5}
rounds=${2:-3}
cd "$(dirname "$0")/../.."

if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (Debian package)..." >&2
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
    fi
fi
cargo build --release -q -p clockd
clockd=target/release/clockd

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
storage=(--spill-dir "$work/spill")
if [ "${DATA:-0}" = 1 ]; then
    storage=(--data "$work/data")
fi
"$clockd" serve --listen 127.0.0.1:0 "${storage[@]}" >"$work/clockd.out" &
clockd_pid=$!
trap 'kill $redis_pid $clockd_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$work/clockd.out" 2>/dev/null && redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
clockd_addr=$(sed -n 's/^clockd: listening on //p' "$work/clockd.out")

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), clockd $(git rev-parse --short HEAD) ${storage[*]/$work\//}, ${seconds} s per run, $(nproc) cores"
# name|clockd bench arguments
workloads=(
    "1->8 fan-out, 1 KiB, window 1000|--publishers 1 --subscribers 8 --topics 1 --payload 1024 --window 1000"
    "1->8 fan-out, 1 KiB, window 16|--publishers 1 --subscribers 8 --topics 1 --payload 1024 --window 16"
    "1->1, 16 B, window 1000|--publishers 1 --subscribers 1 --topics 1 --payload 24 --window 1000"
    "4->8 over 4 topics, 1 KiB|--publishers 4 --subscribers 8 --topics 4 --payload 1024 --window 1000"
)
for workload in "${workloads[@]}"; do
    name=${workload%%|*}
    read -r -a bench_args <<<"${workload#*|}"
    ratios=()
    for round in $(seq "$rounds"); do
        ours=$("$clockd" bench --json --duration "$seconds" --addr "$clockd_addr" "${bench_args[@]}")
        theirs=$("$clockd" bench --json --duration "$seconds" --protocol redis --addr "127.0.0.1:$redis_port" "${bench_args[@]}")
        line=$(python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = a["delivered_per_sec"] / b["delivered_per_sec"]
print(f"{ratio:.3f} clockd {a['delivered_per_sec']:>10.0f} deliveries/s p50 {a['p50_us']} p99 {a['p99_us']} µs | "
      f"redis {b['delivered_per_sec']:>10.0f} deliveries/s p50 {b['p50_us']} p99 {b['p99_us']} µs | "
      f"ratio {ratio:.2f}, p99 ratio {a['p99_us'] / max(b['p99_us'], 1):.2f}")
PY
)
        ratios+=("${line%% *}")
        echo "$name, round $round: ${line#* }"
    done
    median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$name: median throughput ratio clockd/redis $median"
done
