//! What the control plane asks of a data plane and what it reads back: the forwarding
//! rule of one relay socket, its SRTP keys and their suites, its counters, the media
//! address policy, and the `DataPlane` trait every backend implements. The bottom layer:
//! it depends on nothing of ours.

pub mod addrpolicy;
pub mod dataplane;
#[cfg(feature = "testing")]
mod memory;
pub mod quality;
pub mod state;
pub mod suite;
pub mod tap;
pub mod webrtc;
