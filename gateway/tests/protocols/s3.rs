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
        let big = vec![7u8; 5000];
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
        let report = gw.drive.fsck(false).await.unwrap();
        assert_eq!(
            (report.blob_files, report.young_orphans, report.temp_files),
            (1, 0, 0),
            "the refused upload left nothing"
        );
        gw.stop().await;
    }
}
