#!/usr/bin/env bash
# Run a layerstore fleet locally, no compose: Redis, N `layerstore serve` instances on one shared
# filesystem root, and nginx in front of them. Ctrl-C stops everything.
#
#   deploy/run-fleet.sh [INSTANCES] [PUBLIC_PORT]      (defaults: 3 instances, port 5000)
#
# Needs: layerstore (pip install 'layerstore[server]'), nginx, redis-server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="${1:-3}"
public="${2:-5000}"
work="${FLEET_DIR:-$(mktemp -d -t layerstore-fleet.XXXXXX)}"
redis_port=$((public + 100))
mkdir -p "$work/data" "$work/nginx"
secret="$(head -c 32 /dev/urandom | base64)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; }
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)

upstreams=""
for i in $(seq 1 "$n"); do
  port=$((public + i))
  cat >"$work/config$i.yml" <<YAML
version: 0.1
storage:
  filesystem: {rootdirectory: $work/data}
  delete: {enabled: true}
  cache: {blobdescriptor: redis}
redis: {addr: "127.0.0.1:$redis_port", dialtimeout: 200ms, readtimeout: 500ms}
http: {addr: "127.0.0.1:$port", secret: "$secret"}
YAML
  layerstore serve --config "$work/config$i.yml" >"$work/serve$i.log" 2>&1 &
  pids+=($!)
  upstreams+="server 127.0.0.1:$port max_fails=1 fail_timeout=10s; "
done

sed -e "s|@LISTEN@|127.0.0.1:$public|" -e "s|@UPSTREAMS@|$upstreams|" \
  "$here/nginx-fleet.conf" >"$work/nginx/fleet.conf"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  include $work/nginx/fleet.conf;
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
echo "fleet of $n on http://127.0.0.1:$public (state in $work); Ctrl-C stops it"
wait
