#!/usr/bin/env bash
# Installs Debian's PostgreSQL server when it is missing (idempotent, quiet). The
# tests start throwaway clusters of their own (initdb + pg_ctl on a free loopback
# port, tests/it/pg_cluster.rs) and stop them; nothing here starts a server.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed and this is not root: run apt-get install -y postgresql" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q > /dev/null || true
apt-get install -y -q postgresql > /dev/null
# The package starts its own cluster on 5432; the tests do not use it.
if command -v pg_ctlcluster > /dev/null; then
    for cluster in $(pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}'); do
        pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop 2>/dev/null || true
    done
fi
