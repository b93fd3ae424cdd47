-- App passwords are found by the hash of the whole token (Bearer carries no user name).
-- Revoked ones are deleted; the hash is of a 238-bit random token, so a plain digest is
-- enough and lookups stay one indexed query.
CREATE UNIQUE INDEX app_passwords_hash ON app_passwords(password_hash);
