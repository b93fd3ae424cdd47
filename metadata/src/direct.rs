//! SQLite statements run on the catalog's writer thread itself, with no connection thread.
//!
//! sqlx runs each SQLite connection on a thread of its own: every statement batch goes to
//! that thread and every result row comes back, a wake-up each way. A small PUT's catalog
//! work is two batches, and the one write connection serialises every writer, so those
//! hand-offs are paid once per PUT by the whole server: on two cores the connection's
//! thread spent ~240 µs per PUT and the writer thread ~130 µs, against ~100–130 µs of CPU
//! for the same statements run in one thread (`tests/sqlite_in_thread.rs`).
//!
//! A new version's transaction (`Catalog::begin_put`) runs on a second write connection,
//! opened here with `rusqlite` on the same file and held by the same slot as sqlx's
//! (`writeconn.rs`), so the two never write at once; its statements run where the
//! transaction runs, on the writer thread, which runs nothing but write transactions.
//! Statements keep sqlx's `$N` placeholders, bound here by number.
//!
//! The point lookups of a read (the node at a key, a version, an inline blob's bytes) run
//! the same way on read-only connections of their own (`readpool.rs`), in the calling
//! thread: the same hand-offs were ~60 µs of a connection thread's CPU per small GET.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Row};

use crate::{Error, LockRow, NodeRow, Result, VersionRow};

/// Distinct statements kept prepared: a PUT's batches take a dozen shapes (with or without
/// a parent, a blob, a charge, an audit row, and per number of lock keys).
const PREPARED: usize = 64;

/// Opens a write connection to the catalog at `path` (created and migrated by sqlx first)
/// with the settings sqlx's connections get (`Catalog::connect`): the WAL's flush is
/// `walsync.rs`'s, foreign keys are enforced, a lock held by another process is waited for.
pub(crate) fn open(path: &Path, busy: Duration) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(error)?;
    conn.busy_timeout(busy).map_err(error)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(error)?;
    conn.set_prepared_statement_cache_capacity(PREPARED);
    Ok(conn)
}

/// Opens a read-only connection to the catalog at `path` (`readpool.rs`).
pub(crate) fn open_read(path: &Path, busy: Duration) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(error)?;
    conn.busy_timeout(busy).map_err(error)?;
    conn.set_prepared_statement_cache_capacity(PREPARED);
    Ok(conn)
}

/// Runs `sql` alone (BEGIN, SAVEPOINT, COMMIT, ROLLBACK …).
pub(crate) fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.execute_batch(sql).map_err(error)
}

/// Runs one statement whose placeholders are `$N`, bound to `args[N - 1]`; returns the rows
/// it returned, decoded by `decode`, and how many rows it changed.
pub(crate) fn run<T>(
    conn: &Connection,
    sql: &str,
    args: &[Value],
    mut decode: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<(Vec<T>, u64)> {
    let mut statement = conn.prepare_cached(sql).map_err(error)?;
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|number| number.parse::<usize>().ok())
            .filter(|number| (1..=args.len()).contains(number))
            .ok_or_else(|| {
                Error::Invalid(format!("placeholder {index} of a statement is not bound"))
            })?;
        statement
            .raw_bind_parameter(index, &args[number - 1])
            .map_err(error)?;
    }
    let readonly = statement.readonly();
    let mut rows = statement.raw_query();
    let mut decoded = Vec::new();
    while let Some(row) = rows.next().map_err(error)? {
        decoded.push(decode(row).map_err(error)?);
    }
    drop(rows);
    let changed = if readonly { 0 } else { conn.changes() };
    Ok((decoded, changed))
}

/// A SQLite error as the catalog reports it: a unique constraint is a conflict (the writer
/// retries), a busy or locked database is unavailable, anything else internal.
pub(crate) fn error(err: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    let wrapped = |err: &rusqlite::Error| sqlx::Error::Protocol(format!("SQLite: {err}"));
    match &err {
        rusqlite::Error::SqliteFailure(code, message)
            if code.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || code.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Error::Conflict(message.clone().unwrap_or_else(|| err.to_string()))
        }
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked
            ) =>
        {
            Error::Unavailable(wrapped(&err))
        }
        _ => Error::Internal(wrapped(&err)),
    }
}

// Decoders of the rows a new version's statements return, by the column names of
// `node_columns!()`, `version_returning!()` and `lock_columns!()`.

pub(crate) fn node(row: &Row<'_>) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        parent_id: row.get("parent_id")?,
        kind: row.get("kind")?,
        name: row.get("name")?,
        key: row.get("key")?,
        implicit: row.get("implicit")?,
        version_row: row.get("version_row")?,
        size: row.get("size")?,
        etag: row.get("etag")?,
        content_type: row.get("content_type")?,
        mtime: row.get("mtime")?,
        created_at: row.get("created_at")?,
        trashed_at: row.get("trashed_at")?,
        trash_root_id: row.get("trash_root_id")?,
    })
}

pub(crate) fn version(row: &Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        id: row.get("id")?,
        node_id: row.get("node_id")?,
        version_id: row.get("version_id")?,
        blob_id: row.get("blob_id")?,
        locator: row.get("locator")?,
        inline: row.get("inline")?,
        size: row.get("size")?,
        etag: row.get("etag")?,
        blake3: row.get("blake3")?,
        content_type: row.get("content_type")?,
        attributes: row.get("attributes")?,
        parts_count: row.get("parts_count")?,
        is_delete_marker: row.get("is_delete_marker")?,
        mtime: row.get("mtime")?,
        created_at: row.get("created_at")?,
        created_by: row.get("created_by")?,
    })
}

pub(crate) fn lock(row: &Row<'_>) -> rusqlite::Result<LockRow> {
    Ok(LockRow {
        token: row.get("token")?,
        account_id: row.get("account_id")?,
        key: row.get("key")?,
        depth_infinity: row.get("depth_infinity")?,
        exclusive: row.get("exclusive")?,
        owner_xml: row.get("owner_xml")?,
        principal_id: row.get("principal_id")?,
        timeout_at: row.get("timeout_at")?,
        created_at: row.get("created_at")?,
    })
}
