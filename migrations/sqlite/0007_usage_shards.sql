-- Usage of accounts without a quota, spread over counter rows so that concurrent writers
-- of one account do not queue on its row (PostgreSQL locks an updated row until commit).
-- An account's usage is accounts.used_bytes plus the sum of its shards. SQLite has one
-- writer and never fills this table; it exists so both catalogs have one schema.
CREATE TABLE usage_shards (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    shard       INTEGER NOT NULL,
    used        INTEGER NOT NULL,
    PRIMARY KEY (account_id, shard)
);
