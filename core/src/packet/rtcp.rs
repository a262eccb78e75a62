//! RTCP compound packets (RFC 3550 §6.1), walked safely with the checks of appendix A.2.

use super::Malformed;

/// A validated RTCP compound packet: every sub-packet is version 2, has an RTCP packet
/// type, and the length fields add up exactly to the datagram.
#[derive(Debug, Clone, Copy)]
pub struct RtcpCompound<T: AsRef<[u8]>> {
    buf: T,
    count: usize,
}

impl<T: AsRef<[u8]>> RtcpCompound<T> {
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        if b.len() < 4 {
            return Err(Malformed::TooShort);
        }
        let mut off = 0;
        let mut count = 0;
        while off < b.len() {
            if b.len() - off < 4 {
                return Err(Malformed::BadRtcpLength);
            }
            let h = &b[off..];
            if h[0] >> 6 != 2 {
                return Err(Malformed::BadVersion);
            }
            if !(192..=223).contains(&h[1]) {
                return Err(Malformed::BadRtcpType);
            }
            let len = 4 * (u16::from_be_bytes([h[2], h[3]]) as usize + 1);
            if len > b.len() - off {
                return Err(Malformed::BadRtcpLength);
            }
            // padding is only allowed on the last packet
            if h[0] & 0x20 != 0 && off + len != b.len() {
                return Err(Malformed::BadPadding);
            }
            off += len;
            count += 1;
        }
        Ok(RtcpCompound { buf, count })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn first_type(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// SSRC of the sender of the first packet (SR/RR).
    pub fn sender_ssrc(&self) -> Option<u32> {
        let b = self.buf.as_ref();
        (b.len() >= 8).then(|| u32::from_be_bytes([b[4], b[5], b[6], b[7]]))
    }

    /// The sub-packets: (packet type, the 5-bit count field, the packet's bytes without
    /// padding). The walk repeats [`new_checked`](Self::new_checked)'s, so it never reads
    /// past the datagram; a padding count larger than its packet leaves an empty body.
    pub fn packets(&self) -> impl Iterator<Item = (u8, u8, &[u8])> + '_ {
        let b = self.buf.as_ref();
        let mut off = 0;
        std::iter::from_fn(move || {
            let h = b.get(off..off + 4)?;
            let len = (4 * (u16::from_be_bytes([h[2], h[3]]) as usize + 1)).min(b.len() - off);
            let p = &b[off..off + len];
            off += len;
            let pad = if h[0] & 0x20 != 0 { p[len - 1] as usize } else { 0 };
            let body = if pad <= len - 4 { &p[..len - pad] } else { &p[..0] };
            Some((h[1], h[0] & 0x1f, body))
        })
    }

    /// What the compound says about call quality (see [`RtcpReports`]); the rest of it
    /// (SDES, BYE, APP, feedback) is forwarded unread.
    pub fn reports(&self) -> RtcpReports {
        let mut r = RtcpReports { sender_ssrc: self.sender_ssrc(), ..Default::default() };
        for (pt, count, p) in self.packets() {
            match pt {
                PT_SR if p.len() >= 28 => {
                    r.read_any = true;
                    if r.sr_ntp_middle.is_none() {
                        r.sr_ntp_middle = Some(be32(&p[10..14]));
                    }
                    r.first_block(&p[28..], count);
                }
                PT_RR if p.len() >= 8 => {
                    r.read_any = true;
                    r.first_block(&p[8..], count);
                }
                PT_XR if p.len() >= 8 => {
                    r.read_any = true;
                    let mut blocks = &p[8..];
                    while blocks.len() >= 4 {
                        let n = 4 + 4 * u16::from_be_bytes([blocks[2], blocks[3]]) as usize;
                        let Some(block) = blocks.get(..n) else { break };
                        if block[0] == XR_VOIP_METRICS && r.voip.is_none() {
                            r.voip = VoipMetricsBlock::parse(block);
                        }
                        blocks = &blocks[n..];
                    }
                }
                _ => {}
            }
        }
        r
    }
}

const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_XR: u8 = 207;
/// RFC 3611 §4.7 block type.
const XR_VOIP_METRICS: u8 = 7;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The quality-related content of one RTCP compound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpReports {
    pub sender_ssrc: Option<u32>,
    /// An SR, RR or XR was there (read, even when it carried no block).
    pub read_any: bool,
    /// The first SR's NTP timestamp, its middle 32 bits: what a receiver echoes as LSR.
    pub sr_ntp_middle: Option<u32>,
    /// The first reception report block of the first SR or RR that has one. The relay
    /// forwards one stream per direction of a leg, so that is the one reported on.
    pub block: Option<ReportBlock>,
    /// The first XR VoIP metrics block.
    pub voip: Option<VoipMetricsBlock>,
}

impl RtcpReports {
    fn first_block(&mut self, blocks: &[u8], count: u8) {
        if self.block.is_none() && count > 0 && blocks.len() >= 24 {
            self.block = Some(ReportBlock::parse(&blocks[..24]));
        }
    }
}

/// RFC 3550 §6.4.1 reception report block (24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Loss since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, sign-extended from 24 bits.
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the source (0: none).
    pub lsr: u32,
    /// Delay since that SR was received, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> ReportBlock {
        // 24-bit two's complement, sign-extended
        let lost = (i32::from_be_bytes([b[5], b[6], b[7], 0])) >> 8;
        ReportBlock {
            ssrc: be32(&b[0..4]),
            fraction_lost: b[4],
            cumulative_lost: lost,
            highest_seq: be32(&b[8..12]),
            jitter: be32(&b[12..16]),
            lsr: be32(&b[16..20]),
            dlsr: be32(&b[20..24]),
        }
    }
}

/// RFC 3611 §4.7 VoIP metrics report block (36 bytes), the fields the relay reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoipMetricsBlock {
    pub ssrc: u32,
    /// In 1/256.
    pub loss_rate: u8,
    /// In 1/256.
    pub discard_rate: u8,
    /// Milliseconds.
    pub round_trip_delay: u16,
    /// Milliseconds.
    pub end_system_delay: u16,
    /// 0..=100; 127: unavailable.
    pub r_factor: u8,
    /// MOS times 10; 127: unavailable.
    pub mos_lq: u8,
    pub mos_cq: u8,
}

impl VoipMetricsBlock {
    /// The block with its 4-byte header; None unless its length is the 8 words §4.7 gives.
    fn parse(b: &[u8]) -> Option<VoipMetricsBlock> {
        if b.len() != 36 {
            return None;
        }
        Some(VoipMetricsBlock {
            ssrc: be32(&b[4..8]),
            loss_rate: b[8],
            discard_rate: b[9],
            round_trip_delay: u16::from_be_bytes([b[16], b[17]]),
            end_system_delay: u16::from_be_bytes([b[18], b[19]]),
            r_factor: b[24],
            mos_lq: b[26],
            mos_cq: b[27],
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // RR with no report blocks (8 bytes) + SDES with one CNAME chunk (12 bytes)
    const RR_SDES: [u8; 20] = [
        0x80, 201, 0, 1, 0, 0, 0, 7, // RR, length 1 word, ssrc 7
        0x81, 202, 0, 2, 0, 0, 0, 7, 1, 1, b'x', 0, // SDES, 1 chunk, CNAME "x", end
    ];

    #[test]
    fn compound_walk() {
        let c = RtcpCompound::new_checked(&RR_SDES[..]).unwrap();
        assert_eq!(c.count(), 2);
        assert_eq!(c.first_type(), 201);
        assert_eq!(c.sender_ssrc(), Some(7));
        assert!(super::super::is_rtcp(&RR_SDES));
    }

    /// An SR compound as a SIP phone sends it (SR with one report block, then SDES CNAME),
    /// followed by an RR packet: sender 0x2c6f0a11 at NTP 0xe8b4_5a3c.8312_6e97, reporting
    /// on 0x5ee1_7a01: 2/256 lost, 7 in all, jitter 41, LSR 0x5a3b_f0a4, DLSR 1.25 s.
    pub const SR_RR: [u8; 76] = [
        0x81, 200, 0x00, 0x0c, 0x2c, 0x6f, 0x0a, 0x11, // SR, RC=1, 13 words, SSRC
        0xe8, 0xb4, 0x5a, 0x3c, 0x83, 0x12, 0x6e, 0x97, // NTP timestamp
        0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0x01, 0xf4, // RTP timestamp 100000, 500 packets
        0x00, 0x01, 0x38, 0x80, // 80000 octets
        0x5e, 0xe1, 0x7a, 0x01, 0x02, 0x00, 0x00, 0x07, // block: SSRC, fraction 2, cumulative 7
        0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x29, // highest seq 0x1234, jitter 41
        0x5a, 0x3b, 0xf0, 0xa4, 0x00, 0x01, 0x40, 0x00, // LSR, DLSR 1.25 s
        0x81, 202, 0x00, 0x03, 0x2c, 0x6f, 0x0a, 0x11, // SDES, 1 chunk
        0x01, 0x02, b'a', b'b', 0x00, 0x00, 0x00, 0x00, // CNAME "ab", end, pad to a word
        0x80, 201, 0x00, 0x01, 0x2c, 0x6f, 0x0a, 0x11, // RR with no block
    ];

    /// RR with one block whose cumulative loss is negative (duplicates), then an XR with a
    /// VoIP metrics block (RFC 3611 §4.7): loss 12/256, discard 3/256, RTD 120 ms, end
    /// system delay 40 ms, R 85, MOS-LQ 4.2, MOS-CQ unavailable (127).
    pub const RR_XR: [u8; 76] = [
        0x81, 201, 0x00, 0x07, 0x00, 0x00, 0x00, 0x09, // RR, RC=1, SSRC 9
        0x00, 0x00, 0x00, 0x05, 0x00, 0xff, 0xff, 0xfe, // block: SSRC 5, fraction 0, cumulative -2
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0xa0, // highest seq 16, jitter 160
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // no SR seen yet
        0x80, 207, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x09, // XR, 11 words, SSRC 9
        7, 0, 0x00, 0x08, 0x00, 0x00, 0x00, 0x05, // VoIP metrics, 8 words, of SSRC 5
        12, 3, 0, 0, 0x00, 0x00, 0x00, 0x00, // loss, discard, burst/gap density, durations
        0x00, 120, 0x00, 40, 0x7f, 0x7f, 0x7f, 0x7f, // RTD, ESD, signal/noise/RERL/Gmin
        85, 127, 42, 127, 0x00, 0x00, 0x00, 0x3c, // R, ext R, MOS-LQ, MOS-CQ, RX config, JB nominal
        0x00, 0x78, 0x00, 0xc8, // JB max, JB abs max
    ];

    #[test]
    fn sr_and_rr_are_read() {
        let c = RtcpCompound::new_checked(&SR_RR[..]).unwrap();
        assert_eq!(c.count(), 3);
        let types: Vec<u8> = c.packets().map(|(t, _, _)| t).collect();
        assert_eq!(types, [200, 202, 201]);
        let r = c.reports();
        assert!(r.read_any);
        assert_eq!(r.sender_ssrc, Some(0x2c6f_0a11));
        assert_eq!(r.sr_ntp_middle, Some(0x5a3c_8312));
        assert_eq!(
            r.block,
            Some(ReportBlock {
                ssrc: 0x5ee1_7a01,
                fraction_lost: 2,
                cumulative_lost: 7,
                highest_seq: 0x1234,
                jitter: 41,
                lsr: 0x5a3b_f0a4,
                dlsr: 0x0001_4000,
            })
        );
        assert_eq!(r.voip, None);
    }

    #[test]
    fn xr_voip_metrics_and_negative_loss() {
        let c = RtcpCompound::new_checked(&RR_XR[..]).unwrap();
        let r = c.reports();
        assert_eq!(r.sr_ntp_middle, None);
        let b = r.block.unwrap();
        assert_eq!((b.ssrc, b.fraction_lost, b.cumulative_lost, b.jitter, b.lsr), (5, 0, -2, 160, 0));
        assert_eq!(
            r.voip,
            Some(VoipMetricsBlock {
                ssrc: 5,
                loss_rate: 12,
                discard_rate: 3,
                round_trip_delay: 120,
                end_system_delay: 40,
                r_factor: 85,
                mos_lq: 42,
                mos_cq: 127,
            })
        );
        // an XR block of another length is skipped, not misread
        let mut b = RR_XR;
        b[43] = 7;
        let r = RtcpCompound::new_checked(&b[..]).unwrap().reports();
        assert_eq!(r.voip, None);
    }

    #[test]
    fn short_or_lying_bodies_read_nothing_and_never_panic() {
        // SR claiming one block but too short for it; RR with RC=1 and no block
        let sr = [0x81, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6];
        let r = RtcpCompound::new_checked(&sr[..]).unwrap().reports();
        assert_eq!((r.sr_ntp_middle, r.block), (Some(0x0002_0000), None));
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(RtcpCompound::new_checked(&rr[..]).unwrap().reports().block, None);
        // padding larger than the packet
        let padded = [0xa0, 201, 0, 1, 0, 0, 0, 0xff];
        let c = RtcpCompound::new_checked(&padded[..]).unwrap();
        assert_eq!(c.packets().next().map(|(_, _, b)| b.len()), Some(0));
        assert!(!c.reports().read_any);
        // an XR whose block length runs past the packet
        let xr = [0x80, 207, 0, 2, 0, 0, 0, 1, 7, 0, 0, 8];
        assert_eq!(RtcpCompound::new_checked(&xr[..]).unwrap().reports().voip, None);
        // every prefix and every single-byte change of the samples
        for sample in [&SR_RR[..], &RR_XR[..]] {
            for n in 0..sample.len() {
                if let Ok(c) = RtcpCompound::new_checked(&sample[..n]) {
                    let _ = c.reports();
                }
                for v in [0u8, 0x20, 0x7f, 0xff] {
                    let mut b = sample.to_vec();
                    b[n] = v;
                    if let Ok(c) = RtcpCompound::new_checked(&b[..]) {
                        let _ = c.reports();
                    }
                }
            }
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(RtcpCompound::new_checked(&RR_SDES[..3]).unwrap_err(), Malformed::TooShort);
        assert_eq!(RtcpCompound::new_checked(&RR_SDES[..19]).unwrap_err(), Malformed::BadRtcpLength);
        let mut b = RR_SDES;
        b[3] = 200; // length runs past the end
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadRtcpLength);
        let mut b = RR_SDES;
        b[9] = 100;
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadRtcpType);
        let mut b = RR_SDES;
        b[0] = 0xa0; // padding on the first of two
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadPadding);
        let mut b = RR_SDES;
        b[8] = 0x01;
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadVersion);
    }
}
