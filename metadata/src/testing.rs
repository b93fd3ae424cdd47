//! Fresh catalogs for tests, on every backend the test run asks for.
//!
//! `PORTICO_TEST_DATABASE_URL` names a PostgreSQL server (any database the user may
//! `CREATE DATABASE` from); each test gets a new database on it. `scripts/test` starts a
//! private server and sets it. Leaving it unset fails the PostgreSQL half loudly instead of
//! skipping it; `PORTICO_TEST_BACKENDS=sqlite` opts out explicitly.

use std::path::PathBuf;

use crate::{BackendKind, Catalog, ConnectOptions};

/// A catalog on a fresh, empty database, and what keeps it alive.
pub struct TestCatalog {
    pub kind: BackendKind,
    pub url: String,
    pub catalog: Catalog,
    pub guard: Option<TempDirGuard>,
}

/// Removes a test's SQLite directory when the test ends.
pub struct TempDirGuard(PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The backends this test run covers, from `PORTICO_TEST_BACKENDS` (default: both).
pub fn backends() -> Vec<BackendKind> {
    let wanted =
        std::env::var("PORTICO_TEST_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    wanted
        .split(',')
        .map(|name| match name.trim() {
            "sqlite" => BackendKind::Sqlite,
            "postgres" => BackendKind::Postgres,
            other => panic!("PORTICO_TEST_BACKENDS: unknown backend {other:?}"),
        })
        .collect()
}

/// A URL for a new, empty database of `kind` (created here for PostgreSQL), plus the
/// guard that removes a SQLite file afterwards.
pub async fn fresh_database_url(kind: BackendKind) -> (String, Option<TempDirGuard>) {
    let unique = format!(
        "portico_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    match kind {
        BackendKind::Sqlite => {
            let dir = std::env::temp_dir().join(&unique);
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("catalog.db").display());
            (url, Some(TempDirGuard(dir)))
        }
        BackendKind::Postgres => {
            let admin = std::env::var("PORTICO_TEST_DATABASE_URL").unwrap_or_else(|_| {
                panic!(
                    "PostgreSQL catalog tests need PORTICO_TEST_DATABASE_URL (scripts/test starts a server and sets it); \
                     set PORTICO_TEST_BACKENDS=sqlite to run only the SQLite half"
                )
            });
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL");
            let unique = format!("{unique}_{}", random_suffix());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {unique}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let base = match admin.rfind('/') {
                Some(slash)
                    if admin[..slash].contains("://") && slash > admin.find("://").unwrap() + 2 =>
                {
                    &admin[..slash]
                }
                _ => admin.as_str(),
            };
            let query = admin.find('?').map(|q| &admin[q..]).unwrap_or("");
            (format!("{base}/{unique}{query}"), None)
        }
    }
}

/// Opens a migrated catalog on a fresh database.
pub async fn fresh_catalog(kind: BackendKind) -> TestCatalog {
    let (url, guard) = fresh_database_url(kind).await;
    let catalog = Catalog::connect(
        &url,
        &ConnectOptions {
            max_connections: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    TestCatalog {
        kind,
        url,
        catalog,
        guard,
    }
}

fn random_suffix() -> String {
    let nanos = crate::now_nanos();
    format!("{:x}", nanos & 0xffff_ffff)
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
