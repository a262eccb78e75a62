//! Control plane of the media relay: the rtpengine-compatible ng protocol, SDP
//! rewriting, the call model that turns signalling into forwarding rules, and the HTTP
//! API. Everything here is sans-IO except `http` (a small blocking server).

pub mod addrpolicy;
pub mod bencode;
pub mod call;
pub mod dataplane;
pub mod engine;
pub mod http;
pub mod interface;
pub mod ng;
pub mod rewrite;
pub mod sdes;
pub mod sdp;
