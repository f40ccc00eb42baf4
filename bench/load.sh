#!/usr/bin/env bash
# Load benchmark: N accounts in PostgreSQL (default 1,000,000) -> tokend's
# time to READY and its RSS, side by side in the same run with the floor:
# psql \copy of the very same SELECT to /dev/null. Prints figures; never
# pass/fail. Usage: bench/load.sh [N] [RUNS]  (BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
runs=${2:-3}
build=${BUILD:-build}
tokend=$build/daemon/tokend
tokenctl=$build/tools/tokenctl

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup bench
port=$(free_port)
cat >"$work/tokend.conf" <<CONF
database_url = host=$TOKEND_TEST_PGHOST port=$TOKEND_TEST_PGPORT user=postgres dbname=bench
admin_listen = 127.0.0.1:$port
keyring_file = $work/keyring
state_directory = $work
log_level = notice
CONF
"$tokend" -c "$work/tokend.conf" --migrate 2>/dev/null

echo "seeding $n accounts..."
# Expiries 30-60 days out: nothing is due, the load alone is measured.
psql_ -d bench -c "ALTER TABLE platform_accounts DISABLE TRIGGER platform_accounts_notify;
  INSERT INTO platform_accounts (platform, external_id, access_token, refresh_token, access_expires_at)
  SELECT (ARRAY['x','bluesky','threads','instagram','facebook','linkedin','pinterest','tiktok','youtube'])[1 + i % 9],
         'ext-' || i, '\\x01'::bytea, CASE WHEN i % 2 = 0 THEN '\\x02'::bytea END,
         now() + interval '30 days' + (i % 2592000) * interval '1 second'
  FROM generate_series(1, $n) AS i;
  ALTER TABLE platform_accounts ENABLE TRIGGER platform_accounts_notify;"
psql_ -d bench -c "VACUUM ANALYZE platform_accounts"

select_sql=$("$tokend" --print-load-sql | sed -E 's/^COPY \((.*)\) TO STDOUT$/\1/')
now_ns() { date +%s%N; }

copy_ms=()
for _ in $(seq "$runs"); do
  t0=$(now_ns)
  psql_ -d bench -c "\\copy ($select_sql) to /dev/null"
  copy_ms+=($(( ($(now_ns) - t0) / 1000000 )))
done

ready_ms=()
rss_kb=()
for _ in $(seq "$runs"); do
  t0=$(now_ns)
  "$tokend" -c "$work/tokend.conf" 2>"$work/tokend.log" &
  pid=$!
  pids=("$pid")
  until curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.005; done
  ready_ms+=($(( ($(now_ns) - t0) / 1000000 )))
  rss_kb+=($(awk '/^VmRSS/ {print $2}' "/proc/$pid/status"))
  sched_bytes=$(curl -fs "127.0.0.1:$port/metrics" | awk '/^tokend_scheduler_memory_bytes/ {print $2}')
  kill "$pid"; wait "$pid" || true; pids=()
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
copy=$(median "${copy_ms[@]}")
ready=$(median "${ready_ms[@]}")
rss=$(median "${rss_kb[@]}")
echo
echo "load benchmark: $n accounts, median of $runs runs ($(nproc) cores)"
printf '%-44s %10s\n' "psql \\copy (same SELECT) to /dev/null" "${copy} ms"
printf '%-44s %10s\n' "tokend start -> /readyz 200 (READY)" "${ready} ms"
printf '%-44s %10s\n' "ratio READY / copy" "$(awk "BEGIN {printf \"%.2fx\", $ready / $copy}")"
printf '%-44s %10s\n' "tokend RSS at READY" "$((rss / 1024)) MiB"
printf '%-44s %10s\n' "scheduler memory (heap + slots + index)" "$(awk "BEGIN {printf \"%.1f B/account\", $sched_bytes / $n}")"
echo "runs: copy ${copy_ms[*]} ms; ready ${ready_ms[*]} ms; rss ${rss_kb[*]} kB"
