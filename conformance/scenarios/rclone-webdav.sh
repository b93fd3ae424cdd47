# rclone with a WebDAV remote, vendor "other" and vendor "owncloud" (X-OC-Mtime and
# oc:checksums): copy, check, sync twice, server-side copy and move, purge, on a 100-file
# tree with unicode (NFC and NFD), spaces and +%#&;=.
source "$(dirname "$0")/../lib.sh"

rc=(rclone --config /dev/null --no-unicode-normalization)
[ -n "${PORTICO_CA:-}" ] && rc+=(--ca-cert "$PORTICO_CA")
export RCLONE_CONFIG_DAV_TYPE=webdav
export RCLONE_CONFIG_DAV_URL="$PORTICO_URL/dav/"
export RCLONE_CONFIG_DAV_USER="$PORTICO_ADMIN_USER"
RCLONE_CONFIG_DAV_PASS=$(rclone obscure "$PORTICO_ADMIN_PASSWORD")
export RCLONE_CONFIG_DAV_PASS

rm -rf tree && mkdir -p tree
names=("plain" "with space" "plus+sign" "per%cent" "hash#tag" "amp&ersand" "ünïcödé" "日本語" "emoji 😀" "semi;colon=eq")
for i in $(seq 0 99); do
  name=${names[$((i % 10))]}
  dir="tree/d$((i % 7)) ${name}"
  mkdir -p "$dir"
  head -c $((i * 37 + 1)) /dev/urandom > "$dir/$name $i.bin"
done
printf 'nfc' > "$(printf 'tree/caf\xc3\xa9.txt')"
printf 'nfd!' > "$(printf 'tree/cafe\xcc\x81.txt')"

for vendor in other owncloud; do
  export RCLONE_CONFIG_DAV_VENDOR=$vendor
  base="dav:rclone-$vendor"
  work="work-$vendor"; rm -rf "$work"; cp -a tree "$work"
  # vendor other has no hashes: check compares the bytes; owncloud compares MD5s.
  check=("${rc[@]}" check); [ "$vendor" = other ] && check+=(--download)

  step "$vendor: copy and check"
  "${rc[@]}" mkdir "$base"
  "${rc[@]}" copy "$work" "$base/tree"
  "${check[@]}" "$work" "$base/tree" || fail "$vendor: check after copy"
  count=$("${rc[@]}" lsjson -R --files-only "$base/tree" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  check_eq "$count" "102" "$vendor: files listed"
  if [ "$vendor" = owncloud ]; then
    hashes=$("${rc[@]}" md5sum "$base/tree" | wc -l)
    check_eq "$hashes" "102" "$vendor: MD5 of every file from oc:checksums"
    # rclone sent OC-Checksum: SHA1 with each upload; Portico verified and kept it.
    sha1s=$("${rc[@]}" sha1sum "$base/tree" | grep -c '^[0-9a-f]\{40\} ')
    check_eq "$sha1s" "102" "$vendor: SHA1 of every file from oc:checksums"
    want=$(sha1sum "$work/d0 plain/plain 0.bin" | cut -d' ' -f1)
    got=$("${rc[@]}" sha1sum "$base/tree/d0 plain/plain 0.bin" | cut -d' ' -f1)
    check_eq "$got" "$want" "$vendor: the SHA1 is the file's"
    local_time=$(stat -c %Y "$work/d0 plain/plain 0.bin")
    remote_time=$("${rc[@]}" lsjson "$base/tree/d0 plain/plain 0.bin" | python3 -c 'import json,sys,datetime; print(int(datetime.datetime.fromisoformat(json.load(sys.stdin)[0]["ModTime"].replace("Z","+00:00")).timestamp()))')
    check_eq "$remote_time" "$local_time" "$vendor: X-OC-Mtime kept the modification time"
  fi

  step "$vendor: sync twice, the second transfers nothing"
  echo "changed" >> "$work/d0 plain/plain 0.bin"
  rm "$work/d1 with space/with space 1.bin"
  "${rc[@]}" sync "$work" "$base/tree" -v 2> "sync1-$vendor.log"
  "${check[@]}" "$work" "$base/tree" || fail "$vendor: check after sync"
  "${rc[@]}" sync "$work" "$base/tree" -v 2> "sync2-$vendor.log"
  grep -Eq "There was nothing to transfer|Transferred: +0 / 0" "sync2-$vendor.log" || {
    cat "sync2-$vendor.log"; fail "$vendor: the second sync transferred something"; }

  step "$vendor: server-side copy and move, of a file and of a folder"
  "${rc[@]}" copyto "$base/tree/d2 plus+sign/plus+sign 2.bin" "$base/copied/plus+sign 2.bin"
  "${rc[@]}" moveto "$base/copied/plus+sign 2.bin" "$base/moved/moved+sign.bin"
  "${rc[@]}" cat "$base/moved/moved+sign.bin" | cmp - "$work/d2 plus+sign/plus+sign 2.bin" || fail "$vendor: server-side copy/move"
  "${rc[@]}" move "$base/tree/d3 per%cent" "$base/renamed dir" --delete-empty-src-dirs
  "${check[@]}" "$work/d3 per%cent" "$base/renamed dir" || fail "$vendor: moved folder"

  step "$vendor: download and compare, then purge"
  "${rc[@]}" copy "$base/tree" "back-$vendor"
  rm -rf "$work/d3 per%cent"
  diff -r "$work" "back-$vendor" || fail "$vendor: downloaded tree differs"
  "${rc[@]}" purge "$base"
  check_eq "$(dav -o /dev/null -w '%{http_code}' "$PORTICO_URL/dav/rclone-$vendor/")" "404" "$vendor: purged"
done
