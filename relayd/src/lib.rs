//! The relayd daemon: configuration (CLI and file), the HTTP API's server, and in
//! `bin/relayd.rs` the wiring of ng and HTTP serving, timers, the control plane and the
//! chosen backend.

pub mod config;
pub mod dtls_identity;
pub mod http_server;
pub mod store;
