//! Streaming XXH3-64 (seed 0, the default secret): the checksum of each piece of
//! page data in a version-2 DATA_HASHES section ([`crate::hashes`]).
//!
//! Why not XXH64 there, as in `Header::data_hash`: the loader hashes every piece
//! it reads before the program runs, so the hash's speed is restart time. XXH64
//! is four scalar lanes bound by their 64-bit multiplies; XXH3 works on eight
//! lanes with 32x32->64 multiplies, which SSE2 (the baseline of both targets)
//! does two at a time, and its per-stripe work has no dependency chain longer
//! than one add. Written in safe Rust that the compiler vectorizes: this crate
//! has no `unsafe`, so no intrinsics. Measured on this project's VM (one core,
//! data in the cache): see docs/process-state.md §1.
//!
//! The algorithm is the published one (xxhash.com, `doc/xxhash_spec.md`); its
//! results are checked against the reference implementation's for every length
//! class in the tests below. Feed it the data in any slices: the result depends
//! only on the bytes.

use crate::{P1, P2, P3, rd32, rd64};

/// The default secret of XXH3 (the specification's `kSecret`).
#[rustfmt::skip]
const SECRET: [u8; 192] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];

const P32_1: u64 = 0x9E37_79B1;
const P32_2: u64 = 0x85EB_CA77;
const P32_3: u64 = 0xC2B2_AE3D;
const STRIPE: usize = 64;
/// Stripes between two scrambles: (secret size − stripe) / 8.
const STRIPES_PER_BLOCK: usize = (SECRET.len() - STRIPE) / 8;
/// Inputs up to this length take the short paths, which need them whole.
const MID_MAX: usize = 240;
/// What the hasher holds back: the input while it may still be short, then the
/// bytes after the last stripe accumulated (a stripe is accumulated only once a
/// byte after it is known: the input's last 64 bytes are mixed differently).
const BUF: usize = 256;

#[inline(always)]
fn r32(b: &[u8], i: usize) -> u64 {
    rd32(b, i) as u64
}

#[inline(always)]
fn fold64(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(0x1656_6791_9E37_79F9);
    h ^ (h >> 32)
}

/// XXH64's final mix, which XXH3 uses for its shortest inputs.
fn avalanche64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

fn rrmxmx(mut h: u64, len: u64) -> u64 {
    h ^= h.rotate_left(49) ^ h.rotate_left(24);
    h = h.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    h ^= (h >> 35).wrapping_add(len);
    h = h.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    h ^ (h >> 28)
}

fn mix16(b: &[u8], at: usize, s: usize) -> u64 {
    fold64(rd64(b, at) ^ rd64(&SECRET, s), rd64(b, at + 8) ^ rd64(&SECRET, s + 8))
}

/// The hash of an input of at most [`MID_MAX`] bytes.
fn short(b: &[u8]) -> u64 {
    let len = b.len();
    let l = len as u64;
    match len {
        0 => avalanche64(rd64(&SECRET, 56) ^ rd64(&SECRET, 64)),
        1..=3 => {
            let c = ((b[0] as u64) << 16) | ((b[len >> 1] as u64) << 24) | b[len - 1] as u64 | (l << 8);
            avalanche64(c ^ (r32(&SECRET, 0) ^ r32(&SECRET, 4)))
        }
        4..=8 => {
            let x = r32(b, len - 4).wrapping_add(r32(b, 0) << 32);
            rrmxmx(x ^ (rd64(&SECRET, 8) ^ rd64(&SECRET, 16)), l)
        }
        9..=16 => {
            let lo = rd64(b, 0) ^ (rd64(&SECRET, 24) ^ rd64(&SECRET, 32));
            let hi = rd64(b, len - 8) ^ (rd64(&SECRET, 40) ^ rd64(&SECRET, 48));
            avalanche(l.wrapping_add(lo.swap_bytes()).wrapping_add(hi).wrapping_add(fold64(lo, hi)))
        }
        17..=128 => {
            let mut acc = l.wrapping_mul(P1);
            let pairs = (len - 1) / 32;
            for i in (0..=pairs).rev() {
                acc = acc.wrapping_add(mix16(b, 16 * i, 32 * i));
                acc = acc.wrapping_add(mix16(b, len - 16 * (i + 1), 32 * i + 16));
            }
            avalanche(acc)
        }
        _ => {
            let mut acc = l.wrapping_mul(P1);
            for i in 0..8 {
                acc = acc.wrapping_add(mix16(b, 16 * i, 16 * i));
            }
            acc = avalanche(acc);
            for i in 8..len / 16 {
                acc = acc.wrapping_add(mix16(b, 16 * i, 16 * (i - 8) + 3));
            }
            avalanche(acc.wrapping_add(mix16(b, len - 16, 136 - 17)))
        }
    }
}

/// One stripe into the accumulators, with the secret from byte `key` on.
/// Written lane pair by lane pair (what one SSE2 register holds), on arrays of
/// fixed size (no bounds checks left), which the compiler turns into
/// `pmuludq`/`pshufd`/`paddq`.
#[inline(always)]
fn stripe(acc: &mut [u64; 8], s: &[u8; STRIPE], key: usize) {
    let k: &[u8; STRIPE] = SECRET[key..key + STRIPE].try_into().unwrap_or(&[0; STRIPE]);
    for j in 0..4 {
        let (d0, d1) = (rd64(s, 16 * j), rd64(s, 16 * j + 8));
        let (x0, x1) = (d0 ^ rd64(k, 16 * j), d1 ^ rd64(k, 16 * j + 8));
        acc[2 * j] = acc[2 * j].wrapping_add(d1).wrapping_add((x0 & 0xFFFF_FFFF).wrapping_mul(x0 >> 32));
        acc[2 * j + 1] = acc[2 * j + 1].wrapping_add(d0).wrapping_add((x1 & 0xFFFF_FFFF).wrapping_mul(x1 >> 32));
    }
}

#[inline(always)]
fn scramble(acc: &mut [u64; 8]) {
    let k = &SECRET[SECRET.len() - STRIPE..];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = ((*a ^ (*a >> 47)) ^ rd64(k, 8 * i)).wrapping_mul(P32_1);
    }
}

/// A streaming XXH3-64 hasher (seed 0).
#[derive(Clone, Copy, Debug)]
pub struct Xxh3 {
    acc: [u64; 8],
    /// Stripes accumulated since the last scramble.
    in_block: usize,
    buf: [u8; BUF],
    buffered: usize,
    /// The last stripe accumulated: the input's last 64 bytes may begin in it.
    last: [u8; STRIPE],
    total: u64,
}

impl Default for Xxh3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Xxh3 {
    /// A hasher with nothing fed.
    pub const fn new() -> Self {
        Xxh3 {
            acc: [P32_3, P1, P2, P3, crate::P4, P32_2, crate::P5, P32_1],
            in_block: 0,
            buf: [0; BUF],
            buffered: 0,
            last: [0; STRIPE],
            total: 0,
        }
    }

    /// Accumulate the stripes of `b` (a multiple of 64 bytes), scrambling
    /// after each block.
    #[inline(always)]
    fn stripes(acc: &mut [u64; 8], in_block: &mut usize, b: &[u8]) {
        // On a copy, which stays in registers.
        let mut a = *acc;
        let mut b = b;
        // Up to the next block boundary, then whole blocks, then the rest.
        if *in_block != 0 {
            let (stripes, _) = b.as_chunks::<STRIPE>();
            let n = (STRIPES_PER_BLOCK - *in_block).min(stripes.len());
            for s in &stripes[..n] {
                stripe(&mut a, s, 8 * *in_block);
                *in_block += 1;
            }
            if *in_block == STRIPES_PER_BLOCK {
                scramble(&mut a);
                *in_block = 0;
            }
            b = &b[n * STRIPE..];
        }
        let (blocks, rest) = b.as_chunks::<{ STRIPE * STRIPES_PER_BLOCK }>();
        for blk in blocks {
            let (stripes, _) = blk.as_chunks::<STRIPE>();
            for (n, s) in stripes.iter().enumerate() {
                stripe(&mut a, s, 8 * n);
            }
            scramble(&mut a);
        }
        for s in rest.as_chunks::<STRIPE>().0 {
            stripe(&mut a, s, 8 * *in_block);
            *in_block += 1;
        }
        *acc = a;
    }

    /// Feed more bytes.
    pub fn update(&mut self, mut b: &[u8]) {
        self.total += b.len() as u64;
        if self.buffered + b.len() <= BUF {
            self.buf[self.buffered..self.buffered + b.len()].copy_from_slice(b);
            self.buffered += b.len();
            return;
        }
        if self.buffered > 0 {
            // Complete the buffer's last stripe and accumulate its stripes: more
            // bytes follow them (the input does not fit the buffer). Fed whole
            // pages, the buffer holds one whole stripe here and nothing is copied.
            let n = (STRIPE - self.buffered % STRIPE) % STRIPE;
            self.buf[self.buffered..self.buffered + n].copy_from_slice(&b[..n]);
            b = &b[n..];
            let full = self.buffered + n;
            Self::stripes(&mut self.acc, &mut self.in_block, &self.buf[..full]);
            self.last.copy_from_slice(&self.buf[full - STRIPE..full]);
            self.buffered = 0;
        }
        // Every stripe that has a byte after it; 1 to 64 bytes stay.
        let keep = (b.len() - 1) % STRIPE + 1;
        let (now, rest) = b.split_at(b.len() - keep);
        if !now.is_empty() {
            Self::stripes(&mut self.acc, &mut self.in_block, now);
            self.last.copy_from_slice(&now[now.len() - STRIPE..]);
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The XXH3-64 of everything fed.
    pub fn finish(&self) -> u64 {
        if self.total <= MID_MAX as u64 {
            return short(&self.buf[..self.buffered]);
        }
        let (mut acc, mut in_block) = (self.acc, self.in_block);
        // The buffered stripes that have a byte after them, then the last 64
        // bytes of the input with the secret's last-stripe offset.
        let n = (self.buffered - 1) / STRIPE;
        Self::stripes(&mut acc, &mut in_block, &self.buf[..n * STRIPE]);
        let mut tail = [0u8; STRIPE];
        if self.buffered >= STRIPE {
            tail.copy_from_slice(&self.buf[self.buffered - STRIPE..self.buffered]);
        } else {
            let from_last = STRIPE - self.buffered;
            tail[..from_last].copy_from_slice(&self.last[self.buffered..]);
            tail[from_last..].copy_from_slice(&self.buf[..self.buffered]);
        }
        stripe(&mut acc, &tail, SECRET.len() - STRIPE - 7);
        let mut h = self.total.wrapping_mul(P1);
        for i in 0..4 {
            h = h.wrapping_add(fold64(
                acc[2 * i] ^ rd64(&SECRET, 11 + 16 * i),
                acc[2 * i + 1] ^ rd64(&SECRET, 19 + 16 * i),
            ));
        }
        avalanche(h)
    }
}

/// XXH3-64 (seed 0) of `b`.
pub fn xxh3(b: &[u8]) -> u64 {
    let mut x = Xxh3::new();
    x.update(b);
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> [u8; 262144] {
        let mut b = [0u8; 262144];
        for (i, x) in b.iter_mut().enumerate().take(n) {
            *x = ((i * 131 + (i >> 8) * 7 + 3) & 0xff) as u8;
        }
        b
    }

    /// From the reference implementation (python-xxhash 3.x, `xxh3_64_intdigest`)
    /// of the same bytes: every length class and each side of every boundary
    /// (short paths, the first stripe, a block, a block and a stripe).
    const VECTORS: [(usize, u64); 41] = [
        (0, 0x2d06800538d394c2),
        (1, 0x13e608bc156defed),
        (2, 0xa2363924c12599f7),
        (3, 0x974a8c6fa70c32a8),
        (4, 0xd53c28cdece5352d),
        (5, 0x366af0b9f274812e),
        (8, 0xd4d9e4c499ebd3fc),
        (9, 0xd6fde0887a1893ca),
        (15, 0x056888f711e5efe9),
        (16, 0xca4738193200d5bf),
        (17, 0x02ec68113d62488b),
        (31, 0x48718c7fdf8802a0),
        (32, 0xd5cb55f2bd3ab281),
        (33, 0x177fc93b526aa0a0),
        (64, 0x37d7807c33e74a3c),
        (65, 0xff48cb982e5fcb12),
        (96, 0xef2dac2823b8855c),
        (97, 0x2fcb41d8c85c1417),
        (127, 0x5f13e8b7c3e9cc3a),
        (128, 0xa67ae43aec758836),
        (129, 0xfb628a6571944e54),
        (136, 0x657fb07498987b5a),
        (200, 0x41c155b1e16b9600),
        (239, 0x411dcd826ea3fd7d),
        (240, 0x2408051b9d580275),
        (241, 0xef630bb6bb6cfe02),
        (255, 0xbcca707bc06d9fe7),
        (256, 0x52fef52244b0c88c),
        (257, 0x80e9d6d3c637bc5c),
        (300, 0x1a21b79a806b5e9e),
        (1023, 0x430bd3e6b1d6f463),
        (1024, 0x46703f18d0b7abc5),
        (1025, 0x178c11ef15cb206e),
        (1087, 0x63c4ab51e885e74f),
        (1088, 0x5ae094d2d2efb3db),
        (1089, 0x852b42752ad931d6),
        (2048, 0x3dd2764ed338d910),
        (4096, 0x6d254ae790a56d8b),
        (8192, 0xbd4ab8125c56ceab),
        (100000, 0x595b62ffc37f60f6),
        (262144, 0xe4647a9c0d428803),
    ];

    #[test]
    fn matches_the_reference() {
        let b = data(262144);
        for (n, want) in VECTORS {
            assert_eq!(xxh3(&b[..n]), want, "length {n}");
        }
    }

    /// However the input is cut, the same hash (cuts on both sides of the
    /// buffer's and the stripes' edges).
    #[test]
    fn independent_of_the_cuts() {
        let b = data(262144);
        for (n, want) in VECTORS {
            for cut in [1usize, 3, 63, 64, 65, 200, 255, 256, 257, 1000, 4096] {
                let mut x = Xxh3::new();
                for part in b[..n].chunks(cut) {
                    x.update(part);
                }
                assert_eq!(x.finish(), want, "length {n} in slices of {cut}");
                // Uneven: one byte, then the rest.
                let mut y = Xxh3::new();
                let k = cut.min(n);
                y.update(&b[..k]);
                y.update(&[]);
                y.update(&b[k..n]);
                assert_eq!(y.finish(), want, "length {n} cut at {k}");
            }
        }
    }
}
