# cadaver (http only: it cannot be told to trust a test CA), one scripted session.
source "$(dirname "$0")/../lib.sh"
host=${PORTICO_URL#*://}; host=${host%%:*}
export HOME=$PWD
printf 'machine %s\nlogin %s\npassword %s\n' "$host" "$PORTICO_ADMIN_USER" "$PORTICO_ADMIN_PASSWORD" > .netrc
chmod 600 .netrc
head -c 100000 /dev/urandom > local.bin
echo "second version" > second.txt

# cadaver reads commands from a FIFO so curl can act between them, as another client.
mkfifo commands
cadaver "$PORTICO_URL/dav/" < commands > session.log 2>&1 &
cadaver_pid=$!
exec 3> commands
send() { echo "$1" >&3; }
seen=0
# Waits until the session log shows $1 after what was already seen.
expect() {
  for _ in $(seq 1 200); do
    if tail -c +$((seen + 1)) session.log | grep -q -- "$1"; then
      seen=$(wc -c < session.log)
      return 0
    fi
    sleep 0.05
  done
  cat session.log
  fail "cadaver did not print [$1]"
}

step "mkcol, put, get, ls"
send "mkcol cadaver-test"; expect "Creating \`cadaver-test': succeeded"
send "cd cadaver-test"
send "put local.bin data.bin"; expect "succeeded"
send "get data.bin back.bin"; expect "succeeded"
cmp local.bin back.bin || fail "get returned other bytes"
send "ls"; expect "data.bin"

step "copy and move"
send "copy data.bin copy.bin"; expect "Copying \`/dav/cadaver-test/data.bin' to \`/dav/cadaver-test/copy.bin':  succeeded"
send "move copy.bin moved.bin"; expect "Moving \`/dav/cadaver-test/copy.bin' to \`/dav/cadaver-test/moved.bin':  succeeded"
check_eq "$(dav -o /dev/null -w '%{http_code}' "$PORTICO_URL/dav/cadaver-test/copy.bin")" "404" "moved away"
check_eq "$(dav "$PORTICO_URL/dav/cadaver-test/moved.bin" | cmp - local.bin && echo same)" "same" "moved bytes"

step "propset, propget, propdel"
send "propset data.bin color deep-blue"; expect "Setting property on \`data.bin': succeeded"
send "propget data.bin color"; expect "Value of color is: deep-blue"
send "propdel data.bin color"; expect "Deleting property on \`data.bin': succeeded"
send "propget data.bin color"; expect "Could not fetch property: 404"

step "lock, discover; another client is refused (423); the lock holder writes; unlock"
send "lock data.bin"; expect "Locking \`data.bin': succeeded"
send "discover data.bin"; expect "Scope: exclusive"
check_eq "$(dav -o /dev/null -w '%{http_code}' -T second.txt "$PORTICO_URL/dav/cadaver-test/data.bin")" "423" "PUT by another client"
check_eq "$(dav -o /dev/null -w '%{http_code}' -X DELETE "$PORTICO_URL/dav/cadaver-test/data.bin")" "423" "DELETE by another client"
send "put second.txt data.bin"; expect "succeeded"
send "unlock data.bin"; expect "Unlocking \`data.bin': succeeded"
check_eq "$(dav "$PORTICO_URL/dav/cadaver-test/data.bin")" "second version" "the lock holder's PUT"
check_eq "$(dav -o /dev/null -w '%{http_code}' -T local.bin "$PORTICO_URL/dav/cadaver-test/data.bin")" "204" "PUT after unlock"

step "rmcol"
send "cd .."
send "rmcol cadaver-test"; expect "succeeded"
send "quit"
exec 3>&-
wait "$cadaver_pid"
check_eq "$(dav -o /dev/null -w '%{http_code}' "$PORTICO_URL/dav/cadaver-test/")" "404" "removed"
