# A server killed (SIGKILL) during concurrent writes keeps every write it acknowledged (sqlite http only: it runs a server of its own on SQLite, where the commit path — group commit, the WAL's flush — is Portico's; on PostgreSQL it is the database's).
# Eight curl loops PUT files over WebDAV, small ones (kept in the catalog's blob rows) and
# larger ones (files on the volume), each logged once its 201 is in; the server is killed
# mid-stream, started again on the same data, and every logged file must read back whole,
# with fsck finding no catalog row without its blob.
source "$(dirname "$0")/../lib.sh"
BIN=${PORTICO_BIN:?}
data=$PWD/data
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
# Its own data directory and SQLite, whatever the run's server was given.
server() {
  env -u PORTICO_DATABASE_URL -u PORTICO_DATA_DIR "$BIN" "$@" --data-dir "$data"
}
start() {
  # Not through `server`: `$!` must be the server itself, the process SIGKILL is for.
  env -u PORTICO_DATABASE_URL -u PORTICO_DATA_DIR "$BIN" serve --listen "127.0.0.1:$port" \
    --data-dir "$data" >>serve.out 2>>serve.log &
  pid=$!
  for _ in $(seq 1 200); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && grep -q "password" serve.out && return 0
    sleep 0.1
  done
  fail "the server did not start: $(tail -n 5 serve.log)"
}
pid=""
# A failed check leaves no server behind.
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
# The bytes of a file: its name, repeated to its size.
content() { yes "$1" | head -c "$2"; }

step "a server of its own, and a folder"
start
user=$(sed -n 's/^  user: *//p' serve.out | head -n 1)
password=$(sed -n 's/^  password: *//p' serve.out | head -n 1)
[ -n "$password" ] || fail "no first-start credentials"
put() { curl -sS -u "$user:$password" "$@"; }
check_eq "$(put -X MKCOL -o /dev/null -w '%{http_code}' "$url/dav/crash/")" "201" "MKCOL"

step "eight writers, then SIGKILL"
writer() {
  set +e
  for i in $(seq 1 100000); do
    name="w$1-$i"
    size=$(( i % 3 == 0 ? 70001 : 3001 ))
    code=$(content "$name" "$size" | put -T - -o /dev/null -w '%{http_code}' "$url/dav/crash/$name" 2>/dev/null)
    case "$code" in
      201|204) echo "$name $size" >>"acked.$1" ;;
      *) return 0 ;;
    esac
  done
}
set +o pipefail
for w in 1 2 3 4 5 6 7 8; do writer "$w" & done
for _ in $(seq 1 100); do
  [ "$(cat acked.* 2>/dev/null | wc -l)" -ge 400 ] && break
  sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
wait
set -o pipefail
acked=$(cat acked.* | wc -l)
[ "$acked" -ge 100 ] || fail "only $acked writes before the kill"
echo "$acked writes acknowledged before the kill"

step "started again: every acknowledged write reads back whole"
start
bad=0
while read -r name size; do
  if ! cmp -s <(put "$url/dav/crash/$name") <(content "$name" "$size"); then
    echo "lost or damaged: $name ($size bytes)"
    bad=$((bad + 1))
  fi
done < <(cat acked.*)
check_eq "$bad" "0" "acknowledged writes lost"
fsck=$(server fsck) || fail "fsck after the crash: $fsck"
check_contains "$fsck" "missing blobs:      0" "fsck"
