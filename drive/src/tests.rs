//! Drive tests: the domain rules, on SQLite and PostgreSQL, with a real volume.

use std::io;

use bytes::Bytes;
use futures::{TryStreamExt, stream};
use portico_metadata::testing::{backends, fresh_catalog};
use portico_volume::Volume;

use md5::Digest as _;

use super::*;
use crate::multipart::MIN_PART_SIZE as MIN_PART;

struct Harness {
    drive: Drive,
    alice: Ctx,
    _volume_dir: tempfile::TempDir,
    _catalog: portico_metadata::testing::TestCatalog,
}

async fn harnesses() -> Vec<Harness> {
    let mut out = Vec::new();
    for kind in backends() {
        let catalog = fresh_catalog(kind).await;
        let volume_dir = tempfile::tempdir().unwrap();
        let volume = Volume::open(volume_dir.path()).unwrap();
        let drive = Drive::from_parts(
            catalog.catalog.clone(),
            volume,
            ServerKey::generate(),
            DriveConfig::default(),
        );
        let alice = ctx_for(&drive, "alice", Some(1_000_000)).await;
        out.push(Harness {
            drive,
            alice,
            _volume_dir: volume_dir,
            _catalog: catalog,
        });
    }
    out
}

async fn ctx_for(drive: &Drive, name: &str, quota: Option<u64>) -> Ctx {
    let (info, _) = drive
        .create_account(NewAccountRequest {
            name: name.into(),
            password: Some(format!("{name}-password")),
            quota_bytes: quota,
            ..Default::default()
        })
        .await
        .unwrap();
    let principal = Principal {
        account_id: info.id,
        name: info.name,
        is_admin: false,
        owner_id: info.owner_id,
    };
    Ctx::new(principal, Protocol::S3, "test")
}

fn body(data: &[u8]) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + Unpin + use<> {
    stream::iter(vec![Ok(Bytes::copy_from_slice(data))])
}

fn p(text: &str) -> NodePath {
    NodePath::parse(text).unwrap()
}

async fn put_s3(h: &Harness, key: &str, data: &[u8]) -> Entry {
    let (path, is_folder) = NodePath::from_s3("bkt", key).unwrap();
    let kind = if is_folder { Kind::Folder } else { Kind::File };
    let mut options = PutOptions::new(kind, Parents::CreateImplicit);
    options.expected_size = Some(data.len() as u64);
    h.drive
        .put(&h.alice, &path, body(data), options)
        .await
        .unwrap()
}

async fn read(h: &Harness, path: &NodePath, kind: Kind, range: Option<ByteRange>) -> Vec<u8> {
    let download = h
        .drive
        .open(
            &h.alice,
            path,
            kind,
            &ReadRequest {
                range,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let chunks: Vec<Bytes> = download.body.try_collect().await.unwrap();
    chunks.concat()
}

async fn list(
    h: &Harness,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> (Vec<String>, Vec<String>, bool) {
    let page = h
        .drive
        .list_objects(
            &h.alice,
            "bkt",
            &ListRequest {
                prefix: prefix.into(),
                delimiter: delimiter.map(Into::into),
                after: after.map(Into::into),
                max_keys: max,
            },
        )
        .await
        .unwrap();
    (
        page.objects.into_iter().map(|(k, _)| k).collect(),
        page.common_prefixes,
        page.is_truncated,
    )
}

#[tokio::test]
async fn put_then_read_whole_ranges_and_versions() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        let first = put_s3(&h, "2024/a.jpg", b"hello world").await;
        assert_eq!(
            first.etag.as_deref(),
            Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert_eq!(first.size, 11);
        let path = p("bkt/2024/a.jpg");
        assert_eq!(read(&h, &path, Kind::File, None).await, b"hello world");
        assert_eq!(
            read(&h, &path, Kind::File, ByteRange::parse("bytes=6-")).await,
            b"world"
        );
        assert_eq!(
            read(&h, &path, Kind::File, ByteRange::parse("bytes=-5")).await,
            b"world"
        );
        let bad = h
            .drive
            .open(
                &h.alice,
                &path,
                Kind::File,
                &ReadRequest {
                    range: ByteRange::parse("bytes=20-"),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(bad, Err(Error::InvalidRange { size: 11 })));

        put_s3(&h, "2024/a.jpg", b"second").await;
        let versions = h.drive.versions(&h.alice, &path, Kind::File).await.unwrap();
        assert_eq!(versions.len(), 2);
        assert!(versions[0].is_current && !versions[1].is_current);
        let old = h
            .drive
            .open(
                &h.alice,
                &path,
                Kind::File,
                &ReadRequest {
                    version_id: Some(versions[1].version_id.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let old_bytes: Vec<Bytes> = old.body.try_collect().await.unwrap();
        assert_eq!(old_bytes.concat(), b"hello world");
        let usage = h.drive.usage(&h.alice).await.unwrap();
        assert_eq!(usage.used_bytes, 17, "old versions count against the quota");
    }
}

#[tokio::test]
async fn s3_folders_are_implicit_and_vanish_with_their_last_object() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        put_s3(&h, "x/y/z.txt", b"z").await;
        let folder = h
            .drive
            .stat(&h.alice, &p("bkt/x/y"), Kind::Folder)
            .await
            .unwrap();
        assert!(folder.implicit);
        assert_eq!(list(&h, "", None, None, 100).await.0, ["x/y/z.txt"]);
        let marker = h
            .drive
            .delete_object(&h.alice, &p("bkt/x/y/z.txt"), Kind::File)
            .await
            .unwrap();
        assert!(
            marker.is_some_and(|id| id.starts_with("dm-")),
            "a delete marker"
        );
        assert!(
            h.drive
                .stat(&h.alice, &p("bkt/x"), Kind::Folder)
                .await
                .is_err(),
            "implicit folders disappear"
        );
        assert!(
            h.drive
                .stat(&h.alice, &p("bkt"), Kind::Folder)
                .await
                .is_ok(),
            "the bucket stays"
        );
        let again = h
            .drive
            .delete_object(&h.alice, &p("bkt/x/y/z.txt"), Kind::File)
            .await
            .unwrap();
        assert!(again.is_none(), "nothing left to delete");

        // A folder made on purpose stays, and lists as a zero-byte marker.
        h.drive
            .mkdir(&h.alice, &p("bkt/kept"), MkdirOptions::default())
            .await
            .unwrap();
        put_s3(&h, "kept/f", b"f").await;
        h.drive
            .delete_object(&h.alice, &p("bkt/kept/f"), Kind::File)
            .await
            .unwrap();
        assert_eq!(list(&h, "", None, None, 100).await.0, ["kept/"]);

        // A marker written where an implicit folder stands makes it explicit: it stays.
        put_s3(&h, "late/f", b"f").await;
        put_s3(&h, "late/", b"").await;
        h.drive
            .delete_object(&h.alice, &p("bkt/late/f"), Kind::File)
            .await
            .unwrap();
        let late = h
            .drive
            .stat(&h.alice, &p("bkt/late"), Kind::Folder)
            .await
            .unwrap();
        assert!(!late.implicit);
        h.drive
            .delete_object(&h.alice, &p("bkt/late/"), Kind::Folder)
            .await
            .unwrap();

        // A tree client deleting the last file keeps the folder it saw.
        put_s3(&h, "seen/f", b"f").await;
        h.drive.delete(&h.alice, &p("bkt/seen/f")).await.unwrap();
        let seen = h
            .drive
            .stat(&h.alice, &p("bkt/seen"), Kind::Folder)
            .await
            .unwrap();
        assert!(!seen.implicit);
    }
}

#[tokio::test]
async fn a_file_and_a_folder_may_share_a_name_for_s3() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        put_s3(&h, "a", b"file").await;
        put_s3(&h, "a/", b"marker").await;
        put_s3(&h, "a/c", b"c").await;
        put_s3(&h, "a.txt", b"t").await;
        assert_eq!(
            list(&h, "", None, None, 100).await.0,
            ["a", "a.txt", "a/", "a/c"]
        );
        assert_eq!(read(&h, &p("bkt/a"), Kind::Folder, None).await, b"marker");
        assert_eq!(read(&h, &p("bkt/a"), Kind::File, None).await, b"file");
        let shown = h.drive.resolve(&h.alice, &p("bkt/a")).await.unwrap();
        assert!(shown.is_folder(), "a tree shows the folder");
        // Deleting the marker keeps the folder for its child.
        h.drive
            .delete_object(&h.alice, &p("bkt/a"), Kind::Folder)
            .await
            .unwrap();
        assert_eq!(list(&h, "", None, None, 100).await.0, ["a", "a.txt", "a/c"]);
    }
}

#[tokio::test]
async fn s3_listings_page_with_prefixes_and_delimiters() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        for key in ["a/1", "a/2", "b/1", "c", "d/e/f", "d-1", "d-2/x"] {
            put_s3(&h, key, b"x").await;
        }
        let (objects, prefixes, truncated) = list(&h, "", Some("/"), None, 100).await;
        assert_eq!(
            (objects, prefixes, truncated),
            (
                vec!["c".into(), "d-1".into()],
                vec!["a/".into(), "b/".into(), "d-2/".into(), "d/".into()],
                false
            )
        );

        // Pages of two, merged in key order.
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let page = h
                .drive
                .list_objects(
                    &h.alice,
                    "bkt",
                    &ListRequest {
                        prefix: String::new(),
                        delimiter: Some("/".into()),
                        after: after.clone(),
                        max_keys: 2,
                    },
                )
                .await
                .unwrap();
            seen.extend(page.objects.iter().map(|(k, _)| k.clone()));
            seen.extend(page.common_prefixes.iter().cloned());
            if !page.is_truncated {
                break;
            }
            after = page.next_after;
        }
        seen.sort();
        assert_eq!(seen, ["a/", "b/", "c", "d-1", "d-2/", "d/"]);

        assert_eq!(
            list(&h, "d", Some("/"), None, 100).await,
            (vec!["d-1".into()], vec!["d-2/".into(), "d/".into()], false)
        );
        assert_eq!(list(&h, "a/", None, None, 100).await.0, ["a/1", "a/2"]);
        assert_eq!(
            list(&h, "", None, Some("b/1"), 100).await.0,
            ["c", "d-1", "d-2/x", "d/e/f"]
        );
        let by_dash = list(&h, "", Some("-"), None, 100).await;
        let objects: Vec<String> = ["a/1", "a/2", "b/1", "c", "d/e/f"].map(String::from).into();
        assert_eq!(by_dash, (objects, vec!["d-".to_string()], false));
        let (objects, _, truncated) = list(&h, "", None, None, 3).await;
        assert_eq!((objects.len(), truncated), (3, true));
    }
}

#[tokio::test]
async fn move_and_copy_subtrees_copy_shares_blobs() {
    for h in harnesses().await {
        h.drive
            .mkdir(
                &h.alice,
                &p("docs/src/inner"),
                MkdirOptions {
                    parents: true,
                    exist_ok: false,
                },
            )
            .await
            .unwrap();
        let options = || {
            let mut options = PutOptions::new(Kind::File, Parents::MustExist);
            options.expected_size = Some(4);
            options
        };
        h.drive
            .put(
                &h.alice,
                &p("docs/src/inner/f.txt"),
                body(b"data"),
                options(),
            )
            .await
            .unwrap();
        h.drive
            .put(&h.alice, &p("docs/src/g.txt"), body(b"gggg"), options())
            .await
            .unwrap();

        let created = h
            .drive
            .transfer(
                &h.alice,
                &p("docs/src"),
                &p("docs/copy"),
                Transfer::Copy { recursive: true },
                false,
            )
            .await
            .unwrap();
        assert!(created);
        assert_eq!(
            read(&h, &p("docs/copy/inner/f.txt"), Kind::File, None).await,
            b"data"
        );
        assert_eq!(
            h.drive.inner.catalog.all_blobs().await.unwrap().len(),
            2,
            "the copy shares the blobs"
        );
        assert_eq!(h.drive.usage(&h.alice).await.unwrap().used_bytes, 16);

        h.drive
            .transfer(&h.alice, &p("docs/src"), &p("moved"), Transfer::Move, false)
            .await
            .unwrap();
        assert!(h.drive.resolve(&h.alice, &p("docs/src")).await.is_err());
        assert_eq!(
            read(&h, &p("moved/inner/f.txt"), Kind::File, None).await,
            b"data"
        );

        let clash = h
            .drive
            .transfer(
                &h.alice,
                &p("moved"),
                &p("docs/copy"),
                Transfer::Move,
                false,
            )
            .await;
        assert!(matches!(clash, Err(Error::PreconditionFailed)));
        let replaced = h
            .drive
            .transfer(&h.alice, &p("moved"), &p("docs/copy"), Transfer::Move, true)
            .await
            .unwrap();
        assert!(!replaced);
        let into_itself = h
            .drive
            .transfer(
                &h.alice,
                &p("docs"),
                &p("docs/copy/x"),
                Transfer::Move,
                false,
            )
            .await;
        assert!(matches!(into_itself, Err(Error::Conflict(_))));
        let missing_parent = h
            .drive
            .transfer(&h.alice, &p("docs"), &p("nowhere/x"), Transfer::Move, false)
            .await;
        assert!(matches!(missing_parent, Err(Error::Conflict(_))));
    }
}

#[tokio::test]
async fn trash_restore_purge_and_garbage_collection() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        put_s3(&h, "dir/one", b"1111").await;
        put_s3(&h, "dir/two", b"22").await;
        h.drive.delete(&h.alice, &p("bkt/dir")).await.unwrap();
        let trash = h.drive.list_trash(&h.alice).await.unwrap();
        assert_eq!(trash.len(), 1, "one entry for the whole folder");
        assert_eq!(list(&h, "", None, None, 10).await.0, Vec::<String>::new());

        h.drive.restore(&h.alice, trash[0].id).await.unwrap();
        assert_eq!(read(&h, &p("bkt/dir/two"), Kind::File, None).await, b"22");

        h.drive.delete(&h.alice, &p("bkt/dir")).await.unwrap();
        let trash = h.drive.list_trash(&h.alice).await.unwrap();
        assert_eq!(
            h.drive.usage(&h.alice).await.unwrap().used_bytes,
            6,
            "trash counts"
        );
        assert_eq!(h.drive.purge(&h.alice, trash[0].id).await.unwrap(), 6);
        assert_eq!(h.drive.usage(&h.alice).await.unwrap().used_bytes, 0);
        let (files, _) = h.drive.inner.volume.scan().await.unwrap();
        assert!(files.is_empty(), "purged blobs are removed from disk");
        let report = h.drive.fsck(false).await.unwrap();
        assert!(report.is_healthy() && report.orphans.is_empty() && report.blobs_in_catalog == 0);
    }
}

#[tokio::test]
async fn quota_is_enforced_before_and_while_bytes_arrive() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        let path = p("bkt/big");
        let mut announced = PutOptions::new(Kind::File, Parents::CreateImplicit);
        announced.expected_size = Some(2_000_000);
        let never_read = stream::iter(vec![Err::<Bytes, _>(io::Error::other("must not be read"))]);
        assert!(matches!(
            h.drive.put(&h.alice, &path, never_read, announced).await,
            Err(Error::QuotaExceeded)
        ));

        let chunks: Vec<io::Result<Bytes>> = (0..20)
            .map(|_| Ok(Bytes::from(vec![0u8; 100_000])))
            .collect();
        let unannounced = PutOptions::new(Kind::File, Parents::CreateImplicit);
        assert!(matches!(
            h.drive
                .put(&h.alice, &path, stream::iter(chunks), unannounced)
                .await,
            Err(Error::QuotaExceeded)
        ));

        let (files, temps) = h.drive.inner.volume.scan().await.unwrap();
        assert!(
            files.is_empty() && temps.is_empty(),
            "a refused upload leaves nothing"
        );
        assert!(h.drive.stat(&h.alice, &path, Kind::File).await.is_err());
        assert_eq!(h.drive.usage(&h.alice).await.unwrap().used_bytes, 0);
    }
}

#[tokio::test]
async fn a_small_write_past_the_quota_is_refused_at_commit_and_leaves_no_row() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        h.drive.set_quota("alice", Some(10)).await.unwrap();
        let put = async |key: &'static str, data: &'static [u8]| {
            let mut options = PutOptions::new(Kind::File, Parents::CreateImplicit);
            // Announced small: no early refusal, the commit's charge decides.
            options.expected_size = Some(data.len() as u64);
            h.drive.put(&h.alice, &p(key), body(data), options).await
        };
        put("bkt/dir/first", b"12345678").await.unwrap();
        assert!(matches!(
            put("bkt/dir/second", b"abcdefgh").await,
            Err(Error::QuotaExceeded)
        ));
        assert!(matches!(
            put("bkt/other/third", b"abcdefgh").await,
            Err(Error::QuotaExceeded)
        ));
        assert!(
            h.drive
                .stat(&h.alice, &p("bkt/dir/second"), Kind::File)
                .await
                .is_err()
        );
        assert!(
            h.drive
                .stat(&h.alice, &p("bkt/other/"), Kind::Folder)
                .await
                .is_err()
        );
        assert_eq!(h.drive.usage(&h.alice).await.unwrap().used_bytes, 8);
        // Overwriting within the quota still works, and the refused writes left no blob.
        put("bkt/dir/first", b"1").await.unwrap();
        assert_eq!(h.drive.usage(&h.alice).await.unwrap().used_bytes, 9);
        let report = h.drive.fsck(false).await.unwrap();
        assert_eq!(report.blobs_in_catalog, 2, "{report:?}");
    }
}

#[tokio::test]
async fn bad_names_and_preconditions_write_nothing() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        for key in ["a//b", "../x", "a/./b", "a\0b"] {
            assert!(
                matches!(NodePath::from_s3("bkt", key), Err(Error::InvalidName(_))),
                "{key:?}"
            );
        }
        let once = || {
            let mut once = PutOptions::new(Kind::File, Parents::CreateImplicit);
            once.preconditions.if_none_match = Some(EtagCondition::Any);
            once
        };
        h.drive
            .put(&h.alice, &p("bkt/once"), body(b"1"), once())
            .await
            .unwrap();
        let again = h
            .drive
            .put(&h.alice, &p("bkt/once"), body(b"2"), once())
            .await;
        assert!(matches!(again, Err(Error::PreconditionFailed)));
        assert_eq!(read(&h, &p("bkt/once"), Kind::File, None).await, b"1");
        let no_bucket = h
            .drive
            .put(
                &h.alice,
                &p("nobucket/k"),
                body(b"1"),
                PutOptions::new(Kind::File, Parents::CreateImplicit),
            )
            .await;
        assert!(matches!(no_bucket, Err(Error::NotFound(Missing::Bucket))));
        let no_parent = h
            .drive
            .put(
                &h.alice,
                &p("bkt/no/parent"),
                body(b"1"),
                PutOptions::new(Kind::File, Parents::MustExist),
            )
            .await;
        assert!(matches!(no_parent, Err(Error::Conflict(_))));
        assert!(matches!(
            h.drive.create_bucket(&h.alice, "dav").await,
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(
            h.drive.create_bucket(&h.alice, "bkt").await,
            Err(Error::AlreadyExists)
        ));
        // The one file written is small: its bytes are in the catalog, nothing on disk.
        let (files, temps) = h.drive.inner.volume.scan().await.unwrap();
        assert_eq!((files.len(), temps.len()), (0, 0));
        let report = h.drive.fsck(false).await.unwrap();
        assert_eq!((report.blobs_in_catalog, report.inline_blobs), (1, 1));
    }
}

#[tokio::test]
async fn accounts_are_isolated_and_credentials_checked() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        put_s3(&h, "secret.txt", b"alice only").await;
        let bob = ctx_for(&h.drive, "bob", None).await;
        assert!(matches!(
            h.drive.bucket(&bob, "bkt").await,
            Err(Error::NotFound(Missing::Bucket))
        ));
        assert!(
            h.drive
                .stat(&bob, &p("bkt/secret.txt"), Kind::File)
                .await
                .is_err()
        );
        assert!(h.drive.list_buckets(&bob).await.unwrap().is_empty());

        let ok = h
            .drive
            .authenticate_password("alice", "alice-password")
            .await
            .unwrap();
        assert_eq!(ok.name, "alice");
        // Cached: the second check does not need argon2 and still validates the password.
        assert!(
            h.drive
                .authenticate_password("alice", "alice-password")
                .await
                .is_ok()
        );
        assert!(matches!(
            h.drive
                .authenticate_password("alice", "wrong-password")
                .await,
            Err(Error::Unauthenticated)
        ));
        assert!(matches!(
            h.drive
                .authenticate_password("nobody", "alice-password")
                .await,
            Err(Error::Unauthenticated)
        ));
        h.drive.set_disabled("alice", true).await.unwrap();
        assert!(matches!(
            h.drive
                .authenticate_password("alice", "alice-password")
                .await,
            Err(Error::Unauthenticated)
        ));
        h.drive.set_disabled("alice", false).await.unwrap();
        let generated = h.drive.set_password("alice", None).await.unwrap().unwrap();
        assert!(
            h.drive
                .authenticate_password("alice", "alice-password")
                .await
                .is_err()
        );
        assert!(
            h.drive
                .authenticate_password("alice", &generated)
                .await
                .is_ok()
        );

        let key = h.drive.create_access_key("alice", None).await.unwrap();
        let secret = h.drive.s3_secret(&key.access_key_id).await.unwrap();
        let principal = h.drive.s3_principal(&key.access_key_id).await.unwrap();
        assert_eq!(
            (secret.as_str(), principal.name.as_str()),
            (key.secret_access_key.as_str(), "alice")
        );
        h.drive.set_disabled("alice", true).await.unwrap();
        assert!(
            matches!(
                h.drive.s3_secret(&key.access_key_id).await,
                Err(Error::NotFound(Missing::AccessKey))
            ),
            "a disabled account's keys stop working at once"
        );
        h.drive.set_disabled("alice", false).await.unwrap();
        assert!(h.drive.s3_secret(&key.access_key_id).await.is_ok());
        let sealed = h
            .drive
            .inner
            .catalog
            .access_key(&key.access_key_id)
            .await
            .unwrap()
            .unwrap()
            .secret_sealed;
        assert!(
            !sealed.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secrets are stored sealed"
        );
        h.drive.revoke_access_key(&key.access_key_id).await.unwrap();
        assert!(
            h.drive.s3_secret(&key.access_key_id).await.is_err(),
            "revocation takes effect at once"
        );
        let audit = h
            .drive
            .inner
            .catalog
            .audit_log(h.alice.principal.account_id.0, 100)
            .await
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|row| row.action == "put" && row.key.as_deref() == Some("bkt/secret.txt"))
        );
    }
}

#[tokio::test]
async fn fsck_reports_missing_blobs_and_repairs_only_old_orphans() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        put_s3(&h, "kept", b"kept").await;
        // Larger than the inline limit: a file on the volume (the small one is not).
        let large = vec![7u8; DriveConfig::default().inline_max_bytes as usize + 1];
        let doomed = put_s3(&h, "doomed", &large).await;
        // An upload that crashed after its rename: a blob file with no row.
        let orphan = h
            .drive
            .inner
            .volume
            .write(body(b"orphan"), Default::default())
            .await
            .unwrap();
        let report = h.drive.fsck(true).await.unwrap();
        assert!(report.is_healthy());
        assert_eq!(
            (report.young_orphans, report.orphans_removed),
            (1, 0),
            "young orphans may be in-flight uploads"
        );
        assert!(
            h.drive
                .inner
                .volume
                .exists(orphan.locator.as_ref().unwrap())
                .await
                .unwrap()
        );

        let version = h
            .drive
            .inner
            .catalog
            .version(doomed.version_row.unwrap())
            .await
            .unwrap()
            .unwrap();
        let locator =
            portico_volume::BlobLocator::parse(version.locator.as_deref().unwrap()).unwrap();
        h.drive.inner.volume.remove(&locator).await.unwrap();
        let report = h.drive.fsck(false).await.unwrap();
        assert!(!report.is_healthy());
        assert_eq!(
            report.missing,
            vec![(locator.to_string(), vec!["bkt/doomed".to_string()])]
        );
    }
}

fn crc32_b64(data: &[u8]) -> String {
    ChecksumAlgorithm::encode(
        &crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data).to_be_bytes()[4..],
    )
}

#[tokio::test]
async fn multipart_uploads_complete_without_copying_and_release_what_is_unused() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        h.drive.set_quota("alice", Some(100 << 20)).await.unwrap();
        let path = p("bkt/big.bin");
        let new = NewUpload {
            kind: Kind::File,
            content_type: Some("application/x-test".into()),
            attributes: ObjectAttributes::default(),
            checksum: Some((ChecksumAlgorithm::Crc32, None)),
            acl: None,
        };
        let upload = h.drive.create_upload(&h.alice, &path, new).await.unwrap();
        let one = vec![1u8; MIN_PART as usize];
        let two = vec![2u8; 1000];
        let spare = vec![3u8; 10];
        let part = |n: u32, data: &Vec<u8>, checksum: Option<ExpectedChecksum>| {
            let drive = h.drive.clone();
            let ctx = h.alice.clone();
            let path = path.clone();
            let id = upload.upload_id.clone();
            let data = data.clone();
            async move {
                drive
                    .upload_part(
                        &ctx,
                        &path,
                        &id,
                        n,
                        body(&data),
                        Some(data.len() as u64),
                        None,
                        checksum,
                    )
                    .await
            }
        };
        let first = part(
            1,
            &one,
            Some(ExpectedChecksum::Value(
                ChecksumAlgorithm::Crc32,
                crc32_b64(&one),
            )),
        )
        .await
        .unwrap();
        let bad = part(
            2,
            &two,
            Some(ExpectedChecksum::Value(
                ChecksumAlgorithm::Crc32,
                crc32_b64(b"other"),
            )),
        )
        .await;
        assert!(matches!(
            bad,
            Err(Error::BadChecksum(ChecksumAlgorithm::Crc32))
        ));
        let second = part(2, &two, None).await.unwrap();
        part(3, &spare, None).await.unwrap();
        let (_, listed, truncated) = h
            .drive
            .list_parts(&h.alice, &path, &upload.upload_id, 0, 2)
            .await
            .unwrap();
        assert_eq!((listed.len(), truncated), (2, true));
        assert_eq!(
            h.drive.usage(&h.alice).await.unwrap().used_bytes,
            (one.len() + two.len() + spare.len()) as u64
        );

        let completed = |n: u32, etag: &str| CompletedPart {
            part_number: n,
            etag: format!("\"{etag}\""),
            checksum: None,
        };
        let wrong = h
            .drive
            .complete_upload(
                &h.alice,
                &path,
                &upload.upload_id,
                &[completed(1, "00")],
                None,
                &Preconditions::default(),
            )
            .await;
        assert!(matches!(wrong, Err(Error::InvalidPart(1))));
        let order = [completed(2, &second.etag), completed(1, &first.etag)];
        let out_of_order = h
            .drive
            .complete_upload(
                &h.alice,
                &path,
                &upload.upload_id,
                &order,
                None,
                &Preconditions::default(),
            )
            .await;
        assert!(matches!(out_of_order, Err(Error::InvalidPartOrder)));

        let parts = [completed(1, &first.etag), completed(2, &second.etag)];
        let CompletedUpload { entry, version, .. } = h
            .drive
            .complete_upload(
                &h.alice,
                &path,
                &upload.upload_id,
                &parts,
                None,
                &Preconditions::default(),
            )
            .await
            .unwrap();
        let mut md5s = Vec::new();
        md5s.extend(hex::decode(&first.etag).unwrap());
        md5s.extend(hex::decode(&second.etag).unwrap());
        assert_eq!(
            entry.etag.unwrap(),
            format!("{}-2", hex::encode(md5::Md5::digest(&md5s)))
        );
        assert_eq!(version.parts_count, Some(2));
        let checksum = version.checksum().unwrap();
        assert_eq!(checksum.kind, ChecksumType::Composite);
        assert!(checksum.value.ends_with("-2"));
        let whole: Vec<u8> = one.iter().chain(two.iter()).copied().collect();
        assert_eq!(read(&h, &path, Kind::File, None).await, whole);
        assert_eq!(
            read(
                &h,
                &path,
                Kind::File,
                ByteRange::parse("bytes=5242870-5242889")
            )
            .await,
            whole[5242870..5242890]
        );
        let part_two = h
            .drive
            .open(
                &h.alice,
                &path,
                Kind::File,
                &ReadRequest {
                    part_number: Some(2),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(part_two.range, Some(MIN_PART..MIN_PART + 1000));
        assert_eq!(
            h.drive.usage(&h.alice).await.unwrap().used_bytes,
            whole.len() as u64,
            "the unused part was released"
        );
        let blobs = h.drive.inner.catalog.all_blobs().await.unwrap();
        assert_eq!(
            blobs.len(),
            2,
            "the parts' blobs are the object's: nothing copied, the spare collected"
        );
        assert!(
            h.drive
                .inner
                .catalog
                .upload(&upload.upload_id)
                .await
                .unwrap()
                .is_none()
        );

        // A copy shares the segments; deleting and purging the original keeps the copy whole.
        h.drive
            .transfer(
                &h.alice,
                &path,
                &p("bkt/copy.bin"),
                Transfer::Copy { recursive: true },
                false,
            )
            .await
            .unwrap();
        h.drive.delete(&h.alice, &path).await.unwrap();
        let trash = h.drive.list_trash(&h.alice).await.unwrap();
        h.drive.purge(&h.alice, trash[0].id).await.unwrap();
        assert_eq!(read(&h, &p("bkt/copy.bin"), Kind::File, None).await, whole);
        assert_eq!(h.drive.inner.catalog.all_blobs().await.unwrap().len(), 2);
        let report = h.drive.fsck(false).await.unwrap();
        assert!(report.is_healthy() && report.young_orphans == 0);
    }
}

#[tokio::test]
async fn full_object_checksums_abort_and_expiry() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        h.drive.set_quota("alice", None).await.unwrap();
        let path = p("bkt/full.bin");
        let new = NewUpload {
            kind: Kind::File,
            content_type: None,
            attributes: ObjectAttributes::default(),
            checksum: Some((ChecksumAlgorithm::Crc32, Some(ChecksumType::FullObject))),
            acl: None,
        };
        let upload = h.drive.create_upload(&h.alice, &path, new).await.unwrap();
        let one = vec![9u8; MIN_PART as usize];
        let two = b"tail".to_vec();
        let a = h
            .drive
            .upload_part(
                &h.alice,
                &path,
                &upload.upload_id,
                1,
                body(&one),
                None,
                None,
                None,
            )
            .await
            .unwrap();
        let b = h
            .drive
            .upload_part(
                &h.alice,
                &path,
                &upload.upload_id,
                2,
                body(&two),
                None,
                None,
                None,
            )
            .await
            .unwrap();
        let whole: Vec<u8> = one.iter().chain(two.iter()).copied().collect();
        let parts = [
            CompletedPart {
                part_number: 1,
                etag: a.etag.clone(),
                checksum: Some((ChecksumAlgorithm::Crc32, crc32_b64(&one))),
            },
            CompletedPart {
                part_number: 2,
                etag: b.etag.clone(),
                checksum: None,
            },
        ];
        let full = Some((ChecksumAlgorithm::Crc32, crc32_b64(&whole)));
        let CompletedUpload { version, .. } = h
            .drive
            .complete_upload(
                &h.alice,
                &path,
                &upload.upload_id,
                &parts,
                full,
                &Preconditions::default(),
            )
            .await
            .unwrap();
        let checksum = version.checksum().unwrap();
        assert_eq!(
            (checksum.kind, checksum.value.as_str()),
            (ChecksumType::FullObject, crc32_b64(&whole).as_str())
        );

        let small = NewUpload {
            kind: Kind::File,
            content_type: None,
            attributes: ObjectAttributes::default(),
            checksum: None,
            acl: None,
        };
        let tiny = h
            .drive
            .create_upload(&h.alice, &p("bkt/tiny"), small.clone())
            .await
            .unwrap();
        let x = h
            .drive
            .upload_part(
                &h.alice,
                &p("bkt/tiny"),
                &tiny.upload_id,
                1,
                body(b"x"),
                None,
                None,
                None,
            )
            .await
            .unwrap();
        let y = h
            .drive
            .upload_part(
                &h.alice,
                &p("bkt/tiny"),
                &tiny.upload_id,
                2,
                body(b"y"),
                None,
                None,
                None,
            )
            .await
            .unwrap();
        let both = [
            CompletedPart {
                part_number: 1,
                etag: x.etag,
                checksum: None,
            },
            CompletedPart {
                part_number: 2,
                etag: y.etag,
                checksum: None,
            },
        ];
        let too_small = h
            .drive
            .complete_upload(
                &h.alice,
                &p("bkt/tiny"),
                &tiny.upload_id,
                &both,
                None,
                &Preconditions::default(),
            )
            .await;
        assert!(matches!(too_small, Err(Error::EntityTooSmall)));
        h.drive
            .abort_upload(&h.alice, &p("bkt/tiny"), &tiny.upload_id)
            .await
            .unwrap();
        let gone = h
            .drive
            .upload_part(
                &h.alice,
                &p("bkt/tiny"),
                &tiny.upload_id,
                3,
                body(b"z"),
                None,
                None,
                None,
            )
            .await;
        assert!(matches!(gone, Err(Error::NotFound(Missing::Upload))));

        let stale = h
            .drive
            .create_upload(&h.alice, &p("bkt/stale"), small.clone())
            .await
            .unwrap();
        h.drive
            .upload_part(
                &h.alice,
                &p("bkt/stale"),
                &stale.upload_id,
                1,
                body(b"s"),
                None,
                None,
                None,
            )
            .await
            .unwrap();
        let fresh = h
            .drive
            .create_upload(&h.alice, &p("bkt/dir/fresh"), small)
            .await
            .unwrap();
        let page = h
            .drive
            .list_uploads(&h.alice, "bkt", "", Some("/"), None, 10)
            .await
            .unwrap();
        assert_eq!(
            page.uploads
                .iter()
                .map(|u| u.path.file_key())
                .collect::<Vec<_>>(),
            ["bkt/stale"]
        );
        assert_eq!(page.common_prefixes, ["dir/"]);
        assert_eq!(
            h.drive
                .expire_uploads(std::time::Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            h.drive
                .expire_uploads(std::time::Duration::ZERO)
                .await
                .unwrap(),
            2
        );
        assert!(
            h.drive
                .inner
                .catalog
                .upload(&fresh.upload_id)
                .await
                .unwrap()
                .is_none()
        );
        let report = h.drive.fsck(false).await.unwrap();
        assert_eq!(
            report.blob_files, 2,
            "only the completed object's parts remain"
        );
        assert_eq!(
            h.drive.usage(&h.alice).await.unwrap().used_bytes,
            whole.len() as u64
        );
    }
}

#[tokio::test]
async fn one_history_as_s3_versions_with_delete_markers() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        put_s3(&h, "doc", b"one").await;
        put_s3(&h, "doc", b"two").await;
        let marker = h
            .drive
            .delete_object(&h.alice, &p("bkt/doc"), Kind::File)
            .await
            .unwrap()
            .unwrap();
        put_s3(&h, "doc", b"three").await;
        put_s3(&h, "other", b"x").await;
        h.drive
            .mkdir(&h.alice, &p("bkt/folder"), MkdirOptions::default())
            .await
            .unwrap();

        let page = h
            .drive
            .list_object_versions(&h.alice, "bkt", "", None, None, 100)
            .await
            .unwrap();
        let shape: Vec<(String, bool, bool)> = page
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.delete_marker, e.is_latest))
            .collect();
        let expected: Vec<(String, bool, bool)> = [
            ("doc", false, true),
            ("doc", true, false),
            ("doc", false, false),
            ("doc", false, false),
            ("folder/", false, true),
            ("other", false, true),
        ]
        .iter()
        .map(|(k, m, l)| (k.to_string(), *m, *l))
        .collect();
        assert_eq!(shape, expected);
        assert_eq!(page.entries[1].version_id, marker);
        assert_eq!(page.entries[4].version_id, NULL_VERSION);

        // Pages of two resume inside a key.
        let first = h
            .drive
            .list_object_versions(&h.alice, "bkt", "", None, None, 2)
            .await
            .unwrap();
        assert!(first.is_truncated);
        let (key, version) = first.next.clone().unwrap();
        let second = h
            .drive
            .list_object_versions(&h.alice, "bkt", "", None, Some((key, Some(version))), 2)
            .await
            .unwrap();
        assert_eq!(
            second
                .entries
                .iter()
                .map(|e| e.version_id.clone())
                .collect::<Vec<_>>(),
            [
                page.entries[2].version_id.clone(),
                page.entries[3].version_id.clone()
            ]
        );

        // The old versions stay readable after the delete.
        let oldest = page.entries[3].version_id.clone();
        let read_old = ReadRequest {
            version_id: Some(oldest.clone()),
            ..Default::default()
        };
        let old = h
            .drive
            .open(&h.alice, &p("bkt/doc"), Kind::File, &read_old)
            .await
            .unwrap();
        let bytes: Vec<Bytes> = old.body.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"one");
        let read_marker = ReadRequest {
            version_id: Some(marker.clone()),
            ..Default::default()
        };
        assert!(matches!(
            h.drive
                .head(&h.alice, &p("bkt/doc"), Kind::File, &read_marker)
                .await,
            Err(Error::DeleteMarker)
        ));

        // Deleting a version removes it for good and frees its bytes.
        let before = h.drive.usage(&h.alice).await.unwrap().used_bytes;
        h.drive
            .delete_version(&h.alice, &p("bkt/doc"), Kind::File, &oldest)
            .await
            .unwrap();
        assert_eq!(
            h.drive.usage(&h.alice).await.unwrap().used_bytes,
            before - 3
        );
        // Deleting the current version brings the previous one back as current.
        let current = page.entries[0].version_id.clone();
        h.drive
            .delete_version(&h.alice, &p("bkt/doc"), Kind::File, &current)
            .await
            .unwrap();
        assert!(matches!(
            h.drive.stat(&h.alice, &p("bkt/doc"), Kind::File).await,
            Err(Error::NotFound(_))
        ));
        // With no live object left, removing the delete marker restores the deleted one.
        let removed = h
            .drive
            .delete_version(&h.alice, &p("bkt/doc"), Kind::File, &marker)
            .await
            .unwrap();
        assert!(removed.delete_marker);
        assert_eq!(read(&h, &p("bkt/doc"), Kind::File, None).await, b"two");
        let page = h
            .drive
            .list_object_versions(&h.alice, "bkt", "doc", None, None, 100)
            .await
            .unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(page.entries[0].is_latest && !page.entries[0].delete_marker);
        let report = h.drive.fsck(false).await.unwrap();
        assert!(report.is_healthy());
    }
}

#[tokio::test]
async fn concurrent_writers_leave_a_consistent_catalog() {
    for h in harnesses().await {
        h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
        for round in 0..5 {
            // Two clients delete both versions of one key at once.
            let key = format!("k{round}");
            put_s3(&h, &key, b"one").await;
            put_s3(&h, &key, b"two").await;
            let path = p(&format!("bkt/{key}"));
            let versions = h.drive.versions(&h.alice, &path, Kind::File).await.unwrap();
            let deletes = versions.iter().map(|v| {
                let (drive, ctx, path, id) = (
                    h.drive.clone(),
                    h.alice.clone(),
                    path.clone(),
                    v.version_id.clone(),
                );
                tokio::spawn(
                    async move { drive.delete_version(&ctx, &path, Kind::File, &id).await },
                )
            });
            for done in futures::future::join_all(deletes).await {
                done.unwrap().unwrap();
            }
            assert!(
                h.drive.stat(&h.alice, &path, Kind::File).await.is_err(),
                "no node left pointing at nothing"
            );

            // Two clients delete the last two objects of an implicit folder at once.
            put_s3(&h, &format!("d{round}/a"), b"a").await;
            put_s3(&h, &format!("d{round}/b"), b"b").await;
            let deletes = ["a", "b"].map(|name| {
                let (drive, ctx) = (h.drive.clone(), h.alice.clone());
                let path = p(&format!("bkt/d{round}/{name}"));
                tokio::spawn(async move { drive.delete_object(&ctx, &path, Kind::File).await })
            });
            for done in futures::future::join_all(deletes).await {
                done.unwrap().unwrap();
            }
            let folder = h
                .drive
                .stat(&h.alice, &p(&format!("bkt/d{round}")), Kind::Folder)
                .await;
            assert!(folder.is_err(), "the emptied implicit folder is gone");

            // Eight clients create files in one new folder at once: all succeed.
            let puts = (0..8).map(|i| {
                let (drive, ctx) = (h.drive.clone(), h.alice.clone());
                let path = p(&format!("bkt/new{round}/deep/f{i}"));
                tokio::spawn(async move {
                    drive
                        .put(
                            &ctx,
                            &path,
                            body(b"x"),
                            PutOptions::new(Kind::File, Parents::CreateImplicit),
                        )
                        .await
                })
            });
            for done in futures::future::join_all(puts).await {
                done.unwrap().unwrap();
            }
            let listed = list(&h, &format!("new{round}/"), None, None, 100).await.0;
            assert_eq!(listed.len(), 8);
        }
        let report = h.drive.fsck(false).await.unwrap();
        assert!(report.is_healthy());
        assert_eq!(
            h.drive
                .inner
                .catalog
                .versions_with_missing_blob_rows()
                .await
                .unwrap(),
            0
        );
    }
}

mod dav_class_two {
    use super::*;

    fn dav(ctx: &Ctx, tokens: &[&str]) -> Ctx {
        let mut ctx = ctx.clone();
        ctx.protocol = Protocol::WebDav;
        ctx.lock_tokens = tokens.iter().map(|t| t.to_string()).collect();
        ctx
    }

    fn exclusive(depth_infinity: bool) -> LockRequest {
        LockRequest {
            exclusive: true,
            depth_infinity,
            owner_xml: Some("<D:owner xmlns:D=\"DAV:\">me</D:owner>".into()),
            timeout: Some(std::time::Duration::from_secs(600)),
        }
    }

    #[tokio::test]
    async fn locks_stop_every_protocol_until_the_token_is_shown() {
        for h in harnesses().await {
            h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
            put_s3(&h, "doc.txt", b"v1").await;
            let path = p("bkt/doc.txt");
            let (lock, created) = h
                .drive
                .lock(&dav(&h.alice, &[]), &path, exclusive(false))
                .await
                .unwrap();
            assert!(!created);
            assert!(lock.token.starts_with("opaquelocktoken:"));
            assert_eq!(lock.remaining.as_secs(), 600);

            // An S3 write (no token can be sent) and a WebDAV one without the token fail.
            let put = |ctx: Ctx| {
                let drive = h.drive.clone();
                let path = path.clone();
                async move {
                    drive
                        .put(
                            &ctx,
                            &path,
                            body(b"v2"),
                            PutOptions::new(Kind::File, Parents::CreateImplicit),
                        )
                        .await
                }
            };
            assert!(matches!(put(h.alice.clone()).await, Err(Error::Locked)));
            assert!(matches!(
                put(dav(&h.alice, &["opaquelocktoken:wrong"])).await,
                Err(Error::Locked)
            ));
            assert!(matches!(
                h.drive.delete_object(&h.alice, &path, Kind::File).await,
                Err(Error::Locked)
            ));
            assert!(matches!(
                h.drive
                    .transfer(
                        &dav(&h.alice, &[]),
                        &path,
                        &p("bkt/moved.txt"),
                        Transfer::Move,
                        true
                    )
                    .await,
                Err(Error::Locked)
            ));
            // Another drive on the same catalog (a second gateway, or after a restart)
            // honours the lock too.
            let other = Drive::from_parts(
                h.drive.inner.catalog.clone(),
                h.drive.inner.volume.clone(),
                ServerKey::generate(),
                DriveConfig::default(),
            );
            assert!(matches!(
                other
                    .put(
                        &h.alice,
                        &path,
                        body(b"v2"),
                        PutOptions::new(Kind::File, Parents::CreateImplicit)
                    )
                    .await,
                Err(Error::Locked)
            ));
            assert_eq!(read(&h, &path, Kind::File, None).await, b"v1");

            // With the token the owner writes; a second exclusive lock is refused.
            put(dav(&h.alice, &[&lock.token])).await.unwrap();
            assert!(matches!(
                h.drive
                    .lock(&dav(&h.alice, &[]), &path, exclusive(false))
                    .await,
                Err(Error::Locked)
            ));
            let found = h.drive.locks_on(&h.alice, &path).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(
                found[0].owner_xml.as_deref(),
                Some("<D:owner xmlns:D=\"DAV:\">me</D:owner>")
            );

            // Refresh, then unlock: the wrong path is a conflict, the right one frees it.
            let refreshed = h
                .drive
                .refresh_lock(
                    &h.alice,
                    &path,
                    &lock.token,
                    Some(std::time::Duration::from_secs(60)),
                )
                .await
                .unwrap();
            assert_eq!(refreshed.remaining.as_secs(), 60);
            assert!(matches!(
                h.drive.unlock(&h.alice, &p("bkt"), &lock.token).await,
                Err(Error::Conflict(_))
            ));
            h.drive.unlock(&h.alice, &path, &lock.token).await.unwrap();
            put(h.alice.clone()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn folder_locks_cover_their_tree_and_unmapped_urls_become_files() {
        for h in harnesses().await {
            h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
            put_s3(&h, "dir/inner.txt", b"x").await;
            let folder = p("bkt/dir");
            let (lock, _) = h
                .drive
                .lock(&dav(&h.alice, &[]), &folder, exclusive(true))
                .await
                .unwrap();
            assert!(lock.root_is_folder && lock.depth_infinity);
            // Inside the tree: creating, changing and deleting all need the token.
            let new = p("bkt/dir/new.txt");
            let mut options = PutOptions::new(Kind::File, Parents::MustExist);
            options.expected_size = Some(1);
            assert!(matches!(
                h.drive
                    .put(&dav(&h.alice, &[]), &new, body(b"n"), options)
                    .await,
                Err(Error::Locked)
            ));
            assert!(matches!(
                h.drive
                    .mkdir(
                        &dav(&h.alice, &[]),
                        &p("bkt/dir/sub"),
                        MkdirOptions::default()
                    )
                    .await,
                Err(Error::Locked)
            ));
            // Nothing else can be locked under an exclusive infinite lock, not even by its
            // holder, and a refused LOCK on an unmapped URL creates nothing.
            assert!(matches!(
                h.drive
                    .lock(
                        &dav(&h.alice, &[&lock.token]),
                        &new,
                        LockRequest {
                            exclusive: false,
                            ..exclusive(false)
                        }
                    )
                    .await,
                Err(Error::Locked)
            ));
            assert!(h.drive.resolve(&h.alice, &new).await.is_err());
            // Elsewhere, LOCK on an unmapped URL makes an empty file (RFC 4918 §7.3).
            let fresh = p("bkt/fresh.txt");
            let (_, created) = h
                .drive
                .lock(&dav(&h.alice, &[]), &fresh, exclusive(false))
                .await
                .unwrap();
            assert!(created);
            assert_eq!(read(&h, &fresh, Kind::File, None).await, b"");
            // Deleting the folder needs its token, and takes its locks with it.
            assert!(matches!(
                h.drive.delete(&dav(&h.alice, &[]), &folder).await,
                Err(Error::Locked)
            ));
            let all = h.drive.locks_within(&h.alice, &folder).await.unwrap();
            let tokens: Vec<&str> = all.iter().map(|l| l.token.as_str()).collect();
            h.drive
                .delete(&dav(&h.alice, &tokens), &folder)
                .await
                .unwrap();
            assert!(
                h.drive
                    .locks_within(&h.alice, &folder)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[tokio::test]
    async fn dead_properties_follow_moves_and_copies() {
        for h in harnesses().await {
            h.drive.create_bucket(&h.alice, "bkt").await.unwrap();
            let entry = put_s3(&h, "p.txt", b"x").await;
            let prop = |name: &str, value: &str| DeadProp {
                namespace: "urn:z".into(),
                name: name.into(),
                xml: format!("<Z:{name} xmlns:Z=\"urn:z\">{value}</Z:{name}>"),
            };
            let when = Timestamp::from_nanos(1_600_000_000_000_000_000);
            h.drive
                .change_props(
                    &h.alice,
                    &entry,
                    &[
                        PropChange::Set(prop("color", "red")),
                        PropChange::Set(prop("size", "big")),
                        PropChange::Remove {
                            namespace: "urn:z".into(),
                            name: "size".into(),
                        },
                    ],
                    Some(when),
                )
                .await
                .unwrap();
            let moved = p("bkt/q.txt");
            h.drive
                .transfer(&h.alice, &entry.path, &moved, Transfer::Move, false)
                .await
                .unwrap();
            h.drive
                .transfer(
                    &h.alice,
                    &moved,
                    &p("bkt/r.txt"),
                    Transfer::Copy { recursive: true },
                    false,
                )
                .await
                .unwrap();
            for path in [moved, p("bkt/r.txt")] {
                let entry = h.drive.resolve(&h.alice, &path).await.unwrap();
                assert_eq!(entry.modified, when, "{path}");
                let props = h.drive.dead_props(&[&entry]).await.unwrap();
                assert_eq!(props, vec![vec![prop("color", "red")]], "{path}");
            }
        }
    }
}

#[test]
fn a_full_disk_is_its_own_error_not_an_internal_one() {
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
        let err = Error::from(portico_volume::Error::Io(io::Error::from(kind)));
        assert!(matches!(err, Error::StorageFull), "{err:?}");
        assert!(!err.is_internal());
    }
    let other = Error::from(portico_volume::Error::Io(io::Error::other("x")));
    assert!(matches!(other, Error::Internal(_)), "{other:?}");
}

/// A server keeps checked credentials in memory (on SQLite), yet a revoke, disable or
/// password change made by another process on the same catalog — the `portico` CLI while
/// the server runs — stops them at once.
#[tokio::test]
async fn credentials_changed_by_another_process_stop_working_at_once() {
    for h in harnesses().await {
        let server = &h.drive;
        let cli_volume = tempfile::tempdir().unwrap();
        let cli = Drive::connect(
            &h._catalog.url,
            &ConnectOptions::default(),
            cli_volume.path(),
            ServerKey::generate(),
            DriveConfig::default(),
        )
        .await
        .unwrap();
        let key = server.create_access_key("alice", None).await.unwrap();
        let app = server.create_app_password("alice", "drive").await.unwrap();
        for _ in 0..2 {
            assert!(server.s3_secret(&key.access_key_id).await.is_ok());
            assert!(
                server
                    .authenticate_bearer(&app.password, None)
                    .await
                    .is_ok()
            );
            assert!(
                server
                    .authenticate_password("alice", "alice-password")
                    .await
                    .is_ok()
            );
        }

        cli.revoke_access_key(&key.access_key_id).await.unwrap();
        assert!(matches!(
            server.s3_secret(&key.access_key_id).await,
            Err(Error::NotFound(Missing::AccessKey))
        ));
        cli.revoke_app_password("alice", app.id).await.unwrap();
        assert!(matches!(
            server.authenticate_bearer(&app.password, None).await,
            Err(Error::Unauthenticated)
        ));
        cli.set_password("alice", Some("a-new-password-1".into()))
            .await
            .unwrap();
        assert!(matches!(
            server
                .authenticate_password("alice", "alice-password")
                .await,
            Err(Error::Unauthenticated)
        ));
        assert!(
            server
                .authenticate_password("alice", "a-new-password-1")
                .await
                .is_ok()
        );
        let key = server.create_access_key("alice", None).await.unwrap();
        assert!(server.s3_secret(&key.access_key_id).await.is_ok());
        cli.set_disabled("alice", true).await.unwrap();
        assert!(matches!(
            server
                .authenticate_password("alice", "a-new-password-1")
                .await,
            Err(Error::Unauthenticated)
        ));
        assert!(server.s3_secret(&key.access_key_id).await.is_err());
        cli.set_disabled("alice", false).await.unwrap();

        // What the server checked is served from memory on SQLite: with its catalog closed,
        // the key, the password and the app password still verify there; PostgreSQL reads
        // the catalog every time.
        let app = cli.create_app_password("alice", "drive 2").await.unwrap();
        assert!(server.s3_secret(&key.access_key_id).await.is_ok());
        assert!(
            server
                .authenticate_password("alice", "a-new-password-1")
                .await
                .is_ok()
        );
        assert!(
            server
                .authenticate_bearer(&app.password, None)
                .await
                .is_ok()
        );
        server.inner.catalog.close().await;
        let from_memory = server.backend() == BackendKind::Sqlite;
        assert_eq!(
            server.s3_secret(&key.access_key_id).await.is_ok(),
            from_memory
        );
        assert_eq!(
            server
                .authenticate_password("alice", "a-new-password-1")
                .await
                .is_ok(),
            from_memory
        );
        assert_eq!(
            server
                .authenticate_bearer(&app.password, None)
                .await
                .is_ok(),
            from_memory
        );
    }
}

/// A bucket the server found an account to have is remembered, but its deletion through
/// the server is seen at once: the name may then address another account's bucket.
#[tokio::test]
async fn a_deleted_bucket_is_forgotten_at_once() {
    for h in harnesses().await {
        let bob = ctx_for(&h.drive, "bob", None).await;
        h.drive
            .create_bucket(&h.alice, "shared-name")
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(
                h.drive
                    .bucket_tree(&h.alice.principal, "shared-name")
                    .await
                    .unwrap(),
                None
            );
        }
        h.drive
            .delete_bucket(&h.alice, "shared-name")
            .await
            .unwrap();
        h.drive.create_bucket(&bob, "shared-name").await.unwrap();
        assert_eq!(
            h.drive
                .bucket_tree(&h.alice.principal, "shared-name")
                .await
                .unwrap(),
            Some(bob.principal.account_id)
        );
        // A bucket found is answered from memory (on either catalog): with the catalog
        // closed, the lookup still succeeds.
        h.drive.create_bucket(&h.alice, "kept").await.unwrap();
        let first = h.drive.bucket_tree(&h.alice.principal, "kept").await;
        assert_eq!(first.unwrap(), None);
        h.drive.inner.catalog.close().await;
        assert_eq!(
            h.drive
                .bucket_tree(&h.alice.principal, "kept")
                .await
                .unwrap(),
            None
        );
    }
}
