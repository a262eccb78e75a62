//! The in-memory relay: the real control plane ([`control::engine::Engine`] behind
//! [`control::ng::NgServer`]) and the real data path ([`relay_core::flow::FlowTable`])
//! joined by a simulated network under simulated time.
//!
//! Nothing here opens a socket or reads a wall clock, so a test drives a whole call
//! (offer, answer, media both ways, re-INVITE, hold, re-key, delete) in milliseconds and
//! gets the same result every run. The network can lose, reorder and duplicate datagrams,
//! rebind an endpoint behind a NAT, and deliver datagrams from forged sources.
//!
//! - [`clock`]: the simulated millisecond clock both the flow table and `Engine::tick` read.
//! - [`dataplane`]: [`MemDataPlane`], a `DataPlane` that owns one real flow table.
//! - [`net`]: the network: datagrams in flight, impairments, NAT bindings.
//! - [`relay`]: [`Relay`], which ties them together and runs the event loop.
//! - [`endpoint`]: a SIP user agent's media side for tests: SDP, RTP, SDES-SRTP.
//! - [`webrtc`]: a browser's media side: ICE checks, DTLS as client or server, DTLS-SRTP.

pub mod clock;
pub mod dataplane;
pub mod endpoint;
pub mod net;
pub mod relay;
pub mod webrtc;

pub use clock::SimClock;
pub use dataplane::{Delivery, MemDataPlane};
pub use endpoint::Endpoint;
pub use net::{Datagram, Impairment, Network};
pub use relay::Relay;
pub use webrtc::WebRtcPeer;
