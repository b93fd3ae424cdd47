"""boto3 at a current version, with its default checksum behaviour (CRC32 on every
PutObject/UploadPart: a header over HTTP, an aws-chunked trailer over HTTPS; response
checksums validated on GET). Run by boto3.sh with PORTICO_URL and AWS_* set."""

import hashlib
import os
import socket
import sys

import boto3
import botocore
from botocore.config import Config

URL = os.environ["PORTICO_URL"]
VERIFY = os.environ.get("PORTICO_CA") or True
s3 = boto3.client(
    "s3",
    endpoint_url=URL,
    region_name="us-east-1",
    verify=VERIFY,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)


def step(text):
    print("---", text, flush=True)


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err}"
        return err
    raise AssertionError(f"expected {code}, the call succeeded")


bucket = "boto-" + URL.split("://")[0]


def remove_bucket(name):
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass


# A run that failed half-way may have left its buckets behind.
remove_bucket(bucket)
remove_bucket(bucket + "-copy")
step(f"create_bucket {bucket}")
s3.create_bucket(Bucket=bucket)
expect_error("BucketAlreadyOwnedByYou", s3.create_bucket, Bucket=bucket)
assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None  # us-east-1
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
# Portico keeps every version; suspending is refused rather than silently ignored.
expect_error("InvalidArgument", s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
expect_error("NotImplemented", s3.get_bucket_policy, Bucket=bucket)
expect_error("NotImplemented", s3.get_bucket_lifecycle_configuration, Bucket=bucket)

step("put_object with the default CRC32 checksum, get_object validates it")
body = os.urandom(100_000)
put = s3.put_object(Bucket=bucket, Key="small.bin", Body=body, Metadata={"owner": "boto3"})
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put
assert "ChecksumCRC32" in put, put
got = s3.get_object(Bucket=bucket, Key="small.bin")
assert got["Body"].read() == body
assert got["Metadata"] == {"owner": "boto3"}, got["Metadata"]
assert got.get("ChecksumCRC32") == put["ChecksumCRC32"], got
head = s3.head_object(Bucket=bucket, Key="small.bin", ChecksumMode="ENABLED")
assert head["ContentLength"] == len(body)
assert head.get("ChecksumCRC32") == put["ChecksumCRC32"], head

step("explicit SHA256 and CRC32C checksums; a wrong one is refused with nothing written")
s3.put_object(Bucket=bucket, Key="sha.bin", Body=b"sha256 body", ChecksumAlgorithm="SHA256")
s3.put_object(Bucket=bucket, Key="sha1.bin", Body=b"sha1 body", ChecksumAlgorithm="SHA1")
err = expect_error(
    "BadDigest", s3.put_object, Bucket=bucket, Key="bad.bin", Body=b"x", ChecksumCRC32="AAAAAA=="
)
expect_error("404", s3.head_object, Bucket=bucket, Key="bad.bin")
expect_error("BadDigest", s3.put_object, Bucket=bucket, Key="bad.bin", Body=b"x", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")

step("aws-chunked body with an unsigned trailer: a wrong trailing checksum is refused")
import base64
import zlib

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
import urllib3


def chunked_put(key, data, trailer_value):
    body = b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % (len(data), data, trailer_value.encode())
    request = AWSRequest(
        method="PUT",
        url=f"{URL}/{bucket}/{key}",
        data=body,
        headers={
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
            "Content-Length": str(len(body)),
        },
    )
    request.context["checksum"] = {"request_algorithm": {"algorithm": "crc32", "in": "trailer", "name": "x-amz-checksum-crc32"}}
    credentials = boto3.Session().get_credentials()
    S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    pool = urllib3.PoolManager(ca_certs=os.environ.get("PORTICO_CA"))
    return pool.request("PUT", request.url, body=body, headers=dict(request.headers.items()))


data = b"trailer checked"
good = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
ok = chunked_put("trailer.bin", data, good)
assert ok.status == 200, (ok.status, ok.data)
assert s3.get_object(Bucket=bucket, Key="trailer.bin")["Body"].read() == data, "trailer bytes must not be stored"
bad = chunked_put("trailer-bad.bin", data, "AAAAAA==")
assert bad.status == 400 and b"BadDigest" in bad.data, (bad.status, bad.data)
expect_error("404", s3.head_object, Bucket=bucket, Key="trailer-bad.bin")

step("aws-chunked with signed chunks (as the Java and Go SDKs send), with and without a trailer")
import hashlib
import hmac


class StreamingAuth(S3SigV4Auth):
    def __init__(self, credentials, payload):
        super().__init__(credentials, "s3", "us-east-1")
        self.streaming_payload = payload

    def payload(self, request):
        return self.streaming_payload


def signed_chunked_put(key, chunks, trailer=None, tamper=False):
    """A PUT whose body is signed chunk by chunk (AWS's "Signature Calculations for the
    Authorization Header: Transferring Payload in Multiple Chunks")."""
    credentials = boto3.Session().get_credentials()
    data = b"".join(chunks)
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    sig_len = len(";chunk-signature=") + 64
    frames = [c for c in chunks] + [b""]
    length = sum(len(b"%x" % len(c)) + sig_len + 2 + len(c) + 2 for c in frames)
    if trailer:
        trailer_line = b"%s:%s" % (trailer[0].encode(), trailer[1].encode())
        length += len(trailer_line) + 2 + len(b"x-amz-trailer-signature:") + 64 + 4 - 2
    headers = {
        "x-amz-content-sha256": mode,
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Length": str(length),
    }
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    request = AWSRequest(method="PUT", url=f"{URL}/{bucket}/{key}", data=b"", headers=headers)
    StreamingAuth(credentials, mode).add_auth(request)
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    stamp = request.headers["X-Amz-Date"]
    scope = f"{stamp[:8]}/us-east-1/s3/aws4_request"
    key_bytes = ("AWS4" + credentials.secret_key).encode()
    for part in (stamp[:8], "us-east-1", "s3", "aws4_request"):
        key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()

    def sign(kind, previous, digest):
        text = "\n".join([kind, stamp, scope, previous, digest])
        return hmac.new(key_bytes, text.encode(), hashlib.sha256).hexdigest()

    empty = hashlib.sha256(b"").hexdigest()
    body, previous = b"", seed
    for chunk in frames:
        signed = chunk if not (tamper and chunk) else chunk[::-1]
        previous = sign("AWS4-HMAC-SHA256-PAYLOAD", previous, empty + "\n" + hashlib.sha256(signed).hexdigest())
        body += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(chunk), previous.encode(), chunk)
    if trailer:
        body = body[:-2]  # the last (empty) chunk's CRLF is the trailer section's start
        trailer_sig = sign("AWS4-HMAC-SHA256-TRAILER", previous, hashlib.sha256(trailer_line + b"\n").hexdigest())
        body += trailer_line + b"\r\nx-amz-trailer-signature:" + trailer_sig.encode() + b"\r\n\r\n"
    assert len(body) == length, (len(body), length)
    pool = urllib3.PoolManager(ca_certs=os.environ.get("PORTICO_CA"))
    return pool.request("PUT", request.url, body=body, headers=dict(request.headers.items()))


pieces = [os.urandom(65536), os.urandom(65536), b"tail"]
whole = b"".join(pieces)
ok = signed_chunked_put("signed-chunks.bin", pieces)
assert ok.status == 200, (ok.status, ok.data)
assert s3.get_object(Bucket=bucket, Key="signed-chunks.bin")["Body"].read() == whole
crc = base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
ok = signed_chunked_put("signed-trailer.bin", pieces, trailer=("x-amz-checksum-crc32", crc))
assert ok.status == 200, (ok.status, ok.data)
got = s3.get_object(Bucket=bucket, Key="signed-trailer.bin", ChecksumMode="ENABLED")
assert got["Body"].read() == whole and got["ChecksumCRC32"] == crc, got
forged = signed_chunked_put("signed-forged.bin", pieces, tamper=True)
assert forged.status == 403 and b"SignatureDoesNotMatch" in forged.data, (forged.status, forged.data)
expect_error("404", s3.head_object, Bucket=bucket, Key="signed-forged.bin")
wrong = signed_chunked_put("signed-wrong.bin", pieces, trailer=("x-amz-checksum-crc32", "AAAAAA=="))
assert wrong.status == 400 and b"BadDigest" in wrong.data, (wrong.status, wrong.data)
expect_error("404", s3.head_object, Bucket=bucket, Key="signed-wrong.bin")

step("fetch-owner names the account")
owned = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]["Owner"]
assert owned["ID"] == s3.list_buckets()["Owner"]["ID"] and owned["DisplayName"], owned

step("ranged get (no checksum to validate against a range)")
part = s3.get_object(Bucket=bucket, Key="small.bin", Range="bytes=10-19")
assert part["Body"].read() == body[10:20]
assert part["ContentRange"] == f"bytes 10-19/{len(body)}"

step("upload_file above the multipart threshold, download_file")
big = os.urandom(20 * 1024 * 1024 + 123)
with open("big.bin", "wb") as f:
    f.write(big)
from boto3.s3.transfer import TransferConfig

transfer = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
s3.upload_file("big.bin", bucket, "dir/big.bin", Config=transfer)
head = s3.head_object(Bucket=bucket, Key="dir/big.bin", ChecksumMode="ENABLED")
assert head["ContentLength"] == len(big)
assert head["ETag"].endswith('-3"'), head["ETag"]
attrs = s3.get_object_attributes(
    Bucket=bucket, Key="dir/big.bin", ObjectAttributes=["ETag", "ObjectSize", "ObjectParts", "StorageClass", "Checksum"], MaxParts=2,
)
assert attrs["ObjectSize"] == len(big) and attrs["StorageClass"] == "STANDARD", attrs
assert attrs["ObjectParts"]["TotalPartsCount"] == 3 and attrs["ObjectParts"]["IsTruncated"], attrs
assert [p["Size"] for p in attrs["ObjectParts"]["Parts"]] == [8 << 20, 8 << 20], attrs
rest = s3.get_object_attributes(Bucket=bucket, Key="dir/big.bin", ObjectAttributes=["ObjectParts"], PartNumberMarker=2)
assert [(p["PartNumber"], p["Size"]) for p in rest["ObjectParts"]["Parts"]] == [(3, len(big) - (16 << 20))], rest
whole = s3.get_object_attributes(Bucket=bucket, Key="small.bin", ObjectAttributes=["ObjectSize", "ObjectParts", "Checksum"])
assert whole["ObjectSize"] == len(body) and "ObjectParts" not in whole, whole
assert whole["Checksum"]["ChecksumCRC32"] == put["ChecksumCRC32"], whole
s3.download_file(bucket, "dir/big.bin", "back.bin", Config=transfer)
assert open("back.bin", "rb").read() == big
part2 = s3.head_object(Bucket=bucket, Key="dir/big.bin", PartNumber=2)
assert part2["ContentLength"] == 8 * 1024 * 1024 and part2["PartsCount"] == 3, part2

step("low-level multipart: list_parts, list_multipart_uploads, abort")
mpu = s3.create_multipart_upload(Bucket=bucket, Key="aborted.bin")
s3.upload_part(Bucket=bucket, Key="aborted.bin", UploadId=mpu["UploadId"], PartNumber=1, Body=b"abc")
parts = s3.list_parts(Bucket=bucket, Key="aborted.bin", UploadId=mpu["UploadId"])
assert [p["PartNumber"] for p in parts["Parts"]] == [1]
uploads = s3.list_multipart_uploads(Bucket=bucket)
assert [u["Key"] for u in uploads.get("Uploads", [])] == ["aborted.bin"], uploads
s3.abort_multipart_upload(Bucket=bucket, Key="aborted.bin", UploadId=mpu["UploadId"])
expect_error("NoSuchUpload", s3.list_parts, Bucket=bucket, Key="aborted.bin", UploadId=mpu["UploadId"])

step("copy_object with COPY and REPLACE metadata, and across buckets")
s3.create_bucket(Bucket=bucket + "-copy")
s3.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "small.bin"})
assert s3.head_object(Bucket=bucket, Key="copy.bin")["Metadata"] == {"owner": "boto3"}
s3.copy_object(
    Bucket=bucket + "-copy",
    Key="replaced.bin",
    CopySource={"Bucket": bucket, "Key": "small.bin"},
    MetadataDirective="REPLACE",
    Metadata={"owner": "replaced"},
    ContentType="text/plain",
)
replaced = s3.head_object(Bucket=bucket + "-copy", Key="replaced.bin")
assert replaced["Metadata"] == {"owner": "replaced"} and replaced["ContentType"] == "text/plain", replaced
assert replaced["ETag"] == put["ETag"]
expect_error("InvalidArgument", s3.copy_object, Bucket=bucket, Key="small.bin", CopySource={"Bucket": bucket, "Key": "small.bin"})
s3.copy_object(Bucket=bucket, Key="bigcopy.bin", CopySource={"Bucket": bucket, "Key": "dir/big.bin"})
assert s3.get_object(Bucket=bucket, Key="bigcopy.bin")["Body"].read() == big

step("presigned GET and PUT (SigV2, boto3's default for presigning, and SigV4) with plain HTTP")
import time
import urllib3

http = urllib3.PoolManager(ca_certs=os.environ.get("PORTICO_CA"))
v4 = boto3.client(
    "s3",
    endpoint_url=URL,
    region_name="us-east-1",
    verify=VERIFY,
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
for name, client in [("sigv2", s3), ("sigv4", v4)]:
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.bin"}, ExpiresIn=300)
    got = http.request("GET", url)
    assert got.status == 200 and got.data == body, (name, got.status)
    url = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"presigned-{name}.txt"}, ExpiresIn=300)
    put_by_url = http.request("PUT", url, body=b"put by url")
    assert put_by_url.status == 200, (name, put_by_url.status, put_by_url.data)
    assert s3.get_object(Bucket=bucket, Key=f"presigned-{name}.txt")["Body"].read() == b"put by url"
    tampered = http.request("GET", url.replace(f"presigned-{name}", "small"))
    assert tampered.status == 403, (name, tampered.status)
    url = client.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": f"presigned-{name}.txt"}, ExpiresIn=300)
    headed = http.request("HEAD", url)
    assert headed.status == 200 and headed.headers["Content-Length"] == "10", (name, headed.status)
    url = client.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": f"presigned-{name}.txt"}, ExpiresIn=300)
    assert http.request("DELETE", url).status == 204, name
    expect_error("404", s3.head_object, Bucket=bucket, Key=f"presigned-{name}.txt")
    expired = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.bin"}, ExpiresIn=1)
    time.sleep(2)
    refused = http.request("GET", expired)
    assert refused.status == 403, (name, refused.status, refused.data)

step("browser upload: presigned POST with a policy (size range, success status)")
post = s3.generate_presigned_post(
    bucket,
    "uploads/${filename}",
    Fields={"success_action_status": "201"},
    Conditions=[["content-length-range", 1, 1000], {"success_action_status": "201"}, ["starts-with", "$key", "uploads/"]],
    ExpiresIn=300,
)
fields = dict(post["fields"])
posted = http.request("POST", post["url"], fields={**fields, "file": ("hello.txt", b"posted by a browser")})
assert posted.status == 201, (posted.status, posted.data)
assert b"<ETag>" in posted.data, posted.data
assert s3.get_object(Bucket=bucket, Key="uploads/hello.txt")["Body"].read() == b"posted by a browser"
too_big = http.request("POST", post["url"], fields={**fields, "file": ("big.txt", b"x" * 2000)})
assert too_big.status in (400, 403), (too_big.status, too_big.data)
expect_error("404", s3.head_object, Bucket=bucket, Key="uploads/big.txt")

step("response-* overrides on GET, UploadPartCopy with a range")
got = s3.get_object(Bucket=bucket, Key="small.bin", ResponseContentType="text/x-override", ResponseContentDisposition="attachment")
assert got["ContentType"] == "text/x-override" and got["ContentDisposition"] == "attachment", got
mpu = s3.create_multipart_upload(Bucket=bucket, Key="assembled.bin")
first = s3.upload_part_copy(
    Bucket=bucket, Key="assembled.bin", UploadId=mpu["UploadId"], PartNumber=1,
    CopySource={"Bucket": bucket, "Key": "dir/big.bin"}, CopySourceRange="bytes=0-5242879",
)
second = s3.upload_part_copy(
    Bucket=bucket, Key="assembled.bin", UploadId=mpu["UploadId"], PartNumber=2,
    CopySource={"Bucket": bucket, "Key": "small.bin"},
)
s3.complete_multipart_upload(
    Bucket=bucket, Key="assembled.bin", UploadId=mpu["UploadId"],
    MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]},
    ]},
)
assembled = s3.get_object(Bucket=bucket, Key="assembled.bin")["Body"].read()
assert assembled == big[:5242880] + body, "UploadPartCopy assembled the wrong bytes"
stale = s3.create_multipart_upload(Bucket=bucket, Key="stale.bin")["UploadId"]
expect_error(
    "PreconditionFailed", s3.upload_part_copy,
    Bucket=bucket, Key="stale.bin", UploadId=stale,
    PartNumber=1, CopySource={"Bucket": bucket, "Key": "small.bin"}, CopySourceIfMatch='"not-the-etag"',
)
s3.abort_multipart_upload(Bucket=bucket, Key="stale.bin", UploadId=stale)

step("virtual-host style: bucket.s3.portico.test, signed like AWS itself")
domain = os.environ["PORTICO_S3_DOMAIN"]
real_getaddrinfo = socket.getaddrinfo


def resolve(host, *args, **kwargs):
    # No DNS here: the test domain and its subdomains are this machine.
    if isinstance(host, str) and (host == domain or host.endswith("." + domain)):
        host = "127.0.0.1"
    return real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = resolve
scheme, port = URL.split("://")[0], URL.rsplit(":", 1)[1]
vhost = boto3.client(
    "s3",
    endpoint_url=f"{scheme}://{domain}:{port}",
    region_name="us-east-1",
    verify=VERIFY,
    config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
)
vhost.put_object(Bucket=bucket, Key="vhost/a b.txt", Body=b"virtual host")
assert s3.get_object(Bucket=bucket, Key="vhost/a b.txt")["Body"].read() == b"virtual host"
listed = vhost.list_objects_v2(Bucket=bucket, Prefix="vhost/")
assert [o["Key"] for o in listed["Contents"]] == ["vhost/a b.txt"], listed
assert vhost.get_object(Bucket=bucket, Key="vhost/a b.txt")["Body"].read() == b"virtual host"
expect_error("NoSuchBucket", vhost.list_objects_v2, Bucket="no-such-bucket-here")
vhost.delete_object(Bucket=bucket, Key="vhost/a b.txt")
socket.getaddrinfo = real_getaddrinfo

step("delete_objects and cleanup")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
s3.delete_bucket(Bucket=bucket)
s3.delete_objects(Bucket=bucket + "-copy", Delete={"Objects": [{"Key": "replaced.bin"}]})
s3.delete_bucket(Bucket=bucket + "-copy")
print("ok")
