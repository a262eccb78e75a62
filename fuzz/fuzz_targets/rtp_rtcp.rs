#![no_main]
use libfuzzer_sys::fuzz_target;
use relay_core::flow::dtmf::DtmfState;
use relay_core::packet::{is_rtcp, RtcpCompound, RtpPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::new_checked(data) {
        assert!(p.header_len() <= data.len());
        let _ = (p.sequence(), p.timestamp(), p.ssrc(), p.payload().len());
        let _ = DtmfState::default().on_packet(p.timestamp(), p.payload());
    }
    if let Ok(c) = RtcpCompound::new_checked(data) {
        assert!(c.count() >= 1);
        let _ = c.sender_ssrc();
        assert_eq!(c.packets().count(), c.count());
        let r = c.reports();
        if let Some(v) = r.voip {
            let _ = (v.mos_lq, v.r_factor);
        }
    }
    let _ = is_rtcp(data);
});
