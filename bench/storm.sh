#!/usr/bin/env bash
# Refresh storm: N X accounts all due at once (default 100,000), refreshed
# end to end (claim, open, HTTP to the fake server on loopback, seal,
# journal, commit, outbox) as fast as tokend goes. Prints completed
# refreshes/s, lateness percentiles, RSS and CPU per refresh, and, in the
# same run, the two ceilings it sits under: the fake server's own rate
# (wrk, rotating chains) and PostgreSQL's rate for the same write
# statements (pgbench -f). Never pass/fail.
# Usage: bench/storm.sh [N]   (BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-100000}
build=${BUILD:-build}
tokend=$build/daemon/tokend
tokenctl=$build/tools/tokenctl
fake=$build/tests/fake/fake_platforms

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup storm
admin=$(free_port)

"$fake" --port 0 --quiet >"$work/fake.out" &
pids+=($!)
until [ -s "$work/fake.out" ]; do sleep 0.05; done
fake_addr=$(head -n 1 "$work/fake.out" | awk '{print $NF}')

(umask 077; echo "x-secret" >"$work/x_secret")
cat >"$work/tokend.conf" <<CONF
database_url = host=$TOKEND_TEST_PGHOST port=$TOKEND_TEST_PGPORT user=postgres dbname=storm
admin_listen = 127.0.0.1:$admin
keyring_file = $work/keyring
state_directory = $work
log_level = notice
max_inflight = 1024
sched_batch = 1024
platform.x.base_url = http://$fake_addr/x
platform.x.client_id = x-client
platform.x.client_secret_file = $work/x_secret
platform.x.rate_limit = 0
platform.x.max_inflight = 256
CONF
"$tokend" -c "$work/tokend.conf" --migrate 2>/dev/null

echo "seeding $n X accounts due now..."
psql_ -d storm -c "CREATE TABLE seed (id uuid, platform text, external_id text, access_token bytea,
                                     refresh_token bytea, expires bigint)"
"$build/bench/bench_seed" "$work/keyring" x "$n" 240 | psql_ -d storm -c "\\copy seed from stdin"
psql_ -d storm -c "ALTER TABLE platform_accounts DISABLE TRIGGER platform_accounts_notify;
  INSERT INTO platform_accounts (id, platform, external_id, access_token, refresh_token, access_expires_at)
  SELECT id, platform, external_id, access_token, refresh_token, to_timestamp(expires) FROM seed;
  ALTER TABLE platform_accounts ENABLE TRIGGER platform_accounts_notify;"
psql_ -d storm -c "VACUUM ANALYZE platform_accounts"

now_ms() { date +%s%3N; }
refreshed() { psql_ -d storm -At -c "SELECT count(*) FROM platform_accounts WHERE token_version > 1"; }
t0=$(now_ms)
"$tokend" -c "$work/tokend.conf" 2>"$work/tokend.log" &
tokend_pid=$!
pids+=($tokend_pid)
if [ -n "${PERF_OUT:-}" ]; then perf record -g -o "$PERF_OUT" -p "$tokend_pid" 2>/dev/null & pids+=($!); fi
rss_max=0
while [ "$(refreshed)" -lt "$n" ]; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$tokend_pid/status")
  [ "$rss" -gt "$rss_max" ] && rss_max=$rss
  sleep 0.5
  if ! kill -0 "$tokend_pid" 2>/dev/null; then echo "tokend died"; tail "$work/tokend.log"; exit 1; fi
done
t1=$(now_ms)
ticks=$(awk '{print $14 + $15}' "/proc/$tokend_pid/stat")
hz=$(getconf CLK_TCK)
read -r p50 p99 pmax < <(psql_ -d storm -At -F ' ' -c "SELECT
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)), max(ms)
  FROM (SELECT extract(epoch FROM last_refresh_at) * 1000 - $t0 AS ms FROM platform_accounts) s")
reuse=$(curl -fs "http://$fake_addr/_control/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["platforms"]["x"]["reuse"])')
outbox=$(psql_ -d storm -At -c "SELECT count(*) FROM platform_accounts WHERE status <> 'active'")
kill "$tokend_pid"; wait "$tokend_pid" || true

echo "ceiling 1: the fake server alone (wrk, 2 threads' worth of rotating chains, 5 s)"
curl -fs -X POST "http://$fake_addr/_control/reset" >/dev/null
wrk_rate=$(wrk -t1 -c64 -d5s -s "$root/tests/fake/wrk-x-refresh.lua" "http://$fake_addr/x/2/oauth2/token" \
  | awk '/Requests\/sec/ {print int($2)}')

echo "ceiling 2: PostgreSQL alone, the same batched claim + store statements (pgbench -f, 4 clients, 10 s)"
psql_ -d storm -c "CREATE TABLE bench_ids AS SELECT row_number() OVER () AS n, id, access_token FROM platform_accounts;
  CREATE INDEX ON bench_ids (n)"
cat >"$work/write.sql" <<'SQL'
\set n random(0, :accounts / 100 - 1) * 100 + 1
WITH b AS (SELECT b.id, a.token_version AS v FROM bench_ids b JOIN platform_accounts a USING (id) WHERE b.n BETWEEN :n AND :n + 99)
SELECT count(*) FROM tokend_claim_many((SELECT array_agg(id ORDER BY id) FROM b), (SELECT array_agg(v ORDER BY id) FROM b), 'pgbench', 120000);
WITH b AS (SELECT b.id, a.token_version AS v, b.access_token AS t FROM bench_ids b JOIN platform_accounts a USING (id) WHERE b.n BETWEEN :n AND :n + 99)
SELECT count(*) FROM tokend_store_many((SELECT array_agg(id ORDER BY id) FROM b), (SELECT array_agg(v ORDER BY id) FROM b), (SELECT array_agg(t ORDER BY id) FROM b), (SELECT array_agg(NULL::bytea) FROM b), (SELECT array_agg(extract(epoch FROM now()) + 7200 ORDER BY id) FROM b), (SELECT array_agg(NULL::float8) FROM b), (SELECT array_agg(false) FROM b));
SQL
# Each transaction claims and stores a batch of 100 accounts, as tokend does.
pg_tps=$(pgbench -n -h "$TOKEND_TEST_PGHOST" -p "$TOKEND_TEST_PGPORT" -U postgres -c 4 -j 2 -T 10 \
  -D accounts="$n" -f "$work/write.sql" storm 2>/dev/null | awk '/^tps = / {print $3}')
pg_rate=$(awk "BEGIN {printf \"%d\", $pg_tps * 100}")

elapsed=$((t1 - t0))
rate=$(awk "BEGIN {printf \"%d\", $n * 1000 / $elapsed}")
ceiling=$(( wrk_rate < pg_rate ? wrk_rate : pg_rate ))
echo
echo "refresh storm: $n X accounts due at once ($(nproc) cores)"
printf '%-46s %12s\n' "time to refresh all (from tokend start)" "${elapsed} ms"
printf '%-46s %12s\n' "completed refreshes/s (end to end)" "$rate"
printf '%-46s %12s\n' "lateness p50 / p99 / max" "${p50} / ${p99} / ${pmax} ms"
printf '%-46s %12s\n' "tokend peak RSS" "$((rss_max / 1024)) MiB"
printf '%-46s %12s\n' "tokend CPU per refresh" "$(awk "BEGIN {printf \"%.1f us\", $ticks / $hz * 1e6 / $n}")"
printf '%-46s %12s\n' "refresh-token reuse seen by the fake" "$reuse"
printf '%-46s %12s\n' "accounts not active afterwards" "$outbox"
printf '%-46s %12s\n' "ceiling: fake server alone (wrk)" "$wrk_rate/s"
printf '%-46s %12s\n' "ceiling: PostgreSQL claim+store (pgbench)" "$pg_rate accounts/s"
printf '%-46s %12s\n' "tokend as a fraction of the lower ceiling" "$(awk "BEGIN {printf \"%.2f\", $rate / $ceiling}")"
