#!/usr/bin/env bash
# Starts the directory and the file servers from etc/*.conf in the foreground; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${DFS_BIN_DIR:-$(swift build -c release --show-bin-path)}"
pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT
mkdir -p var
# A real cluster secret for this checkout (the shipped confs carry a placeholder); DFS_CLUSTER_SECRET overrides
# the confs' cluster_secret in every server started here.
if [ ! -s var/cluster_secret ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/cluster_secret)
fi
DFS_CLUSTER_SECRET="$(cat var/cluster_secret)"
export DFS_CLUSTER_SECRET
"$bin/dfsd" directory --config etc/directory.conf &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:5000/health >/dev/null 2>&1 && break
    sleep 0.1
done
for conf in etc/fileserver-*.conf; do
    "$bin/dfsd" fileserver --config "$conf" &
    pids+=($!)
done
echo "dfs cluster running: directory http://127.0.0.1:5000, file servers on 5001-5003. Ctrl-C stops it."
echo "Try: $bin/dfs servers"
wait
