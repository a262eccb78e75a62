#![no_main]
use libfuzzer_sys::fuzz_target;
use relay_core::packet::{is_rtcp, RtcpCompound, RtpPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::new_checked(data) {
        assert!(p.header_len() <= data.len());
        let _ = (p.sequence(), p.timestamp(), p.ssrc(), p.payload().len());
    }
    if let Ok(c) = RtcpCompound::new_checked(data) {
        assert!(c.count() >= 1);
        let _ = c.sender_ssrc();
    }
    let _ = is_rtcp(data);
});
