//! Not a check: measures what one small PUT's catalog work costs when SQLite runs in the
//! calling thread (`rusqlite`) against the way the catalog runs it today (sqlx: every
//! statement batch and every result row handed between the task and the connection's
//! thread). It measured the case for running a PUT's transaction on the writer thread
//! (`src/direct.rs`, `bench/FINDINGS.md`); sqlx's side is what every other write still does.
//!
//! `cargo test --release -p portico-metadata --test sqlite_in_thread -- --ignored --nocapture`
//!
//! Both sides run the same SQL on a fresh catalog built from `migrations/sqlite`: the probe
//! batch and the insert batch of `tx/put.rs` (locks, parent and node lookups, quota; node,
//! blob with a 4 KiB body, version, the node's current columns, usage, audit) and COMMIT,
//! one PUT after another (no group commit, no WAL flush beyond SQLite's own).

use std::time::Instant;

use futures::TryStreamExt;
use sqlx::{Connection, Executor};

const PUTS: usize = 3000;
const NODE_COLUMNS: &str = "id, account_id, parent_id, kind, name, key, implicit, version_row, size, etag, content_type, mtime, created_at, trashed_at, trash_root_id";

fn probe_statements() -> Vec<String> {
    vec![
        "SELECT token, account_id, key, depth_infinity, exclusive, owner_xml, principal_id, timeout_at, created_at FROM locks WHERE account_id = $1 AND timeout_at > $2 AND (key IN ($3, $4) OR (key > $5 AND key < $6)) ORDER BY key, created_at".into(),
        format!("SELECT {NODE_COLUMNS} FROM nodes WHERE account_id = $1 AND key = $7 AND trashed_at IS NULL"),
        format!("SELECT {NODE_COLUMNS} FROM nodes WHERE account_id = $1 AND key = $8 AND trashed_at IS NULL"),
        "SELECT quota_bytes IS NULL AS unlimited FROM accounts WHERE id = $1".into(),
    ]
}

fn insert_statements() -> Vec<String> {
    const NODE: &str =
        "(SELECT id FROM nodes WHERE account_id = $1 AND key = $4 AND trashed_at IS NULL)";
    vec![
        "INSERT INTO nodes (account_id, parent_id, kind, name, key, implicit, mtime, created_at) VALUES ($1, $2, 0, $3, $4, FALSE, $5, $5)".into(),
        "INSERT INTO blobs (locator, size, md5, blake3, refcount, created_at, data) VALUES ($6, 4096, $7, $8, 1, $5, $9)".into(),
        format!("INSERT INTO versions (node_id, version_id, blob_id, size, etag, blake3, content_type, attributes, mtime, created_at, created_by, parts_count) VALUES ({NODE}, $10, (SELECT id FROM blobs WHERE locator = $6), 4096, $7, $8, NULL, '{{}}', $5, $5, $1, NULL) RETURNING id, node_id, version_id, size, etag"),
        format!("UPDATE nodes SET (version_row, size, etag, content_type, mtime) = (SELECT id, size, etag, content_type, mtime FROM versions WHERE version_id = $10) WHERE id = {NODE} RETURNING {NODE_COLUMNS}"),
        "UPDATE accounts SET used_bytes = used_bytes + 4096 WHERE id = $1".into(),
        "INSERT INTO audit_log (at, account_id, actor_id, protocol, action, key, detail, request_id) VALUES ($5, $1, $1, 's3', 'put', $4, NULL, $11)".into(),
    ]
}

/// The values of PUT `i`, by placeholder number.
fn values(i: usize, body: &[u8]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value::{Blob, Integer, Text};
    let key = format!("b/small/{i:08}");
    let hash = format!("{:064x}", (i as u128).wrapping_mul(0x2545_f491_4f6c_dd1d));
    vec![
        Integer(1),              // $1 account
        Integer(2),              // $2 now / parent
        Text(format!("{i:08}")), // $3 name
        Text(key.clone()),       // $4 key
        Integer(i as i64),       // $5 time
        Text(format!(
            "{:032x}",
            (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )), // $6 locator
        Text(hash[..32].to_owned()), // $7 md5
        Text(hash),              // $8 blake3
        Blob(body.to_vec()),     // $9 body
        Text(format!("{:032x}", (0x0190u128 << 112) | i as u128)), // $10 version id
        Text("request".into()),  // $11
    ]
}

/// The probe's values differ in meaning: ($1 account, $2 now, $3..$6 lock keys, $7 parent, $8 key).
fn probe_values(i: usize) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value::{Integer, Text};
    let key = format!("b/small/{i:08}");
    vec![
        Integer(1),
        Integer(5),
        Text(key.clone()),
        Text("b/".into()),
        Text(format!("{key}/")),
        Text(format!("{key}0")),
        Text("b/".into()),
        Text(key),
    ]
}

fn fresh_catalog(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        conn.execute_batch(&std::fs::read_to_string(file).unwrap())
            .unwrap();
    }
    conn.execute_batch(
        "INSERT INTO accounts (id, name, password_hash, owner_id, created_at) VALUES (1, 'a', 'h', 'o', 0);
         INSERT INTO nodes (account_id, parent_id, kind, name, key, implicit, mtime, created_at) VALUES (1, NULL, 1, 'b', 'b/', FALSE, 0, 0);",
    )
    .unwrap();
}

fn run_statement(conn: &rusqlite::Connection, sql: &str, values: &[rusqlite::types::Value]) {
    let mut statement = conn.prepare_cached(sql).unwrap();
    for index in 1..=statement.parameter_count() {
        let name = statement.parameter_name(index).unwrap();
        let number: usize = name[1..].parse().unwrap();
        statement
            .raw_bind_parameter(index, &values[number - 1])
            .unwrap();
    }
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next().unwrap() {
        for column in 0..row.as_ref().column_count() {
            let _: rusqlite::types::Value = row.get(column).unwrap();
        }
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

fn report(what: &str, started: Instant, cpu_before: f64) {
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{what}: {:.0} µs per PUT, process CPU {:.0} µs per PUT",
        wall * 1e6 / PUTS as f64,
        cpu * 1e6 / PUTS as f64
    );
}

#[tokio::test]
#[ignore = "prints timings; not a check"]
async fn one_put_in_thread_against_sqlx() {
    let dir = tempfile::tempdir().unwrap();
    let body = vec![7u8; 4096];
    let (probe, insert) = (probe_statements(), insert_statements());

    let path = dir.path().join("direct.db");
    fresh_catalog(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
        .unwrap();
    let (started, cpu) = (Instant::now(), cpu_seconds());
    for i in 0..PUTS {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let values_of_probe = probe_values(i);
        for sql in &probe {
            run_statement(&conn, sql, &values_of_probe);
        }
        let values = values(i, &body);
        for sql in &insert {
            run_statement(&conn, sql, &values);
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    report("SQLite in this thread (rusqlite)", started, cpu);
    drop(conn);

    let path = dir.path().join("sqlx.db");
    fresh_catalog(&path);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
        .await
        .unwrap();
    let probe = format!("BEGIN IMMEDIATE;\n{};", probe.join(";\n"));
    let insert = format!("{};\nCOMMIT;", insert.join(";\n"));
    let (started, cpu) = (Instant::now(), cpu_seconds());
    for i in 0..PUTS {
        for (sql, values) in [(&probe, probe_values(i)), (&insert, values(i, &body))] {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for value in values {
                query = match value {
                    rusqlite::types::Value::Integer(v) => query.bind(v),
                    rusqlite::types::Value::Text(v) => query.bind(v),
                    rusqlite::types::Value::Blob(v) => query.bind(v),
                    other => panic!("unexpected {other:?}"),
                };
            }
            let mut items = conn.fetch_many(query);
            while items.try_next().await.unwrap().is_some() {}
        }
    }
    report("SQLite through sqlx's connection thread", started, cpu);
    let versions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM versions WHERE node_id IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, PUTS as i64, "every PUT wrote its version");
}
