//! The reads and writes of a new version, each sent as one batch.
//!
//! SQLite runs on one writer thread that owns the connection; every statement is a hand-off
//! to it and back, and the write lock is held across all of them. A small PUT made about a
//! dozen such trips while holding the lock, so the lock's hold time — and with it how many
//! writes a second the catalog takes — was set by thread wake-ups, not by SQLite. Here the
//! statements that do not depend on each other's answers go in one multi-statement query
//! (one trip): the lookups a write needs in one, the rows it writes in another. On
//! PostgreSQL the same calls run statement by statement, in the order and with the row
//! locks the single-statement methods take.

use futures::TryStreamExt;
use sqlx::{Either, Executor, FromRow};

use super::sqlite::SqliteTx;
use super::{Inner, Tx};
use crate::{
    LIVE_NODE_BY_KEY, LockRow, NewAudit, NewBlob, NewNode, NewVersion, NodeRow, Result, VersionRow,
    direct, locks_near_sql, now_nanos, prefix_end,
};

/// What to look up before writing a version at `key`.
pub struct PutProbeQuery<'a> {
    pub account_id: i64,
    /// The folder the node lives in (`None` at the top level); held against deletion until
    /// commit, as [`Tx::folder_kept`].
    pub parent_key: Option<&'a str>,
    /// The node itself, locked as [`Tx::node_by_key_locked`].
    pub key: &'a str,
    /// Another live node asked about (a folder of the same name, for WebDAV).
    pub other_key: Option<&'a str>,
    /// Locks on these exact keys, and strictly below `below`, live at `now`.
    pub lock_keys: &'a [String],
    pub below: Option<&'a str>,
    pub now: i64,
}

/// The answers to a [`PutProbeQuery`].
#[derive(Debug, Default)]
pub struct PutProbe {
    /// SQLite: the account has no quota, so a charge to it cannot be refused (read under
    /// the write lock, which the transaction holds until it ends). PostgreSQL: `false`.
    pub unlimited: bool,
    pub parent: Option<NodeRow>,
    pub existing: Option<NodeRow>,
    pub other: Option<NodeRow>,
    pub locks: Vec<LockRow>,
}

/// The node a new version goes to.
pub enum VersionNode<'a> {
    /// An existing node; `make_explicit` turns an implicit folder marker into a real one.
    Existing {
        id: i64,
        make_explicit: bool,
    },
    New(&'a NewNode),
}

/// The rows of one new version. `version.node_id` is taken from `node`, and
/// `version.blob_id` from `blob` when one is inserted here.
pub struct NewVersionRows<'a> {
    pub account_id: i64,
    pub node: VersionNode<'a>,
    pub blob: Option<&'a NewBlob>,
    pub version: &'a NewVersion,
    /// Bytes charged to the account (refused past its quota).
    pub charge: Option<i64>,
    pub audit: Option<&'a NewAudit>,
    /// The caller writes nothing more: on SQLite the batch may end with `COMMIT` when none
    /// of its rows can be refused (no charge, or `unlimited`), saving a trip; `Tx::commit`
    /// then only waits for the flush.
    pub commit: bool,
    /// [`PutProbe::unlimited`] of the same transaction.
    pub unlimited: bool,
}

/// One bound value of a batch, in placeholder order.
enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(bool),
}

impl Arg {
    fn value(self) -> rusqlite::types::Value {
        use rusqlite::types::Value;
        match self {
            Arg::Int(v) => v.map_or(Value::Null, Value::Integer),
            Arg::Text(v) => v.map_or(Value::Null, Value::Text),
            Arg::Bytes(v) => v.map_or(Value::Null, Value::Blob),
            Arg::Bool(v) => Value::Integer(v.into()),
        }
    }
}

/// What a statement of a batch returns.
#[derive(Clone, Copy)]
enum Shape {
    Nothing,
    Node,
    Version,
    Lock,
    /// `unlimited`: whether the account has no quota.
    Unlimited,
}

/// A row a batch returned, decoded per its statement's [`Shape`].
enum Row {
    Node(NodeRow),
    Version(VersionRow),
    Lock(LockRow),
    Unlimited(bool),
}

impl Shape {
    fn decode_sqlx(self, row: &sqlx::sqlite::SqliteRow) -> Result<Option<Row>> {
        use sqlx::Row as _;
        Ok(match self {
            Shape::Nothing => None,
            Shape::Node => Some(Row::Node(NodeRow::from_row(row)?)),
            Shape::Version => Some(Row::Version(VersionRow::from_row(row)?)),
            Shape::Lock => Some(Row::Lock(LockRow::from_row(row)?)),
            Shape::Unlimited => Some(Row::Unlimited(row.try_get("unlimited")?)),
        })
    }

    fn decode_direct(self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Row>> {
        Ok(match self {
            Shape::Nothing => None,
            Shape::Node => Some(Row::Node(direct::node(row)?)),
            Shape::Version => Some(Row::Version(direct::version(row)?)),
            Shape::Lock => Some(Row::Lock(direct::lock(row)?)),
            Shape::Unlimited => Some(Row::Unlimited(row.get("unlimited")?)),
        })
    }
}

/// Per statement of a batch: the rows it returned and how many rows it changed.
type Answers = Vec<(Vec<Row>, u64)>;

/// The first row statement `at` returned, if it is a node.
fn node(answers: &mut Answers, at: usize) -> Option<NodeRow> {
    match answers[at].0.drain(..).next() {
        Some(Row::Node(node)) => Some(node),
        _ => None,
    }
}

fn version(answers: &mut Answers, at: usize) -> Option<VersionRow> {
    match answers[at].0.drain(..).next() {
        Some(Row::Version(version)) => Some(version),
        _ => None,
    }
}

/// A batch of SQLite statements under construction: placeholders are numbered across all
/// its statements.
#[derive(Default)]
struct Batch {
    statements: Vec<(String, Shape)>,
    args: Vec<Arg>,
}

impl Batch {
    /// Binds `arg` and returns its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn push(&mut self, statement: &str, shape: Shape) -> usize {
        self.statements.push((statement.to_owned(), shape));
        self.statements.len() - 1
    }

    /// Runs every statement — the transaction's first statement before them if it has not
    /// begun, and, if `commit`, the one that ends it after them (`sqlite.rs`) — and
    /// returns, per statement pushed, the rows it returned and how many rows it changed.
    /// On the direct connection they run here one by one; on sqlx's, as one
    /// multi-statement query (one trip to the connection's thread).
    async fn run(self, tx: &mut SqliteTx, commit: bool) -> Result<Answers> {
        if tx.runs_direct().await? {
            return self.run_direct(tx, commit).await;
        }
        let begin = tx.begin(false).await?;
        let end = commit.then(|| tx.end());
        let end_sql = end.and_then(|end| end.sql);
        let conn = tx.batch_conn();
        let mut sql = String::with_capacity(
            self.statements
                .iter()
                .map(|(s, _)| s.len() + 2)
                .sum::<usize>()
                + 32,
        );
        if let Some(begin) = begin {
            sql.push_str(begin);
            sql.push_str(";\n");
        }
        for (statement, _) in &self.statements {
            sql.push_str(statement);
            sql.push_str(";\n");
        }
        if let Some(end) = end_sql {
            sql.push_str(end);
            sql.push_str(";\n");
        }
        // The shape of each statement's rows, the begin and end statements' included.
        let shapes: Vec<Shape> = begin
            .map(|_| Shape::Nothing)
            .into_iter()
            .chain(self.statements.iter().map(|&(_, shape)| shape))
            .chain(end_sql.map(|_| Shape::Nothing))
            .collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in self.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
            };
        }
        let mut results: Answers = Vec::with_capacity(shapes.len());
        let mut rows = Vec::new();
        let mut stream = conn.fetch_many(query);
        while let Some(item) = stream.try_next().await? {
            match item {
                Either::Left(done) => {
                    results.push((std::mem::take(&mut rows), done.rows_affected()));
                }
                Either::Right(row) => {
                    let shape = shapes.get(results.len()).copied().unwrap_or(Shape::Nothing);
                    rows.extend(shape.decode_sqlx(&row)?);
                }
            }
        }
        drop(stream);
        if results.len() != shapes.len() {
            return Err(crate::Error::Invalid(format!(
                "a batch of {} statements answered for {}",
                shapes.len(),
                results.len()
            )));
        }
        if let Some(end) = end {
            tx.ended(end);
            if end_sql.is_some() {
                results.pop();
            }
        }
        if begin.is_some() {
            results.remove(0);
        }
        Ok(results)
    }

    /// [`Batch::run`] on the direct connection, begun already.
    async fn run_direct(self, tx: &mut SqliteTx, commit: bool) -> Result<Answers> {
        let args: Vec<_> = self.args.into_iter().map(Arg::value).collect();
        let conn = tx.direct_conn()?;
        let mut results: Answers = Vec::with_capacity(self.statements.len());
        for (statement, shape) in &self.statements {
            let (rows, changed) =
                direct::run(conn, statement, &args, |row| shape.decode_direct(row))?;
            results.push((rows.into_iter().flatten().collect(), changed));
        }
        if commit {
            tx.end_open().await?;
        }
        Ok(results)
    }
}

impl Tx {
    /// The lookups a new version at `query.key` depends on, in one trip on SQLite.
    pub async fn probe_put(&mut self, query: &PutProbeQuery<'_>) -> Result<PutProbe> {
        let Inner::Sqlite(tx) = &mut self.inner else {
            return self.probe_put_one_by_one(query).await;
        };
        // The lock query comes first: its placeholders are numbered from $1 (account) and
        // $2 (now), as `locks_near_sql` writes them.
        let mut batch = Batch::default();
        batch.arg(Arg::Int(Some(query.account_id)));
        batch.arg(Arg::Int(Some(query.now)));
        for key in query.lock_keys {
            batch.arg(Arg::Text(Some(key.clone())));
        }
        if let Some(below) = query.below {
            batch.arg(Arg::Text(Some(below.to_owned())));
            batch.arg(Arg::Text(Some(prefix_end(below))));
        }
        let locks_at = batch.push(
            &locks_near_sql(query.lock_keys.len(), query.below.is_some()),
            Shape::Lock,
        );
        let node_at = |batch: &mut Batch, key: &str| {
            let placeholder = batch.arg(Arg::Text(Some(key.to_owned())));
            // The account is the batch's `$1` too; the key is this statement's own.
            batch.push(&LIVE_NODE_BY_KEY.replace("$2", &placeholder), Shape::Node)
        };
        let parent_at = query.parent_key.map(|key| node_at(&mut batch, key));
        let existing_at = node_at(&mut batch, query.key);
        let other_at = query.other_key.map(|key| node_at(&mut batch, key));
        let unlimited_at = batch.push(
            "SELECT quota_bytes IS NULL AS unlimited FROM accounts WHERE id = $1",
            Shape::Unlimited,
        );
        let mut results = batch.run(tx, false).await?;
        let unlimited = matches!(results[unlimited_at].0.first(), Some(Row::Unlimited(true)));
        Ok(PutProbe {
            unlimited,
            parent: parent_at.and_then(|at| node(&mut results, at)),
            existing: node(&mut results, existing_at),
            other: other_at.and_then(|at| node(&mut results, at)),
            locks: std::mem::take(&mut results[locks_at].0)
                .into_iter()
                .filter_map(|row| match row {
                    Row::Lock(lock) => Some(lock),
                    _ => None,
                })
                .collect(),
        })
    }

    /// Writes a new version and makes it current: the blob row (when given), the node (new,
    /// or made explicit), the version, the node's listing columns, the usage charge and the
    /// audit entry — on SQLite in one trip. `None` when the charge would pass the account's
    /// quota; nothing is then to be committed.
    pub async fn insert_current_version(
        &mut self,
        rows: &NewVersionRows<'_>,
    ) -> Result<Option<(NodeRow, VersionRow)>> {
        let Inner::Sqlite(tx) = &mut self.inner else {
            return self.insert_current_version_one_by_one(rows).await;
        };
        let now = now_nanos();
        let mut batch = Batch::default();
        let account = batch.arg(Arg::Int(Some(rows.account_id)));
        let node_id = match rows.node {
            VersionNode::Existing { id, make_explicit } => {
                let id = batch.arg(Arg::Int(Some(id)));
                if make_explicit {
                    batch.push(
                        &format!("UPDATE nodes SET implicit = FALSE WHERE id = {id}"),
                        Shape::Nothing,
                    );
                }
                id
            }
            VersionNode::New(node) => {
                let values = [
                    batch.arg(Arg::Int(node.parent_id)),
                    batch.arg(Arg::Int(Some(node.kind))),
                    batch.arg(Arg::Text(Some(node.name.clone()))),
                    batch.arg(Arg::Text(Some(node.key.clone()))),
                    batch.arg(Arg::Bool(node.implicit)),
                    batch.arg(Arg::Int(Some(node.mtime))),
                    batch.arg(Arg::Int(Some(now))),
                ];
                batch.push(
                    &format!(
                        concat!(insert_node!(), " VALUES ({account}, {values})"),
                        account = account,
                        values = values.join(", ")
                    ),
                    Shape::Nothing,
                );
                format!(
                    "(SELECT id FROM nodes WHERE account_id = {account} AND key = {} AND trashed_at IS NULL)",
                    values[3]
                )
            }
        };
        let blob_id = match rows.blob {
            Some(blob) => {
                let locator = batch.arg(Arg::Text(Some(blob.locator.clone())));
                let values = [
                    batch.arg(Arg::Int(Some(blob.size))),
                    batch.arg(Arg::Text(Some(blob.md5.clone()))),
                    batch.arg(Arg::Text(Some(blob.blake3.clone()))),
                    batch.arg(Arg::Int(Some(now))),
                    batch.arg(Arg::Bytes(blob.data.clone())),
                ];
                batch.push(
                    &format!(
                        concat!(insert_blob!(), " VALUES ({}, {}, {}, {}, 1, {}, {})"),
                        locator, values[0], values[1], values[2], values[3], values[4]
                    ),
                    Shape::Nothing,
                );
                format!("(SELECT id FROM blobs WHERE locator = {locator})")
            }
            None => batch.arg(Arg::Int(rows.version.blob_id)),
        };
        let v = rows.version;
        let version_id = batch.arg(Arg::Text(Some(v.version_id.clone())));
        let values = [
            batch.arg(Arg::Int(Some(v.size))),
            batch.arg(Arg::Text(Some(v.etag.clone()))),
            batch.arg(Arg::Text(v.blake3.clone())),
            batch.arg(Arg::Text(v.content_type.clone())),
            batch.arg(Arg::Text(Some(v.attributes.clone()))),
            batch.arg(Arg::Int(Some(v.mtime))),
            batch.arg(Arg::Int(Some(now))),
            batch.arg(Arg::Int(v.created_by)),
            batch.arg(Arg::Int(v.parts_count)),
        ];
        let version_at = batch.push(
            &format!(
                concat!(
                    insert_version!(),
                    " VALUES ({node_id}, {version_id}, {blob_id}, {values}) RETURNING ",
                    version_returning!()
                ),
                node_id = node_id,
                version_id = version_id,
                blob_id = blob_id,
                values = values.join(", ")
            ),
            Shape::Version,
        );
        let node_at = batch.push(&format!(
            concat!(
                "UPDATE nodes SET (version_row, size, etag, content_type, mtime) =",
                " (SELECT id, size, etag, content_type, mtime FROM versions WHERE version_id = {version_id})",
                " WHERE id = {node_id} RETURNING ",
                node_columns!()
            ),
            version_id = version_id,
            node_id = node_id
        ), Shape::Node);
        let charge_at = rows.charge.map(|delta| {
            let delta = batch.arg(Arg::Int(Some(delta)));
            batch.push(&charge_account_sql(&account, &delta), Shape::Nothing)
        });
        if let Some(audit) = rows.audit {
            let values = [
                batch.arg(Arg::Int(Some(now))),
                batch.arg(Arg::Int(audit.account_id)),
                batch.arg(Arg::Int(audit.actor_id)),
                batch.arg(Arg::Text(Some(audit.protocol.clone()))),
                batch.arg(Arg::Text(Some(audit.action.clone()))),
                batch.arg(Arg::Text(audit.key.clone())),
                batch.arg(Arg::Text(audit.detail.clone())),
                batch.arg(Arg::Text(audit.request_id.clone())),
            ];
            batch.push(
                &format!(concat!(insert_audit!(), " VALUES ({})"), values.join(", ")),
                Shape::Nothing,
            );
        }
        let commit = rows.commit && (rows.charge.is_none() || rows.unlimited);
        let mut results = batch.run(tx, commit).await?;
        if let Some(at) = charge_at
            && results[at].1 == 0
        {
            return Ok(None);
        }
        let version = version(&mut results, version_at)
            .ok_or_else(|| crate::Error::Invalid("the version insert returned no row".into()))?;
        let node = node(&mut results, node_at)
            .ok_or_else(|| crate::Error::Invalid("the version's node is gone".into()))?;
        Ok(Some((node, version)))
    }

    /// [`Tx::probe_put`] statement by statement (PostgreSQL), taking the row locks in the
    /// order every writer takes them: the folder, then the node.
    async fn probe_put_one_by_one(&mut self, query: &PutProbeQuery<'_>) -> Result<PutProbe> {
        let parent = match query.parent_key {
            Some(key) => self.folder_kept(query.account_id, key).await?,
            None => None,
        };
        let existing = self.node_by_key_locked(query.account_id, query.key).await?;
        let other = match query.other_key {
            Some(key) => self.node_by_key(query.account_id, key).await?,
            None => None,
        };
        let locks = self
            .locks_near(query.account_id, query.lock_keys, query.below, query.now)
            .await?;
        Ok(PutProbe {
            unlimited: false,
            parent,
            existing,
            other,
            locks,
        })
    }

    /// [`Tx::insert_current_version`] statement by statement (PostgreSQL), in the order
    /// that holds the account's row lock for the shortest time: the charge last but one.
    async fn insert_current_version_one_by_one(
        &mut self,
        rows: &NewVersionRows<'_>,
    ) -> Result<Option<(NodeRow, VersionRow)>> {
        let mut version = rows.version.clone();
        if let Some(blob) = rows.blob {
            version.blob_id = Some(self.insert_blob(blob).await?);
        }
        let (node, version) = match (&rows.node, &mut self.inner) {
            (VersionNode::New(node), Inner::Postgres(tx)) => {
                // A new node is inserted with its current version's columns, the version's
                // id drawn from its sequence first: no UPDATE of the row just written (a
                // second row version, a dead one for vacuum, and a round trip).
                let node: NodeRow = bind_new_node!(
                    sqlx::query_as(concat!(
                        "INSERT INTO nodes (account_id, parent_id, kind, name, key, implicit, mtime, created_at,",
                        " version_row, size, etag, content_type)",
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8,",
                        " nextval('versions_id_seq'), $9, $10, $11)",
                        " RETURNING ", node_columns!()
                    )),
                    node,
                    version.mtime,
                    now_nanos()
                )
                .bind(version.size)
                .bind(&version.etag)
                .bind(&version.content_type)
                .fetch_one(&mut **tx)
                .await?;
                version.node_id = node.id;
                let id = node.version_row.ok_or_else(|| {
                    crate::Error::Internal(sqlx::Error::Protocol(
                        "a new node came back without its version's id".into(),
                    ))
                })?;
                // `insert_version!()`'s columns, and the drawn id last.
                let version: VersionRow = bind_new_version!(
                    sqlx::query_as(concat!(
                        "INSERT INTO versions (node_id, version_id, blob_id, size, etag, blake3,",
                        " content_type, attributes, mtime, created_at, created_by, parts_count, id)",
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                        " RETURNING ", version_returning!()
                    )),
                    version,
                    now_nanos()
                )
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
                (node, version)
            }
            (VersionNode::New(node), _) => {
                version.node_id = self.insert_node(node).await?.id;
                self.make_current(&version).await?
            }
            (&VersionNode::Existing { id, make_explicit }, _) => {
                if make_explicit {
                    self.set_implicit(id, false).await?;
                }
                version.node_id = id;
                self.make_current(&version).await?
            }
        };
        if let Some(delta) = rows.charge
            && !self.charge_usage(rows.account_id, delta).await?
        {
            return Ok(None);
        }
        if let Some(audit) = rows.audit {
            self.insert_audit(audit).await?;
        }
        Ok(Some((node, version)))
    }

    /// Inserts `version` and points its node's listing columns at it.
    async fn make_current(&mut self, version: &NewVersion) -> Result<(NodeRow, VersionRow)> {
        let version = self.insert_version(version).await?;
        let node = self.set_current_version(version.node_id, &version).await?;
        Ok((node, version))
    }
}

/// Charges `delta` bytes to `account` (both placeholders) unless that would pass its quota:
/// then no row changes.
pub(super) fn charge_account_sql(account: &str, delta: &str) -> String {
    format!(
        "UPDATE accounts SET used_bytes = used_bytes + {delta}
         WHERE id = {account} AND ({delta} <= 0 OR quota_bytes IS NULL OR used_bytes
             + COALESCE((SELECT SUM(s.used) FROM usage_shards s WHERE s.account_id = {account}), 0)
             + {delta} <= quota_bytes)"
    )
}
