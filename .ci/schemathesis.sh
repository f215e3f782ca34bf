#!/usr/bin/env bash
# Property-based API testing with Schemathesis (PyPI) against a live hookbox and
# its own /openapi.json, with a fixed seed. Checks: no 5xx, every response inside
# its documented schema, no schema-violating request accepted (negative data
# rejection), and no schema-valid request refused (positive data acceptance) except
# for the documented semantic refusals: operations marked `x-semantic-400` in the
# document may answer 400 (an event type not in the catalogue, a tenant that does
# not exist, a blocked host...); 409 (conflict) and 412 (a conditional request whose
# If-Match no longer matches) are documented outcomes of valid requests everywhere.
# Exits non-zero on any failure. Under two minutes once the release binary is built
# (both phases, 2 cores; the phase timings are printed at the end).
#
# Usage: bash .ci/schemathesis.sh   (from anywhere; builds the release binary)
# Env: SCHEMATHESIS_EXAMPLES (per operation in the fuzzing phase, default 50),
#      SCHEMATHESIS_SEED (default 1105), SCHEMATHESIS_WORKERS (default 1),
#      SCHEMATHESIS_PHASES (comma-separated, in order, default "coverage,fuzzing").
set -euo pipefail

cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
version=4.32.5
venv=$target/schemathesis-venv
examples=${SCHEMATHESIS_EXAMPLES:-50}
seed=${SCHEMATHESIS_SEED:-1105}
workers=${SCHEMATHESIS_WORKERS:-1}
phases=${SCHEMATHESIS_PHASES:-coverage,fuzzing}

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    echo "==> creating $venv with schemathesis $version"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

echo "==> cargo build --release --bin hookbox"
cargo build --release --bin hookbox

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin="adm_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
base="http://127.0.0.1:$port"
cat > "$work/hookbox.toml" <<EOF
listen = "127.0.0.1:$port"
data_dir = "$work/data"
admin_token = "$admin"

[log]
level = "warn"

[security]
require_https = false
allow_networks = ["127.0.0.0/8"]

[delivery]
connect_timeout = "200ms"
request_timeout = "500ms"

[[event_types]]
name = "order.created"

[[event_types]]
name = "order.paid"
EOF

"$target/release/hookbox" serve --config "$work/hookbox.toml" > "$work/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -fsS "$base/readyz" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/readyz" > /dev/null

api() {
    curl -fsS -X "$1" "$base$2" -H "authorization: Bearer $admin" \
        -H 'content-type: application/json' ${3:+-d "$3"}
}
api POST /v1/tenants '{"id": "st", "name": "Schemathesis"}' > /dev/null
key=$(api POST /v1/api-keys \
    '{"tenant": "st", "name": "st", "scopes": ["webhooks:read", "webhooks:write", "events:write", "events:read"]}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
# For the admin operations on one tenant or key: a tenant to delete and a spare key.
api POST /v1/tenants '{"id": "st2", "name": "Schemathesis spare"}' > /dev/null
spare=$(api POST /v1/api-keys '{"tenant": "st", "name": "spare", "scopes": ["webhooks:read"]}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
# A real webhook, so that the operations on one reach their checks instead of a 404.
webhook=$(curl -fsS -X POST "$base/v1/webhooks" -H "authorization: Bearer $key" \
    -H 'content-type: application/json' \
    -d '{"url": "http://127.0.0.1:9/hook", "event_types": ["order.created"]}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
# A delivery of an event to it (its receiver refuses the connection, so the
# delivery fails and can be retried), for the operations on one delivery.
curl -fsS -X POST "$base/v1/events" -H "authorization: Bearer $key" \
    -H 'content-type: application/json' \
    -d '{"type": "order.created", "data": {"order": 1}}' > /dev/null
delivery=$(curl -fsS "$base/v1/webhooks/$webhook/deliveries" -H "authorization: Bearer $key" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')

# Per-operation expectations, from the document itself: the operations it marks
# as refusing schema-valid input for a semantic reason may answer 400. The
# operations on one webhook use the real one, except DELETE (which would leave the
# rest nothing but 404s), and the tenant header names the key's tenant.
curl -fsS "$base/openapi.json" > "$work/openapi.json"
python3 - "$work/openapi.json" "$webhook" "$delivery" "$spare" > "$work/schemathesis.toml" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
semantic = [op["operationId"] for item in doc["paths"].values() for op in item.values()
            if op.get("x-semantic-400")]
# Fixed parameters per operation, in disjoint blocks: the tenant header names the
# key's own tenant (a random one is only ever a 403), the operations on one
# webhook or delivery use the real one, an asset is one the portal serves, and
# the admin ones read tenant st, delete the spare tenant st2 and use a spare key.
fixed = {}
for path, item in doc["paths"].items():
    for method, op in item.items():
        params = {}
        if any(p["name"] == "X-Tenant-Id" for p in op.get("parameters", [])):
            params["header.X-Tenant-Id"] = "st"
        if path.startswith("/v1/webhooks/{id}") and method != "delete":
            params["path.id"] = sys.argv[2]
        if path.startswith("/v1/deliveries/{id}"):
            params["path.id"] = sys.argv[3]
        if path == "/portal/assets/{name}":
            params["path.name"] = "app.js"
        if path == "/v1/tenants/{id}":
            params["path.id"] = "st2" if method == "delete" else "st"
        if path == "/v1/api-keys/{id}":
            params["path.id"] = sys.argv[4]
        if params:
            fixed.setdefault(json.dumps(params, sort_keys=True), []).append(op["operationId"])
for params, ops in fixed.items():
    print('[[operations]]')
    print('include-operation-id = %s' % json.dumps(ops))
    print('parameters = { %s }' % ", ".join(
        '%s = %s' % (json.dumps(k), json.dumps(v)) for k, v in json.loads(params).items()))
    print()
print('[checks.positive_data_acceptance]')
print('expected-statuses = ["2xx", "401", "403", "404", "409", "412"]')
print()
print('[[operations]]')
print('include-operation-id = %s' % json.dumps(semantic))
print('checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412"]')
EOF

# Phases, each over tenant routes (with a tenant key) and admin routes (with the
# admin token): coverage (boundary, enum, missing-field and wrong-type cases
# derived deterministically from every schema), then fuzzing (random positive and
# negative cases, SCHEMATHESIS_EXAMPLES per operation). The coverage phase's cost
# is Python case generation in the client; it stays in seconds because the alias
# rule ("send one spelling") is stated as `dependentSchemas`, which its templates
# can satisfy, rather than as a `not` they could only filter against. Measured on
# 2 shared cores (wall): coverage 12 s tenant + 4 s admin, fuzzing at 50 examples
# 31 s + 10 s; at 100 examples fuzzing alone took 86 s of client CPU.
run() {
    "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
        --url "$base" \
        --checks not_a_server_error,response_schema_conformance,negative_data_rejection,positive_data_acceptance \
        --mode all --seed "$seed" \
        --workers "$workers" --request-timeout 5 --no-color --suppress-health-check all \
        --report junit --report-dir "$target/schemathesis-report/$1" "${@:2}"
}
tenant=(-H "Authorization: Bearer $key" --exclude-path-regex '^/v1/(tenants|api-keys)')
admins=(-H "Authorization: Bearer $admin" --include-path-regex '^/v1/(tenants|api-keys)')
status=0
timings=()
phase() {
    local name=$1 start end
    start=$(date +%s.%N)
    echo "==> schemathesis $version, $name (seed $seed)"
    run "$name" "${@:2}" || status=$?
    end=$(date +%s.%N)
    timings+=("$(printf '%-22s %6.1f s' "$name" "$(awk "BEGIN { print $end - $start }")")")
}
IFS=, read -ra wanted <<< "$phases"
# Tenant routes first: the admin phases may revoke the tenant key.
for who in tenant admin; do
    for p in "${wanted[@]}"; do
        case $p in
            coverage) extra=() ;;
            fuzzing) extra=(--max-examples "$examples") ;;
            *) echo "unknown phase $p" >&2; exit 2 ;;
        esac
        if [ "$who" = tenant ]; then auth=("${tenant[@]}"); else auth=("${admins[@]}"); fi
        phase "$p-$who" --phases "$p" "${extra[@]}" "${auth[@]}"
    done
done
echo "==> phase timings"
printf '    %s\n' "${timings[@]}"
if [ "$status" -ne 0 ]; then
    echo "==> schemathesis found problems (exit $status); server log:"
    tail -n 20 "$work/server.log"
fi
exit "$status"
