#!/usr/bin/env bash
# A local S3-compatible server for tests and benchmarks: OpenStack Swift (Debian packages)
# with its s3api middleware, one replica, everything bound to 127.0.0.1.
#
#   scripts/s3-server.sh start [DIR] [PORT]   start (or reuse what already answers on PORT)
#   scripts/s3-server.sh stop  [DIR] [PORT]   stop the processes this script started in DIR
#   scripts/s3-server.sh status [DIR] [PORT]  exit 0 when PORT answers /healthcheck
#
# S3 endpoint http://127.0.0.1:PORT, path-style addressing, region us-east-1,
# access key "test:tester", secret key "testing".
# Ports: PORT (proxy, S3), PORT+20 memcached, PORT+21/22/23 object/container/account servers.
# STRATA_S3_WORKERS: worker processes per Swift server (default 0: one process each).
set -euo pipefail

action=${1:-start}
dir=$(realpath -m "${2:-${TMPDIR:-/tmp}/strata-s3}")
port=${3:-9000}
mc_port=$((port + 20))
obj_port=$((port + 21))
cont_port=$((port + 22))
acct_port=$((port + 23))
PY=/usr/bin/python3

healthy() { curl -fsS -m 2 "http://127.0.0.1:$port/healthcheck" >/dev/null 2>&1; }

stop_all() {
  local svc pid
  for svc in proxy object container account memcached; do
    [ -f "$dir/run/$svc.pid" ] || continue
    pid=$(cat "$dir/run/$svc.pid")
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/run/$svc.pid"
  done
}

case "$action" in
  stop) stop_all; exit 0 ;;
  status) healthy && { echo "s3 server answers on 127.0.0.1:$port"; exit 0; } || exit 1 ;;
  start) ;;
  *) echo "usage: $0 start|stop|status [DIR] [PORT]" >&2; exit 2 ;;
esac

# Concurrent starts (parallel test files) serialise here; the later ones find it healthy.
mkdir -p "$dir"
exec 9>"$dir/.start-lock"
flock -w 120 9

if healthy; then
  echo "s3 server already answers on 127.0.0.1:$port (reusing it)"
  exit 0
fi

need_pkgs=()
command -v swift-proxy-server >/dev/null || need_pkgs+=(swift-proxy)
command -v swift-object-server >/dev/null || need_pkgs+=(swift-object)
command -v swift-container-server >/dev/null || need_pkgs+=(swift-container)
command -v swift-account-server >/dev/null || need_pkgs+=(swift-account)
command -v memcached >/dev/null || need_pkgs+=(memcached)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing ${need_pkgs[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo -n)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Leftovers of an earlier run in the same DIR (e.g. a crashed proxy) would hold the ports.
stop_all
mkdir -p "$dir/etc" "$dir/devices/disk0" "$dir/run"
etc=$dir/etc

cat > "$etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = strata
swift_hash_path_suffix = strata

[storage-policy:0]
name = gold
default = yes
EOF

backend_conf() { # name port
  cat > "$etc/$1-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
devices = $dir/devices
mount_check = false
disable_fallocate = true
swift_dir = $etc
workers = ${STRATA_S3_WORKERS:-0}
log_level = WARNING

[pipeline:main]
pipeline = $1-server

[app:$1-server]
use = egg:swift#$1
EOF
}
backend_conf object "$obj_port"
backend_conf container "$cont_port"
backend_conf account "$acct_port"

# Rings: one device each, built in a single interpreter (swift-ring-builder is slow per call).
if [ ! -f "$etc/account.ring.gz" ] || [ "$(cat "$etc/ring-port" 2>/dev/null)" != "$port" ]; then
  "$PY" - "$etc" "$obj_port" "$cont_port" "$acct_port" <<'PYEOF'
import os, sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for kind, p in zip(("object", "container", "account"), sys.argv[2:5]):
    rb = RingBuilder(6, 1, 1)  # 2^6 partitions, 1 replica, min_part_hours 1
    rb.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(p),
                "device": "disk0", "weight": 1.0, "meta": ""})
    rb.rebalance()
    rb.get_ring().save(os.path.join(etc, kind + ".ring.gz"))
PYEOF
  echo "$port" > "$etc/ring-port"
fi

# max_upload_part_num / max_manifest_segments raised to S3's 10000 parts.
cat > "$etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
swift_dir = $etc
workers = ${STRATA_S3_WORKERS:-0}
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
max_upload_part_num = 10000

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc_port

[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:dlo]
use = egg:swift#dlo
EOF

memcached -d -u "$(id -un)" -l 127.0.0.1 -p "$mc_port" -U 0 -m 32 -P "$dir/run/memcached.pid" 9>&-
for svc in account container object proxy; do
  setsid nohup "swift-$svc-server" "$etc/$svc-server.conf" >"$dir/run/$svc.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/run/$svc.pid"
done

# Up = the proxy passes its healthcheck and every backend server answers HTTP (the proxy may
# come up first; requests would then fail with 503).
answers() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' -X HEAD "http://127.0.0.1:$1/")" != 000 ]; }
for _ in $(seq 1 150); do
  if healthy && answers "$obj_port" && answers "$cont_port" && answers "$acct_port"; then
    echo "s3 server up on 127.0.0.1:$port (state in $dir)"
    exit 0
  fi
  sleep 0.2
done
echo "s3 server did not come up on 127.0.0.1:$port; logs in $dir/run:" >&2
tail -n 20 "$dir"/run/*.log >&2 || true
stop_all
exit 1
