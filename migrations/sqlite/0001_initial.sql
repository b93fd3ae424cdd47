-- Portico catalog, SQLite flavour. Times are nanoseconds since the Unix epoch (INTEGER).
-- Text keys compare with SQLite's default BINARY collation, i.e. UTF-8 byte order, which is
-- S3's listing order.

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    email           TEXT,
    password_hash   TEXT    NOT NULL,
    is_admin        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    quota_bytes     INTEGER,
    used_bytes      INTEGER NOT NULL DEFAULT 0,
    -- Stable S3 canonical owner id (64 hex digits).
    owner_id        TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    -- Bumped on every credential change so caches of verified passwords expire at once.
    credential_epoch INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE app_passwords (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    label           TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
);
CREATE INDEX app_passwords_account ON app_passwords(account_id);

CREATE TABLE access_keys (
    access_key_id   TEXT    PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- nonce || ciphertext of the secret, sealed under the server key.
    secret_sealed   BLOB    NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX access_keys_account ON access_keys(account_id);

CREATE TABLE sessions (
    token_hash      TEXT    PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);

CREATE TABLE blobs (
    id              INTEGER PRIMARY KEY,
    locator         TEXT    NOT NULL UNIQUE,
    size            INTEGER NOT NULL,
    md5             TEXT    NOT NULL,
    blake3          TEXT    NOT NULL,
    -- Versions, multipart parts and derivatives that point at this blob.
    refcount        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX blobs_blake3 ON blobs(blake3);
-- Blobs whose last reference went away: the GC job deletes the file, then the row.
CREATE INDEX blobs_unreferenced ON blobs(refcount) WHERE refcount = 0;

-- One row per folder or file. `key` is the full path from the account root, folders end
-- in '/', so byte order of keys is S3 listing order and a folder marker `a/` sorts where
-- S3 puts it. Live rows have trashed_at NULL; a trashed subtree keeps its keys (for
-- restore) and is tied together by trash_root_id.
CREATE TABLE nodes (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    parent_id       INTEGER REFERENCES nodes(id),
    kind            INTEGER NOT NULL,            -- 0 file, 1 folder
    name            TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    -- Folders made only because S3 wrote a key below them; they vanish with their last child.
    implicit        BOOLEAN NOT NULL DEFAULT FALSE,
    -- Current content (files and folder markers); NULL version_row for empty folders.
    version_row     INTEGER,
    size            INTEGER NOT NULL DEFAULT 0,
    etag            TEXT,
    content_type    TEXT,
    mtime           INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    trashed_at      INTEGER,
    trash_root_id   INTEGER,
    trashed_by      INTEGER
);
CREATE UNIQUE INDEX nodes_live_key ON nodes(account_id, key) WHERE trashed_at IS NULL;
CREATE INDEX nodes_live_children ON nodes(parent_id, key) WHERE trashed_at IS NULL;
CREATE INDEX nodes_trash ON nodes(account_id, trash_root_id) WHERE trashed_at IS NOT NULL;

-- Every version of every file, across protocols: S3 versionId, WebDAV history, REST API.
CREATE TABLE versions (
    id              INTEGER PRIMARY KEY,
    node_id         INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    version_id      TEXT    NOT NULL UNIQUE,
    -- NULL for empty content, delete markers and multipart objects (see version_parts).
    blob_id         INTEGER REFERENCES blobs(id),
    size            INTEGER NOT NULL,
    etag            TEXT    NOT NULL,
    blake3          TEXT,
    content_type    TEXT,
    -- JSON: user metadata, Content-* headers, checksums, tags.
    attributes      TEXT    NOT NULL DEFAULT '{}',
    parts_count     INTEGER,
    is_delete_marker BOOLEAN NOT NULL DEFAULT FALSE,
    mtime           INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    created_by      INTEGER
);
CREATE INDEX versions_node ON versions(node_id, id);

-- The blobs of a multipart object, in order: completing an upload is this commit, not a copy.
CREATE TABLE version_parts (
    version_row     INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    part_index      INTEGER NOT NULL,
    blob_id         INTEGER REFERENCES blobs(id),
    size            INTEGER NOT NULL,
    etag            TEXT    NOT NULL,
    PRIMARY KEY (version_row, part_index)
);

-- WebDAV dead properties, any namespace; value is the property element's inner XML.
CREATE TABLE dead_props (
    node_id         INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    namespace       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    value_xml       TEXT    NOT NULL,
    PRIMARY KEY (node_id, namespace, name)
);

-- WebDAV locks, honoured by every protocol and every gateway node.
CREATE TABLE locks (
    token           TEXT    PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key             TEXT    NOT NULL,
    depth_infinity  BOOLEAN NOT NULL,
    exclusive       BOOLEAN NOT NULL,
    owner_xml       TEXT,
    principal_id    INTEGER,
    timeout_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX locks_key ON locks(account_id, key);

CREATE TABLE multipart_uploads (
    upload_id       TEXT    PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    key             TEXT    NOT NULL,
    attributes      TEXT    NOT NULL DEFAULT '{}',
    initiated_by    INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX multipart_uploads_key ON multipart_uploads(account_id, key, created_at);

CREATE TABLE multipart_parts (
    upload_id       TEXT    NOT NULL REFERENCES multipart_uploads(upload_id) ON DELETE CASCADE,
    part_number     INTEGER NOT NULL,
    blob_id         INTEGER REFERENCES blobs(id),
    size            INTEGER NOT NULL,
    etag            TEXT    NOT NULL,
    checksums       TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Per top-level folder (S3 bucket) settings: versioning, CORS, tags, ACL.
CREATE TABLE bucket_settings (
    node_id         INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    settings        TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE shares (
    id              INTEGER PRIMARY KEY,
    token           TEXT    UNIQUE,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    node_id         INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    grantee_id      INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    permission      TEXT    NOT NULL,            -- read | write | upload
    password_hash   TEXT,
    expires_at      INTEGER,
    max_downloads   INTEGER,
    download_count  INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE INDEX shares_node ON shares(node_id);
CREATE INDEX shares_grantee ON shares(grantee_id);

-- Thumbnails, posters and HLS renditions made by the transcoder.
CREATE TABLE derivatives (
    id              INTEGER PRIMARY KEY,
    version_row     INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    blob_id         INTEGER REFERENCES blobs(id),
    attributes      TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    UNIQUE (version_row, kind, name)
);

-- The job queue: claimed atomically, heartbeated, retried with backoff, dead-lettered.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    payload_version INTEGER NOT NULL DEFAULT 1,
    state           TEXT    NOT NULL DEFAULT 'queued',  -- queued | running | done | dead
    dedup_key       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 5,
    run_at          INTEGER NOT NULL,
    claimed_by      TEXT,
    heartbeat_at    INTEGER,
    progress        TEXT,
    last_error      TEXT,
    request_id      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs(state, run_at);
CREATE UNIQUE INDEX jobs_dedup ON jobs(kind, dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running');

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    account_id      INTEGER,
    actor_id        INTEGER,
    protocol        TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    key             TEXT,
    detail          TEXT,
    request_id      TEXT
);
CREATE INDEX audit_log_account ON audit_log(account_id, id);
