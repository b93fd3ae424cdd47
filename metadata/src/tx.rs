//! Write transactions. Every mutation the drive makes runs inside one `Tx`, so a request
//! either commits all its rows (node, version, blob, usage, audit) or none.

use rusqlite::types::Value;
use sqlx::{Postgres, Transaction};

mod put;
mod sqlite;

pub use put::{NewVersionRows, PutProbe, PutProbeQuery, VersionNode};

use crate::{
    AccessKeyRow, AccountRow, Backend, KeyRange, LIVE_NODE_BY_KEY, LockRow, NewAccount, NewAudit,
    NewBlob, NewNode, NewVersion, NodeRow, PartRow, Purged, Result, SegmentRow, ShareRow,
    UploadRow, VersionRow, direct, locks_near_sql, now_nanos, prefix_end,
};

enum Inner {
    Sqlite(sqlite::SqliteTx),
    Postgres(Transaction<'static, Postgres>),
}

/// An open write transaction. Dropped without `commit`, it rolls back.
pub struct Tx {
    inner: Inner,
    /// SQLite: the group fsync a commit waits for before it counts as done.
    wal: Option<std::sync::Arc<crate::walsync::WalSync>>,
    /// SQLite: where a committed credential change is announced (`credsignal.rs`).
    credentials: Option<std::sync::Arc<crate::credsignal::CredentialSignal>>,
    /// A credential changed here: announce it after the commit.
    changes_credentials: bool,
}

/// Expands `$body` once per driver with `$conn` bound to the transaction's connection.
macro_rules! on_tx {
    ($self:expr, $conn:ident => $body:expr) => {
        match &mut $self.inner {
            Inner::Sqlite(tx) => {
                let $conn = tx.conn().await?;
                $body
            }
            Inner::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

impl Tx {
    /// `new_version`: the transaction of [`Catalog::begin_put`](crate::Catalog::begin_put).
    pub(crate) async fn begin(backend: &Backend, new_version: bool) -> Result<Self> {
        let (inner, wal, credentials) = match backend {
            Backend::Sqlite {
                write,
                wal,
                credentials,
                ..
            } => (
                // BEGIN IMMEDIATE goes with the first statement (`sqlite.rs`).
                Inner::Sqlite(sqlite::SqliteTx::new(write.acquire().await?, new_version)),
                Some(wal.clone()),
                Some(credentials.clone()),
            ),
            Backend::Postgres(pool) => (Inner::Postgres(pool.begin().await?), None, None),
        };
        Ok(Self {
            inner,
            wal,
            credentials,
            changes_credentials: false,
        })
    }

    /// Commits; when this returns the transaction is durable. On SQLite the write lock
    /// is released first and the commit then waits for the WAL flush it shares with every
    /// other commit in flight — and, if it left its group open for the writers behind it,
    /// first for that group's COMMIT (`writeconn.rs`). A transaction that changed a
    /// credential returns once the change is announced to every process on the catalog
    /// (`credsignal.rs`).
    pub async fn commit(self) -> Result<()> {
        let wrote = match self.inner {
            Inner::Sqlite(mut tx) => tx.commit().await?,
            Inner::Postgres(tx) => {
                tx.commit().await?;
                false
            }
        };
        if wrote && let Some(wal) = self.wal {
            wal.sync().await?;
        }
        if self.changes_credentials
            && let Some(credentials) = self.credentials
        {
            // Committed: processes that keep checked credentials must hear of it before
            // the change counts as made.
            tokio::task::spawn_blocking(move || credentials.changed())
                .await
                .map_err(std::io::Error::other)
                .and_then(|result| result)
                .map_err(|err| {
                    crate::Error::Internal(sqlx::Error::Protocol(format!(
                        "the credential change was committed, but announcing it to running servers failed (restart them): {err}"
                    )))
                })?;
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            Inner::Sqlite(mut tx) => tx.rollback().await?,
            Inner::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    // ---- accounts and keys -------------------------------------------------------------

    pub async fn insert_account(&mut self, account: &NewAccount) -> Result<AccountRow> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "INSERT INTO accounts (name, email, password_hash, is_admin, quota_bytes, owner_id, created_at)",
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ", account_columns!()
            ))
            .bind(&account.name)
            .bind(&account.email)
            .bind(&account.password_hash)
            .bind(account.is_admin)
            .bind(account.quota_bytes)
            .bind(&account.owner_id)
            .bind(now_nanos())
            .fetch_one(conn)
            .await?
        }))
    }

    /// Sets a new password hash and bumps the credential epoch (invalidating caches).
    pub async fn set_password(&mut self, account_id: i64, password_hash: &str) -> Result<bool> {
        self.changes_credentials = true;
        let done = on_tx!(self, conn => {
            sqlx::query("UPDATE accounts SET password_hash = $2, credential_epoch = credential_epoch + 1 WHERE id = $1")
                .bind(account_id)
                .bind(password_hash)
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn set_disabled(&mut self, account_id: i64, disabled: bool) -> Result<bool> {
        self.changes_credentials = true;
        let done = on_tx!(self, conn => {
            sqlx::query("UPDATE accounts SET disabled = $2, credential_epoch = credential_epoch + 1 WHERE id = $1")
                .bind(account_id)
                .bind(disabled)
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn set_quota(&mut self, account_id: i64, quota_bytes: Option<i64>) -> Result<bool> {
        let done = on_tx!(self, conn => {
            sqlx::query("UPDATE accounts SET quota_bytes = $2 WHERE id = $1")
                .bind(account_id)
                .bind(quota_bytes)
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Adds `delta` bytes to the account's usage. A positive delta is refused (returns
    /// `false`, nothing changed) when it would pass the quota: the check and the update are
    /// one statement, so concurrent uploads cannot both squeeze under the limit.
    ///
    /// On PostgreSQL an account without a quota is charged on the counter row of this
    /// connection (`usage_shards`) instead of its own row, which would otherwise be locked
    /// from this statement until the commit's flush and queue every other writer of the
    /// account behind it. An account with a quota takes its row's lock: the check must see
    /// every other charge.
    pub async fn charge_usage(&mut self, account_id: i64, delta: i64) -> Result<bool> {
        if let Inner::Postgres(tx) = &mut self.inner {
            let unlimited = sqlx::query(
                "INSERT INTO usage_shards (account_id, shard, used)
                 SELECT id, pg_backend_pid() % 64, $2 FROM accounts WHERE id = $1 AND quota_bytes IS NULL
                 ON CONFLICT (account_id, shard) DO UPDATE SET used = usage_shards.used + EXCLUDED.used",
            )
            .bind(account_id)
            .bind(delta)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if unlimited > 0 {
                return Ok(true);
            }
        }
        let done = on_tx!(self, conn => {
            sqlx::query(sqlx::AssertSqlSafe(put::charge_account_sql("$1", "$2")))
            .bind(account_id)
            .bind(delta)
            .execute(conn)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn insert_app_password(
        &mut self,
        account_id: i64,
        label: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<i64> {
        let row: (i64,) = on_tx!(self, conn => {
            sqlx::query_as(
                "INSERT INTO app_passwords (account_id, label, password_hash, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(account_id)
            .bind(label)
            .bind(password_hash)
            .bind(now)
            .fetch_one(conn)
            .await?
        });
        Ok(row.0)
    }

    /// Deletes one of an account's app passwords; `false` if it has no such one.
    pub async fn delete_app_password(&mut self, account_id: i64, id: i64) -> Result<bool> {
        self.changes_credentials = true;
        let done = on_tx!(self, conn => {
            sqlx::query("DELETE FROM app_passwords WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn insert_access_key(&mut self, key: &AccessKeyRow) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO access_keys (access_key_id, account_id, secret_sealed, description, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.access_key_id)
            .bind(key.account_id)
            .bind(&key.secret_sealed)
            .bind(&key.description)
            .bind(key.created_at)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    pub async fn revoke_access_key(&mut self, access_key_id: &str) -> Result<bool> {
        self.changes_credentials = true;
        let done = on_tx!(self, conn => {
            sqlx::query("UPDATE access_keys SET revoked_at = $2 WHERE access_key_id = $1 AND revoked_at IS NULL")
                .bind(access_key_id)
                .bind(now_nanos())
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    // ---- nodes -----------------------------------------------------------------------

    pub async fn node_by_key(&mut self, account_id: i64, key: &str) -> Result<Option<NodeRow>> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(LIVE_NODE_BY_KEY)
            .bind(account_id)
            .bind(key)
            .fetch_optional(conn)
            .await?
        }))
    }

    /// The live node at `key`, locked for this transaction (PostgreSQL `FOR UPDATE`;
    /// SQLite's write transaction already excludes every other writer).
    pub async fn node_by_key_locked(
        &mut self,
        account_id: i64,
        key: &str,
    ) -> Result<Option<NodeRow>> {
        Ok(match &mut self.inner {
            Inner::Sqlite(tx) => {
                let conn = tx.conn().await?;
                sqlx::query_as(LIVE_NODE_BY_KEY)
                    .bind(account_id)
                    .bind(key)
                    .fetch_optional(conn)
                    .await?
            }
            Inner::Postgres(tx) => sqlx::query_as(concat!(
                "SELECT ",
                node_columns!(),
                " FROM nodes WHERE account_id = $1 AND key = $2 AND trashed_at IS NULL FOR UPDATE"
            ))
            .bind(account_id)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?,
        })
    }

    /// A node by id, locked for this transaction (see [`Tx::node_by_key_locked`]). Read
    /// after the lock is granted, so it reflects whatever a competing writer committed.
    pub async fn node_by_id_locked(&mut self, node_id: i64) -> Result<Option<NodeRow>> {
        Ok(match &mut self.inner {
            Inner::Sqlite(tx) => {
                let conn = tx.conn().await?;
                sqlx::query_as(concat!(
                    "SELECT ",
                    node_columns!(),
                    " FROM nodes WHERE id = $1"
                ))
                .bind(node_id)
                .fetch_optional(conn)
                .await?
            }
            Inner::Postgres(tx) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    node_columns!(),
                    " FROM nodes WHERE id = $1 FOR UPDATE"
                ))
                .bind(node_id)
                .fetch_optional(&mut **tx)
                .await?
            }
        })
    }

    /// The live folder at `key`, held against deletion until commit (PostgreSQL
    /// `FOR KEY SHARE`: other writers may still add children beside ours).
    pub async fn folder_kept(&mut self, account_id: i64, key: &str) -> Result<Option<NodeRow>> {
        Ok(match &mut self.inner {
            Inner::Sqlite(tx) => {
                if tx.runs_direct().await? {
                    let args = [Value::Integer(account_id), Value::Text(key.to_owned())];
                    let (rows, _) =
                        direct::run(tx.direct_conn()?, LIVE_NODE_BY_KEY, &args, direct::node)?;
                    rows.into_iter().next()
                } else {
                    sqlx::query_as(LIVE_NODE_BY_KEY)
                        .bind(account_id)
                        .bind(key)
                        .fetch_optional(tx.conn().await?)
                        .await?
                }
            }
            Inner::Postgres(tx) => sqlx::query_as(concat!(
                "SELECT ", node_columns!(), " FROM nodes WHERE account_id = $1 AND key = $2 AND trashed_at IS NULL FOR KEY SHARE"
            ))
            .bind(account_id)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?,
        })
    }

    pub async fn node_by_id(&mut self, node_id: i64) -> Result<Option<NodeRow>> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!("SELECT ", node_columns!(), " FROM nodes WHERE id = $1"))
                .bind(node_id)
                .fetch_optional(conn)
                .await?
        }))
    }

    pub async fn insert_node(&mut self, node: &NewNode) -> Result<NodeRow> {
        const SQL: &str = concat!(
            insert_node!(),
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
            node_columns!()
        );
        if let Inner::Sqlite(tx) = &mut self.inner
            && tx.runs_direct().await?
        {
            // `insert_node!()`'s columns, as `bind_new_node!` binds them.
            let args = [
                Value::Integer(node.account_id),
                node.parent_id.map_or(Value::Null, Value::Integer),
                Value::Integer(node.kind),
                Value::Text(node.name.clone()),
                Value::Text(node.key.clone()),
                Value::Integer(node.implicit.into()),
                Value::Integer(node.mtime),
                Value::Integer(now_nanos()),
            ];
            let (rows, _) = direct::run(tx.direct_conn()?, SQL, &args, direct::node)?;
            return rows
                .into_iter()
                .next()
                .ok_or_else(|| crate::Error::Invalid("a node insert returned no row".into()));
        }
        Ok(on_tx!(self, conn => {
            bind_new_node!(sqlx::query_as(SQL), node, node.mtime, now_nanos())
                .fetch_one(conn)
                .await?
        }))
    }

    pub async fn set_implicit(&mut self, node_id: i64, implicit: bool) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE nodes SET implicit = $2 WHERE id = $1").bind(node_id).bind(implicit).execute(conn).await?;
        });
        Ok(())
    }

    pub async fn set_mtime(&mut self, node_id: i64, mtime: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE nodes SET mtime = $2 WHERE id = $1").bind(node_id).bind(mtime).execute(conn).await?;
        });
        Ok(())
    }

    /// Points a node at a version and copies the listing columns from it.
    pub async fn set_current_version(
        &mut self,
        node_id: i64,
        version: &VersionRow,
    ) -> Result<NodeRow> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "UPDATE nodes SET version_row = $2, size = $3, etag = $4, content_type = $5, mtime = $6",
                " WHERE id = $1 RETURNING ", node_columns!()
            ))
            .bind(node_id)
            .bind(version.id)
            .bind(version.size)
            .bind(&version.etag)
            .bind(&version.content_type)
            .bind(version.mtime)
            .fetch_one(conn)
            .await?
        }))
    }

    /// Whether a folder has any live child.
    pub async fn has_children(&mut self, folder_id: i64) -> Result<bool> {
        let found: Option<(i64,)> = on_tx!(self, conn => {
            sqlx::query_as("SELECT id FROM nodes WHERE parent_id = $1 AND trashed_at IS NULL LIMIT 1")
                .bind(folder_id)
                .fetch_optional(conn)
                .await?
        });
        Ok(found.is_some())
    }

    /// Removes a node row that holds nothing: no children, no versions (an implicit folder
    /// left empty). Returns whether it was removed.
    pub async fn delete_empty_node(&mut self, node_id: i64) -> Result<bool> {
        let done = on_tx!(self, conn => {
            sqlx::query(
                "DELETE FROM nodes WHERE id = $1
                   AND NOT EXISTS (SELECT 1 FROM versions WHERE node_id = $1)
                   AND NOT EXISTS (SELECT 1 FROM nodes c WHERE c.parent_id = $1 AND c.trashed_at IS NULL)",
            )
            .bind(node_id)
            .execute(conn)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Detaches a folder's marker object: the node keeps its history but shows no content.
    pub async fn clear_current_version(&mut self, node_id: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE nodes SET version_row = NULL, size = 0, etag = NULL, content_type = NULL WHERE id = $1")
                .bind(node_id)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// The live nodes at `file_key` and `file_key + "/"`.
    pub async fn nodes_at_name(&mut self, account_id: i64, file_key: &str) -> Result<Vec<NodeRow>> {
        let folder_key = format!("{file_key}/");
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", node_columns!(), " FROM nodes",
                " WHERE account_id = $1 AND key IN ($2, $3) AND trashed_at IS NULL ORDER BY key"
            ))
            .bind(account_id)
            .bind(file_key)
            .bind(&folder_key)
            .fetch_all(conn)
            .await?
        }))
    }

    /// Every live node of `node`'s subtree (the node itself and, for a folder, all below
    /// it), in key order, so parents come before their children.
    pub async fn subtree(&mut self, node: &NodeRow) -> Result<Vec<NodeRow>> {
        if !node.is_folder() {
            return Ok(vec![node.clone()]);
        }
        let range = KeyRange::prefixed(&node.key, "");
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", node_columns!(), " FROM nodes",
                " WHERE account_id = $1 AND trashed_at IS NULL AND key >= $2 AND key < $3",
                " ORDER BY key"
            ))
            .bind(node.account_id)
            .bind(&range.from)
            .bind(&range.to)
            .fetch_all(conn)
            .await?
        }))
    }

    /// Renames a node and, for a folder, rewrites the keys of everything below it in one
    /// statement. The caller has checked that the destination is free and not inside the
    /// source.
    pub async fn move_subtree(
        &mut self,
        node: &NodeRow,
        new_parent_id: Option<i64>,
        new_name: &str,
        new_key: &str,
    ) -> Result<u64> {
        let moved_root = on_tx!(self, conn => {
            sqlx::query("UPDATE nodes SET parent_id = $2, name = $3, key = $4 WHERE id = $1")
                .bind(node.id)
                .bind(new_parent_id)
                .bind(new_name)
                .bind(new_key)
                .execute(conn)
                .await?
                .rows_affected()
        });
        if !node.is_folder() {
            return Ok(moved_root);
        }
        let below = KeyRange::prefixed(&node.key, &node.key);
        let old_len = node.key.chars().count() as i64;
        let moved_below = on_tx!(self, conn => {
            sqlx::query(
                "UPDATE nodes SET key = $4 || substr(key, $5)
                 WHERE account_id = $1 AND trashed_at IS NULL AND key > $2 AND key < $3",
            )
            .bind(node.account_id)
            .bind(&below.after)
            .bind(&below.to)
            .bind(new_key)
            .bind(i32::try_from(old_len + 1).unwrap_or(i32::MAX))
            .execute(conn)
            .await?
            .rows_affected()
        });
        Ok(moved_root + moved_below)
    }

    /// Moves a live subtree to the trash as one unit: the root loses its parent (its key
    /// remembers where it was), every row gets the same trash root.
    pub async fn trash_subtree(&mut self, node: &NodeRow, actor_id: Option<i64>) -> Result<u64> {
        // A file is its own subtree: the range then matches exactly its key.
        let (from, to) = match node.is_folder() {
            true => (node.key.clone(), crate::prefix_successor(&node.key)),
            false => (node.key.clone(), None),
        };
        let now = now_nanos();
        let count = on_tx!(self, conn => {
            sqlx::query(
                "UPDATE nodes SET trashed_at = $4, trash_root_id = $5, trashed_by = $6,
                        parent_id = CASE WHEN id = $5 THEN NULL ELSE parent_id END
                 WHERE account_id = $1 AND trashed_at IS NULL
                   AND ((NOT $7 AND id = $5) OR ($7 AND key >= $2 AND key < $3))",
            )
            .bind(node.account_id)
            .bind(&from)
            .bind(&to)
            .bind(now)
            .bind(node.id)
            .bind(actor_id)
            .bind(node.is_folder())
            .execute(conn)
            .await?
            .rows_affected()
        });
        Ok(count)
    }

    /// A trashed subtree's root.
    pub async fn trash_root(&mut self, account_id: i64, root_id: i64) -> Result<Option<NodeRow>> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", node_columns!(), " FROM nodes",
                " WHERE account_id = $1 AND id = $2 AND trashed_at IS NOT NULL AND trash_root_id = id"
            ))
            .bind(account_id)
            .bind(root_id)
            .fetch_optional(conn)
            .await?
        }))
    }

    /// Brings a trashed subtree back under `parent_id`. The caller checked the root's key
    /// is free; keys below it cannot be taken while it is.
    pub async fn restore_subtree(
        &mut self,
        account_id: i64,
        root_id: i64,
        parent_id: Option<i64>,
    ) -> Result<u64> {
        let count = on_tx!(self, conn => {
            sqlx::query(
                "UPDATE nodes SET trashed_at = NULL, trash_root_id = NULL, trashed_by = NULL,
                        parent_id = CASE WHEN id = $2 THEN $3 ELSE parent_id END
                 WHERE account_id = $1 AND trash_root_id = $2 AND trashed_at IS NOT NULL",
            )
            .bind(account_id)
            .bind(root_id)
            .bind(parent_id)
            .execute(conn)
            .await?
            .rows_affected()
        });
        Ok(count)
    }

    /// Brings one trashed file back under `parent_id`, out of whatever trashed subtree it
    /// belonged to (S3: removing the delete marker of that object).
    pub async fn restore_node(&mut self, node_id: i64, parent_id: Option<i64>) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "UPDATE nodes SET trashed_at = NULL, trash_root_id = NULL, trashed_by = NULL, parent_id = $2 WHERE id = $1",
            )
            .bind(node_id)
            .bind(parent_id)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Deletes a trashed subtree for good: its versions release their blobs (refcount)
    /// and their bytes (usage). Unreferenced blobs are left for `Catalog::unreferenced_blobs`
    /// so the file is removed before its row, never the other way round.
    pub async fn purge_subtree(&mut self, account_id: i64, root_id: i64) -> Result<Purged> {
        let (bytes, versions): (i64, i64) = on_tx!(self, conn => {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT), COUNT(v.id) FROM versions v JOIN nodes n ON n.id = v.node_id
                 WHERE n.account_id = $1 AND n.trash_root_id = $2 AND n.trashed_at IS NOT NULL",
            )
            .bind(account_id)
            .bind(root_id)
            .fetch_one(conn)
            .await?
        });
        on_tx!(self, conn => {
            sqlx::query(
                "UPDATE blobs SET refcount = refcount - (
                     SELECT COUNT(*) FROM versions v JOIN nodes n ON n.id = v.node_id
                     WHERE v.blob_id = blobs.id AND n.account_id = $1 AND n.trash_root_id = $2 AND n.trashed_at IS NOT NULL)
                 WHERE id IN (
                     SELECT v.blob_id FROM versions v JOIN nodes n ON n.id = v.node_id
                     WHERE n.account_id = $1 AND n.trash_root_id = $2 AND n.trashed_at IS NOT NULL AND v.blob_id IS NOT NULL)",
            )
            .bind(account_id)
            .bind(root_id)
            .execute(conn)
            .await?;
        });
        on_tx!(self, conn => {
            sqlx::query(
                "UPDATE blobs SET refcount = refcount - (
                     SELECT COUNT(*) FROM version_parts p JOIN versions v ON v.id = p.version_row JOIN nodes n ON n.id = v.node_id
                     WHERE p.blob_id = blobs.id AND n.account_id = $1 AND n.trash_root_id = $2 AND n.trashed_at IS NOT NULL)
                 WHERE id IN (
                     SELECT p.blob_id FROM version_parts p JOIN versions v ON v.id = p.version_row JOIN nodes n ON n.id = v.node_id
                     WHERE n.account_id = $1 AND n.trash_root_id = $2 AND n.trashed_at IS NOT NULL AND p.blob_id IS NOT NULL)",
            )
            .bind(account_id)
            .bind(root_id)
            .execute(conn)
            .await?;
        });
        // nodes.version_row points into versions: clear it first so the cascade from nodes
        // to versions never meets a reference back.
        on_tx!(self, conn => {
            sqlx::query("UPDATE nodes SET version_row = NULL WHERE account_id = $1 AND trash_root_id = $2 AND trashed_at IS NOT NULL")
                .bind(account_id)
                .bind(root_id)
                .execute(conn)
                .await?;
        });
        let nodes = on_tx!(self, conn => {
            sqlx::query("DELETE FROM nodes WHERE account_id = $1 AND trash_root_id = $2 AND trashed_at IS NOT NULL")
                .bind(account_id)
                .bind(root_id)
                .execute(conn)
                .await?
                .rows_affected()
        });
        self.charge_usage(account_id, -bytes).await?;
        Ok(Purged {
            nodes,
            versions: versions as u64,
            bytes,
        })
    }

    // ---- versions and blobs ------------------------------------------------------------

    /// Inserts a blob row with one reference.
    pub async fn insert_blob(&mut self, blob: &NewBlob) -> Result<i64> {
        let (id,): (i64,) = on_tx!(self, conn => {
            sqlx::query_as(
                concat!(insert_blob!(), " VALUES ($1, $2, $3, $4, 1, $5, $6) RETURNING id"),
            )
            .bind(&blob.locator)
            .bind(blob.size)
            .bind(&blob.md5)
            .bind(&blob.blake3)
            .bind(now_nanos())
            .bind(blob.data.as_deref())
            .fetch_one(conn)
            .await?
        });
        Ok(id)
    }

    /// Drops a blob row once its file is gone, unless something referenced it meanwhile.
    pub async fn forget_blob(&mut self, blob_id: i64) -> Result<bool> {
        let done = on_tx!(self, conn => {
            sqlx::query("DELETE FROM blobs WHERE id = $1 AND refcount = 0").bind(blob_id).execute(conn).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Recomputes each blob's refcount from the rows that point at it; how many were wrong.
    pub async fn recount_blob_references(&mut self) -> Result<u64> {
        Ok(on_tx!(self, conn => {
            sqlx::query(
                "UPDATE blobs SET refcount = (
                     (SELECT COUNT(*) FROM versions v WHERE v.blob_id = blobs.id)
                   + (SELECT COUNT(*) FROM version_parts p WHERE p.blob_id = blobs.id)
                   + (SELECT COUNT(*) FROM multipart_parts m WHERE m.blob_id = blobs.id)
                   + (SELECT COUNT(*) FROM derivatives d WHERE d.blob_id = blobs.id))
                 WHERE refcount <> (
                     (SELECT COUNT(*) FROM versions v WHERE v.blob_id = blobs.id)
                   + (SELECT COUNT(*) FROM version_parts p WHERE p.blob_id = blobs.id)
                   + (SELECT COUNT(*) FROM multipart_parts m WHERE m.blob_id = blobs.id)
                   + (SELECT COUNT(*) FROM derivatives d WHERE d.blob_id = blobs.id))",
            )
            .execute(conn)
            .await?
            .rows_affected()
        }))
    }

    /// Adds `delta` references to a blob (a copy shares its source's blob).
    pub async fn add_blob_refs(&mut self, blob_id: i64, delta: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE blobs SET refcount = refcount + $2 WHERE id = $1").bind(blob_id).bind(delta).execute(conn).await?;
        });
        Ok(())
    }

    pub async fn insert_version(&mut self, version: &NewVersion) -> Result<VersionRow> {
        let now = now_nanos();
        // The row comes back whole, its blob's locator included: no second lookup.
        let row: VersionRow = on_tx!(self, conn => {
            bind_new_version!(
                sqlx::query_as(concat!(
                    insert_version!(),
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     RETURNING ", version_returning!()
                )),
                version,
                now
            )
            .fetch_one(conn)
            .await?
        });
        Ok(row)
    }

    pub async fn version(&mut self, version_row: i64) -> Result<Option<VersionRow>> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", version_columns!(), " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id WHERE v.id = $1"
            ))
            .bind(version_row)
            .fetch_optional(conn)
            .await?
        }))
    }

    /// Deletes one version for good: its blob references and its bytes of usage are
    /// released. The caller repoints (or removes) the node if it was current.
    pub async fn delete_version(&mut self, account_id: i64, version: &VersionRow) -> Result<()> {
        if let Some(blob) = version.blob_id {
            self.add_blob_refs(blob, -1).await?;
        }
        on_tx!(self, conn => {
            sqlx::query(
                "UPDATE blobs SET refcount = refcount - (
                     SELECT COUNT(*) FROM version_parts p WHERE p.version_row = $1 AND p.blob_id = blobs.id)
                 WHERE id IN (SELECT blob_id FROM version_parts WHERE version_row = $1 AND blob_id IS NOT NULL)",
            )
            .bind(version.id)
            .execute(conn)
            .await?;
        });
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM version_parts WHERE version_row = $1").bind(version.id).execute(conn).await?;
        });
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM versions WHERE id = $1").bind(version.id).execute(conn).await?;
        });
        self.charge_usage(account_id, -version.size).await?;
        Ok(())
    }

    /// The newest remaining version of a node.
    pub async fn latest_version(&mut self, node_id: i64) -> Result<Option<VersionRow>> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", version_columns!(), " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id",
                " WHERE v.node_id = $1 ORDER BY v.id DESC LIMIT 1"
            ))
            .bind(node_id)
            .fetch_optional(conn)
            .await?
        }))
    }

    /// Moves every version of `from` into `to`'s history and removes `from` (an old delete
    /// marker dropped under a key that lives again).
    pub async fn merge_history(&mut self, from_node: i64, to_node: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE versions SET node_id = $2 WHERE node_id = $1").bind(from_node).bind(to_node).execute(conn).await?;
        });
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM nodes WHERE id = $1").bind(from_node).execute(conn).await?;
        });
        Ok(())
    }

    /// Removes a node row that holds no versions (its last one was deleted).
    pub async fn delete_node(&mut self, node_id: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE nodes SET version_row = NULL WHERE id = $1").bind(node_id).execute(conn).await?;
        });
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM nodes WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM versions WHERE node_id = $1)")
                .bind(node_id)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// Copies a node's dead properties to another node (WebDAV COPY keeps them).
    pub async fn copy_dead_props(&mut self, from_node: i64, to_node: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO dead_props (node_id, namespace, name, value_xml)
                 SELECT $2, namespace, name, value_xml FROM dead_props WHERE node_id = $1",
            )
            .bind(from_node)
            .bind(to_node)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Sets a dead property (insert or replace).
    pub async fn set_dead_prop(
        &mut self,
        node_id: i64,
        namespace: &str,
        name: &str,
        value_xml: &str,
    ) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO dead_props (node_id, namespace, name, value_xml) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node_id, namespace, name) DO UPDATE SET value_xml = excluded.value_xml",
            )
            .bind(node_id)
            .bind(namespace)
            .bind(name)
            .bind(value_xml)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Removes a dead property; removing an absent one is not an error (RFC 4918 §14.23).
    pub async fn remove_dead_prop(
        &mut self,
        node_id: i64,
        namespace: &str,
        name: &str,
    ) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM dead_props WHERE node_id = $1 AND namespace = $2 AND name = $3")
                .bind(node_id)
                .bind(namespace)
                .bind(name)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    // ---- locks -------------------------------------------------------------------------

    /// Serializes lock decisions within one account's tree until the transaction ends
    /// (PostgreSQL advisory lock; SQLite has one writer already), so two LOCK requests
    /// cannot both find no conflict.
    pub async fn serialize_locks(&mut self, account_id: i64) -> Result<()> {
        if let Inner::Postgres(tx) = &mut self.inner {
            // A key space of its own: the high bits spell "LOCK".
            let key = 0x4c4f_434b_0000_0000_i64 ^ account_id;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(key)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// As [`crate::Catalog::locks_near`], inside the transaction.
    pub async fn locks_near(
        &mut self,
        account_id: i64,
        keys: &[String],
        below: Option<&str>,
        now: i64,
    ) -> Result<Vec<LockRow>> {
        let sql = locks_near_sql(keys.len(), below.is_some());
        Ok(on_tx!(self, conn => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(account_id).bind(now);
            for key in keys {
                query = query.bind(key);
            }
            if let Some(prefix) = below {
                query = query.bind(prefix).bind(prefix_end(prefix));
            }
            query.fetch_all(conn).await?
        }))
    }

    pub async fn insert_lock(&mut self, lock: &LockRow) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(concat!("INSERT INTO locks (", lock_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                .bind(&lock.token)
                .bind(lock.account_id)
                .bind(&lock.key)
                .bind(lock.depth_infinity)
                .bind(lock.exclusive)
                .bind(&lock.owner_xml)
                .bind(lock.principal_id)
                .bind(lock.timeout_at)
                .bind(lock.created_at)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// Extends a lock; `false` if it no longer exists.
    pub async fn refresh_lock(&mut self, token: &str, timeout_at: i64) -> Result<bool> {
        let done = on_tx!(self, conn => {
            sqlx::query("UPDATE locks SET timeout_at = $2 WHERE token = $1").bind(token).bind(timeout_at).execute(conn).await?.rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn delete_lock(&mut self, token: &str) -> Result<bool> {
        let done = on_tx!(self, conn => {
            sqlx::query("DELETE FROM locks WHERE token = $1").bind(token).execute(conn).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Removes the locks rooted at `key` or, for a folder key, anywhere below it: a resource
    /// that was deleted or moved away takes its locks with it (RFC 4918 §9.6, §9.9).
    pub async fn delete_locks_at(&mut self, account_id: i64, key: &str) -> Result<u64> {
        let done = if key.ends_with('/') {
            on_tx!(self, conn => {
                sqlx::query("DELETE FROM locks WHERE account_id = $1 AND key >= $2 AND key < $3")
                    .bind(account_id)
                    .bind(key)
                    .bind(prefix_end(key))
                    .execute(conn)
                    .await?
                    .rows_affected()
            })
        } else {
            on_tx!(self, conn => {
                sqlx::query("DELETE FROM locks WHERE account_id = $1 AND key = $2")
                    .bind(account_id)
                    .bind(key)
                    .execute(conn)
                    .await?
                    .rows_affected()
            })
        };
        Ok(done)
    }

    /// Sweeps locks whose timeout has passed.
    pub async fn delete_expired_locks(&mut self, now: i64) -> Result<u64> {
        let done = on_tx!(self, conn => {
            sqlx::query("DELETE FROM locks WHERE timeout_at <= $1").bind(now).execute(conn).await?.rows_affected()
        });
        Ok(done)
    }

    // ---- multipart uploads -------------------------------------------------------------

    pub async fn insert_upload(&mut self, upload: &UploadRow) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO multipart_uploads (upload_id, account_id, key, attributes, initiated_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&upload.upload_id)
            .bind(upload.account_id)
            .bind(&upload.key)
            .bind(&upload.attributes)
            .bind(upload.initiated_by)
            .bind(upload.created_at)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// The upload, locked for this transaction on PostgreSQL so a part and the completion
    /// of one upload cannot interleave.
    pub async fn upload_for_update(&mut self, upload_id: &str) -> Result<Option<UploadRow>> {
        Ok(match &mut self.inner {
            Inner::Sqlite(tx) => {
                let conn = tx.conn().await?;
                sqlx::query_as(concat!(
                    "SELECT ",
                    upload_columns!(),
                    " FROM multipart_uploads WHERE upload_id = $1"
                ))
                .bind(upload_id)
                .fetch_optional(conn)
                .await?
            }
            Inner::Postgres(tx) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    upload_columns!(),
                    " FROM multipart_uploads WHERE upload_id = $1 FOR UPDATE"
                ))
                .bind(upload_id)
                .fetch_optional(&mut **tx)
                .await?
            }
        })
    }

    /// Stores a part, replacing an earlier upload of the same number; returns the replaced
    /// part (its blob reference and size are the caller's to release).
    pub async fn put_part(&mut self, upload_id: &str, part: &PartRow) -> Result<Option<PartRow>> {
        let previous: Option<PartRow> = on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", part_columns!(), " FROM multipart_parts p LEFT JOIN blobs b ON b.id = p.blob_id",
                " WHERE p.upload_id = $1 AND p.part_number = $2"
            ))
            .bind(upload_id)
            .bind(part.part_number)
            .fetch_optional(conn)
            .await?
        });
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO multipart_parts (upload_id, part_number, blob_id, size, etag, checksums, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (upload_id, part_number) DO UPDATE SET
                   blob_id = excluded.blob_id, size = excluded.size, etag = excluded.etag,
                   checksums = excluded.checksums, created_at = excluded.created_at",
            )
            .bind(upload_id)
            .bind(part.part_number)
            .bind(part.blob_id)
            .bind(part.size)
            .bind(&part.etag)
            .bind(&part.checksums)
            .bind(part.created_at)
            .execute(conn)
            .await?;
        });
        Ok(previous)
    }

    /// Every part of an upload, in part order.
    pub async fn parts(&mut self, upload_id: &str) -> Result<Vec<PartRow>> {
        Ok(on_tx!(self, conn => {
            sqlx::query_as(concat!(
                "SELECT ", part_columns!(), " FROM multipart_parts p LEFT JOIN blobs b ON b.id = p.blob_id",
                " WHERE p.upload_id = $1 ORDER BY p.part_number"
            ))
            .bind(upload_id)
            .fetch_all(conn)
            .await?
        }))
    }

    /// Forgets an upload and its parts. Blob references held by the parts are released by
    /// the caller first (or moved into a version).
    pub async fn delete_upload(&mut self, upload_id: &str) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM multipart_parts WHERE upload_id = $1").bind(upload_id).execute(conn).await?;
        });
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = $1").bind(upload_id).execute(conn).await?;
        });
        Ok(())
    }

    /// Records the segments of a multipart version.
    pub async fn insert_segment(&mut self, version_row: i64, segment: &SegmentRow) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("INSERT INTO version_parts (version_row, part_index, blob_id, size, etag) VALUES ($1, $2, $3, $4, $5)")
                .bind(version_row)
                .bind(segment.part_index)
                .bind(segment.blob_id)
                .bind(segment.size)
                .bind(&segment.etag)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// Gives `to` the same segments as `from`, each blob gaining a reference.
    pub async fn copy_segments(&mut self, from_version: i64, to_version: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO version_parts (version_row, part_index, blob_id, size, etag)
                 SELECT $2, part_index, blob_id, size, etag FROM version_parts WHERE version_row = $1",
            )
            .bind(from_version)
            .bind(to_version)
            .execute(conn)
            .await?;
        });
        on_tx!(self, conn => {
            sqlx::query(
                "UPDATE blobs SET refcount = refcount + (
                     SELECT COUNT(*) FROM version_parts p WHERE p.version_row = $1 AND p.blob_id = blobs.id)
                 WHERE id IN (SELECT blob_id FROM version_parts WHERE version_row = $1 AND blob_id IS NOT NULL)",
            )
            .bind(from_version)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    // ---- buckets -----------------------------------------------------------------------

    /// Claims an S3 bucket name for an account; `false` if another account holds it.
    pub async fn claim_bucket(&mut self, name: &str, account_id: i64) -> Result<bool> {
        let existing: Option<(i64,)> = on_tx!(self, conn => {
            sqlx::query_as("SELECT account_id FROM bucket_claims WHERE name = $1").bind(name).fetch_optional(conn).await?
        });
        match existing {
            Some((owner,)) => Ok(owner == account_id),
            None => {
                on_tx!(self, conn => {
                    sqlx::query("INSERT INTO bucket_claims (name, account_id, created_at) VALUES ($1, $2, $3)")
                        .bind(name)
                        .bind(account_id)
                        .bind(now_nanos())
                        .execute(conn)
                        .await?;
                });
                Ok(true)
            }
        }
    }

    pub async fn release_bucket(&mut self, name: &str, account_id: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM bucket_claims WHERE name = $1 AND account_id = $2")
                .bind(name)
                .bind(account_id)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    /// Stores a bucket's settings JSON.
    pub async fn set_bucket_settings(&mut self, node_id: i64, settings: &str) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO bucket_settings (node_id, settings) VALUES ($1, $2)
                 ON CONFLICT (node_id) DO UPDATE SET settings = excluded.settings",
            )
            .bind(node_id)
            .bind(settings)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Replaces a version's attributes JSON (tags change without a new version, as in S3).
    pub async fn set_version_attributes(
        &mut self,
        version_row: i64,
        attributes: &str,
    ) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("UPDATE versions SET attributes = $2 WHERE id = $1")
                .bind(version_row)
                .bind(attributes)
                .execute(conn)
                .await?;
        });
        Ok(())
    }

    // ---- shares ------------------------------------------------------------------------

    /// Removes the shares an S3 ACL made on a node (before setting a new ACL).
    pub async fn delete_acl_shares(&mut self, node_id: i64) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query("DELETE FROM shares WHERE node_id = $1 AND source = 'acl'").bind(node_id).execute(conn).await?;
        });
        Ok(())
    }

    pub async fn insert_share(&mut self, share: &ShareRow) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(
                "INSERT INTO shares (account_id, node_id, audience, grantee_id, permission, source, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(share.account_id)
            .bind(share.node_id)
            .bind(&share.audience)
            .bind(share.grantee_id)
            .bind(&share.permission)
            .bind(&share.source)
            .bind(share.expires_at)
            .bind(now_nanos())
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    // ---- audit -------------------------------------------------------------------------

    pub async fn insert_audit(&mut self, entry: &NewAudit) -> Result<()> {
        on_tx!(self, conn => {
            sqlx::query(concat!(insert_audit!(), " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(now_nanos())
            .bind(entry.account_id)
            .bind(entry.actor_id)
            .bind(&entry.protocol)
            .bind(&entry.action)
            .bind(&entry.key)
            .bind(&entry.detail)
            .bind(&entry.request_id)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}
