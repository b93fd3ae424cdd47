//! The catalog: every row Portico keeps about accounts, keys, folders, files, versions,
//! blobs, properties, locks, uploads, shares, jobs and the audit log.
//!
//! One API over two backends — SQLite (the zero-setup default, WAL, bundled) and
//! PostgreSQL (production) — with the same SQL text for both wherever the dialects agree:
//! the `on_backend!` macro expands one body once per driver, so each query is written once
//! and type-checked against both. Migrations are append-only files per backend, applied
//! at start under a lock.
//!
//! This crate owns SQL and transactions only. It never touches blob bytes or HTTP, and it
//! holds no domain rules: what may be written where is decided in `portico-drive`.

#[macro_use]
mod rows;
mod credsignal;
mod direct;
mod error;
mod migrate;
mod readpool;
mod tx;
mod walsync;
mod writeconn;
mod writer;

pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use rusqlite::types::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

pub use credsignal::Token as CredentialsToken;
pub use error::{Error, Result};
pub use rows::*;
pub use tx::{NewVersionRows, PutProbe, PutProbeQuery, Tx, VersionNode};

/// Expands `$body` once per backend with `$pool` bound to that backend's pool, so one
/// query text serves both drivers.
macro_rules! on_backend {
    ($backend:expr, read, $pool:ident => $body:expr) => {
        match $backend {
            $crate::Backend::Sqlite { read, .. } => {
                let mut lease = read.acquire().await?;
                let $pool = &mut *lease;
                $body
            }
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}

/// The live node at a key: `$1` the account, `$2` the key (unique among live nodes).
pub(crate) const LIVE_NODE_BY_KEY: &str = concat!(
    "SELECT ",
    node_columns!(),
    " FROM nodes WHERE account_id = $1 AND key = $2 AND trashed_at IS NULL"
);

/// Which database engine a catalog runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Backend {
    /// SQLite allows one writer at a time: its one write connection (`writeconn.rs`)
    /// queues writers in the process instead of letting them spin on SQLITE_BUSY; readers
    /// run in parallel under WAL.
    Sqlite {
        read: std::sync::Arc<readpool::ReadPool>,
        write: std::sync::Arc<writeconn::WriteConnection>,
        /// Group commit: the one fsync of the WAL many commits share.
        wal: std::sync::Arc<walsync::WalSync>,
        /// Where write transactions run (`Catalog::write`).
        writer: std::sync::Arc<writer::WriterThread>,
        /// Credential changes, announced to every process on this catalog.
        credentials: std::sync::Arc<credsignal::CredentialSignal>,
    },
    Postgres(PgPool),
}

/// The first key after every key that starts with `prefix` (a folder key ending in `/`):
/// `a/` → `a0`, since `0` follows `/` in byte order.
pub(crate) fn prefix_end(prefix: &str) -> String {
    match prefix.strip_suffix('/') {
        Some(stem) => format!("{stem}0"),
        None => format!("{prefix}\u{10FFFF}"),
    }
}

/// `SELECT` of locks rooted at `$3..` (`exact` keys) or between the two binds after them.
pub(crate) fn locks_near_sql(exact: usize, below: bool) -> String {
    let mut conditions = Vec::new();
    if exact > 0 {
        let placeholders: Vec<String> = (3..3 + exact).map(|i| format!("${i}")).collect();
        conditions.push(format!("key IN ({})", placeholders.join(", ")));
    }
    if below {
        conditions.push(format!("(key > ${} AND key < ${})", 3 + exact, 4 + exact));
    }
    if conditions.is_empty() {
        conditions.push("FALSE".into());
    }
    format!(
        concat!(
            "SELECT ",
            lock_columns!(),
            " FROM locks WHERE account_id = $1 AND timeout_at > $2 AND ({}) ORDER BY key, created_at"
        ),
        conditions.join(" OR ")
    )
}

/// A parameter of a listing query, bound the same way on either backend.
enum Param {
    Int(i64),
    Text(String),
}

/// A pooled PostgreSQL connection idle at least this long is pinged before it is used.
const PG_TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The columns of a live node a listing page needs, as SQLite's JSON page carries them: the
/// account is the query's, a live node has no trash columns, and the name is the key's
/// last segment — four values fewer to turn into text and back on every entry.
const LIVE_NODE_JSON: &str =
    "id, parent_id, kind, key, implicit, version_row, size, etag, content_type, mtime, created_at";

/// Parses `json_group_array(json_array(<LIVE_NODE_JSON>))` of live nodes of `account_id`.
fn live_nodes_from_json(json: &str, account_id: i64) -> Result<Vec<NodeRow>> {
    type Raw = (
        i64,
        Option<i64>,
        i64,
        String,
        i64,
        Option<i64>,
        i64,
        Option<String>,
        Option<String>,
        i64,
        i64,
    );
    let raw: Vec<Raw> = serde_json::from_str(json)
        .map_err(|err| Error::Invalid(format!("a listing page did not parse: {err}")))?;
    Ok(raw
        .into_iter()
        .map(|r| NodeRow {
            id: r.0,
            account_id,
            parent_id: r.1,
            kind: r.2,
            name: name_of_key(&r.3).to_owned(),
            key: r.3,
            implicit: r.4 != 0,
            version_row: r.5,
            size: r.6,
            etag: r.7,
            content_type: r.8,
            mtime: r.9,
            created_at: r.10,
            trashed_at: None,
            trash_root_id: None,
        })
        .collect())
}

/// A node's name from its key: the last segment (`a/b/` → `b`).
fn name_of_key(key: &str) -> &str {
    let body = key.strip_suffix('/').unwrap_or(key);
    body.rsplit('/').next().unwrap_or(body)
}

/// Handle to the catalog. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pub(crate) backend: Backend,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("backend", &self.kind())
            .finish()
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

impl Catalog {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) and applies pending migrations.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let catalog = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, options).await?
        } else {
            return Err(Error::Invalid(format!(
                "unsupported database URL scheme in {:?}: use sqlite://PATH or postgres://…",
                redact_url(url)
            )));
        };
        migrate::run(&catalog).await?;
        Ok(catalog)
    }

    async fn connect_sqlite(url: &str, options: &ConnectOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)?;
        if connect
            .get_filename()
            .to_string_lossy()
            .starts_with("file:sqlx-in-memory-")
            || url.contains("mode=memory")
        {
            // Its blobs, versions and accounts would be gone at the next start, and the
            // catalog's connections (`direct.rs`) are opened by file name.
            return Err(Error::Invalid(format!(
                "{}: an in-memory SQLite catalog is not supported; give a file (sqlite://PATH)",
                redact_url(url)
            )));
        }
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL with a group fsync of the WAL after each commit (`walsync`): a commit
            // is on disk when `Tx::commit` returns, as every write path promises, and
            // concurrent commits share one flush instead of queueing for their own.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let wal = std::sync::Arc::new(walsync::WalSync::new(connect.get_filename().to_path_buf()));
        let credentials =
            std::sync::Arc::new(credsignal::CredentialSignal::new(connect.get_filename()));
        credentials
            .create()
            .map_err(|err| Error::Internal(sqlx::Error::Io(err)))?;
        // A connection to a local file has nothing to test before or after use, and sqlx's
        // pool tests each one it gets back with a round trip to the connection's thread:
        // neither the read connections (`readpool.rs`) nor the one write connection
        // (`writeconn.rs`) are in one.
        let writer = std::sync::Arc::new(writer::WriterThread::start()?);
        let write = std::sync::Arc::new(
            writeconn::WriteConnection::open(
                connect.clone(),
                options.acquire_timeout,
                writer.runtime_id(),
            )
            .await?,
        );
        let read = std::sync::Arc::new(
            readpool::ReadPool::open(
                // Listings read a thousand rows per query: hand them over from the SQLite
                // thread in large batches rather than fifty at a time.
                connect.read_only(true).row_buffer_size(1024),
                options.max_connections.max(2) as usize,
                options.acquire_timeout,
            )
            .await?,
        );
        Ok(Self {
            backend: Backend::Sqlite {
                read,
                write,
                wal,
                writer,
                credentials,
            },
        })
    }

    async fn connect_postgres(url: &str, options: &ConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings every connection it hands out (and again as it takes it back): a
            // round trip to the server per transaction and per read. A connection that sat
            // idle for a second is still tested, so one a database restart broke is
            // replaced before use; one in steady use is not.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PG_TEST_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await?;
        Ok(Self {
            backend: Backend::Postgres(pool),
        })
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite { .. } => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Where credentials stand now, for keeping checked ones in memory (`credsignal.rs`):
    /// a credential read after this call may be trusted while later calls return the same
    /// token. `None` (PostgreSQL, or the signal cannot be read): read them every time.
    pub fn credentials_token(&self) -> Option<CredentialsToken> {
        match &self.backend {
            Backend::Sqlite { credentials, .. } => credentials.token(),
            Backend::Postgres(_) => None,
        }
    }

    /// Makes every commit so far durable (SQLite's group fsync; PostgreSQL commits are).
    pub(crate) async fn sync_wal(&self) -> Result<()> {
        if let Backend::Sqlite { wal, .. } = &self.backend {
            wal.sync().await?;
        }
        Ok(())
    }

    /// Closes every connection; used at shutdown so SQLite checkpoints its WAL.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// Readiness probe: one trivial query.
    pub async fn ping(&self) -> Result<()> {
        on_backend!(&self.backend, read, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Runs `write` — a whole write transaction, from `begin` to `commit` — where writes
    /// go fastest: on SQLite, on the catalog's writer thread (`writer.rs`); on PostgreSQL,
    /// right here. It runs to its end even if the caller stops waiting.
    pub async fn write<F, T, E>(&self, write: F) -> std::result::Result<T, E>
    where
        F: std::future::Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite { writer, .. } => writer.run(write).await,
            Backend::Postgres(_) => write.await,
        }
    }

    /// Starts a write transaction. On SQLite it takes the one write connection and sends
    /// `BEGIN IMMEDIATE` (or, inside a group left open, a `SAVEPOINT`: `writeconn.rs`) with
    /// its first statement, so the write lock is held before anything is read and a
    /// transaction never fails half-way on a lock upgrade.
    pub async fn begin(&self) -> Result<Tx> {
        Tx::begin(&self.backend, false).await
    }

    /// Starts a transaction that writes one new version: [`Tx::probe_put`], then any of
    /// [`Tx::folder_kept`] and [`Tx::insert_node`] (its folders), then
    /// [`Tx::insert_current_version`] and the commit. On SQLite, run on the writer thread
    /// ([`Catalog::write`]), its statements run there, on the write slot's direct
    /// connection (`direct.rs`) rather than through sqlx's connection thread; any other
    /// statement after them fails. Elsewhere it is [`Catalog::begin`].
    pub async fn begin_put(&self) -> Result<Tx> {
        Tx::begin(&self.backend, true).await
    }

    // ---- accounts ------------------------------------------------------------------

    pub async fn account_count(&self) -> Result<i64> {
        let count: (i64,) = on_backend!(&self.backend, read, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM accounts").fetch_one(pool).await?
        });
        Ok(count.0)
    }

    pub async fn account_by_name(&self, name: &str) -> Result<Option<AccountRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", account_columns!(), " FROM accounts WHERE name = $1"))
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<AccountRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", account_columns!(), " FROM accounts WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The app password with this digest, with its account.
    pub async fn app_password_by_hash(&self, hash: &str) -> Result<Option<AppPasswordRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(
                "SELECT id, account_id, label, password_hash, created_at, last_used_at
                 FROM app_passwords WHERE password_hash = $1",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn app_passwords_of(&self, account_id: i64) -> Result<Vec<AppPasswordRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(
                "SELECT id, account_id, label, password_hash, created_at, last_used_at
                 FROM app_passwords WHERE account_id = $1 ORDER BY id",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn list_accounts(&self) -> Result<Vec<AccountRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", account_columns!(), " FROM accounts ORDER BY name"))
                .fetch_all(pool)
                .await?
        }))
    }

    /// The live access key and its account, or `None` when unknown or revoked.
    pub async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", access_key_columns!(), " FROM access_keys WHERE access_key_id = $1 AND revoked_at IS NULL"
            ))
            .bind(access_key_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// A live access key's sealed secret with its account, in one query: what every signed
    /// S3 request checks.
    pub async fn access_key_with_account(
        &self,
        access_key_id: &str,
    ) -> Result<Option<KeyWithAccount>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(
                "SELECT k.secret_sealed, a.id AS account_id, a.name AS account_name, a.is_admin, a.disabled, a.owner_id
                 FROM access_keys k JOIN accounts a ON a.id = k.account_id
                 WHERE k.access_key_id = $1 AND k.revoked_at IS NULL",
            )
            .bind(access_key_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn list_access_keys(&self, account_id: Option<i64>) -> Result<Vec<AccessKeyRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", access_key_columns!(), " FROM access_keys",
                " WHERE ($1 IS NULL OR account_id = $1) ORDER BY account_id, created_at"
            ))
            .bind(account_id)
            .fetch_all(pool)
            .await?
        }))
    }

    // ---- nodes -----------------------------------------------------------------------

    /// The live node at `key` (folders end in '/').
    pub async fn node_by_key(&self, account_id: i64, key: &str) -> Result<Option<NodeRow>> {
        match &self.backend {
            Backend::Sqlite { read, .. } => read.direct(|conn| {
                let args = [Value::Integer(account_id), Value::Text(key.to_owned())];
                Ok(direct::run(conn, LIVE_NODE_BY_KEY, &args, direct::node)?
                    .0
                    .pop())
            }),
            Backend::Postgres(pool) => Ok(sqlx::query_as(LIVE_NODE_BY_KEY)
                .bind(account_id)
                .bind(key)
                .fetch_optional(pool)
                .await?),
        }
    }

    /// The live nodes at `file_key` and `file_key + "/"` in one query: a name can be a
    /// file, a folder, or (written by S3) both.
    pub async fn nodes_at_name(&self, account_id: i64, file_key: &str) -> Result<Vec<NodeRow>> {
        const SQL: &str = concat!(
            "SELECT ",
            node_columns!(),
            " FROM nodes",
            " WHERE account_id = $1 AND key IN ($2, $3) AND trashed_at IS NULL ORDER BY key"
        );
        let folder_key = format!("{file_key}/");
        match &self.backend {
            Backend::Sqlite { read, .. } => read.direct(|conn| {
                let args = [
                    Value::Integer(account_id),
                    Value::Text(file_key.to_owned()),
                    Value::Text(folder_key),
                ];
                Ok(direct::run(conn, SQL, &args, direct::node)?.0)
            }),
            Backend::Postgres(pool) => Ok(sqlx::query_as(SQL)
                .bind(account_id)
                .bind(file_key)
                .bind(&folder_key)
                .fetch_all(pool)
                .await?),
        }
    }

    /// One page of a folder's live children (`parent_id` `None`: the account root), in key
    /// order, restricted to keys in `[from, to)` and after `after`. One indexed query.
    pub async fn list_children(
        &self,
        account_id: i64,
        parent_id: Option<i64>,
        range: &KeyRange,
        limit: i64,
    ) -> Result<Vec<NodeRow>> {
        // Two statements rather than `parent_id = $2 OR $2 IS NULL`, so each uses its index.
        let (filter, owner) = match parent_id {
            Some(parent_id) => ("parent_id = $1", parent_id),
            None => ("account_id = $1 AND parent_id IS NULL", account_id),
        };
        let mut params = vec![Param::Int(owner)];
        let bounds = range.conditions(&mut params);
        let conditions = format!("{filter} AND trashed_at IS NULL AND {bounds}");
        self.live_node_page(account_id, &conditions, params, limit)
            .await
    }

    /// One page of every live node with a key in `[from, to)` after `after`, in key order:
    /// the S3 listing without delimiter. Implicit folders are skipped unless asked for.
    pub async fn list_range(
        &self,
        account_id: i64,
        range: &KeyRange,
        include_implicit: bool,
        limit: i64,
    ) -> Result<Vec<NodeRow>> {
        let mut params = vec![Param::Int(account_id)];
        let bounds = range.conditions(&mut params);
        let implicit = if include_implicit {
            ""
        } else {
            " AND NOT implicit"
        };
        let conditions = format!("account_id = $1 AND trashed_at IS NULL AND {bounds}{implicit}");
        self.live_node_page(account_id, &conditions, params, limit)
            .await
    }

    /// Up to `limit` live nodes of `account_id` matching `conditions` (over `$1..` =
    /// `params`), in key order. On SQLite the page comes back as one JSON value SQLite
    /// builds itself: sqlx hands every row and every value across threads one by one,
    /// which made a 1,000-entry page cost more in handover than in the query.
    async fn live_node_page(
        &self,
        account_id: i64,
        conditions: &str,
        params: Vec<Param>,
        limit: i64,
    ) -> Result<Vec<NodeRow>> {
        let limit_at = params.len() + 1;
        match &self.backend {
            Backend::Sqlite { read, .. } => {
                let sql = format!(
                    "SELECT json_group_array(json_array({LIVE_NODE_JSON})) FROM \
                     (SELECT {LIVE_NODE_JSON} FROM nodes WHERE {conditions} ORDER BY key LIMIT ${limit_at})"
                );
                let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
                for param in params {
                    query = match param {
                        Param::Int(v) => query.bind(v),
                        Param::Text(v) => query.bind(v),
                    };
                }
                let mut lease = read.acquire().await?;
                let json: String = query.bind(limit).fetch_one(&mut *lease).await?;
                drop(lease);
                let mut nodes = live_nodes_from_json(&json, account_id)?;
                // The rows arrive in key order already; sorting a sorted run is one pass,
                // and it makes the order a guarantee rather than SQLite's habit.
                nodes.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(nodes)
            }
            Backend::Postgres(pool) => {
                let sql = format!(
                    "SELECT {} FROM nodes WHERE {conditions} ORDER BY key LIMIT ${limit_at}",
                    node_columns!()
                );
                let mut query = sqlx::query_as::<_, NodeRow>(sqlx::AssertSqlSafe(sql));
                for param in params {
                    query = match param {
                        Param::Int(v) => query.bind(v),
                        Param::Text(v) => query.bind(v),
                    };
                }
                Ok(query.bind(limit).fetch_all(pool).await?)
            }
        }
    }

    /// The current version of a node with its blob locator.
    pub async fn version(&self, version_row: i64) -> Result<Option<VersionRow>> {
        const SQL: &str = concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id WHERE v.id = $1"
        );
        match &self.backend {
            Backend::Sqlite { read, .. } => read.direct(|conn| {
                let args = [Value::Integer(version_row)];
                Ok(direct::run(conn, SQL, &args, direct::version)?.0.pop())
            }),
            Backend::Postgres(pool) => Ok(sqlx::query_as(SQL)
                .bind(version_row)
                .fetch_optional(pool)
                .await?),
        }
    }

    /// A node by id, live or trashed.
    pub async fn node_by_id(&self, node_id: i64) -> Result<Option<NodeRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", node_columns!(), " FROM nodes WHERE id = $1"))
                .bind(node_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every node (live or trashed) with a key in the range that can hold versions: files,
    /// and folders (their marker objects). Ordered by key, then the live node first, then
    /// trashed ones newest first — the order S3 lists a key's history in.
    pub async fn nodes_with_history(
        &self,
        account_id: i64,
        range: &KeyRange,
        limit: i64,
    ) -> Result<Vec<NodeRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", node_columns!(), " FROM nodes",
                " WHERE account_id = $1 AND key >= $2 AND key > $3 AND ($4 IS NULL OR key < $4)",
                " AND (kind = 0 OR NOT implicit OR EXISTS (SELECT 1 FROM versions v WHERE v.node_id = nodes.id))",
                " ORDER BY key, CASE WHEN trashed_at IS NULL THEN 0 ELSE 1 END, trashed_at DESC, id DESC LIMIT $5"
            ))
            .bind(account_id)
            .bind(&range.from)
            .bind(&range.after)
            .bind(&range.to)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The versions of many nodes in one query, newest first within each node.
    pub async fn versions_of_nodes(&self, node_ids: &[i64]) -> Result<Vec<VersionRow>> {
        if node_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=node_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            concat!(
                "SELECT ",
                version_columns!(),
                " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id",
                " WHERE v.node_id IN ({}) ORDER BY v.node_id, v.id DESC"
            ),
            placeholders.join(", ")
        );
        Ok(on_backend!(&self.backend, read, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in node_ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// The account that claimed an S3 bucket name, if any.
    pub async fn bucket_claim(&self, name: &str) -> Result<Option<i64>> {
        let row: Option<(i64,)> = on_backend!(&self.backend, read, pool => {
            sqlx::query_as("SELECT account_id FROM bucket_claims WHERE name = $1").bind(name).fetch_optional(pool).await?
        });
        Ok(row.map(|r| r.0))
    }

    /// A bucket's settings JSON (`{}` when none were stored).
    pub async fn bucket_settings(&self, node_id: i64) -> Result<String> {
        let row: Option<(String,)> = on_backend!(&self.backend, read, pool => {
            sqlx::query_as("SELECT settings FROM bucket_settings WHERE node_id = $1").bind(node_id).fetch_optional(pool).await?
        });
        Ok(row.map(|r| r.0).unwrap_or_else(|| "{}".into()))
    }

    /// The live, unexpired shares of `account_id`'s tree on any of `keys` (a path's
    /// folders and itself): what may let someone else act on that path.
    pub async fn shares_covering(
        &self,
        account_id: i64,
        keys: &[String],
        now: i64,
    ) -> Result<Vec<ShareRow>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (3..3 + keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT s.id, s.account_id, s.node_id, s.audience, s.grantee_id, s.permission, s.source, s.expires_at
             FROM shares s JOIN nodes n ON n.id = s.node_id
             WHERE s.account_id = $1 AND n.account_id = $1 AND n.trashed_at IS NULL AND s.revoked_at IS NULL
               AND (s.expires_at IS NULL OR s.expires_at > $2) AND n.key IN ({})",
            placeholders.join(", ")
        );
        Ok(on_backend!(&self.backend, read, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(account_id).bind(now);
            for key in keys {
                query = query.bind(key);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// The live locks of `account_id`'s tree rooted at one of `keys` (a path and its
    /// folders) or, with `below`, anywhere under that folder key.
    pub async fn locks_near(
        &self,
        account_id: i64,
        keys: &[String],
        below: Option<&str>,
        now: i64,
    ) -> Result<Vec<LockRow>> {
        let sql = locks_near_sql(keys.len(), below.is_some());
        Ok(on_backend!(&self.backend, read, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(account_id).bind(now);
            for key in keys {
                query = query.bind(key);
            }
            if let Some(prefix) = below {
                query = query.bind(prefix).bind(prefix_end(prefix));
            }
            query.fetch_all(pool).await?
        }))
    }

    /// A lock by its token, expired or not.
    pub async fn lock_by_token(&self, token: &str) -> Result<Option<LockRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", lock_columns!(), " FROM locks WHERE token = $1"))
                .bind(token)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The dead properties of some nodes, in (node, namespace, name) order: one query for a
    /// whole page of a listing.
    pub async fn dead_props(&self, node_ids: &[i64]) -> Result<Vec<DeadPropRow>> {
        if node_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=node_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT node_id, namespace, name, value_xml FROM dead_props WHERE node_id IN ({})
             ORDER BY node_id, namespace, name",
            placeholders.join(", ")
        );
        Ok(on_backend!(&self.backend, read, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in node_ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// The attributes JSON of some versions (by row id): one query for a page of a listing.
    pub async fn version_attributes(&self, version_rows: &[i64]) -> Result<Vec<(i64, String)>> {
        if version_rows.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=version_rows.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, attributes FROM versions WHERE id IN ({})",
            placeholders.join(", ")
        );
        Ok(on_backend!(&self.backend, read, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in version_rows {
                query = query.bind(id);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// The shares on one node.
    pub async fn shares_of(&self, node_id: i64) -> Result<Vec<ShareRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(
                "SELECT id, account_id, node_id, audience, grantee_id, permission, source, expires_at
                 FROM shares WHERE node_id = $1 AND revoked_at IS NULL ORDER BY id",
            )
            .bind(node_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The account with an S3 canonical owner id.
    pub async fn account_by_owner_id(&self, owner_id: &str) -> Result<Option<AccountRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", account_columns!(), " FROM accounts WHERE owner_id = $1"))
                .bind(owner_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A version by its public id (S3 `versionId`).
    pub async fn version_by_public_id(&self, version_id: &str) -> Result<Option<VersionRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", version_columns!(), " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id WHERE v.version_id = $1"
            ))
            .bind(version_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Every version of a node, newest first.
    pub async fn versions_of(&self, node_id: i64) -> Result<Vec<VersionRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", version_columns!(), " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id",
                " WHERE v.node_id = $1 ORDER BY v.id DESC"
            ))
            .bind(node_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// A multipart object's segments, in order, with their blob locators.
    pub async fn segments(&self, version_row: i64) -> Result<Vec<SegmentRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", segment_columns!(), " FROM version_parts p LEFT JOIN blobs b ON b.id = p.blob_id",
                " WHERE p.version_row = $1 ORDER BY p.part_index"
            ))
            .bind(version_row)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn upload(&self, upload_id: &str) -> Result<Option<UploadRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!("SELECT ", upload_columns!(), " FROM multipart_uploads WHERE upload_id = $1"))
                .bind(upload_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// One page of an upload's parts after part number `after`.
    pub async fn list_parts(
        &self,
        upload_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PartRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", part_columns!(), " FROM multipart_parts p LEFT JOIN blobs b ON b.id = p.blob_id",
                " WHERE p.upload_id = $1 AND p.part_number > $2 ORDER BY p.part_number LIMIT $3"
            ))
            .bind(upload_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// One page of an account's open uploads with keys in `range`, ordered by key, then
    /// start time and id; `after` is the (key, upload id) the previous page ended with.
    pub async fn list_uploads(
        &self,
        account_id: i64,
        range: &KeyRange,
        after_upload: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UploadRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", upload_columns!(), " FROM multipart_uploads",
                " WHERE account_id = $1 AND key >= $2 AND ($4 IS NULL OR key < $4)",
                " AND (key > $3 OR (key = $3 AND $5 IS NOT NULL AND upload_id > $5))",
                " ORDER BY key, upload_id LIMIT $6"
            ))
            .bind(account_id)
            .bind(&range.from)
            .bind(&range.after)
            .bind(&range.to)
            .bind(after_upload)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Uploads started before `before` (nanoseconds): the expiry job aborts them.
    pub async fn stale_uploads(&self, before: i64, limit: i64) -> Result<Vec<UploadRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", upload_columns!(), " FROM multipart_uploads WHERE created_at < $1 ORDER BY created_at LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Roots of the account's trashed subtrees, newest first.
    pub async fn list_trash(&self, account_id: i64) -> Result<Vec<NodeRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT ", node_columns!(), " FROM nodes",
                " WHERE account_id = $1 AND trashed_at IS NOT NULL AND trash_root_id = id",
                " ORDER BY trashed_at DESC, id DESC"
            ))
            .bind(account_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Audit rows of one account, newest first.
    pub async fn audit_log(&self, account_id: i64, limit: i64) -> Result<Vec<AuditRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(concat!(
                "SELECT id, at, account_id, actor_id, protocol, action, key, detail, request_id",
                " FROM audit_log WHERE account_id = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(account_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    // ---- blobs (fsck, GC) --------------------------------------------------------------

    /// The bytes of an inline blob (`None`: no such blob, or its bytes are a file).
    pub async fn blob_data(&self, blob_id: i64) -> Result<Option<Vec<u8>>> {
        const SQL: &str = "SELECT data FROM blobs WHERE id = $1";
        let row: Option<(Option<Vec<u8>>,)> = match &self.backend {
            Backend::Sqlite { read, .. } => read.direct(|conn| {
                let args = [Value::Integer(blob_id)];
                Ok(direct::run(conn, SQL, &args, |row| Ok((row.get(0)?,)))?
                    .0
                    .pop())
            })?,
            Backend::Postgres(pool) => {
                sqlx::query_as(SQL)
                    .bind(blob_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(row.and_then(|(data,)| data))
    }

    /// Every blob row, in locator order: fsck compares them with the files on the volume.
    pub async fn all_blobs(&self) -> Result<Vec<BlobRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as("SELECT id, locator, (data IS NOT NULL) AS inline, size, md5, blake3, refcount FROM blobs ORDER BY locator")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Blobs no version, part or derivative points at any more.
    pub async fn unreferenced_blobs(&self, limit: i64) -> Result<Vec<BlobRow>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as("SELECT id, locator, (data IS NOT NULL) AS inline, size, md5, blake3, refcount FROM blobs WHERE refcount = 0 LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Drops a blob row once its file is gone, unless something referenced it meanwhile.
    pub async fn forget_blob(&self, blob_id: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = tx.forget_blob(blob_id).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Recomputes each blob's refcount from the rows that point at it; returns how many
    /// were wrong. fsck's repair for a catalog that lost count.
    pub async fn recount_blob_references(&self) -> Result<u64> {
        let mut tx = self.begin().await?;
        let fixed = tx.recount_blob_references().await?;
        tx.commit().await?;
        Ok(fixed)
    }

    /// Versions whose blob row is gone (should never happen; fsck reports it).
    pub async fn versions_with_missing_blob_rows(&self) -> Result<i64> {
        let count: (i64,) = on_backend!(&self.backend, read, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM versions v WHERE v.blob_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = v.blob_id)",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(count.0)
    }

    /// Live files that point at a given blob, for fsck's report of what a missing blob hurts.
    pub async fn keys_using_blob(&self, blob_id: i64) -> Result<Vec<(i64, String)>> {
        Ok(on_backend!(&self.backend, read, pool => {
            sqlx::query_as(
                "SELECT n.account_id, n.key FROM versions v JOIN nodes n ON n.id = v.node_id WHERE v.blob_id = $1 ORDER BY n.key",
            )
            .bind(blob_id)
            .fetch_all(pool)
            .await?
        }))
    }
}

/// A key range for listings: `from <= key`, `key > after`, `key < to` (no upper bound when
/// `to` is `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub from: String,
    pub after: String,
    pub to: Option<String>,
}

impl KeyRange {
    /// The key bounds as SQL over the next placeholders, pushing their values. One lower
    /// bound, the tighter of `from` and `after`: given both, SQLite seeks the index to one
    /// and filters the other row by row, which made page N of a listing step over the N-1
    /// pages before it.
    fn conditions(&self, params: &mut Vec<Param>) -> String {
        let mut sql = if self.after >= self.from {
            params.push(Param::Text(self.after.clone()));
            format!("key > ${}", params.len())
        } else {
            params.push(Param::Text(self.from.clone()));
            format!("key >= ${}", params.len())
        };
        if let Some(to) = &self.to {
            params.push(Param::Text(to.clone()));
            sql.push_str(&format!(" AND key < ${}", params.len()));
        }
        sql
    }

    /// Every key that starts with `prefix`, after `after`.
    pub fn prefixed(prefix: &str, after: &str) -> Self {
        Self {
            from: prefix.to_owned(),
            after: after.to_owned(),
            to: prefix_successor(prefix),
        }
    }
}

/// The smallest string greater than every string that starts with `prefix`, or `None`
/// when there is none (empty prefix). UTF-8 byte order equals code point order, so the
/// last character is bumped to the next scalar value (carrying past U+10FFFF).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if next == 0xD800 {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Hides the password in a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Nanoseconds since the Unix epoch, the catalog's one time unit.
pub fn now_nanos() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
