#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, database `test`, trust for local tests), Redis
# (127.0.0.1:6379) and etcd (127.0.0.1:2379) answer: start them if installed, install them
# if not. The discovery tests start etcd processes of their own too (tests/libs/discovery):
# they need the binary; the shared server is for edgectl and manual runs.
# Used by `make test`; safe to run repeatedly.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null || true
  as_root apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

ensure_postgres() {
  # The outage and fuzzing tests (tests/e2e/servers.py) also run clusters of their own:
  # they need the server binaries (initdb, pg_ctl), not only a running server.
  if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1 \
    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "ensure-services: installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  if ! pg_up; then
    echo "ensure-services: starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  fi
  pg_up || { echo "ensure-services: PostgreSQL did not start" >&2; exit 1; }
  if ! psql -h "$PG_HOST" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    # A fresh install asks for passwords on TCP; these are throwaway test servers.
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
  fi
  if ! psql -h "$PG_HOST" -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
    psql -h "$PG_HOST" -U postgres -d postgres -c 'create database test' >/dev/null
  fi
  echo "ensure-services: PostgreSQL ready on $PG_HOST:$PG_PORT"
}

redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-services: installing Redis"
    apt_install redis-server redis-tools
  fi
  if ! redis_up; then
    echo "ensure-services: starting Redis"
    mkdir -p /tmp/edge-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /tmp/edge-redis --logfile /tmp/edge-redis/redis.log
    for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
  fi
  redis_up || { echo "ensure-services: Redis did not start" >&2; exit 1; }
  echo "ensure-services: Redis ready on 127.0.0.1:$REDIS_PORT"
}

ETCD_PORT=2379

etcd_up() {
  curl -fsS -m 1 -X POST -d '{}' "http://127.0.0.1:$ETCD_PORT/v3/maintenance/status" >/dev/null 2>&1
}

ensure_etcd() {
  if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    echo "ensure-services: installing etcd"
    apt_install etcd-server etcd-client
  fi
  command -v curl >/dev/null 2>&1 || apt_install curl
  if ! etcd_up; then
    echo "ensure-services: starting etcd"
    mkdir -p /tmp/edge-etcd
    nohup etcd --name edge-ci --data-dir /tmp/edge-etcd/data \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
      --initial-cluster edge-ci=http://127.0.0.1:2380 --log-level error \
      >/tmp/edge-etcd/etcd.log 2>&1 </dev/null &
    for _ in $(seq 1 50); do etcd_up && break; sleep 0.2; done
  fi
  etcd_up || { echo "ensure-services: etcd did not start (see /tmp/edge-etcd/etcd.log)" >&2; exit 1; }
  echo "ensure-services: etcd ready on 127.0.0.1:$ETCD_PORT"
}

ensure_tools() {
  command -v bazel >/dev/null 2>&1 || { echo "ensure-services: installing bazel-bootstrap"; apt_install bazel-bootstrap; }
  # promtool checks and unit-tests the alert rules; the observability e2e test runs a real
  # Prometheus (tests/deploy/test_observability.py, tests/e2e/test_observability.py).
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
    || { echo "ensure-services: installing prometheus"; apt_install --no-install-recommends prometheus; }
  # The console's browser tests (tests/console) drive Debian's headless Chromium through
  # Playwright (its own browser downloads are not used).
  [ -x /usr/bin/chromium ] || { echo "ensure-services: installing chromium"; apt_install chromium; }
}

ensure_postgres
ensure_redis
ensure_etcd
ensure_tools
