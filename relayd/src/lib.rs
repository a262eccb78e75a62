//! The relayd daemon: configuration (CLI and file), the HTTP API's server, and in
//! `bin/relayd.rs` the wiring of ng and HTTP serving, timers, the control plane and the
//! chosen backend.

pub mod caps;
pub mod capture_body;
pub mod config;
pub mod dtls_identity;
pub mod http_server;
pub mod notify;
pub mod recording;
pub mod store;
