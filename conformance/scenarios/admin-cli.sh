# The admin commands, run while the server runs, against the same catalog.
source "$(dirname "$0")/../lib.sh"
BIN=${PORTICO_BIN:?}

step "user add with a password from stdin, key create --json"
printf 'carol-password-1\n' | "$BIN" user add carol --email carol@example.com --quota 1000000 --password-stdin
json=$("$BIN" key create carol --json)
carol_id=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])')
carol_secret=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret_access_key"])')
check_contains "$("$BIN" user list)" "carol" "user list"
check_contains "$("$BIN" key list carol)" "$carol_id" "key list"

step "the new key works at once, and carol sees only her own buckets"
AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3 mb s3://carols
check_eq "$(AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3 ls | awk '{print $3}')" "carols" "carol's buckets"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -u carol:carol-password-1 "$PORTICO_URL/dav/carols/")" "200" "carol over WebDAV"

step "a read grant to carol by the owner id user list shows"
carol_owner=$("$BIN" user list | awk '$1 == "carol" {print $NF}')
check_eq "$(AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3api list-buckets --query Owner.ID --output text)" "$carol_owner" "owner id"
"${AWS[@]}" s3 mb s3://admins-shelf
echo "for carol" > note.txt
"${AWS[@]}" s3 cp note.txt s3://admins-shelf/note.txt
if AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3 cp s3://admins-shelf/note.txt got.txt 2>err.txt; then
  fail "carol read a private bucket"
fi
"${AWS[@]}" s3api put-bucket-acl --bucket admins-shelf --grant-read "id=\"$carol_owner\""
AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3 cp s3://admins-shelf/note.txt got.txt
check_eq "$(cat got.txt)" "for carol" "granted read"
"${AWS[@]}" s3 rb --force s3://admins-shelf

step "app passwords: Basic and Bearer, listed, revoked at once"
app=$("$BIN" user app-password carol --label "conformance drive" | sed -n 's/^password: //p')
[ -n "$app" ] || fail "no app password printed"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -u "carol:$app" "$PORTICO_URL/dav/")" "200" "app password in Basic"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $app" "$PORTICO_URL/dav/")" "200" "app password as Bearer"
app_id=$("$BIN" user app-passwords carol | awk '/conformance drive/ {print $1}')
[ -n "$app_id" ] || fail "app-passwords does not list it"
"$BIN" user revoke-app-password carol "$app_id"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $app" "$PORTICO_URL/dav/")" "401" "revoked app password"

step "quota is enforced before the bytes are accepted"
head -c 2000000 /dev/urandom > big.bin
if AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3 cp --no-progress big.bin s3://carols/big.bin 2>err.txt; then
  fail "an upload over quota succeeded"
fi
check_contains "$(cat err.txt)" "QuotaExceeded" "over-quota upload"

step "passwd, disable and revoke take effect while the server runs"
new_password=$("$BIN" user passwd carol | sed -n 's/^password: //p')
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -u carol:carol-password-1 "$PORTICO_URL/dav/")" "401" "old password"
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -u "carol:$new_password" "$PORTICO_URL/dav/")" "200" "new password"
"$BIN" user disable carol
check_eq "$(plain_curl -o /dev/null -w '%{http_code}' -u "carol:$new_password" "$PORTICO_URL/dav/")" "401" "disabled account"
"$BIN" user enable carol
"$BIN" key revoke "$carol_id"
if AWS_ACCESS_KEY_ID=$carol_id AWS_SECRET_ACCESS_KEY=$carol_secret "${AWS[@]}" s3 ls 2>err.txt; then fail "a revoked key still works"; fi
check_contains "$(cat err.txt)" "InvalidAccessKeyId" "revoked key"

step "config is redacted, fsck is clean"
config=$("$BIN" config)
check_contains "$config" "listen" "config output"
case "$config" in *"$AWS_SECRET_ACCESS_KEY"*) fail "config printed a secret";; esac
"$BIN" fsck
