# davfs2 mounts the drive (needs root and /dev/fuse) and uses it like a local folder:
# write, read back, rename a file and a folder, delete, copy 5 MB; `df` shows the quota.
source "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] && [ -c /dev/fuse ] || fail "davfs2 needs root and /dev/fuse"

dir=$PWD
mnt="$dir/mnt"; mkdir -p "$mnt"
chmod 755 "$dir"
printf '%s/dav/ %s "%s"\n' "$PORTICO_URL" "$PORTICO_ADMIN_USER" "$PORTICO_ADMIN_PASSWORD" > secrets
chmod 600 secrets
ca=""
if [ -n "${PORTICO_CA:-}" ]; then
  # mount.davfs reads the certificate after dropping root: it must be world-readable.
  ca=$(mktemp /tmp/portico-davfs2-ca.XXXXXX)
  cp "$PORTICO_CA" "$ca"; chmod 644 "$ca"
fi
{
  echo "secrets $dir/secrets"
  # Linux >= 6.16 with davfs2 1.6 needs small buffers.
  echo "buf_size 64"
  echo "use_locks 1"
  echo "delay_upload 0"
  [ -n "${PORTICO_CA:-}" ] && echo "trust_server_cert $ca"
} > davfs2.conf
mount -t davfs "$PORTICO_URL/dav/" "$mnt" -o "conf=$dir/davfs2.conf" </dev/null || fail "mount.davfs failed"
trap 'umount "$mnt" 2>/dev/null || true; [ -n "$ca" ] && rm -f "$ca"' EXIT

step "write and read back"
mkdir "$mnt/davfs2-test"
echo "written through the mount" > "$mnt/davfs2-test/note.txt"
check_eq "$(cat "$mnt/davfs2-test/note.txt")" "written through the mount" "read back"

step "rename a file and a folder"
mv "$mnt/davfs2-test/note.txt" "$mnt/davfs2-test/renamed.txt"
mkdir "$mnt/davfs2-test/folder"
mv "$mnt/davfs2-test/folder" "$mnt/davfs2-test/folder2"

step "copy 5 MB in, and see it over HTTP"
head -c 5000000 /dev/urandom > big.bin
cp big.bin "$mnt/davfs2-test/folder2/big.bin"
sync "$mnt/davfs2-test/folder2/big.bin"
cmp big.bin "$mnt/davfs2-test/folder2/big.bin" || fail "the mount reads other bytes"

step "df shows the space left"
avail=$(df --output=avail -B1 "$mnt" | tail -n 1 | tr -d ' ')
[ "$avail" -gt 0 ] || fail "df shows no space: $avail"

step "delete"
rm "$mnt/davfs2-test/renamed.txt"
umount "$mnt"
trap - EXIT
[ -n "$ca" ] && rm -f "$ca"
# Unmounted: everything davfs2 cached has reached the server.
check_eq "$(dav -o /dev/null -w '%{http_code}' "$PORTICO_URL/dav/davfs2-test/renamed.txt")" "404" "deleted"
check_eq "$(dav -o /dev/null -w '%{http_code}' "$PORTICO_URL/dav/davfs2-test/note.txt")" "404" "renamed away"
dav "$PORTICO_URL/dav/davfs2-test/folder2/big.bin" | cmp - big.bin || fail "the server has other bytes"
dav -X DELETE "$PORTICO_URL/dav/davfs2-test/"
