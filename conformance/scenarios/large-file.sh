# A file over 4 GiB through WebDAV (sqlite http only: the bytes path is the same on every
# catalog and the run is long). Streamed with no Content-Length, as Finder and `curl -T -`
# send it; its MD5 (the ETag), its length and a range beyond 4 GiB are checked.
source "$(dirname "$0")/../lib.sh"
# Generators below are cut short by head: their SIGPIPE is expected.
set +o pipefail
size=$((4 * 1024 * 1024 * 1024 + 123457))
# Reproducible pseudo-random bytes: AES-CTR over zeros.
bytes() { openssl enc -aes-128-ctr -nosalt -pass pass:portico -pbkdf2 -in /dev/zero 2>/dev/null | head -c "$size"; }

step "PUT $size bytes, chunked"
dav -X MKCOL "$PORTICO_URL/dav/large/" -o /dev/null
bytes | tee >(md5sum | cut -d' ' -f1 > sent.md5) \
  | dav -T - -H "Content-Type: application/octet-stream" -o /dev/null -w '%{http_code}\n' \
    "$PORTICO_URL/dav/large/big.bin" > put.status
sleep 1
check_eq "$(cat put.status)" "201" "PUT status"

step "the server has every byte: length, ETag (MD5), a range past 4 GiB"
head_out=$(dav -I "$PORTICO_URL/dav/large/big.bin")
check_contains "$head_out" "content-length: $size" "length"
check_contains "$head_out" "etag: \"$(cat sent.md5)\"" "ETag is the MD5 of what was sent"
offset=$((size - 70000))
dav -r "$offset-$((offset + 65535))" "$PORTICO_URL/dav/large/big.bin" -o range.bin
bytes | tail -c +$((offset + 1)) | head -c 65536 > expected.bin
cmp range.bin expected.bin || fail "bytes past 4 GiB differ"
dav -X DELETE "$PORTICO_URL/dav/large/" -o /dev/null
