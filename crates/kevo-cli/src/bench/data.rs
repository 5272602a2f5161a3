//! Deterministic keys, values and random numbers, as db_bench makes them.

/// SplitMix64: tiny, fast, and good enough to pick keys; deterministic for a given seed.
pub struct Rng(u64);

impl Rng {
    /// A generator for one thread of one workload: every (seed, stream) pair gives its own
    /// sequence, so two workloads of a run do not replay the same keys.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift: no division, bias below 2^-64 per value).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Digits `n` takes in decimal.
pub fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes the key of index `i` into `buf`: zero-padded decimal, `key_size` bytes (db_bench's
/// `"%016d"`). The caller has checked that `i` fits.
pub fn write_key(buf: &mut Vec<u8>, i: u64, key_size: usize) {
    buf.clear();
    buf.resize(key_size, b'0');
    let mut n = i;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
}

/// The key index a key encodes, if it is one of ours.
pub fn parse_key(key: &[u8], key_size: usize) -> Option<u64> {
    if key.len() != key_size || !key.iter().all(u8::is_ascii_digit) {
        return None;
    }
    key.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Bytes of each compressible piece of the value data (db_bench's).
const PIECE: usize = 100;

/// db_bench's value source: a buffer of pieces that compress to about `ratio` of their size
/// (random printable bytes, repeated), handed out as consecutive slices.
pub struct Values {
    data: Vec<u8>,
}

impl Values {
    /// Enough data for values up to `max_len` bytes (at least 1 MiB, as db_bench).
    pub fn new(seed: u64, ratio: f64, max_len: usize) -> Self {
        let len = (1 << 20).max(2 * max_len);
        let mut rng = Rng::new(seed, u64::MAX);
        let raw_len = ((PIECE as f64 * ratio) as usize).clamp(1, PIECE);
        let mut data = Vec::with_capacity(len + PIECE);
        let mut raw = Vec::with_capacity(raw_len);
        while data.len() < len {
            raw.clear();
            raw.extend((0..raw_len).map(|_| b' ' + rng.below(95) as u8));
            data.extend(raw.iter().cycle().take(PIECE));
        }
        Values { data }
    }

    /// Where thread `t` of `threads` starts taking values, so threads do not write the same
    /// ones (which would compress across values better than db_bench's data does).
    pub fn start(&self, t: usize, threads: usize) -> usize {
        // On a piece boundary: a value straddling two pieces compresses worse.
        self.data.len() / threads.max(1) * t / PIECE * PIECE
    }

    /// The next `len` bytes after `*pos`, wrapping to the start when the buffer runs out.
    pub fn next<'a>(&'a self, pos: &mut usize, len: usize) -> &'a [u8] {
        if *pos + len > self.data.len() {
            *pos = 0;
        }
        let value = &self.data[*pos..*pos + len];
        *pos += len;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal_and_parse_back() {
        let mut buf = Vec::new();
        write_key(&mut buf, 42, 16);
        assert_eq!(buf, b"0000000000000042");
        assert_eq!(parse_key(&buf, 16), Some(42));
        write_key(&mut buf, 0, 3);
        assert_eq!(buf, b"000");
        write_key(&mut buf, 999, 3);
        assert_eq!(parse_key(&buf, 3), Some(999));
        assert_eq!(parse_key(b"00000000000000042.", 16), None);
        assert_eq!(
            (digits(0), digits(9), digits(10), digits(199_999)),
            (1, 1, 2, 6)
        );
    }

    #[test]
    fn random_numbers_are_deterministic_and_in_range() {
        let mut a = Rng::new(301, 1);
        let mut b = Rng::new(301, 1);
        let mut c = Rng::new(301, 2);
        let xs: Vec<u64> = (0..100).map(|_| a.below(1000)).collect();
        assert_eq!(xs, (0..100).map(|_| b.below(1000)).collect::<Vec<_>>());
        assert_ne!(xs, (0..100).map(|_| c.below(1000)).collect::<Vec<_>>());
        assert!(xs.iter().all(|&x| x < 1000));
    }

    #[test]
    fn values_repeat_within_each_piece_and_wrap() {
        let values = Values::new(1, 0.5, 100);
        let mut pos = 0;
        let v = values.next(&mut pos, 100);
        assert_eq!(&v[..50], &v[50..]);
        assert!(v.iter().all(|b| (b' '..=b'~').contains(b)));
        let mut pos = values.data.len() - 10;
        assert_eq!(values.next(&mut pos, 100).len(), 100);
        assert_eq!(pos, 100);
    }
}
