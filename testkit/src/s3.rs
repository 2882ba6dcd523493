//! In-process S3-compatible server (placeholder).
