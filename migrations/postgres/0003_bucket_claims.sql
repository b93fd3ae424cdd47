-- S3 bucket names are global, as in AWS, for requests that carry no account of their own
-- (anonymous public reads, CORS preflights): a name created with S3 CreateBucket is
-- claimed by its account. Authenticated requests still resolve buckets in their own tree.
CREATE TABLE bucket_claims (
    name            TEXT    PRIMARY KEY,
    account_id      BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL
);
