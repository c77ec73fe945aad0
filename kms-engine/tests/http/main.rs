//! The AWS-KMS-compatible HTTPS endpoint end to end: raw HTTP/1.1 for the
//! wire protocol and limits, boto3 and the aws CLI for what AWS users run.
//! Run one area with `cargo test -p kms-engine --test http limits::`.

mod common;

mod aws_clients;
mod limits;
mod sigv4;
mod wire;
