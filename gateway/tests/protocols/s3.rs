//! S3 through a real SDK.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use crate::common::{Gateway, s3_client};

async fn body_of(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

fn code<E: ProvideErrorMetadata>(err: &aws_sdk_s3::error::SdkError<E>) -> String {
    err.as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("<none>")
        .to_owned()
}

#[tokio::test]
async fn buckets_objects_and_errors() {
    for gw in Gateway::each().await {
        let s3 = &gw.alice.s3;
        s3.create_bucket().bucket("photos").send().await.unwrap();
        let again = s3
            .create_bucket()
            .bucket("photos")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&again), "BucketAlreadyOwnedByYou");
        let reserved = s3.create_bucket().bucket("api").send().await.unwrap_err();
        assert_eq!(code(&reserved), "InvalidBucketName");
        let buckets = s3.list_buckets().send().await.unwrap();
        let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
        assert_eq!(names, ["photos"]);
        assert_eq!(
            buckets.owner().and_then(|o| o.display_name()),
            Some("alice")
        );
        s3.head_bucket().bucket("photos").send().await.unwrap();
        assert!(s3.head_bucket().bucket("nothere").send().await.is_err());

        let put = s3
            .put_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .content_type("image/jpeg")
            .metadata("camera", "x100")
            .body(ByteStream::from_static(b"jpeg bytes"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.e_tag(), Some("\"2ccd799f3a5130350478899447b6aa06\""));
        let got = s3
            .get_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_type(), Some("image/jpeg"));
        assert_eq!(
            got.metadata().unwrap().get("camera").map(String::as_str),
            Some("x100")
        );
        assert_eq!(body_of(got).await, b"jpeg bytes");

        let ranged = s3
            .get_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .range("bytes=5-")
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.content_range(), Some("bytes 5-9/10"));
        assert_eq!(body_of(ranged).await, b"bytes");
        let bad_range = s3
            .get_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .range("bytes=50-")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&bad_range), "InvalidRange");

        let etag = put.e_tag().unwrap().to_owned();
        let not_modified = s3
            .get_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .if_none_match(&etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            not_modified.raw_response().map(|r| r.status().as_u16()),
            Some(304)
        );
        let failed = s3
            .get_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .if_match("\"nope\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&failed), "PreconditionFailed");
        let once = s3
            .put_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .if_none_match("*")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(code(&once.unwrap_err()), "PreconditionFailed");

        let missing = s3
            .get_object()
            .bucket("photos")
            .key("nope")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&missing), "NoSuchKey");
        let no_bucket = s3
            .get_object()
            .bucket("nobucket")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&no_bucket), "NoSuchBucket");
        for bad in ["a//b", "x/../y", "./z"] {
            let refused = s3
                .put_object()
                .bucket("photos")
                .key(bad)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&refused), "InvalidArgument", "{bad}");
        }
        let long = "k".repeat(1025);
        let refused = s3
            .put_object()
            .bucket("photos")
            .key(&long)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert!(
            ["KeyTooLongError", "InvalidArgument"].contains(&code(&refused).as_str()),
            "{}",
            code(&refused)
        );

        let not_empty = s3
            .delete_bucket()
            .bucket("photos")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&not_empty), "BucketNotEmpty");
        s3.delete_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .send()
            .await
            .unwrap();
        let listed = s3.list_objects_v2().bucket("photos").send().await.unwrap();
        assert_eq!(
            listed.key_count(),
            Some(0),
            "only valid keys were ever written, and they are gone"
        );
        s3.delete_bucket().bucket("photos").send().await.unwrap();
        gw.stop().await;
    }
}

#[tokio::test]
async fn listing_pages_prefixes_and_url_encoding() {
    for gw in Gateway::each().await {
        let s3 = &gw.alice.s3;
        s3.create_bucket().bucket("list").send().await.unwrap();
        let keys = [
            "a b+c%d.txt",
            "caf\u{e9}/menu",
            "dir/one",
            "dir/sub/two",
            "dir/three",
            "z",
        ];
        for key in keys {
            s3.put_object()
                .bucket("list")
                .key(key)
                .body(ByteStream::from_static(b"1"))
                .send()
                .await
                .unwrap();
        }
        let top = s3
            .list_objects_v2()
            .bucket("list")
            .delimiter("/")
            .encoding_type("url".into())
            .send()
            .await
            .unwrap();
        let contents: Vec<_> = top.contents().iter().filter_map(|o| o.key()).collect();
        let prefixes: Vec<_> = top
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        // The SDK leaves url-encoded values as they came; decode to compare.
        let decode = |s: &&str| percent_decode(s);
        assert_eq!(
            contents.iter().map(decode).collect::<Vec<_>>(),
            ["a b+c%d.txt", "z"]
        );
        assert_eq!(
            prefixes.iter().map(decode).collect::<Vec<_>>(),
            ["caf\u{e9}/", "dir/"]
        );

        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket("list")
                .max_keys(2)
                .set_continuation_token(token.clone())
                .send()
                .await
                .unwrap();
            seen.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            if page.is_truncated() != Some(true) {
                break;
            }
            token = page.next_continuation_token().map(str::to_owned);
        }
        let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        assert_eq!(seen, sorted, "pages in UTF-8 byte order");

        let after = s3
            .list_objects_v2()
            .bucket("list")
            .start_after("dir/sub/two")
            .send()
            .await
            .unwrap();
        assert_eq!(
            after
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .collect::<Vec<_>>(),
            ["dir/three", "z"]
        );
        let v1 = s3
            .list_objects()
            .bucket("list")
            .prefix("dir/")
            .delimiter("/")
            .send()
            .await
            .unwrap();
        assert_eq!(
            v1.contents()
                .iter()
                .filter_map(|o| o.key())
                .collect::<Vec<_>>(),
            ["dir/one", "dir/three"]
        );
        assert_eq!(
            v1.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .collect::<Vec<_>>(),
            ["dir/sub/"]
        );

        let deleted = s3
            .delete_objects()
            .bucket("list")
            .delete(
                aws_sdk_s3::types::Delete::builder()
                    .objects(
                        aws_sdk_s3::types::ObjectIdentifier::builder()
                            .key("z")
                            .build()
                            .unwrap(),
                    )
                    .objects(
                        aws_sdk_s3::types::ObjectIdentifier::builder()
                            .key("dir/one")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.deleted().len(), 2);
        gw.stop().await;
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn signatures_are_checked_and_presigned_urls_work() {
    for gw in Gateway::each().await {
        gw.alice
            .s3
            .create_bucket()
            .bucket("signed")
            .send()
            .await
            .unwrap();
        gw.alice
            .s3
            .put_object()
            .bucket("signed")
            .key("f.txt")
            .body(ByteStream::from_static(b"presigned!"))
            .send()
            .await
            .unwrap();

        let wrong_secret = s3_client(&gw.url, &gw.alice.access_key_id, "not-the-secret");
        let err = wrong_secret.list_buckets().send().await.unwrap_err();
        assert_eq!(code(&err), "SignatureDoesNotMatch");
        let unknown = s3_client(&gw.url, "PKNOSUCHKEY000000000", &gw.alice.secret);
        let err = unknown.list_buckets().send().await.unwrap_err();
        assert_eq!(code(&err), "InvalidAccessKeyId");
        let anonymous = gw
            .http
            .get(format!("{}/signed/f.txt", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 403);
        let text = anonymous.text().await.unwrap();
        assert!(
            text.contains("<Code>AccessDenied</Code>") && text.contains("<RequestId>"),
            "{text}"
        );

        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(
            std::time::Duration::from_secs(300),
        )
        .unwrap();
        let presigned = gw
            .alice
            .s3
            .get_object()
            .bucket("signed")
            .key("f.txt")
            .presigned(config)
            .await
            .unwrap();
        let response = gw.http.get(presigned.uri()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"presigned!");
        let tampered = presigned.uri().replace("f.txt", "g.txt");
        assert_eq!(gw.http.get(tampered).send().await.unwrap().status(), 403);

        let revoked_key = gw.drive.create_access_key("alice", None).await.unwrap();
        let client = s3_client(
            &gw.url,
            &revoked_key.access_key_id,
            &revoked_key.secret_access_key,
        );
        client.list_buckets().send().await.unwrap();
        gw.drive
            .revoke_access_key(&revoked_key.access_key_id)
            .await
            .unwrap();
        assert_eq!(
            code(&client.list_buckets().send().await.unwrap_err()),
            "InvalidAccessKeyId"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn quota_is_refused_before_bytes_are_accepted() {
    for gw in Gateway::each().await {
        gw.drive.set_quota("alice", Some(1000)).await.unwrap();
        gw.alice
            .s3
            .create_bucket()
            .bucket("full")
            .send()
            .await
            .unwrap();
        // Larger than the inline limit, so refused before its bytes are read.
        let big = vec![7u8; 50_000];
        let err = gw
            .alice
            .s3
            .put_object()
            .bucket("full")
            .key("big")
            .body(ByteStream::from(big))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "QuotaExceeded");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
        let small = gw
            .alice
            .s3
            .put_object()
            .bucket("full")
            .key("small")
            .body(ByteStream::from(vec![1u8; 500]))
            .send()
            .await;
        assert!(small.is_ok());
        // Small enough to be held in memory: refused by the commit's own quota check.
        let err = gw
            .alice
            .s3
            .put_object()
            .bucket("full")
            .key("another")
            .body(ByteStream::from(vec![2u8; 600]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "QuotaExceeded");
        let report = gw.drive.fsck(false).await.unwrap();
        assert_eq!(
            (
                report.blob_files,
                report.young_orphans,
                report.temp_files,
                report.blobs_in_catalog,
                report.inline_blobs
            ),
            (0, 0, 0, 1, 1),
            "the refused uploads left nothing"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn multipart_versions_copies_tags_and_checksums_through_the_sdk() {
    use aws_sdk_s3::types::{
        ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart,
        CorsConfiguration, CorsRule, MetadataDirective, Tag, Tagging,
    };
    for gw in Gateway::each().await {
        let s3 = &gw.alice.s3;
        s3.create_bucket().bucket("features").send().await.unwrap();

        // Multipart: two parts, completed in one metadata commit.
        let upload = s3
            .create_multipart_upload()
            .bucket("features")
            .key("mp.bin")
            .send()
            .await
            .unwrap();
        let id = upload.upload_id().unwrap();
        let one = vec![1u8; 5 * 1024 * 1024];
        let two = b"tail".to_vec();
        let mut parts = Vec::new();
        for (number, data) in [(1, one.clone()), (2, two.clone())] {
            let part = s3
                .upload_part()
                .bucket("features")
                .key("mp.bin")
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(data))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            );
        }
        let listed = s3
            .list_parts()
            .bucket("features")
            .key("mp.bin")
            .upload_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.parts().len(), 2);
        let done = s3
            .complete_multipart_upload()
            .bucket("features")
            .key("mp.bin")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert!(
            done.e_tag().unwrap().ends_with("-2\""),
            "{:?}",
            done.e_tag()
        );
        let whole: Vec<u8> = one.iter().chain(two.iter()).copied().collect();
        assert_eq!(
            body_of(
                s3.get_object()
                    .bucket("features")
                    .key("mp.bin")
                    .send()
                    .await
                    .unwrap()
            )
            .await,
            whole
        );
        let aborted = s3
            .create_multipart_upload()
            .bucket("features")
            .key("gone.bin")
            .send()
            .await
            .unwrap();
        s3.abort_multipart_upload()
            .bucket("features")
            .key("gone.bin")
            .upload_id(aborted.upload_id().unwrap())
            .send()
            .await
            .unwrap();
        let uploads = s3
            .list_multipart_uploads()
            .bucket("features")
            .send()
            .await
            .unwrap();
        assert!(uploads.uploads().is_empty());

        // Checksums: the SDK sends CRC32, asks for it back, and validates it.
        s3.put_object()
            .bucket("features")
            .key("crc.txt")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from_static(b"checksummed"))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket("features")
            .key("crc.txt")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert!(got.checksum_crc32().is_some());
        assert_eq!(body_of(got).await, b"checksummed");

        // Versions: an overwrite and a delete leave two versions and a delete marker.
        s3.put_object()
            .bucket("features")
            .key("v.txt")
            .body(ByteStream::from_static(b"one"))
            .send()
            .await
            .unwrap();
        s3.put_object()
            .bucket("features")
            .key("v.txt")
            .body(ByteStream::from_static(b"two"))
            .send()
            .await
            .unwrap();
        let deleted = s3
            .delete_object()
            .bucket("features")
            .key("v.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.delete_marker(), Some(true));
        let versions = s3
            .list_object_versions()
            .bucket("features")
            .prefix("v.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 2);
        assert_eq!(versions.delete_markers().len(), 1);
        assert_eq!(versions.delete_markers()[0].is_latest(), Some(true));
        let oldest = versions.versions()[1].version_id().unwrap();
        let old = s3
            .get_object()
            .bucket("features")
            .key("v.txt")
            .version_id(oldest)
            .send()
            .await
            .unwrap();
        assert_eq!(body_of(old).await, b"one");
        let marker = versions.delete_markers()[0].version_id().unwrap();
        s3.delete_object()
            .bucket("features")
            .key("v.txt")
            .version_id(marker)
            .send()
            .await
            .unwrap();
        let back = s3
            .get_object()
            .bucket("features")
            .key("v.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(
            body_of(back).await,
            b"two",
            "removing the delete marker restores the object"
        );
        let status = s3
            .get_bucket_versioning()
            .bucket("features")
            .send()
            .await
            .unwrap();
        assert_eq!(status.status().map(|s| s.as_str()), Some("Enabled"));

        // CopyObject with metadata replaced keeps the bytes (and ETag).
        s3.copy_object()
            .bucket("features")
            .key("copy.bin")
            .copy_source("features/mp.bin")
            .metadata_directive(MetadataDirective::Replace)
            .metadata("kind", "copy")
            .send()
            .await
            .unwrap();
        let head = s3
            .head_object()
            .bucket("features")
            .key("copy.bin")
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), done.e_tag());
        assert_eq!(
            head.metadata().unwrap().get("kind").map(String::as_str),
            Some("copy")
        );

        // Tags on objects and buckets.
        let tagging = Tagging::builder()
            .tag_set(Tag::builder().key("team").value("storage").build().unwrap())
            .build()
            .unwrap();
        s3.put_object_tagging()
            .bucket("features")
            .key("crc.txt")
            .tagging(tagging.clone())
            .send()
            .await
            .unwrap();
        let tags = s3
            .get_object_tagging()
            .bucket("features")
            .key("crc.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(tags.tag_set()[0].value(), "storage");
        s3.delete_object_tagging()
            .bucket("features")
            .key("crc.txt")
            .send()
            .await
            .unwrap();
        assert!(
            s3.get_object_tagging()
                .bucket("features")
                .key("crc.txt")
                .send()
                .await
                .unwrap()
                .tag_set()
                .is_empty()
        );
        s3.put_bucket_tagging()
            .bucket("features")
            .tagging(tagging)
            .send()
            .await
            .unwrap();
        assert_eq!(
            s3.get_bucket_tagging()
                .bucket("features")
                .send()
                .await
                .unwrap()
                .tag_set()
                .len(),
            1
        );

        // CORS: preflights are answered from the bucket's rules, without credentials.
        let rule = CorsRule::builder()
            .allowed_origins("https://app.example.com")
            .allowed_methods("GET")
            .allowed_methods("PUT")
            .allowed_headers("content-type")
            .max_age_seconds(600)
            .build()
            .unwrap();
        s3.put_bucket_cors()
            .bucket("features")
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let preflight = gw
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/features/crc.txt", gw.url),
            )
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "Content-Type")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200);
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(preflight.headers()["access-control-max-age"], "600");
        let refused = gw
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/features/crc.txt", gw.url),
            )
            .header("origin", "https://evil.example.net")
            .header("access-control-request-method", "PUT")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(
            s3.get_bucket_cors()
                .bucket("features")
                .send()
                .await
                .unwrap()
                .cors_rules()
                .len()
                == 1
        );

        // Bucket names are global: another account cannot take a claimed one.
        let taken = gw
            .bob
            .s3
            .create_bucket()
            .bucket("features")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&taken), "BucketAlreadyExists");
        gw.stop().await;
    }
}
