//! Ethernet II frames (IEEE 802.3) and the 802.1Q / 802.1ad tag that may follow the
//! addresses ([`vlan`]).

use super::{get_u16, set_u16, Error};

/// The EtherType field: what the payload is (or a VLAN tag in front of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    /// An 802.1Q (customer) VLAN tag follows.
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// An 802.1ad (service, "Q-in-Q") VLAN tag follows.
    pub const QINQ: EtherType = EtherType(0x88a8);

    /// Whether a [`vlan::Tag`] sits between this field and the payload.
    pub fn is_vlan_tag(self) -> bool {
        self == EtherType::VLAN || self == EtherType::QINQ
    }
}

pub mod field {
    use crate::wire::{Field, Rest};
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// Destination, source and EtherType.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// A view without checks: the getters panic if the buffer is shorter than the header.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        let f = Frame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// The buffer holds the whole header.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        self.buffer.as_ref()[field::DESTINATION].try_into().unwrap()
    }

    pub fn src_addr(&self) -> [u8; 6] {
        self.buffer.as_ref()[field::SOURCE].try_into().unwrap()
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the header: a VLAN tag, or the network-layer packet (with any
    /// Ethernet padding at its end).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The 4-byte 802.1Q / 802.1ad tag after the source address: tag control information
/// (priority, drop eligible, VLAN id) and the EtherType of what follows. The outer
/// frame's EtherType names the tag ([`EtherType::is_vlan_tag`]).
pub mod vlan {
    use super::EtherType;
    use crate::wire::{get_u16, set_u16, Error};

    pub mod field {
        use crate::wire::{Field, Rest};
        pub const TCI: Field = 0..2;
        pub const ETHERTYPE: Field = 2..4;
        pub const PAYLOAD: Rest = 4..;
    }

    pub const HEADER_LEN: usize = field::PAYLOAD.start;

    /// A view of a VLAN tag (the Ethernet frame's payload when its EtherType is a tag).
    #[derive(Debug, Clone, Copy)]
    pub struct Tag<T: AsRef<[u8]>> {
        buffer: T,
    }

    impl<T: AsRef<[u8]>> Tag<T> {
        pub fn new_unchecked(buffer: T) -> Tag<T> {
            Tag { buffer }
        }

        pub fn new_checked(buffer: T) -> Result<Tag<T>, Error> {
            let t = Tag::new_unchecked(buffer);
            t.check_len()?;
            Ok(t)
        }

        pub fn check_len(&self) -> Result<(), Error> {
            if self.buffer.as_ref().len() < HEADER_LEN {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        pub fn into_inner(self) -> T {
            self.buffer
        }

        /// Tag control information: priority (3 bits), drop eligible (1), VLAN id (12).
        pub fn tci(&self) -> u16 {
            get_u16(self.buffer.as_ref(), field::TCI)
        }

        pub fn priority(&self) -> u8 {
            (self.tci() >> 13) as u8
        }

        pub fn vlan_id(&self) -> u16 {
            self.tci() & 0x0fff
        }

        /// What follows the tag.
        pub fn ethertype(&self) -> EtherType {
            EtherType(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
        }

        pub fn payload(&self) -> &[u8] {
            &self.buffer.as_ref()[field::PAYLOAD]
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
        pub fn set_tci(&mut self, tci: u16) {
            set_u16(self.buffer.as_mut(), field::TCI, tci);
        }

        pub fn set_ethertype(&mut self, t: EtherType) {
            set_u16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
        }

        pub fn payload_mut(&mut self) -> &mut [u8] {
            &mut self.buffer.as_mut()[field::PAYLOAD]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captured::{UDP4, UDP6, VLAN_UDP4};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&UDP4[..]).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr(), f.ethertype()), (B, A, EtherType::IPV4));
        assert_eq!(f.payload()[0], 0x45);
        assert_eq!(Frame::new_checked(&UDP6[..]).unwrap().ethertype(), EtherType::IPV6);
    }

    #[test]
    fn deconstruct_vlan() {
        let f = Frame::new_checked(&VLAN_UDP4[..]).unwrap();
        assert!(f.ethertype().is_vlan_tag());
        let t = vlan::Tag::new_checked(f.payload()).unwrap();
        assert_eq!((t.tci(), t.priority(), t.vlan_id(), t.ethertype()), (0xa064, 5, 100, EtherType::IPV4));
        assert_eq!(t.payload()[0], 0x45);
    }

    #[test]
    fn emit_matches_the_capture() {
        let mut buf = VLAN_UDP4;
        buf[..HEADER_LEN + vlan::HEADER_LEN].fill(0xee);
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(B);
        f.set_src_addr(A);
        f.set_ethertype(EtherType::VLAN);
        let mut t = vlan::Tag::new_unchecked(f.payload_mut());
        t.set_tci((5 << 13) | 100);
        t.set_ethertype(EtherType::IPV4);
        assert_eq!(buf, VLAN_UDP4);
    }

    #[test]
    fn short_buffers_are_truncated() {
        assert_eq!(Frame::new_checked(&UDP4[..13]).err(), Some(Error::Truncated));
        assert!(Frame::new_checked(&UDP4[..14]).is_ok());
        assert_eq!(vlan::Tag::new_checked(&VLAN_UDP4[14..17]).err(), Some(Error::Truncated));
    }
}
