-- Small bodies live in the blob row itself, written in the same transaction as the
-- version that uses them: no file, no inode, no fsync of their own. NULL: the bytes are
-- the file the locator names.
ALTER TABLE blobs ADD COLUMN data BYTEA;
