//! Append-only schema migrations, one file per backend and version, embedded in the binary
//! and applied at start. A checksum of each applied file is kept: editing a migration
//! after it shipped is refused instead of silently diverging.

use sqlx::Connection;

use crate::{Backend, Catalog, Error, Result, now_nanos};

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sqlite: include_str!("../../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_version_listing",
        sqlite: include_str!("../../migrations/sqlite/0002_version_listing.sql"),
        postgres: include_str!("../../migrations/postgres/0002_version_listing.sql"),
    },
    Migration {
        version: 3,
        name: "0003_bucket_claims",
        sqlite: include_str!("../../migrations/sqlite/0003_bucket_claims.sql"),
        postgres: include_str!("../../migrations/postgres/0003_bucket_claims.sql"),
    },
    Migration {
        version: 4,
        name: "0004_share_audiences",
        sqlite: include_str!("../../migrations/sqlite/0004_share_audiences.sql"),
        postgres: include_str!("../../migrations/postgres/0004_share_audiences.sql"),
    },
    Migration {
        version: 5,
        name: "0005_app_password_lookup",
        sqlite: include_str!("../../migrations/sqlite/0005_app_password_lookup.sql"),
        postgres: include_str!("../../migrations/postgres/0005_app_password_lookup.sql"),
    },
    Migration {
        version: 6,
        name: "0006_inline_blobs",
        sqlite: include_str!("../../migrations/sqlite/0006_inline_blobs.sql"),
        postgres: include_str!("../../migrations/postgres/0006_inline_blobs.sql"),
    },
    Migration {
        version: 7,
        name: "0007_usage_shards",
        sqlite: include_str!("../../migrations/sqlite/0007_usage_shards.sql"),
        postgres: include_str!("../../migrations/postgres/0007_usage_shards.sql"),
    },
];

/// FNV-1a: a stable checksum without another dependency; it guards against accidents,
/// not adversaries.
fn checksum(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS portico_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum BIGINT NOT NULL, applied_at BIGINT NOT NULL)";

/// Arbitrary constant naming Portico's migration lock among PostgreSQL advisory locks.
const PG_LOCK_KEY: i64 = 0x706f_7274_6963_6f00;

/// Records an applied migration; a macro so one statement serves both drivers.
macro_rules! record {
    ($tx:expr, $migration:expr, $text:expr) => {
        sqlx::query("INSERT INTO portico_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind($migration.version)
            .bind($migration.name)
            .bind(checksum($text))
            .bind(now_nanos())
            .execute(&mut *$tx)
            .await?
    };
}

pub(crate) async fn run(catalog: &Catalog) -> Result<()> {
    match &catalog.backend {
        Backend::Sqlite { write, .. } => {
            // BEGIN IMMEDIATE serialises concurrent starters (e.g. `portico user add` while
            // the server starts) on SQLite's write lock.
            let mut held = write.acquire().await?;
            let conn = held.conn();
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::raw_sql(CREATE_TABLE).execute(&mut *tx).await?;
            let applied: Vec<(i64, i64)> =
                sqlx::query_as("SELECT version, checksum FROM portico_migrations")
                    .fetch_all(&mut *tx)
                    .await?;
            for migration in MIGRATIONS {
                if check_applied(&applied, migration, migration.sqlite)? {
                    continue;
                }
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "applying catalog migration"
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sqlite))
                    .execute(&mut *tx)
                    .await?;
                record!(tx, migration, migration.sqlite);
            }
            tx.commit().await?;
            catalog.sync_wal().await?;
        }
        Backend::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut *conn)
                .await?;
            let result = async {
                sqlx::raw_sql(CREATE_TABLE).execute(&mut *conn).await?;
                let applied: Vec<(i64, i64)> =
                    sqlx::query_as("SELECT version, checksum FROM portico_migrations")
                        .fetch_all(&mut *conn)
                        .await?;
                for migration in MIGRATIONS {
                    if check_applied(&applied, migration, migration.postgres)? {
                        continue;
                    }
                    tracing::info!(
                        version = migration.version,
                        name = migration.name,
                        "applying catalog migration"
                    );
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(migration.postgres))
                        .execute(&mut *tx)
                        .await?;
                    record!(tx, migration, migration.postgres);
                    tx.commit().await?;
                }
                Ok::<(), Error>(())
            }
            .await;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut *conn)
                .await?;
            result?;
        }
    }
    Ok(())
}

fn check_applied(applied: &[(i64, i64)], migration: &Migration, text: &str) -> Result<bool> {
    match applied
        .iter()
        .find(|(version, _)| *version == migration.version)
    {
        Some((_, sum)) if *sum == checksum(text) => Ok(true),
        Some(_) => Err(Error::MigrationChanged {
            version: migration.version,
            name: migration.name.to_owned(),
        }),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrations are append-only: every file on disk is embedded, in order, for both
    /// backends, and nothing else is.
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for backend in ["sqlite", "postgres"] {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/");
            let mut files: Vec<String> = std::fs::read_dir(format!("{dir}{backend}"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let embedded: Vec<String> = MIGRATIONS
                .iter()
                .map(|m| format!("{}.sql", m.name))
                .collect();
            assert_eq!(
                files, embedded,
                "{backend} migrations on disk and embedded differ"
            );
        }
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:04}_", migration.version))
            );
        }
    }
}
