-- Who a share is for: a link holder (token), one account (grantee_id), any signed-in
-- account, or anyone. S3 ACLs are expressed as shares with source 'acl', so setting an
-- ACL replaces exactly the shares an ACL made.
ALTER TABLE shares ADD COLUMN audience TEXT NOT NULL DEFAULT 'link';
ALTER TABLE shares ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
CREATE INDEX shares_account_node ON shares(account_id, node_id);
