# s3cmd (Debian's), unmodified: put/get/ls/del/sync, multipart, with SigV4 and with SigV2.
source "$(dirname "$0")/../lib.sh"

host=${PORTICO_URL#*://}
tls=(--no-ssl)
[ -n "${PORTICO_CA:-}" ] && tls=(--ssl --ca-certs="$PORTICO_CA")
: > s3cfg
s3() {
  s3cmd -c s3cfg --access_key="$AWS_ACCESS_KEY_ID" --secret_key="$AWS_SECRET_ACCESS_KEY" \
    --host="$host" --host-bucket="$host" "${tls[@]}" --region=us-east-1 --no-progress "$@"
}

for signature in v4 v2; do
  extra=()
  [ "$signature" = v2 ] && extra=(--signature-v2)
  bucket="s3cmd-$signature"
  step "$signature: mb, put, ls, get"
  s3 "${extra[@]}" rb --recursive --force "s3://$bucket" >/dev/null 2>&1 || true
  s3 "${extra[@]}" mb "s3://$bucket"
  head -c 300000 /dev/urandom > one.bin
  s3 "${extra[@]}" put one.bin "s3://$bucket/dir/one.bin"
  check_contains "$(s3 "${extra[@]}" ls "s3://$bucket/dir/")" "s3://$bucket/dir/one.bin" "ls"
  s3 "${extra[@]}" get --force "s3://$bucket/dir/one.bin" one.back
  cmp one.bin one.back || fail "get differs"
  info=$(s3 "${extra[@]}" info "s3://$bucket/dir/one.bin")
  check_contains "$info" "MD5 sum:   $(md5sum one.bin | cut -d' ' -f1)" "info MD5"

  step "$signature: multipart put (5 MiB chunks)"
  head -c $((12 * 1024 * 1024)) /dev/urandom > big.bin
  s3 "${extra[@]}" put --multipart-chunk-size-mb=5 big.bin "s3://$bucket/big.bin"
  s3 "${extra[@]}" get --force "s3://$bucket/big.bin" big.back
  cmp big.bin big.back || fail "multipart get differs"

  step "$signature: sync up twice, del"
  rm -rf tree && mkdir -p tree/a && for i in 1 2 3; do echo "$i" > "tree/a/file $i.txt"; done
  s3 "${extra[@]}" sync tree/ "s3://$bucket/tree/" > sync1.txt
  check_eq "$(grep -c "upload:" sync1.txt)" "3" "first sync"
  s3 "${extra[@]}" sync tree/ "s3://$bucket/tree/" > sync2.txt
  check_eq "$(grep -c "upload:" sync2.txt)" "0" "second sync"
  s3 "${extra[@]}" del "s3://$bucket/dir/one.bin"
  case "$(s3 "${extra[@]}" ls -r "s3://$bucket")" in *one.bin*) fail "del left the object";; esac
  s3 "${extra[@]}" rb --recursive --force "s3://$bucket"
done
