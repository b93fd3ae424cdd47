# The README's walkthrough with Debian's aws-cli and curl: what one protocol writes, the
# other reads at once, with the same size, ETag and mtime.
source "$(dirname "$0")/../lib.sh"

head -c 300000 /dev/urandom > a.jpg
step "aws s3 mb / cp / ls"
"${AWS[@]}" s3 mb s3://photos
"${AWS[@]}" s3 cp --no-progress a.jpg s3://photos/2024/a.jpg
listing=$("${AWS[@]}" s3 ls s3://photos/2024/)
check_contains "$listing" "a.jpg" "aws s3 ls"

step "the same bytes over WebDAV"
dav -o via-dav.jpg "$PORTICO_URL/dav/photos/2024/a.jpg"
cmp a.jpg via-dav.jpg || fail "bytes differ between S3 and WebDAV"

step "PROPFIND shows what head-object shows"
head_json=$("${AWS[@]}" s3api head-object --bucket photos --key 2024/a.jpg)
s3_etag=$(printf '%s' "$head_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ETag"])')
s3_size=$(printf '%s' "$head_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ContentLength"])')
s3_mtime=$(printf '%s' "$head_json" | python3 -c 'import json,sys,email.utils,datetime; print(email.utils.format_datetime(datetime.datetime.fromisoformat(json.load(sys.stdin)["LastModified"]).astimezone(datetime.timezone.utc), usegmt=True))')
props=$(dav -X PROPFIND -H "Depth: 0" "$PORTICO_URL/dav/photos/2024/a.jpg")
check_eq "$(printf '%s' "$props" | dav_values getetag)" "$s3_etag" "ETag"
check_eq "$(printf '%s' "$props" | dav_values getcontentlength)" "$s3_size" "size"
check_eq "$(printf '%s' "$props" | dav_values getlastmodified)" "$s3_mtime" "mtime"
check_eq "$s3_etag" "\"$(md5sum a.jpg | cut -d' ' -f1)\"" "ETag is the MD5"

step "a WebDAV PUT is listed by aws s3 ls at once"
echo "written over WebDAV" > note.txt
code=$(dav -o /dev/null -w '%{http_code}' -T note.txt "$PORTICO_URL/dav/photos/note.txt")
check_eq "$code" "201" "WebDAV PUT"
listing=$("${AWS[@]}" s3 ls s3://photos/)
check_contains "$listing" "note.txt" "aws s3 ls after WebDAV PUT"
"${AWS[@]}" s3 cp --no-progress s3://photos/note.txt back.txt
cmp note.txt back.txt || fail "bytes differ between WebDAV and S3"

step "errors are protocol answers"
if "${AWS[@]}" s3 rb s3://photos 2>err.txt; then fail "removed a non-empty bucket"; fi
check_contains "$(cat err.txt)" "BucketNotEmpty" "rb of a non-empty bucket"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' "$PORTICO_URL/dav/photos/")" "401" "WebDAV without credentials"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -u "$PORTICO_ADMIN_USER:wrong" "$PORTICO_URL/dav/")" "401" "wrong password"
check_eq "$(dav -o /dev/null -w '%{http_code}' -X MKCOL "$PORTICO_URL/dav/photos/no/parent")" "409" "MKCOL without parent"

step "cleanup with aws s3 rm --recursive and rb"
"${AWS[@]}" s3 rm --recursive s3://photos
"${AWS[@]}" s3 rb s3://photos
case "$("${AWS[@]}" s3 ls)" in *" photos"*) fail "the bucket is still listed";; esac
