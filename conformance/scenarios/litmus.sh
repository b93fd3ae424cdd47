# litmus (http only: it has no way to trust a test CA): all five suites, no failure.
source "$(dirname "$0")/../lib.sh"
step "litmus: basic, copymove, props, locks, http"
out=$(litmus "$PORTICO_URL/dav/" "$PORTICO_ADMIN_USER" "$PORTICO_ADMIN_PASSWORD" 2>&1) || true
echo "$out" | grep -E "summary|FAIL|WARNING"
for suite in basic copymove props locks http; do
  line=$(echo "$out" | grep "summary for \`$suite'") || fail "litmus did not run $suite"
  check_contains "$line" " 0 failed" "litmus $suite"
done
total=$(echo "$out" | sed -n "s/.*of \([0-9]*\) tests run.*/\1/p" | awk '{ n += $1 } END { print n }')
check_eq "$total" "104" "litmus tests run"
