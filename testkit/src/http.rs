//! Loopback static HTTP server (placeholder).
