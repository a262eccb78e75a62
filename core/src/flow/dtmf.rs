//! RFC 4733 telephone-events (DTMF) a party sends: each event counted once.
//!
//! Every packet of one event carries the event's RTP timestamp (§2.5.1.1: the start of
//! the event), and the last one, with the end bit, is sent three times (§2.5.1.4). An
//! event is counted when its first packet arrives (a new timestamp, later than the
//! current event's), so a lost end packet loses no event and repeated end packets, or
//! late packets of an earlier event, count nothing. The state is one event: bounded.

/// The event being received.
#[derive(Debug, Clone, Copy, Default)]
pub struct DtmfState {
    current: Option<u32>,
}

/// How far back (RTP clock ticks) a packet still counts as a late packet of an earlier
/// event: 2^20, about 2 minutes at 8 kHz and 22 s at 48 kHz.
const LATE_WINDOW: u32 = 1 << 20;

/// RFC 4733 §2.3 payload: event (8), E R volume (8), duration (16).
const EVENT_PAYLOAD_LEN: usize = 4;

impl DtmfState {
    /// One packet of the telephone-event payload type with RTP timestamp `ts`: the event
    /// code when it starts a new event (count it), None otherwise (a packet of the
    /// current event, an older one, or a payload too short to be an event).
    pub fn on_packet(&mut self, ts: u32, payload: &[u8]) -> Option<u8> {
        if payload.len() < EVENT_PAYLOAD_LEN {
            return None;
        }
        if let Some(cur) = self.current {
            // same event, or a late packet of a recent earlier one (timestamps wrap). A
            // timestamp further back than LATE_WINDOW is a new event after a jump, not a late
            // packet: one packet with a timestamp far ahead (a stream restart, or a spoofed
            // one) must not make every later event look old.
            let back = cur.wrapping_sub(ts);
            if ts == cur || (back as i32 > 0 && back < LATE_WINDOW) {
                return None;
            }
        }
        self.current = Some(ts);
        Some(payload[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn a_timestamp_far_ahead_does_not_stop_the_counting() {
        let mut s = DtmfState::default();
        assert_eq!(s.on_packet(1000, &event(1, false, 160)), Some(1));
        // one packet half the timestamp space ahead (spoofed, or the sender restarted)
        assert_eq!(s.on_packet(1000u32.wrapping_add(0x7fff_ffff), &event(9, true, 160)), Some(9));
        // the party's next key press is still counted, and its retransmissions once
        assert_eq!(s.on_packet(9000, &event(2, false, 160)), Some(2));
        assert_eq!(s.on_packet(9000, &event(2, true, 320)), None);
        // a late packet of the earlier event is not
        assert_eq!(s.on_packet(1000, &event(1, true, 640)), None);
    }

    #[test]
    fn each_event_once_whatever_the_retransmissions() {
        let mut s = DtmfState::default();
        let mut counted = Vec::new();
        // '1' at ts 1000: three updates, the end sent three times
        for (ts, p) in [
            (1000, event(1, false, 160)),
            (1000, event(1, false, 320)),
            (1000, event(1, false, 480)),
            (1000, event(1, true, 640)),
            (1000, event(1, true, 640)),
            (1000, event(1, true, 640)),
            // '#' at ts 5000 whose end packets were all lost
            (5000, event(11, false, 160)),
            // a late packet of '1'
            (1000, event(1, true, 640)),
        ] {
            counted.extend(s.on_packet(ts, &p));
        }
        assert_eq!(counted, [1, 11]);
        // across the timestamp wrap
        let mut s = DtmfState::default();
        let mut counted = Vec::new();
        for (ts, p) in [
            (u32::MAX - 2000, event(5, true, 320)),
            (u32::MAX - 10, event(9, false, 160)),
            (u32::MAX - 10, event(9, true, 320)),
            (50, event(2, true, 320)),
            (u32::MAX - 10, event(9, true, 320)),
        ] {
            counted.extend(s.on_packet(ts, &p));
        }
        assert_eq!(counted, [5, 9, 2]);
        assert_eq!(s.on_packet(60, &[1, 2]), None, "too short to be an event");
    }
}
