# aws-cli, unmodified: Debian's v2.9 and, when the test venv has it, the current v1 from
# PyPI (current botocore: CRC32 checksums on every upload by default).
source "$(dirname "$0")/../lib.sh"

run_cli() {
  local label=$1; shift
  local -a aws=("$@" --endpoint-url "$PORTICO_URL")
  [ -n "${PORTICO_CA:-}" ] && aws+=(--ca-bundle "$PORTICO_CA")
  local bucket="cli-$label"
  echo "=== $label: $("$1" --version 2>&1 | head -n 1)"

  step "$label: mb, cp up and down, above the multipart threshold"
  "${aws[@]}" s3 rb --force "s3://$bucket" >/dev/null 2>&1 || true
  "${aws[@]}" s3 mb "s3://$bucket"
  head -c 100000 /dev/urandom > small.bin
  head -c $((20 * 1024 * 1024 + 7)) /dev/urandom > big.bin
  "${aws[@]}" s3 cp --no-progress small.bin "s3://$bucket/small.bin"
  "${aws[@]}" s3 cp --no-progress big.bin "s3://$bucket/dir/big.bin"
  "${aws[@]}" s3 cp --no-progress "s3://$bucket/dir/big.bin" big.back
  cmp big.bin big.back || fail "multipart upload came back different"
  etag=$("${aws[@]}" s3api head-object --bucket "$bucket" --key dir/big.bin --query ETag --output text)
  check_contains "$etag" "-3" "multipart ETag"

  step "$label: mv and rm"
  "${aws[@]}" s3 mv --no-progress "s3://$bucket/small.bin" "s3://$bucket/moved.bin"
  listing=$("${aws[@]}" s3 ls "s3://$bucket/")
  check_contains "$listing" "moved.bin" "after mv"
  case "$listing" in *" small.bin"*) fail "mv left the source";; esac
  "${aws[@]}" s3 rm "s3://$bucket/moved.bin"

  step "$label: sync up twice (the second transfers nothing), then down"
  rm -rf tree back && mkdir -p "tree/sub dir/deeper" tree/ünïcödé
  for i in 1 2 3; do head -c $((i * 1000)) /dev/urandom > "tree/file $i+%#&.txt"; done
  echo "deep" > "tree/sub dir/deeper/leaf.txt"
  echo "accents" > "tree/ünïcödé/été.txt"
  first=$("${aws[@]}" s3 sync --no-progress tree "s3://$bucket/tree")
  check_eq "$(printf '%s\n' "$first" | grep -c '^upload:')" "5" "first sync uploads"
  second=$("${aws[@]}" s3 sync --no-progress tree "s3://$bucket/tree")
  check_eq "$(printf '%s\n' "$second" | grep -c '^upload:')" "0" "second sync uploads"
  echo "changed" >> "tree/file 2+%#&.txt"
  third=$("${aws[@]}" s3 sync --no-progress tree "s3://$bucket/tree")
  check_eq "$(printf '%s\n' "$third" | grep -c '^upload:')" "1" "sync after one change"
  "${aws[@]}" s3 sync --no-progress "s3://$bucket/tree" back
  diff -r tree back || fail "sync down differs"
  again=$("${aws[@]}" s3 sync --no-progress "s3://$bucket/tree" back)
  check_eq "$(printf '%s\n' "$again" | grep -c '^download:')" "0" "second sync down"

  step "$label: presign and curl"
  url=$("${aws[@]}" s3 presign "s3://$bucket/dir/big.bin" --expires-in 300)
  plain_curl -f -o presigned.bin "$url"
  cmp big.bin presigned.bin || fail "presigned download differs"

  step "$label: versions of an overwritten object"
  echo one > v.txt; "${aws[@]}" s3 cp --no-progress v.txt "s3://$bucket/v.txt"
  echo two > v.txt; "${aws[@]}" s3 cp --no-progress v.txt "s3://$bucket/v.txt"
  versions=$("${aws[@]}" s3api list-object-versions --bucket "$bucket" --prefix v.txt --query 'length(Versions)' --output text)
  check_eq "$versions" "2" "list-object-versions"
  status=$("${aws[@]}" s3api get-bucket-versioning --bucket "$bucket" --query Status --output text)
  check_eq "$status" "Enabled" "versioning status"

  step "$label: copy-object with metadata REPLACE"
  "${aws[@]}" s3api copy-object --bucket "$bucket" --key copied.txt --copy-source "$bucket/v.txt" \
    --metadata-directive REPLACE --metadata color=blue --content-type text/x-test >/dev/null
  meta=$("${aws[@]}" s3api head-object --bucket "$bucket" --key copied.txt --query 'Metadata.color' --output text)
  check_eq "$meta" "blue" "replaced metadata"
  ctype=$("${aws[@]}" s3api head-object --bucket "$bucket" --key copied.txt --query ContentType --output text)
  check_eq "$ctype" "text/x-test" "replaced content type"

  step "$label: rm --recursive and rb"
  "${aws[@]}" s3 rm --recursive "s3://$bucket"
  "${aws[@]}" s3 rb "s3://$bucket"
}

run_cli v2 /usr/bin/aws
if [ -n "${PORTICO_TEST_PYTHON:-}" ] && [ -x "$(dirname "$PORTICO_TEST_PYTHON")/aws" ]; then
  run_cli v1 "$(dirname "$PORTICO_TEST_PYTHON")/aws"
fi
