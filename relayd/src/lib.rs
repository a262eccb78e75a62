//! The relayd daemon: configuration (CLI and file), and in `bin/relayd.rs` the wiring of
//! ng and HTTP serving, timers, the control plane and the chosen backend.

pub mod config;
