//! Fixed-width and varint encoding, shared by every format module.
//!
//! Encoders append to a `Vec<u8>`; [`Decoder`] reads from a byte slice and returns `None` on
//! any shortfall or malformed varint, so callers turn that into a `Corruption` error with the
//! context they know (file, offset).

// The fixed-width helpers serve the table and manifest formats, which build on this module
// next; the WAL and batches use only the varint half so far.
#![allow(dead_code)]

/// Appends `v` as 4 little-endian bytes.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as 8 little-endian bytes.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as a LEB128 varint (1 to 10 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint length followed by the bytes.
pub fn put_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Bytes a varint of `v` takes.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Reads little-endian integers, varints and byte strings from a slice, front to back.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    /// The next 4 bytes as a little-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }

    /// The next 8 bytes as a little-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    /// The next varint; `None` if it is cut short, longer than 10 bytes, or overflows.
    pub fn varint(&mut self) -> Option<u64> {
        // Most varints in blocks and records are lengths under 128: one byte.
        if let Some((&byte, rest)) = self.buf.split_first()
            && byte < 0x80
        {
            self.buf = rest;
            return Some(u64::from(byte));
        }
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return None; // would overflow 64 bits
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// A varint length, then that many bytes.
    pub fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let len = self.varint()?;
        self.bytes(usize::try_from(len).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_round_trip_at_every_width_boundary() {
        for shift in 0..64 {
            for v in [
                (1u64 << shift) - 1,
                1u64 << shift,
                (1u64 << shift) + 1,
                u64::MAX,
            ] {
                let mut out = Vec::new();
                put_varint(&mut out, v);
                assert_eq!(out.len(), varint_len(v));
                let mut d = Decoder::new(&out);
                assert_eq!(d.varint(), Some(v));
                assert!(d.is_empty());
            }
        }
    }

    #[test]
    fn malformed_varints_are_refused() {
        assert_eq!(Decoder::new(&[]).varint(), None);
        assert_eq!(Decoder::new(&[0x80]).varint(), None, "cut short");
        assert_eq!(Decoder::new(&[0xff; 11]).varint(), None, "too long");
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert_eq!(Decoder::new(&overflow).varint(), None, "overflows 64 bits");
    }

    #[test]
    fn short_input_is_none_not_a_panic() {
        let mut d = Decoder::new(&[1, 2, 3]);
        assert_eq!(d.u32(), None);
        assert_eq!(d.u64(), None);
        assert_eq!(d.bytes(4), None);
        assert_eq!(Decoder::new(&[5, b'a']).length_prefixed(), None);
        assert_eq!(d.u8(), Some(1));
        assert_eq!(d.remaining(), &[2, 3]);
    }

    proptest! {
        #[test]
        fn mixed_sequences_round_trip(a: u32, b: u64, c: u64, s: Vec<u8>) {
            let mut out = Vec::new();
            put_u32(&mut out, a);
            put_u64(&mut out, b);
            put_varint(&mut out, c);
            put_length_prefixed(&mut out, &s);
            let mut d = Decoder::new(&out);
            prop_assert_eq!(d.u32(), Some(a));
            prop_assert_eq!(d.u64(), Some(b));
            prop_assert_eq!(d.varint(), Some(c));
            prop_assert_eq!(d.length_prefixed(), Some(&s[..]));
            prop_assert!(d.is_empty());
        }
    }
}
