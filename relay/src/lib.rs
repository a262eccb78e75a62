//! Data plane of the media relay: zero-copy RTP/RTCP views, the flow table with its
//! latching rules and RFC 3550 statistics (sans-IO), and the io_uring backend that moves
//! the bytes. `relayd` wires it to the control plane.

pub mod config;
pub mod dataplane;
pub mod flow;
pub mod mailbox;
pub mod packet;
pub mod srtp;
pub mod uring;
pub mod xdp;

#[cfg(test)]
mod test_support;
