# Helpers for conformance scenarios: sourced, never run alone.
set -euo pipefail
CA=()
[ -n "${PORTICO_CA:-}" ] && CA=(--cacert "$PORTICO_CA")
# Debian's awscli (v2), not whatever a developer has earlier on PATH.
AWS=(/usr/bin/aws --endpoint-url "$PORTICO_URL")
[ -n "${PORTICO_CA:-}" ] && AWS+=(--ca-bundle "$PORTICO_CA")

fail() { echo "FAILED: $*" >&2; exit 1; }
check_eq() { [ "$1" = "$2" ] || fail "$3: expected [$2], got [$1]"; }
check_contains() { case "$1" in *"$2"*) ;; *) fail "$3: [$2] not in [$1]";; esac; }
step() { echo "--- $*"; }

# curl as the administrator against WebDAV.
dav() { curl -sS "${CA[@]}" -u "$PORTICO_ADMIN_USER:$PORTICO_ADMIN_PASSWORD" "$@"; }
# curl with the test CA, without credentials.
plain_curl() { curl -sS "${CA[@]}" "$@"; }
# The text of every <D:NAME> in XML on stdin.
dav_values() { grep -o "<D:$1>[^<]*</D:$1>" | sed "s/<[^>]*>//g"; }
