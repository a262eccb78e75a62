//! The pure data path of the media relay: zero-copy Ethernet/IP/UDP and RTP/RTCP views, SRTP, and the flow
//! table with its latching rules and RFC 3550 statistics. Sans-IO: byte slices in, verdicts
//! out, time passed in explicitly. The backends in `backend` move the bytes.

pub mod dtls;
pub mod flow;
pub mod packet;
pub mod srtp;
pub mod wire;

#[cfg(test)]
mod test_support;
