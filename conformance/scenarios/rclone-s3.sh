# rclone with an S3 remote (provider Other), unmodified: copy, sync, check with hashes,
# lsjson, server-side copy and move, on a 100-file tree with unicode, spaces and +%#&.
source "$(dirname "$0")/../lib.sh"

export RCLONE_CONFIG_PORTICO_TYPE=s3
export RCLONE_CONFIG_PORTICO_PROVIDER=Other
export RCLONE_CONFIG_PORTICO_ENV_AUTH=false
export RCLONE_CONFIG_PORTICO_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_PORTICO_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_PORTICO_ENDPOINT="$PORTICO_URL"
export RCLONE_CONFIG_PORTICO_REGION=us-east-1
rc=(rclone --config /dev/null --no-unicode-normalization)
[ -n "${PORTICO_CA:-}" ] && rc+=(--ca-cert "$PORTICO_CA")

step "a 100-file tree with awkward names"
rm -rf tree && mkdir -p tree
names=("plain" "with space" "plus+sign" "per%cent" "hash#tag" "amp&ersand" "ünïcödé" "日本語" "emoji 😀" "semi;colon=eq")
for i in $(seq 0 99); do
  name=${names[$((i % 10))]}
  dir="tree/d$((i % 7)) ${name}"
  mkdir -p "$dir"
  head -c $((i * 37 + 1)) /dev/urandom > "$dir/$name $i.bin"
done
# Decomposed (NFD) and composed (NFC) forms of one name are two distinct files.
printf 'nfc' > "$(printf 'tree/caf\xc3\xa9.txt')"
printf 'nfd' > "$(printf 'tree/cafe\xcc\x81.txt')"

"${rc[@]}" mkdir portico:rclone-s3
"${rc[@]}" copy tree portico:rclone-s3/tree
"${rc[@]}" check tree portico:rclone-s3/tree || fail "rclone check after copy"
count=$("${rc[@]}" lsjson -R --files-only portico:rclone-s3/tree | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check_eq "$count" "102" "files listed"

step "sync twice: the second transfers nothing"
echo "changed" >> "tree/d0 plain/plain 0.bin"
rm "tree/d1 with space/with space 1.bin"
"${rc[@]}" sync tree portico:rclone-s3/tree --stats-one-line -v 2> sync1.log
"${rc[@]}" check tree portico:rclone-s3/tree || fail "rclone check after sync"
"${rc[@]}" sync tree portico:rclone-s3/tree -v 2> sync2.log
grep -q "Transferred:.* 0 / 0, -\|There was nothing to transfer" sync2.log || grep -Eq "Transferred: +0 / 0" sync2.log || {
  cat sync2.log; fail "the second sync transferred something"; }

step "server-side copy and move"
"${rc[@]}" copyto "portico:rclone-s3/tree/d2 plus+sign/plus+sign 2.bin" "portico:rclone-s3/copied/plus+sign 2.bin"
"${rc[@]}" moveto "portico:rclone-s3/copied/plus+sign 2.bin" "portico:rclone-s3/moved/moved+sign.bin"
"${rc[@]}" cat "portico:rclone-s3/moved/moved+sign.bin" | cmp - "tree/d2 plus+sign/plus+sign 2.bin" || fail "server-side copy/move"
left=$("${rc[@]}" lsf "portico:rclone-s3/copied/" 2>/dev/null || true)
[ -z "$left" ] || fail "moveto left the source: $left"

step "download and compare, then purge"
"${rc[@]}" copy portico:rclone-s3/tree back
diff -r tree back || fail "downloaded tree differs"
"${rc[@]}" purge portico:rclone-s3
