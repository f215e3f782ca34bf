#!/usr/bin/env bash
# Installs Debian's PostgreSQL server and PgBouncer when missing (idempotent,
# quiet). The tests start throwaway clusters of their own (initdb + pg_ctl on a free
# loopback port, tests/it/pg_cluster.rs) and a PgBouncer in front of one
# (tests/it/pg_bouncer.rs), and stop them; nothing here leaves a server running.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || missing+=(postgresql)
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${missing[*]} and this is not root: run apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q > /dev/null || true
apt-get install -y -q "${missing[@]}" > /dev/null
# The pgbouncer package may start its own service on 6432; the tests do not use it.
if command -v invoke-rc.d > /dev/null && [ -x /etc/init.d/pgbouncer ]; then
    invoke-rc.d pgbouncer stop > /dev/null 2>&1 || true
fi
# The package starts its own cluster on 5432; the tests do not use it.
if command -v pg_ctlcluster > /dev/null; then
    for cluster in $(pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}'); do
        pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop 2>/dev/null || true
    done
fi
