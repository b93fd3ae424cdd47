//! In-process protocol tests: the whole gateway on 127.0.0.1:0, driven by a real S3 SDK
//! (aws-sdk-s3) and raw HTTP for WebDAV, on SQLite and on PostgreSQL.

mod clients;
mod common;
mod cross;
mod dav;
mod s3;
mod server;
