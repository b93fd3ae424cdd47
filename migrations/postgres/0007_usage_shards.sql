-- Usage of accounts without a quota, spread over counter rows so that concurrent writers
-- of one account do not queue on its row (an updated row stays locked until commit, and
-- a commit waits for its WAL flush). An account's usage is accounts.used_bytes plus the
-- sum of its shards; a writer adds to the shard of its connection.
CREATE TABLE usage_shards (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    shard       INTEGER NOT NULL,
    used        BIGINT NOT NULL,
    PRIMARY KEY (account_id, shard)
);
