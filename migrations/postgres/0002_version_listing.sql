-- S3 ListObjectVersions walks every node of a key range, live or trashed (a deleted
-- object's history stays with its trashed node): index all rows by key, not only live ones.
CREATE INDEX nodes_all_key ON nodes(account_id, key);
