# bench/lib.sh: what the benchmark scripts share. Source it from the repo
# root: bench_setup NAME makes $work (a scratch directory), starts a
# throwaway PostgreSQL and Redis, creates database NAME, writes a keyring,
# and stops everything on exit, including the processes in $pids.
# Gives psql_ (psql on that database server) and free_port.

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$TOKEND_TEST_PGHOST" -p "$TOKEND_TEST_PGPORT" -U postgres "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  scripts/services stop "$work/svc" || true
  rm -rf "$work"
}

bench_setup() { # database-name
  work=$(mktemp -d "/tmp/tokend-bench-$1.XXXXXX")
  chmod 755 "$work" # the postgres user must reach its data directory
  trap bench_cleanup EXIT
  local svc_env
  svc_env=$(scripts/services start "$work/svc")
  eval "$svc_env"
  psql_ -d postgres -c "CREATE DATABASE $1"
  (umask 077; "$tokenctl" keygen --id 1 --primary >"$work/keyring")
}
