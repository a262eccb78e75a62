//! The I/O backends: they bind relay sockets, receive datagrams, hand them to the core's
//! flow table and send what it returns. `uring`: io_uring sockets; `xdp`: an XDP program
//! steering known flows to AF_XDP workers, with the io_uring path for everything else.

pub mod dataplane;
pub mod mailbox;
pub mod stats;
pub mod sys;
pub mod uring;
pub mod worker;
pub mod xdp;
