#!/usr/bin/env bash
# Make sure the PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) the tests use answer.
# Starts them when they do not (installing them from Debian if missing). With CI=true a service
# that still does not answer is a failure, never a skip.
set -u

pg_up()    { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

need_pkg() {  # need_pkg <command> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "ensure-services: $1 missing; installing $2 from Debian"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null
}

start_pg() {
  need_pkg pg_isready postgresql
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$ver" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>&1 || true
  fi
}

start_redis() {
  need_pkg redis-server redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log 2>&1 || true
}

wait_for() {  # wait_for <check> <seconds>
  local i
  for i in $(seq 1 "$2"); do "$1" && return 0; sleep 1; done
  return 1
}

status=0
if ! pg_up; then
  echo "ensure-services: PostgreSQL does not answer on 127.0.0.1:5432; starting it"
  start_pg
  wait_for pg_up 20 || { echo "ensure-services: PostgreSQL is still down" >&2; status=1; }
fi
if ! redis_up; then
  echo "ensure-services: Redis does not answer on 127.0.0.1:6379; starting it"
  start_redis
  wait_for redis_up 10 || { echo "ensure-services: Redis is still down" >&2; status=1; }
fi
if [ $status -ne 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "ensure-services: FAILING (CI=true): the tests need PostgreSQL and Redis" >&2
    exit 1
  fi
  echo "ensure-services: WARNING: tests that need the missing service will be skipped" >&2
fi
pg_up && echo "ensure-services: PostgreSQL ok"
redis_up && echo "ensure-services: Redis ok"
exit 0
