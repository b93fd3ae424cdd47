# Helpers for conformance scenarios: sourced, never run alone.
set -euo pipefail
AWS=(aws --endpoint-url "$PORTICO_URL")
# Debian's awscli, not whatever a developer has earlier on PATH.
[ -x /usr/bin/aws ] && AWS=(/usr/bin/aws --endpoint-url "$PORTICO_URL")

fail() { echo "FAILED: $*" >&2; exit 1; }
check_eq() { [ "$1" = "$2" ] || fail "$3: expected [$2], got [$1]"; }
check_contains() { case "$1" in *"$2"*) ;; *) fail "$3: [$2] not in [$1]";; esac; }
step() { echo "--- $*"; }

# curl as the administrator against WebDAV.
dav() { curl -sS -u "$PORTICO_ADMIN_USER:$PORTICO_ADMIN_PASSWORD" "$@"; }
# The text of every <D:NAME> in XML on stdin.
dav_values() { grep -o "<D:$1>[^<]*</D:$1>" | sed "s/<[^>]*>//g"; }
