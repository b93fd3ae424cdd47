//! One namespace, two views: what one protocol writes, the other reads at once.

use aws_sdk_s3::primitives::ByteStream;

use crate::common::{Gateway, xml_values};

#[tokio::test]
async fn s3_and_webdav_share_bytes_etag_and_mtime() {
    for gw in Gateway::each().await {
        let s3 = &gw.alice.s3;
        s3.create_bucket().bucket("photos").send().await.unwrap();
        s3.put_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .body(ByteStream::from_static(b"jpeg bytes"))
            .send()
            .await
            .unwrap();

        let got = gw
            .dav("GET", "/dav/photos/2024/a.jpg", &gw.alice)
            .send()
            .await
            .unwrap();
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"jpeg bytes");
        let head = s3
            .head_object()
            .bucket("photos")
            .key("2024/a.jpg")
            .send()
            .await
            .unwrap();
        let propfind = gw
            .dav("PROPFIND", "/dav/photos/2024/a.jpg", &gw.alice)
            .header("depth", "0")
            .send()
            .await
            .unwrap();
        let xml = propfind.text().await.unwrap();
        assert_eq!(
            xml_values(&xml, "getetag"),
            [head.e_tag().unwrap().to_owned()]
        );
        assert_eq!(
            xml_values(&xml, "getcontentlength"),
            [head.content_length().unwrap().to_string()]
        );
        let s3_mtime = head
            .last_modified()
            .unwrap()
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
            .unwrap();
        assert_eq!(xml_values(&xml, "getlastmodified"), [s3_mtime]);

        // S3-made folders are there for WebDAV too.
        let folder = gw
            .dav("PROPFIND", "/dav/photos/", &gw.alice)
            .header("depth", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            xml_values(&folder.text().await.unwrap(), "href"),
            ["/dav/photos/", "/dav/photos/2024/"]
        );

        // A WebDAV PUT is listed by S3 at once, and overwriting it makes a version S3 can read.
        let first = gw
            .dav("PUT", "/dav/photos/from-dav.txt", &gw.alice)
            .body("first")
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 201);
        let listed = s3.list_objects_v2().bucket("photos").send().await.unwrap();
        let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["2024/a.jpg", "from-dav.txt"]);
        let first_version = s3
            .head_object()
            .bucket("photos")
            .key("from-dav.txt")
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_owned();
        gw.dav("PUT", "/dav/photos/from-dav.txt", &gw.alice)
            .body("second")
            .send()
            .await
            .unwrap();
        let old = s3
            .get_object()
            .bucket("photos")
            .key("from-dav.txt")
            .version_id(&first_version)
            .send()
            .await
            .unwrap();
        assert_eq!(
            old.body.collect().await.unwrap().into_bytes().as_ref(),
            b"first"
        );
        let now = s3
            .get_object()
            .bucket("photos")
            .key("from-dav.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(
            now.body.collect().await.unwrap().into_bytes().as_ref(),
            b"second"
        );

        // A WebDAV MKCOL is an explicit folder: S3 lists its marker.
        gw.dav("MKCOL", "/dav/photos/empty", &gw.alice)
            .send()
            .await
            .unwrap();
        let listed = s3
            .list_objects_v2()
            .bucket("photos")
            .prefix("empty")
            .send()
            .await
            .unwrap();
        assert_eq!(
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .collect::<Vec<_>>(),
            ["empty/"]
        );
        // A key a tree cannot show (a file beside a folder of the same name) stays for S3.
        s3.put_object()
            .bucket("photos")
            .key("2024")
            .body(ByteStream::from_static(b"file named like a folder"))
            .send()
            .await
            .unwrap();
        let both = s3
            .get_object()
            .bucket("photos")
            .key("2024")
            .send()
            .await
            .unwrap();
        assert_eq!(
            both.body.collect().await.unwrap().into_bytes().as_ref(),
            b"file named like a folder"
        );
        let tree = gw
            .dav("PROPFIND", "/dav/photos/2024", &gw.alice)
            .header("depth", "0")
            .send()
            .await
            .unwrap();
        assert!(
            tree.text().await.unwrap().contains("<D:collection/>"),
            "WebDAV shows the folder"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn accounts_cannot_reach_each_other() {
    for gw in Gateway::each().await {
        gw.alice
            .s3
            .create_bucket()
            .bucket("private")
            .send()
            .await
            .unwrap();
        gw.alice
            .s3
            .put_object()
            .bucket("private")
            .key("diary.txt")
            .body(ByteStream::from_static(b"dear diary"))
            .send()
            .await
            .unwrap();

        let bob = &gw.bob.s3;
        let err = bob
            .get_object()
            .bucket("private")
            .key("diary.txt")
            .send()
            .await
            .unwrap_err();
        let status = err.raw_response().map(|r| r.status().as_u16());
        assert!(matches!(status, Some(403 | 404)), "{status:?}");
        assert!(
            bob.list_objects_v2()
                .bucket("private")
                .send()
                .await
                .is_err()
        );
        assert!(
            bob.list_buckets()
                .send()
                .await
                .unwrap()
                .buckets()
                .is_empty()
        );
        assert!(
            bob.delete_object()
                .bucket("private")
                .key("diary.txt")
                .send()
                .await
                .is_err()
        );

        let dav = gw
            .dav("GET", "/dav/private/diary.txt", &gw.bob)
            .send()
            .await
            .unwrap();
        assert!(matches!(dav.status().as_u16(), 403 | 404));
        let listing = gw
            .dav("PROPFIND", "/dav/", &gw.bob)
            .header("depth", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            xml_values(&listing.text().await.unwrap(), "href"),
            ["/dav/"]
        );
        let delete = gw
            .dav("DELETE", "/dav/private", &gw.bob)
            .send()
            .await
            .unwrap();
        assert!(matches!(delete.status().as_u16(), 403 | 404));

        let still = gw
            .alice
            .s3
            .get_object()
            .bucket("private")
            .key("diary.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(
            still.body.collect().await.unwrap().into_bytes().as_ref(),
            b"dear diary"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn acls_are_shares_for_anyone_signed_in_users_or_one_account() {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl};
    for gw in Gateway::each().await {
        let alice = &gw.alice.s3;
        let bob = &gw.bob.s3;
        alice
            .create_bucket()
            .bucket("gallery")
            .send()
            .await
            .unwrap();
        alice
            .put_object()
            .bucket("gallery")
            .key("art.txt")
            .body(ByteStream::from_static(b"art"))
            .send()
            .await
            .unwrap();
        let anonymous = |path: &str| gw.http.get(format!("{}/{path}", gw.url)).send();

        // Private by default: nobody else reads.
        assert_eq!(anonymous("gallery/art.txt").await.unwrap().status(), 403);
        let denied = bob
            .get_object()
            .bucket("gallery")
            .key("art.txt")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            denied.raw_response().map(|r| r.status().as_u16()),
            Some(403)
        );

        // public-read: anyone reads and lists, nobody else writes.
        alice
            .put_bucket_acl()
            .bucket("gallery")
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        let public = anonymous("gallery/art.txt").await.unwrap();
        assert_eq!(public.status(), 200);
        assert_eq!(public.text().await.unwrap(), "art");
        assert_eq!(
            anonymous("gallery?list-type=2").await.unwrap().status(),
            200
        );
        let read = bob
            .get_object()
            .bucket("gallery")
            .key("art.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.body.collect().await.unwrap().into_bytes().as_ref(),
            b"art"
        );
        assert!(
            bob.put_object()
                .bucket("gallery")
                .key("graffiti")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .is_err()
        );
        let anonymous_put = gw
            .http
            .put(format!("{}/gallery/graffiti", gw.url))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous_put.status(), 403);
        let acl = alice
            .get_bucket_acl()
            .bucket("gallery")
            .send()
            .await
            .unwrap();
        assert!(acl.grants().iter().any(|g| {
            g.grantee()
                .and_then(|e| e.uri())
                .is_some_and(|u| u.ends_with("AllUsers"))
        }));
        assert!(
            bob.get_bucket_acl().bucket("gallery").send().await.is_err(),
            "only the owner reads the ACL"
        );

        // Back to private.
        alice
            .put_bucket_acl()
            .bucket("gallery")
            .acl(BucketCannedAcl::Private)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous("gallery/art.txt").await.unwrap().status(), 403);

        // authenticated-read: any account, not anonymous.
        alice
            .put_bucket_acl()
            .bucket("gallery")
            .acl(BucketCannedAcl::AuthenticatedRead)
            .send()
            .await
            .unwrap();
        assert!(
            bob.get_object()
                .bucket("gallery")
                .key("art.txt")
                .send()
                .await
                .is_ok()
        );
        assert_eq!(anonymous("gallery/art.txt").await.unwrap().status(), 403);

        // A grant to one account by its owner id, with write: bob writes into alice's
        // bucket, alice's quota pays, alice owns the object.
        let bob_id = gw.drive.account(&gw.bob.name).await.unwrap().owner_id;
        alice
            .create_bucket()
            .bucket("dropbox")
            .send()
            .await
            .unwrap();
        alice
            .put_bucket_acl()
            .bucket("dropbox")
            .grant_read(format!("id=\"{bob_id}\""))
            .grant_write(format!("id=\"{bob_id}\""))
            .send()
            .await
            .unwrap();
        bob.put_object()
            .bucket("dropbox")
            .key("from-bob.txt")
            .body(ByteStream::from_static(b"hello alice"))
            .send()
            .await
            .unwrap();
        let listed = bob
            .list_objects_v2()
            .bucket("dropbox")
            .send()
            .await
            .unwrap();
        assert_eq!(listed.contents().len(), 1);
        let got = alice
            .get_object()
            .bucket("dropbox")
            .key("from-bob.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().as_ref(),
            b"hello alice"
        );
        assert_eq!(
            gw.drive
                .account(&gw.bob.name)
                .await
                .unwrap()
                .usage
                .used_bytes,
            0
        );
        assert!(
            gw.drive
                .account(&gw.alice.name)
                .await
                .unwrap()
                .usage
                .used_bytes
                >= 11
        );

        // One public object in a private bucket.
        alice.create_bucket().bucket("mixed").send().await.unwrap();
        for key in ["open.txt", "closed.txt"] {
            alice
                .put_object()
                .bucket("mixed")
                .key(key)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap();
        }
        alice
            .put_object_acl()
            .bucket("mixed")
            .key("open.txt")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous("mixed/open.txt").await.unwrap().status(), 200);
        assert_eq!(anonymous("mixed/closed.txt").await.unwrap().status(), 403);
        assert_eq!(anonymous("mixed?list-type=2").await.unwrap().status(), 403);

        // Canned ACLs given with the write: PutObject, a multipart upload (applied when it
        // completes), CopyObject. One the model cannot express writes nothing.
        alice
            .put_object()
            .bucket("mixed")
            .key("put-public.txt")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        let upload = alice
            .create_multipart_upload()
            .bucket("mixed")
            .key("multipart-public.txt")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        let upload_id = upload.upload_id().unwrap();
        let part = alice
            .upload_part()
            .bucket("mixed")
            .key("multipart-public.txt")
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"one part"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous("mixed/multipart-public.txt")
                .await
                .unwrap()
                .status(),
            403,
            "nothing to read before completion"
        );
        alice
            .complete_multipart_upload()
            .bucket("mixed")
            .key("multipart-public.txt")
            .upload_id(upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .parts(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        alice
            .copy_object()
            .bucket("mixed")
            .key("copy-public.txt")
            .copy_source("mixed/closed.txt")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        for key in ["put-public.txt", "multipart-public.txt", "copy-public.txt"] {
            let read = anonymous(&format!("mixed/{key}")).await.unwrap();
            assert_eq!(read.status(), 200, "{key}");
        }
        let refused = alice
            .put_object()
            .bucket("mixed")
            .key("never.txt")
            .acl(ObjectCannedAcl::PublicReadWrite)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            refused
                .as_service_error()
                .and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e)),
            Some("InvalidArgument")
        );
        assert!(
            alice
                .head_object()
                .bucket("mixed")
                .key("never.txt")
                .send()
                .await
                .is_err(),
            "a refused ACL writes nothing"
        );

        // What the sharing model cannot express is refused clearly.
        let refused = alice
            .put_bucket_acl()
            .bucket("mixed")
            .acl(BucketCannedAcl::PublicReadWrite)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            refused
                .as_service_error()
                .and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e)),
            Some("InvalidArgument")
        );
        let by_email = alice
            .put_bucket_acl()
            .bucket("mixed")
            .grant_read("emailAddress=\"x@example.com\"")
            .send()
            .await;
        assert!(by_email.is_err());
        let ownership = alice
            .get_bucket_ownership_controls()
            .bucket("mixed")
            .send()
            .await
            .unwrap();
        let rules = ownership.ownership_controls().unwrap().rules();
        assert_eq!(rules[0].object_ownership().as_str(), "BucketOwnerEnforced");
        gw.stop().await;
    }
}
