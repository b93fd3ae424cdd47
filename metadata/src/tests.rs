//! The catalog suite: every test runs against SQLite and PostgreSQL, each on a fresh
//! database (see `testing`).

use super::*;
use crate::testing::{backends, fresh_catalog};

/// Runs `test` once per backend on a fresh catalog.
macro_rules! each_backend {
    (|$catalog:ident| $body:block) => {
        for kind in backends() {
            let fresh = fresh_catalog(kind).await;
            let $catalog = fresh.catalog.clone();
            async { $body }.await;
            fresh.catalog.close().await;
            drop(fresh);
        }
    };
}

async fn account(catalog: &Catalog, name: &str, quota: Option<i64>) -> AccountRow {
    let mut tx = catalog.begin().await.unwrap();
    let row = tx
        .insert_account(&NewAccount {
            name: name.into(),
            email: None,
            password_hash: "hash".into(),
            is_admin: false,
            quota_bytes: quota,
            owner_id: format!("owner-{name}"),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    row
}

async fn node(
    tx: &mut Tx,
    account_id: i64,
    parent: Option<&NodeRow>,
    key: &str,
    implicit: bool,
) -> NodeRow {
    let folder = key.ends_with('/');
    let name = key
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    tx.insert_node(&NewNode {
        account_id,
        parent_id: parent.map(|p| p.id),
        kind: if folder { KIND_FOLDER } else { KIND_FILE },
        name,
        key: key.into(),
        implicit,
        mtime: 1,
    })
    .await
    .unwrap()
}

async fn file_with_blob(
    tx: &mut Tx,
    account_id: i64,
    parent: &NodeRow,
    key: &str,
    size: i64,
) -> (NodeRow, i64) {
    let file = node(tx, account_id, Some(parent), key, false).await;
    let blob_id = tx
        .insert_blob(&NewBlob {
            locator: format!("{:032x}", file.id),
            size,
            md5: "m".into(),
            blake3: "b".into(),
            data: None,
        })
        .await
        .unwrap();
    let version = tx
        .insert_version(&NewVersion {
            node_id: file.id,
            version_id: format!("v{}", file.id),
            blob_id: Some(blob_id),
            size,
            etag: "e".into(),
            blake3: None,
            content_type: None,
            attributes: "{}".into(),
            mtime: 2,
            created_by: Some(account_id),
            parts_count: None,
        })
        .await
        .unwrap();
    assert!(tx.charge_usage(account_id, size).await.unwrap());
    let file = tx.set_current_version(file.id, &version).await.unwrap();
    (file, blob_id)
}

#[tokio::test]
async fn inline_blobs_keep_their_bytes_in_the_row() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        let bucket = node(&mut tx, alice.id, None, "b/", false).await;
        let (on_disk, file_blob) = file_with_blob(&mut tx, alice.id, &bucket, "b/file", 5).await;
        let inline_blob = tx
            .insert_blob(&NewBlob {
                locator: format!("{:032x}", 0xabc),
                size: 3,
                md5: "m".into(),
                blake3: "b".into(),
                data: Some(vec![0, 1, 255]),
            })
            .await
            .unwrap();
        let small = node(&mut tx, alice.id, Some(&bucket), "b/small", false).await;
        let small_version = tx
            .insert_version(&NewVersion {
                node_id: small.id,
                version_id: "vsmall".into(),
                blob_id: Some(inline_blob),
                size: 3,
                etag: "e".into(),
                blake3: None,
                content_type: None,
                attributes: "{}".into(),
                mtime: 2,
                created_by: Some(alice.id),
                parts_count: None,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            catalog
                .version(small_version.id)
                .await
                .unwrap()
                .unwrap()
                .inline
        );
        assert_eq!(
            catalog.blob_data(inline_blob).await.unwrap(),
            Some(vec![0, 1, 255])
        );
        assert_eq!(catalog.blob_data(file_blob).await.unwrap(), None);
        let version = catalog
            .version(on_disk.version_row.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(!version.inline);
        let flags: Vec<(i64, bool)> = catalog
            .all_blobs()
            .await
            .unwrap()
            .iter()
            .map(|row| (row.id, row.inline))
            .collect();
        assert!(flags.contains(&(inline_blob, true)) && flags.contains(&(file_blob, false)));
    });
}

#[tokio::test]
async fn usage_without_a_quota_adds_up_across_concurrent_writers_and_a_later_quota_sees_it() {
    each_backend!(|catalog| {
        let bob = account(&catalog, "bob", None).await;
        // Two writers at once (PostgreSQL: two connections, usually two counter rows;
        // SQLite: the second waits for the first, its only writer).
        let mut first = catalog.begin().await.unwrap();
        assert!(first.charge_usage(bob.id, 100).await.unwrap());
        let other = catalog.clone();
        let second = tokio::spawn(async move {
            let mut tx = other.begin().await.unwrap();
            assert!(tx.charge_usage(bob.id, 120).await.unwrap());
            assert!(tx.charge_usage(bob.id, -20).await.unwrap());
            tx.commit().await.unwrap();
        });
        first.commit().await.unwrap();
        second.await.unwrap();
        let used = |row: Option<AccountRow>| row.unwrap().used_bytes;
        assert_eq!(used(catalog.account_by_id(bob.id).await.unwrap()), 200);
        assert_eq!(used(catalog.account_by_name("bob").await.unwrap()), 200);

        let mut tx = catalog.begin().await.unwrap();
        assert!(tx.set_quota(bob.id, Some(250)).await.unwrap());
        tx.commit().await.unwrap();
        let mut tx = catalog.begin().await.unwrap();
        assert!(
            !tx.charge_usage(bob.id, 51).await.unwrap(),
            "the quota counts every shard"
        );
        assert!(tx.charge_usage(bob.id, 50).await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(used(catalog.account_by_id(bob.id).await.unwrap()), 250);
    });
}

fn keys(rows: &[NodeRow]) -> Vec<&str> {
    rows.iter().map(|r| r.key.as_str()).collect()
}

#[tokio::test]
async fn migrations_apply_once_and_reconnecting_is_a_no_op() {
    for kind in backends() {
        let fresh = fresh_catalog(kind).await;
        let again = Catalog::connect(&fresh.url, &ConnectOptions::default())
            .await
            .unwrap();
        again.ping().await.unwrap();
        assert_eq!(again.kind(), kind);
        again.close().await;
        fresh.catalog.close().await;
    }
}

#[tokio::test]
async fn account_names_are_unique_and_lookups_work() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", Some(100)).await;
        assert_eq!(
            catalog.account_by_name("alice").await.unwrap().unwrap().id,
            alice.id
        );
        assert!(catalog.account_by_name("nobody").await.unwrap().is_none());
        let mut tx = catalog.begin().await.unwrap();
        let duplicate = tx
            .insert_account(&NewAccount {
                name: "alice".into(),
                email: None,
                password_hash: "x".into(),
                is_admin: false,
                quota_bytes: None,
                owner_id: "other".into(),
            })
            .await;
        assert!(
            matches!(duplicate, Err(Error::Conflict(_))),
            "{duplicate:?}"
        );
        drop(tx);
        let mut tx = catalog.begin().await.unwrap();
        assert!(tx.set_password(alice.id, "new").await.unwrap());
        tx.commit().await.unwrap();
        let updated = catalog.account_by_id(alice.id).await.unwrap().unwrap();
        assert_eq!(updated.password_hash, "new");
        assert_eq!(updated.credential_epoch, alice.credential_epoch + 1);
        assert_eq!(catalog.account_count().await.unwrap(), 1);
    });
}

#[tokio::test]
async fn usage_is_charged_within_quota_only() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", Some(100)).await;
        let mut tx = catalog.begin().await.unwrap();
        assert!(tx.charge_usage(alice.id, 60).await.unwrap());
        assert!(
            !tx.charge_usage(alice.id, 41).await.unwrap(),
            "over quota must be refused"
        );
        assert!(tx.charge_usage(alice.id, 40).await.unwrap());
        assert!(tx.charge_usage(alice.id, -30).await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(
            catalog
                .account_by_id(alice.id)
                .await
                .unwrap()
                .unwrap()
                .used_bytes,
            70
        );
    });
}

#[tokio::test]
async fn access_keys_are_found_until_revoked() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        tx.insert_access_key(&AccessKeyRow {
            access_key_id: "PK1".into(),
            account_id: alice.id,
            secret_sealed: vec![1, 2, 3],
            description: None,
            created_at: 1,
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let found = catalog.access_key("PK1").await.unwrap().unwrap();
        assert_eq!(
            (found.account_id, found.secret_sealed),
            (alice.id, vec![1, 2, 3])
        );
        // What every signed S3 request reads: the secret and who it acts as.
        let signed = catalog
            .access_key_with_account("PK1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                signed.secret_sealed,
                signed.account_id,
                signed.account_name.as_str(),
                signed.is_admin,
                signed.disabled,
                signed.owner_id.as_str()
            ),
            (
                vec![1, 2, 3],
                alice.id,
                "alice",
                false,
                false,
                "owner-alice"
            )
        );
        let mut tx = catalog.begin().await.unwrap();
        assert!(tx.revoke_access_key("PK1").await.unwrap());
        assert!(!tx.revoke_access_key("PK1").await.unwrap());
        tx.commit().await.unwrap();
        assert!(catalog.access_key("PK1").await.unwrap().is_none());
        assert!(
            catalog
                .access_key_with_account("PK1")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            catalog
                .list_access_keys(Some(alice.id))
                .await
                .unwrap()
                .len(),
            1
        );
    });
}

#[tokio::test]
async fn listings_follow_utf8_byte_order_and_skip_implicit_folders() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        let bucket = node(&mut tx, alice.id, None, "b/", false).await;
        let folder = node(&mut tx, alice.id, Some(&bucket), "b/a/", true).await;
        for key in ["b/a/x", "b/a/y"] {
            node(&mut tx, alice.id, Some(&folder), key, false).await;
        }
        // A file and a folder of the same name, a name that sorts between them, unicode
        // and upper case: byte order puts "B" < "a" < "a.txt" < "a/" < "é".
        for key in ["b/a", "b/a.txt", "b/B", "b/\u{e9}", "b/z\u{10ffff}"] {
            node(&mut tx, alice.id, Some(&bucket), key, false).await;
        }
        tx.commit().await.unwrap();

        let all = catalog
            .list_range(alice.id, &KeyRange::prefixed("b/", "b/"), false, 100)
            .await
            .unwrap();
        assert_eq!(
            keys(&all),
            [
                "b/B",
                "b/a",
                "b/a.txt",
                "b/a/x",
                "b/a/y",
                "b/z\u{10ffff}",
                "b/\u{e9}"
            ]
        );
        let with_implicit = catalog
            .list_range(alice.id, &KeyRange::prefixed("b/", "b/"), true, 100)
            .await
            .unwrap();
        assert!(keys(&with_implicit).contains(&"b/a/"));

        let children = catalog
            .list_children(
                alice.id,
                Some(bucket.id),
                &KeyRange::prefixed("b/", ""),
                100,
            )
            .await
            .unwrap();
        assert_eq!(
            keys(&children),
            ["b/B", "b/a", "b/a.txt", "b/a/", "b/z\u{10ffff}", "b/\u{e9}"]
        );
        // A listed row is the node's row, field for field: SQLite's page leaves out what a
        // live listing implies (account, name, trash columns) and fills it back in.
        for row in all.iter().chain(&with_implicit).chain(&children) {
            let full = catalog.node_by_id(row.id).await.unwrap().unwrap();
            assert_eq!(format!("{row:?}"), format!("{full:?}"));
        }
        let page = catalog
            .list_children(
                alice.id,
                Some(bucket.id),
                &KeyRange::prefixed("b/", "b/a.txt"),
                2,
            )
            .await
            .unwrap();
        assert_eq!(keys(&page), ["b/a/", "b/z\u{10ffff}"]);
        let prefixed = catalog
            .list_children(
                alice.id,
                Some(bucket.id),
                &KeyRange::prefixed("b/a", ""),
                100,
            )
            .await
            .unwrap();
        assert_eq!(keys(&prefixed), ["b/a", "b/a.txt", "b/a/"]);
        let roots = catalog
            .list_children(alice.id, None, &KeyRange::default(), 100)
            .await
            .unwrap();
        assert_eq!(keys(&roots), ["b/"]);
        let both = catalog.nodes_at_name(alice.id, "b/a").await.unwrap();
        assert_eq!(keys(&both), ["b/a", "b/a/"]);
    });
}

#[tokio::test]
async fn live_keys_are_unique_but_trash_may_hold_the_same_key() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        let bucket = node(&mut tx, alice.id, None, "b/", false).await;
        let first = node(&mut tx, alice.id, Some(&bucket), "b/f", false).await;
        tx.commit().await.unwrap();

        let mut tx = catalog.begin().await.unwrap();
        let clash = tx
            .insert_node(&NewNode {
                account_id: alice.id,
                parent_id: Some(bucket.id),
                kind: KIND_FILE,
                name: "f".into(),
                key: "b/f".into(),
                implicit: false,
                mtime: 1,
            })
            .await;
        assert!(matches!(clash, Err(Error::Conflict(_))), "{clash:?}");
        drop(tx);

        let mut tx = catalog.begin().await.unwrap();
        tx.trash_subtree(&first, Some(alice.id)).await.unwrap();
        node(&mut tx, alice.id, Some(&bucket), "b/f", false).await;
        tx.commit().await.unwrap();
        assert_eq!(catalog.list_trash(alice.id).await.unwrap().len(), 1);
    });
}

#[tokio::test]
async fn moving_a_folder_rewrites_every_key_below_it() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        let bucket = node(&mut tx, alice.id, None, "b/", false).await;
        let src = node(&mut tx, alice.id, Some(&bucket), "b/src/", false).await;
        let inner = node(&mut tx, alice.id, Some(&src), "b/src/in/", false).await;
        node(&mut tx, alice.id, Some(&inner), "b/src/in/deep.txt", false).await;
        node(&mut tx, alice.id, Some(&src), "b/src/f\u{fc}r.txt", false).await;
        // A sibling whose name starts like the source must not move.
        node(&mut tx, alice.id, Some(&bucket), "b/src2", false).await;
        let moved = tx
            .move_subtree(&src, Some(bucket.id), "d\u{e9}st", "b/d\u{e9}st/")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(moved, 4);
        let all = catalog
            .list_range(alice.id, &KeyRange::prefixed("b/", "b/"), true, 100)
            .await
            .unwrap();
        assert_eq!(
            keys(&all),
            [
                "b/d\u{e9}st/",
                "b/d\u{e9}st/f\u{fc}r.txt",
                "b/d\u{e9}st/in/",
                "b/d\u{e9}st/in/deep.txt",
                "b/src2"
            ]
        );
        let moved_inner = catalog
            .node_by_key(alice.id, "b/d\u{e9}st/in/")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved_inner.parent_id, Some(src.id));
    });
}

#[tokio::test]
async fn trash_restore_and_purge_keep_blobs_and_usage_in_step() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        let bucket = node(&mut tx, alice.id, None, "b/", false).await;
        let folder = node(&mut tx, alice.id, Some(&bucket), "b/dir/", false).await;
        let (_, blob_a) = file_with_blob(&mut tx, alice.id, &folder, "b/dir/a", 10).await;
        let (_, blob_b) = file_with_blob(&mut tx, alice.id, &folder, "b/dir/b", 5).await;
        // A copy elsewhere shares blob a.
        let (copy, blob_c) = file_with_blob(&mut tx, alice.id, &bucket, "b/copy", 10).await;
        let copy_version = tx
            .version(copy.version_row.unwrap())
            .await
            .unwrap()
            .unwrap();
        tx.add_blob_refs(blob_a, 1).await.unwrap();
        tx.commit().await.unwrap();
        let _ = (copy_version, blob_c);

        let mut tx = catalog.begin().await.unwrap();
        assert_eq!(tx.trash_subtree(&folder, Some(alice.id)).await.unwrap(), 3);
        tx.commit().await.unwrap();
        assert!(
            catalog
                .node_by_key(alice.id, "b/dir/a")
                .await
                .unwrap()
                .is_none()
        );
        let trash = catalog.list_trash(alice.id).await.unwrap();
        assert_eq!(keys(&trash), ["b/dir/"]);

        let mut tx = catalog.begin().await.unwrap();
        assert_eq!(
            tx.restore_subtree(alice.id, folder.id, Some(bucket.id))
                .await
                .unwrap(),
            3
        );
        tx.commit().await.unwrap();
        assert!(
            catalog
                .node_by_key(alice.id, "b/dir/a")
                .await
                .unwrap()
                .is_some()
        );

        let folder = catalog
            .node_by_key(alice.id, "b/dir/")
            .await
            .unwrap()
            .unwrap();
        let mut tx = catalog.begin().await.unwrap();
        tx.trash_subtree(&folder, Some(alice.id)).await.unwrap();
        let purged = tx.purge_subtree(alice.id, folder.id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((purged.nodes, purged.versions, purged.bytes), (3, 2, 15));
        assert_eq!(
            catalog
                .account_by_id(alice.id)
                .await
                .unwrap()
                .unwrap()
                .used_bytes,
            10
        );
        let unreferenced: Vec<i64> = catalog
            .unreferenced_blobs(10)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(unreferenced, [blob_b], "blob a is still shared by the copy");
        assert!(catalog.forget_blob(blob_b).await.unwrap());
        assert_eq!(
            catalog.recount_blob_references().await.unwrap(),
            1,
            "blob a's extra test reference is corrected"
        );
        assert_eq!(catalog.versions_with_missing_blob_rows().await.unwrap(), 0);
    });
}

#[tokio::test]
async fn audit_rows_are_kept_per_account() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let mut tx = catalog.begin().await.unwrap();
        tx.insert_audit(&NewAudit {
            account_id: Some(alice.id),
            actor_id: Some(alice.id),
            protocol: "s3".into(),
            action: "put".into(),
            key: Some("b/k".into()),
            detail: None,
            request_id: Some("r1".into()),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let rows = catalog.audit_log(alice.id, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].action.as_str(), rows[0].request_id.as_deref()),
            ("put", Some("r1"))
        );
    });
}

#[test]
fn prefix_successor_bounds_exactly_the_prefixed_keys() {
    for (prefix, expected) in [
        ("", None),
        ("a", Some("b")),
        ("a/", Some("a0")),
        ("\u{d7ff}", Some("\u{e000}")),
        ("x\u{10ffff}", Some("y")),
        ("\u{10ffff}", None),
    ] {
        assert_eq!(prefix_successor(prefix).as_deref(), expected, "{prefix:?}");
    }
}

#[test]
fn database_passwords_are_redacted() {
    assert_eq!(
        redact_url("postgres://u:secret@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(
        redact_url("sqlite://./data/catalog.db"),
        "sqlite://./data/catalog.db"
    );
}

#[tokio::test]
async fn a_transaction_dropped_mid_way_rolls_back_before_the_next_one_runs() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let live = async |key: &str| catalog.node_by_key(alice.id, key).await.unwrap().is_some();
        {
            let mut tx = catalog.begin().await.unwrap();
            node(&mut tx, alice.id, None, "gone/", false).await;
            // Dropped without commit (an error, or the request went away).
        }
        let mut tx = catalog.begin().await.unwrap();
        assert!(tx.node_by_key(alice.id, "gone/").await.unwrap().is_none());
        node(&mut tx, alice.id, None, "kept/", false).await;
        tx.commit().await.unwrap();
        assert!(live("kept/").await);
        assert!(!live("gone/").await);
        // A transaction that never sent a statement commits (and rolls back) as nothing.
        catalog.begin().await.unwrap().commit().await.unwrap();
        catalog.begin().await.unwrap().rollback().await.unwrap();
        let mut tx = catalog.begin().await.unwrap();
        node(&mut tx, alice.id, None, "rolled/", false).await;
        tx.rollback().await.unwrap();
        assert!(!live("rolled/").await);
    });
}

#[tokio::test]
async fn a_write_sent_to_the_writer_runs_to_its_end_when_its_caller_stops_waiting() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let (started, wait_started) = tokio::sync::oneshot::channel::<()>();
        let (go, wait_go) = tokio::sync::oneshot::channel::<()>();
        let writer = catalog.clone();
        let job = async move {
            let mut tx = writer.begin().await?;
            node(&mut tx, alice.id, None, "finished/", false).await;
            let _ = started.send(());
            let _ = wait_go.await;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        match catalog.kind() {
            BackendKind::Sqlite => {
                // The caller gives up half-way (a client that disconnected); the transaction
                // it sent still commits, as one sent to a database server would.
                let sender = catalog.clone();
                let caller = tokio::spawn(async move { sender.write(job).await });
                wait_started.await.unwrap();
                caller.abort();
                assert!(caller.await.unwrap_err().is_cancelled());
                go.send(()).unwrap();
                // A write queued behind the abandoned one returns only once everything
                // before it on the one write connection has committed.
                let later = catalog.clone();
                catalog
                    .write(async move {
                        let mut tx = later.begin().await?;
                        node(&mut tx, alice.id, None, "later/", false).await;
                        tx.commit().await
                    })
                    .await
                    .unwrap();
                let committed = catalog.node_by_key(alice.id, "finished/").await.unwrap();
                assert!(committed.is_some(), "the abandoned write did not commit");
            }
            BackendKind::Postgres => {
                // Run in place: the caller's future is the transaction.
                go.send(()).unwrap();
                catalog.write(job).await.unwrap();
                assert!(
                    catalog
                        .node_by_key(alice.id, "finished/")
                        .await
                        .unwrap()
                        .is_some()
                );
            }
        }
        // An error comes back to the caller as it was returned.
        let failed: Result<()> = catalog
            .write(async { Err(Error::Invalid("refused".into())) })
            .await;
        assert!(matches!(failed, Err(Error::Invalid(message)) if message == "refused"));
    });
}

/// Which transactions the writers of `concurrent_writers_commit_theirs_and_roll_back_only_theirs`
/// begin: on SQLite, `begin_put`'s run on the direct connection, `begin`'s on sqlx's.
#[derive(Clone, Copy, Debug)]
enum Writers {
    Plain,
    NewVersions,
    /// Every other one: each commits the group the one before it left open on the other
    /// connection.
    Alternating,
}

impl Writers {
    async fn begin(self, catalog: &Catalog, i: usize) -> Result<Tx> {
        match self {
            Writers::Plain => catalog.begin().await,
            Writers::NewVersions => catalog.begin_put().await,
            Writers::Alternating if i.is_multiple_of(2) => catalog.begin_put().await,
            Writers::Alternating => catalog.begin().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_commit_theirs_and_roll_back_only_theirs() {
    for writers in [Writers::Plain, Writers::NewVersions, Writers::Alternating] {
        concurrent_writers(writers).await;
    }
}

async fn concurrent_writers(writers_begin: Writers) {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        // On SQLite these share transactions (group commit): a writer that fails or rolls
        // back must take nothing of the others' with it, and every other one must be
        // committed — visible on another connection — when its commit returns. A first
        // writer holds the connection until all the others queue behind it, so they do
        // share.
        let sqlite_write = match &catalog.backend {
            Backend::Sqlite { write, .. } => Some(write.clone()),
            Backend::Postgres(_) => None,
        };
        let (started, wait_started) = tokio::sync::oneshot::channel::<()>();
        let (go, wait_go) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let catalog = catalog.clone();
            let writer = catalog.clone();
            tokio::spawn(async move {
                catalog
                    .write(async move {
                        let mut tx = writer.begin().await?;
                        node(&mut tx, alice.id, None, "first/", false).await;
                        let _ = started.send(());
                        let _ = wait_go.await;
                        tx.commit().await
                    })
                    .await
            })
        };
        wait_started.await.unwrap();
        let writers: Vec<_> = (0..60)
            .map(|i| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let writer = catalog.clone();
                    let key = format!("w{i:02}/");
                    let result = catalog
                        .write(async move {
                            let mut tx = writers_begin.begin(&writer, i).await?;
                            node(&mut tx, alice.id, None, &key, false).await;
                            match i % 6 {
                                // An error half-way: the transaction is dropped open.
                                0 => Err(Error::Invalid("refused".into())),
                                1 => tx.rollback().await,
                                _ => tx.commit().await,
                            }
                        })
                        .await;
                    let visible = catalog
                        .node_by_key(alice.id, &format!("w{i:02}/"))
                        .await
                        .unwrap()
                        .is_some();
                    (i, result.is_ok(), visible)
                })
            })
            .collect();
        if let Some(write) = &sqlite_write {
            let mut polls = 0;
            while write.waiting() < 60 {
                polls += 1;
                assert!(
                    polls < 30_000,
                    "the writers never queued for the connection"
                );
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        go.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert!(
            catalog
                .node_by_key(alice.id, "first/")
                .await
                .unwrap()
                .is_some()
        );
        for writer in writers {
            let (i, ok, visible) = writer.await.unwrap();
            let kept = i % 6 >= 2;
            assert_eq!(ok, i % 6 != 0, "{writers_begin:?} writer {i}");
            assert_eq!(
                visible, kept,
                "{writers_begin:?} writer {i}: committed {kept}, visible {visible}"
            );
        }
        if let Some(write) = &sqlite_write
            && !matches!(writers_begin, Writers::Alternating)
        {
            // All 61 writers sent statements; queued, they shared a handful of SQLite
            // transactions (one per group, up to 64 writers each; one more made the account).
            let begun = write.transactions_begun().await;
            assert!(begun <= 10, "61 writers ran in {begun} SQLite transactions");
        }
    });
}

/// A new version's transaction on SQLite's writer thread runs on the write slot's direct
/// connection (`direct.rs`): what it writes is committed, refused or rolled back as on
/// sqlx's connection, and a statement that connection does not run is refused rather than
/// sent to the other one (outside the transaction).
#[tokio::test]
async fn a_new_versions_transaction_runs_on_the_writer_threads_own_connection() {
    each_backend!(|catalog| {
        let alice = account(&catalog, "alice", None).await;
        let sqlite = catalog.kind() == BackendKind::Sqlite;
        let writer = catalog.clone();
        let outcome = catalog
            .write(async move {
                let mut tx = writer.begin_put().await?;
                let bucket = node(&mut tx, alice.id, None, "b/", false).await;
                let found = tx.folder_kept(alice.id, "b/").await?;
                assert_eq!(found.map(|row| row.id), Some(bucket.id));
                if sqlite {
                    // (PostgreSQL ends a transaction at its first error.)
                    let taken = tx
                        .insert_node(&NewNode {
                            account_id: alice.id,
                            parent_id: None,
                            kind: KIND_FOLDER,
                            name: "b".into(),
                            key: "b/".into(),
                            implicit: false,
                            mtime: 1,
                        })
                        .await;
                    assert!(matches!(taken, Err(Error::Conflict(_))), "{taken:?}");
                }
                let other = tx.node_by_id(bucket.id).await;
                tx.commit().await?;
                Ok::<_, Error>(other.map(|row| row.is_some()))
            })
            .await
            .unwrap();
        if sqlite {
            assert!(
                matches!(outcome, Err(Error::Internal(_))),
                "node_by_id ran: {outcome:?}"
            );
        } else {
            assert!(outcome.unwrap());
        }
        assert!(catalog.node_by_key(alice.id, "b/").await.unwrap().is_some());

        // Rolled back, dropped open: nothing stays.
        let writer = catalog.clone();
        catalog
            .write(async move {
                let mut tx = writer.begin_put().await?;
                node(&mut tx, alice.id, None, "rolled/", false).await;
                tx.rollback().await?;
                let mut tx = writer.begin_put().await?;
                node(&mut tx, alice.id, None, "dropped/", false).await;
                drop(tx);
                let mut tx = writer.begin().await?;
                node(&mut tx, alice.id, None, "after/", false).await;
                tx.commit().await
            })
            .await
            .unwrap();
        for (key, kept) in [("rolled/", false), ("dropped/", false), ("after/", true)] {
            let found = catalog.node_by_key(alice.id, key).await.unwrap().is_some();
            assert_eq!(found, kept, "{key}");
        }

        // Off the writer thread it is an ordinary transaction.
        let mut tx = catalog.begin_put().await.unwrap();
        let elsewhere = node(&mut tx, alice.id, None, "elsewhere/", false).await;
        assert!(tx.node_by_id(elsewhere.id).await.unwrap().is_some());
        tx.commit().await.unwrap();
    });
}

/// SQLite's connections to a catalog are opened by file name (`direct.rs`), and an
/// in-memory catalog would lose everything at the next start: refused with a reason.
#[tokio::test]
async fn an_in_memory_sqlite_catalog_is_refused() {
    for url in ["sqlite::memory:", "sqlite://catalog.db?mode=memory"] {
        match Catalog::connect(url, &ConnectOptions::default()).await {
            Err(Error::Invalid(message)) => assert!(message.contains("in-memory"), "{message}"),
            other => panic!("{url}: {:?}", other.map(|_| ())),
        }
    }
}

/// PostgreSQL connections are not pinged before each use, only after sitting idle: one the
/// server dropped meanwhile (a restart, an idle timeout) is replaced, not handed out.
#[tokio::test]
async fn postgres_connections_dropped_while_idle_are_replaced_before_use() {
    if !backends().contains(&BackendKind::Postgres) {
        return;
    }
    let fresh = fresh_catalog(BackendKind::Postgres).await;
    let catalog = fresh.catalog.clone();
    account(&catalog, "idle", None).await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&fresh.url)
        .await
        .unwrap();
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!dropped.is_empty(), "the pool had connections to drop");
    tokio::time::sleep(PG_TEST_IDLE_AFTER + Duration::from_millis(200)).await;
    for _ in 0..6 {
        assert!(catalog.account_by_name("idle").await.unwrap().is_some());
    }
    fresh.catalog.close().await;
}

/// The credentials token moves exactly when a transaction that changed a credential
/// commits — seen by another catalog handle on the same database (another process) too.
#[tokio::test]
async fn the_credentials_token_moves_when_a_credential_change_commits() {
    for kind in backends() {
        let fresh = fresh_catalog(kind).await;
        let catalog = fresh.catalog.clone();
        let other = Catalog::connect(&fresh.url, &ConnectOptions::default())
            .await
            .unwrap();
        let alice = account(&catalog, "alice", None).await;
        let start = catalog.credentials_token();
        assert_eq!(start.is_some(), kind == BackendKind::Sqlite);
        assert_eq!(other.credentials_token(), start);

        let mut tx = catalog.begin().await.unwrap();
        tx.set_quota(alice.id, Some(5)).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = catalog.begin().await.unwrap();
        tx.set_disabled(alice.id, true).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            catalog.credentials_token(),
            start,
            "a quota change and a rolled-back disable are no credential change"
        );

        let mut seen = vec![start];
        let mut tx = other.begin().await.unwrap();
        tx.set_disabled(alice.id, true).await.unwrap();
        tx.commit().await.unwrap();
        seen.push(catalog.credentials_token());
        let mut tx = catalog.begin().await.unwrap();
        tx.set_password(alice.id, "other hash").await.unwrap();
        tx.commit().await.unwrap();
        seen.push(other.credentials_token());
        let mut tx = catalog.begin().await.unwrap();
        tx.insert_access_key(&AccessKeyRow {
            access_key_id: "PKTOKEN".into(),
            account_id: alice.id,
            secret_sealed: vec![1, 2, 3],
            description: None,
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = other.begin().await.unwrap();
        tx.revoke_access_key("PKTOKEN").await.unwrap();
        tx.commit().await.unwrap();
        seen.push(catalog.credentials_token());
        let id = {
            let mut tx = catalog.begin().await.unwrap();
            let id = tx
                .insert_app_password(alice.id, "label", "blake3:digest", 0)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            id
        };
        let mut tx = catalog.begin().await.unwrap();
        tx.delete_app_password(alice.id, id).await.unwrap();
        tx.commit().await.unwrap();
        seen.push(catalog.credentials_token());
        if kind == BackendKind::Sqlite {
            for (i, token) in seen.iter().enumerate() {
                assert!(
                    !seen[..i].contains(token),
                    "change {i} left the token at an earlier one: {seen:?}"
                );
            }
        } else {
            assert!(seen.iter().all(Option::is_none));
        }
        other.close().await;
        catalog.close().await;
        drop(fresh);
    }
}
