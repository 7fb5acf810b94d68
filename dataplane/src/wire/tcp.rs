//! TCP headers (RFC 9293), with the NS/CWR/ECE flags of RFC 3168/3540.

use super::{checksum, clamped, clamped_mut, ip_proto, read_u16, read_u32, write_u16, write_u32, Field, WireError};

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = 20;

/// Flag bits as returned by [`Packet::flags`].
pub mod flags {
    /// No more data from sender.
    pub const FIN: u16 = 0x001;
    /// Synchronize sequence numbers.
    pub const SYN: u16 = 0x002;
    /// Reset the connection.
    pub const RST: u16 = 0x004;
    /// Push function.
    pub const PSH: u16 = 0x008;
    /// Acknowledgment field significant.
    pub const ACK: u16 = 0x010;
    /// Urgent pointer field significant.
    pub const URG: u16 = 0x020;
    /// ECN-Echo.
    pub const ECE: u16 = 0x040;
    /// Congestion Window Reduced.
    pub const CWR: u16 = 0x080;
    /// ECN nonce sum (historic, RFC 3540).
    pub const NS: u16 = 0x100;
}

/// TCP option kinds.
pub mod option {
    /// End of option list.
    pub const END: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Window scale.
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted.
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TIMESTAMPS: u8 = 8;
}

/// A read/write view of a TCP segment. For the checksum functions the
/// buffer must be exactly the segment (the IP payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

const FLAGS_MASK: u16 = 0x01ff;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checks; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer after [`Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `TcpTruncated` if shorter than 20 bytes, `TcpBadDataOffset` if the
    /// data offset is below 5 or the header runs past the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::TcpTruncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(WireError::TcpBadDataOffset);
        }
        Ok(())
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// Data offset in 32-bit words.
    #[inline]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS.start] >> 4
    }

    /// Header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        self.data_offset() * 4
    }

    /// The nine flag bits (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::FLAGS]) & FLAGS_MASK
    }

    #[inline]
    fn flag(&self, bit: u16) -> bool {
        self.flags() & bit != 0
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flag(flags::FIN)
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flag(flags::SYN)
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flag(flags::RST)
    }

    /// PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flag(flags::PSH)
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flag(flags::ACK)
    }

    /// URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flag(flags::URG)
    }

    /// ECE flag.
    #[inline]
    pub fn ece(&self) -> bool {
        self.flag(flags::ECE)
    }

    /// CWR flag.
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flag(flags::CWR)
    }

    /// NS flag.
    #[inline]
    pub fn ns(&self) -> bool {
        self.flag(flags::NS)
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::URGENT])
    }

    /// Whether the checksum verifies over IPv4 addresses `src`, `dst`.
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        checksum::verify_l4_v4(src, dst, ip_proto::TCP, self.buffer.as_ref())
    }

    /// Whether the checksum verifies over IPv6 addresses `src`, `dst`.
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        checksum::verify_l4_v6(src, dst, ip_proto::TCP, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options (empty if the data offset is 5).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.header_len()))
    }

    /// Iterate over the options.
    #[inline]
    pub fn option_iter(&self) -> OptionIter<'a> {
        OptionIter { rest: self.options() }
    }

    /// The payload after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let data = self.buffer.as_ref();
        clamped(data, usize::from(self.header_len()), data.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value)
    }

    /// Set the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], value)
    }

    /// Set the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SEQ_NUM], value)
    }

    /// Set the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::ACK_NUM], value)
    }

    /// Set the data offset in 32-bit words (low 4 bits of `value`).
    #[inline]
    pub fn set_data_offset(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::FLAGS.start];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Set the header length in bytes (a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        self.set_data_offset(value / 4)
    }

    /// Set the nine flag bits (see [`flags`]); the reserved bits are kept.
    #[inline]
    pub fn set_flags(&mut self, value: u16) {
        let raw = read_u16(&self.buffer.as_ref()[field::FLAGS]);
        let raw = (raw & !FLAGS_MASK) | (value & FLAGS_MASK);
        write_u16(&mut self.buffer.as_mut()[field::FLAGS], raw)
    }

    /// Set or clear one flag.
    #[inline]
    pub fn set_flag(&mut self, bit: u16, value: bool) {
        let f = self.flags();
        self.set_flags(if value { f | bit } else { f & !bit })
    }

    /// Set the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::WIN_SIZE], value)
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value)
    }

    /// Set the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::URGENT], value)
    }

    /// Compute and store the checksum over IPv4 addresses `src`, `dst`.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v4(src, dst, ip_proto::TCP, self.buffer.as_ref());
        self.set_checksum(c)
    }

    /// Compute and store the checksum over IPv6 addresses `src`, `dst`.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v6(src, dst, ip_proto::TCP, self.buffer.as_ref());
        self.set_checksum(c)
    }

    /// Mutable options.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, header_len)
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        let data = self.buffer.as_mut();
        let len = data.len();
        clamped_mut(data, header_len, len)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// One TCP option: its kind and the bytes after the kind and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOption<'a> {
    /// Option kind (see [`option`]).
    pub kind: u8,
    /// Option data (empty for NOP).
    pub data: &'a [u8],
}

/// Iterator over TCP options. Ends at End of Option List, at the end of the
/// options, or at a malformed option (length below 2 or past the end).
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        let rest = self.rest;
        match rest {
            [] | [option::END, ..] => {
                self.rest = &[];
                None
            }
            [option::NOP, tail @ ..] => {
                self.rest = tail;
                Some(TcpOption { kind: option::NOP, data: &[] })
            }
            [kind, len, ..] if usize::from(*len) >= 2 && usize::from(*len) <= rest.len() => {
                let len = usize::from(*len);
                self.rest = rest.get(len..).unwrap_or(&[]);
                Some(TcpOption { kind: *kind, data: rest.get(2..len).unwrap_or(&[]) })
            }
            _ => {
                self.rest = &[];
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::super::golden::*;
    use super::*;

    const SYN_L4: usize = 14 + 20;

    fn syn() -> &'static [u8] {
        &IPV4_TCP_SYN[SYN_L4..]
    }

    #[test]
    fn golden_syn_with_options() {
        let p = Packet::new_checked(syn()).unwrap();
        assert_eq!(p.src_port(), 49152);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x8f1e2d3c);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.data_offset(), 10);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), flags::SYN);
        assert!(p.syn());
        assert!(!(p.fin() || p.rst() || p.psh() || p.ack() || p.urg() || p.ece() || p.cwr() || p.ns()));
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0xb89e);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options().len(), 20);
        assert_eq!(p.options()[..4], [2, 4, 0x05, 0xb4]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum_v4([10, 0, 2, 15], [93, 184, 216, 34]));
        assert!(!p.verify_checksum_v4([10, 0, 2, 15], [93, 184, 216, 35]));

        let opts: Vec<_> = p.option_iter().collect();
        let kinds: Vec<_> = opts.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [option::MSS, option::SACK_PERMITTED, option::TIMESTAMPS, option::NOP, option::WINDOW_SCALE]);
        assert_eq!(opts[0].data, &[0x05, 0xb4]);
        assert_eq!(opts[1].data, &[] as &[u8]);
        assert_eq!(opts[2].data, &[0x07, 0x5b, 0xcd, 0x15, 0, 0, 0, 0]);
        assert_eq!(opts[4].data, &[7]);
    }

    #[test]
    fn golden_ipv6_psh_ack() {
        let seg = &QINQ_IPV6_TCP[14 + 8 + 40..];
        let p = Packet::new_checked(seg).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (22, 50000));
        assert_eq!((p.seq_number(), p.ack_number()), (1000, 2000));
        assert_eq!(p.flags(), flags::PSH | flags::ACK);
        assert!(p.psh() && p.ack() && !p.syn());
        assert_eq!(p.window_len(), 501);
        assert_eq!(p.checksum(), 0x0323);
        assert!(p.options().is_empty());
        assert_eq!(p.option_iter().count(), 0);
        assert_eq!(p.payload(), b"SSH-2.0-x\r\n");
        let ip = &QINQ_IPV6_TCP[14 + 8..];
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&ip[8..24]);
        dst.copy_from_slice(&ip[24..40]);
        assert!(p.verify_checksum_v6(src, dst));
        dst[15] ^= 1;
        assert!(!p.verify_checksum_v6(src, dst));
    }

    #[test]
    fn setters_round_trip() {
        let mut b = [0u8; 40];
        b.copy_from_slice(syn());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(0xffff_fffe);
        p.set_ack_number(0x0102_0304);
        p.set_flags(0xffff);
        assert_eq!(p.flags(), 0x1ff);
        assert!(p.fin() && p.syn() && p.rst() && p.psh() && p.ack() && p.urg() && p.ece() && p.cwr() && p.ns());
        p.set_flag(flags::NS, false);
        p.set_flag(flags::FIN, false);
        assert_eq!(p.flags(), 0x0fe);
        p.set_window_len(7);
        p.set_urgent_at(9);
        p.set_header_len(24);
        assert_eq!(p.data_offset(), 6);
        assert_eq!((p.src_port(), p.dst_port()), (1, 2));
        assert_eq!((p.seq_number(), p.ack_number()), (0xffff_fffe, 0x0102_0304));
        assert_eq!((p.window_len(), p.urgent_at()), (7, 9));
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        assert_eq!(p.payload_mut().len(), 16);
        p.fill_checksum_v4([1, 1, 1, 1], [2, 2, 2, 2]);
        assert!(p.verify_checksum_v4([1, 1, 1, 1], [2, 2, 2, 2]));
        p.fill_checksum_v6([1; 16], [2; 16]);
        assert!(p.verify_checksum_v6([1; 16], [2; 16]));
        p.set_checksum(0xabcd);
        assert_eq!(p.checksum(), 0xabcd);
        // Reserved bits survive set_flags.
        b[12] |= 0x0e;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_flags(0);
        assert_eq!(b[12] & 0x0e, 0x0e);
        // Slice accessors clamp after a bad data offset.
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_data_offset(15);
        assert_eq!(p.options_mut().len(), 20);
        assert!(p.payload_mut().is_empty());
    }

    #[test]
    fn every_prefix() {
        for len in 0..=syn().len() {
            let want = match len {
                0..=19 => Err(WireError::TcpTruncated),
                20..=39 => Err(WireError::TcpBadDataOffset),
                _ => Ok(()),
            };
            assert_eq!(Packet::new_checked(&syn()[..len]).map(|_| ()), want, "len {len}");
        }
    }

    #[test]
    fn data_offset_below_five() {
        for doff in 0..5u8 {
            let mut b = [0u8; 40];
            b.copy_from_slice(syn());
            b[12] = doff << 4;
            assert_eq!(Packet::new_checked(&b[..]).err(), Some(WireError::TcpBadDataOffset));
        }
    }

    #[test]
    fn data_offset_beyond_buffer() {
        let mut b = [0u8; 40];
        b.copy_from_slice(syn());
        b[12] = 11 << 4;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(WireError::TcpBadDataOffset));
        b[12] = 5 << 4;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn malformed_options_end_iteration() {
        let cases: [(&[u8], usize); 6] = [
            (&[2, 4, 5, 180, 0, 9, 9], 1),
            (&[1, 1, 2], 2),
            (&[2, 1, 0, 0], 0),
            (&[2, 9, 0, 0], 0),
            (&[3, 3, 7, 1], 2),
            (&[8], 0),
        ];
        for (opts, n) in cases {
            assert_eq!(OptionIter { rest: opts }.count(), n, "{opts:?}");
        }
    }
}
