//! Compressed page data (image version 4, section [`tag::COMPRESSION`]), and the
//! codec: LZ4's block format, encoder and decoder written here (no allocator, no
//! `unsafe`, every copy bounds-checked).
//!
//! A compressed image keeps the uncompressed image's *plain* layout in its tables:
//! `Header::data_len` is the length of the plain page data, each `Run::file_off`
//! the offset its bytes would have without compression (`data_offset` plus their
//! position in the plain data), and the DATA_HASHES pieces cut that plain data
//! exactly as in an uncompressed image, their hashes the XXH64 of the *plain*
//! bytes. So the loader checks each piece after decoding it (a damaged piece, or
//! a decoder bug, cannot reach the program), and everything that reasons about
//! runs and pieces is the same for both kinds of image.
//!
//! What is in the file is given by this section: one [`StoredPiece`] per
//! DATA_HASHES piece, in the same order, saying where the piece's bytes are
//! (`off`, `len`) and how they are stored (`codec`: [`codec::NONE`], the plain
//! bytes, or [`codec::LZ4`], one LZ4 block that decodes to exactly the piece).
//! Stored pieces follow each other in the file in piece order, from
//! `data_offset` to `file_len`, with less than a page of zeros between two when
//! the second is page-aligned (a region the loader maps straight from the file:
//! those are stored plain, see the runtime's `write.rs`). `Header::data_hash` is
//! the XXH64 of the file's bytes from `data_offset` to `file_len`, as in every
//! image: what is in the file.
//!
//! An image with this section has version 4, so that a reader of version 3 (an
//! older `ckpt info` or `ckpt verify`) refuses it by its version instead of
//! taking stored bytes for page data. Uncompressed images are still written as
//! version 3.
//!
//! ```text
//! CompressionHead { codec, reserved, plain_len }
//! u64 count, StoredPiece { off, len, codec }…
//! ```
//!
//! [`tag::COMPRESSION`]: crate::section::tag::COMPRESSION

use crate::section::{Section, Table, tag};
use crate::{ImageError, Meta, PAGE_SIZE, Rd, Wr, hashes, rd32, rd64};
use core::mem::size_of;

/// How a piece is stored.
pub mod codec {
    /// The plain bytes.
    pub const NONE: u32 = 0;
    /// One LZ4 block (the block format of lz4, no frame).
    pub const LZ4: u32 = 1;
    /// A human name.
    pub fn name(c: u32) -> &'static str {
        match c {
            NONE => "none",
            LZ4 => "lz4",
            _ => "unknown",
        }
    }
}

record! {
    /// The head of the section.
    pub struct CompressionHead [COMPRESSION_HEAD_LEN = 16] {
        /// The codec of the compressed pieces ([`codec::LZ4`]).
        pub codec: u32,
        /// Zero.
        pub reserved: u32,
        /// Bytes of plain page data (equal to `Header::data_len`).
        pub plain_len: u64,
    }
}

record! {
    /// Where one piece of the page data is in the file, and how it is stored.
    pub struct StoredPiece [STORED_PIECE_LEN = 16] {
        /// File offset of the stored bytes.
        pub off: u64,
        /// Stored length: the piece's plain length for [`codec::NONE`], less than
        /// that (and not zero) for [`codec::LZ4`].
        pub len: u32,
        /// [`codec`].
        pub codec: u32,
    }
}

/// A decoded COMPRESSION section (framing checked; the pieces against the rest
/// of the image by [`check_against`]).
#[derive(Clone, Copy, Debug)]
pub struct Compression<'a> {
    /// The head.
    pub head: CompressionHead,
    /// One record per DATA_HASHES piece.
    pub pieces: Table<'a, StoredPiece>,
}

impl<'a> Compression<'a> {
    /// Decode the payload.
    pub fn parse(data: &'a [u8]) -> Result<Compression<'a>, ImageError> {
        let bad = ImageError::BadSection { tag: tag::COMPRESSION };
        let head = CompressionHead::decode(data).map_err(|_| bad)?;
        if head.codec != codec::LZ4 || head.reserved != 0 {
            return Err(bad);
        }
        let pieces = Table::parse(&data[COMPRESSION_HEAD_LEN..], tag::COMPRESSION)?;
        Ok(Compression { head, pieces })
    }

    /// Piece `i`.
    pub fn piece(&self, i: u64) -> Option<StoredPiece> {
        usize::try_from(i).ok().and_then(|i| self.pieces.at(i))
    }

    /// Bytes of the stored data (`file_len - data_offset`).
    pub fn stored_len(&self, data_offset: u64) -> u64 {
        self.pieces.iter().last().map_or(0, |p| p.off + p.len as u64 - data_offset)
    }

    /// Payload bytes for `n` pieces.
    pub const fn len_for(n: usize) -> usize {
        COMPRESSION_HEAD_LEN + Table::<StoredPiece>::len_for(n)
    }

    /// Write the head and count into `out` (`len_for(n)` bytes); the pieces go in
    /// with [`Compression::put`].
    pub fn start(out: &mut [u8], plain_len: u64, n: usize) {
        CompressionHead { codec: codec::LZ4, reserved: 0, plain_len }.encode(out);
        Table::<StoredPiece>::start(&mut out[COMPRESSION_HEAD_LEN..], n);
    }

    /// Write piece `i` into a payload begun with [`Compression::start`].
    pub fn put(out: &mut [u8], i: usize, p: &StoredPiece) {
        Table::put(&mut out[COMPRESSION_HEAD_LEN..], i, p);
    }
}

/// The section validator (`section::validate`).
pub fn validate(s: &Section) -> Result<(), ImageError> {
    if s.version != 1 {
        return Err(ImageError::BadSection { tag: s.tag });
    }
    Compression::parse(s.data).map(drop)
}

/// Check the data layout of `m` against its header (from `Meta::parse`): an
/// image without compression has its data exactly at `data_offset..file_len`;
/// a compressed one (version 4 and later only) has DATA_HASHES, one stored piece
/// per piece, in order, each inside the data area, plain ones exactly as long as
/// their piece, LZ4 ones shorter, and the last one ending the file.
pub fn check_against(m: &Meta) -> Result<(), ImageError> {
    let h = &m.header;
    let Some(s) = m.sections.get(tag::COMPRESSION) else {
        return if h.data_offset.checked_add(h.data_len) == Some(h.file_len) {
            Ok(())
        } else {
            Err(ImageError::BadLayout)
        };
    };
    let bad = Err(ImageError::BadSection { tag: tag::COMPRESSION });
    if h.version < 4 {
        return Err(ImageError::BadVersion { found: h.version });
    }
    let c = Compression::parse(s.data)?;
    let Some(dh) = m.data_hashes()? else { return bad };
    if c.head.plain_len != h.data_len || c.pieces.len() != dh.hashes.len() {
        return bad;
    }
    let mut next = 0u64;
    let mut end = h.data_offset;
    let mut ok = true;
    let mut last_region = u32::MAX;
    m.for_each_piece(dh.piece, |ri, _, len| {
        let first = ri != last_region;
        last_region = ri;
        let Some(p) = c.piece(next) else {
            ok = false;
            return;
        };
        next += 1;
        let len_ok = match p.codec {
            codec::NONE => p.len as u64 == len,
            codec::LZ4 => p.len > 0 && (p.len as u64) < len,
            _ => false,
        };
        // Stored pieces in order; only alignment padding (less than a page) between.
        ok &= len_ok && p.off >= end && p.off - end < PAGE_SIZE && p.off.checked_add(p.len as u64).is_some();
        // A region the loader maps from the file: plain, page-aligned, back to back.
        let r = m.region(ri);
        if mapped_from_image(&r, m.runs_of(&r).next().as_ref()) {
            ok &= p.codec == codec::NONE && if first { p.off % PAGE_SIZE == 0 } else { p.off == end };
        }
        end = p.off.saturating_add(p.len as u64);
    });
    if !ok || next != c.pieces.len() as u64 || end != h.file_len {
        return bad;
    }
    Ok(())
}

/// Is `r` (whose first run is `first`) a private file mapping saved whole (one run
/// covering it)? The loader maps such a region straight from the checkpoint file
/// (program and library text: no copy, pages shared with the page cache), so a
/// compressed image stores its data plain and page-aligned.
pub fn mapped_from_image(r: &crate::Region, first: Option<&crate::Run>) -> bool {
    r.kind == crate::kind::FILE && r.nruns == 1 && first.is_some_and(|u| u.addr == r.start && u.addr + u.len == r.end)
}

/// The number of pieces of `bytes` of plain data (re-exported for the writers).
pub const fn pieces_of(bytes: u64, piece: u64) -> u64 {
    hashes::pieces_of(bytes, piece)
}

/// Why an LZ4 block could not be decoded: the offset in the block at which it
/// went wrong (a length past the end of the input or the output, a match before
/// the start of the output, output shorter than the piece).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the compressed bytes.
    pub at: usize,
}

/// Smallest match LZ4 encodes.
const MINMATCH: usize = 4;
/// The last match starts at least this many bytes before the end of the block.
const MFLIMIT: usize = 12;
/// The last this many bytes of a block are literals.
const LASTLITERALS: usize = 5;
/// Largest match offset.
const MAX_DISTANCE: usize = 65535;
/// Entries of the encoder's hash table ([`Encoder::TABLE`]), log 2.
const HASH_LOG: u32 = 13;
/// Search acceleration over incompressible stretches: after `1 << SKIP_LOG`
/// positions without a match the search steps 2 bytes at a time, after as many
/// more 3, and so on (LZ4's skip trigger).
const SKIP_LOG: u32 = 6;

/// The hash of the 5 bytes at the bottom of `v` (LZ4's `hash5` for 64-bit
/// loads): fewer collisions than 4 bytes.
#[inline(always)]
fn hash5(v: u64) -> usize {
    ((v << 24).wrapping_mul(889_523_592_379) >> (64 - HASH_LOG)) as usize
}

/// Decode one LZ4 block `src` into exactly `dst` (every byte of `dst` written).
pub fn decode(src: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    let (mut i, mut o) = (0usize, 0usize);
    let err = |at: usize| DecodeError { at };
    let cap = dst.len();
    // A length continued in 255s: at most the whole output, or it is damage.
    let more = |src: &[u8], i: &mut usize, mut n: usize| -> Result<usize, DecodeError> {
        loop {
            let b = *src.get(*i).ok_or(DecodeError { at: *i })?;
            *i += 1;
            n += b as usize;
            if n > cap {
                return Err(DecodeError { at: *i - 1 });
            }
            if b != 255 {
                return Ok(n);
            }
        }
    };
    loop {
        let tok_at = i;
        let tok = *src.get(i).ok_or(err(i))?;
        i += 1;
        let mut lit = (tok >> 4) as usize;
        if lit == 15 {
            lit = more(src, &mut i, lit)?;
        }
        if lit <= 16 && i + 16 <= src.len() && o + 16 <= dst.len() {
            // Short literals (the usual case): one fixed 16-byte copy, the bytes
            // past `lit` overwritten by what follows (both ends checked).
            put::<16>(dst, o, get(src, i));
        } else {
            let s = src.get(i..i + lit).ok_or(err(tok_at))?;
            dst.get_mut(o..o + lit).ok_or(err(tok_at))?.copy_from_slice(s);
        }
        i += lit;
        o += lit;
        if i == src.len() {
            break;
        }
        let at = i;
        let off = match src.get(i..i + 2) {
            Some(b) => u16::from_le_bytes([b[0], b[1]]) as usize,
            None => return Err(err(at)),
        };
        i += 2;
        if off == 0 || off > o {
            return Err(err(at));
        }
        let mut ml = (tok & 15) as usize;
        if ml == 15 {
            ml = more(src, &mut i, ml)?;
        }
        ml += MINMATCH;
        if ml > dst.len() - o {
            return Err(err(at));
        }
        if off >= 8 && o + ml + 8 <= dst.len() {
            // 8 bytes at a time, each from bytes already written (offset at
            // least 8), the last copy running at most 7 bytes past the match
            // (inside `dst`, overwritten by what follows).
            let mut k = 0;
            while k < ml {
                let w: [u8; 8] = get(dst, o - off + k);
                put(dst, o + k, w);
                k += 8;
            }
        } else if off >= ml {
            dst.copy_within(o - off..o - off + ml, o);
        } else if ml <= 64 {
            // A short repeat of a short pattern: byte by byte (no call).
            for k in o..o + ml {
                dst[k] = dst[k - off];
            }
        } else {
            // Overlapping: the pattern of `off` bytes repeats; copy it in
            // growing chunks, each from bytes already written.
            let mut done = 0;
            while done < ml {
                let n = (ml - done).min(off + done);
                dst.copy_within(o - off..o - off + n, o + done);
                done += n;
            }
        }
        o += ml;
    }
    if o != dst.len() {
        return Err(err(src.len()));
    }
    Ok(())
}

/// The LZ4 block encoder, shaped like LZ4's fast one: greedy, one probe of a
/// table of 8192 positions per position looked at, hashed on 5 bytes; the next
/// position's hash computed before the current one is tested (so its load does
/// not wait on the test); after each match the position right after it tried
/// at once (records that repeat, stretches of zeros: sequences without
/// literals); matches extended 16 bytes at a time; LZ4's acceleration over
/// incompressible stretches. Its table lives in the caller's memory: the
/// runtime has no allocator.
pub struct Encoder<'t> {
    table: &'t mut [u32],
}

impl<'t> Encoder<'t> {
    /// Entries of the table (u32 each).
    pub const TABLE: usize = 1 << HASH_LOG;

    /// An encoder using `table` (at least [`Encoder::TABLE`] entries).
    pub fn new(table: &'t mut [u32]) -> Option<Encoder<'t>> {
        (table.len() >= Self::TABLE).then_some(Encoder { table })
    }

    /// Encode `src` into `dst` as one block; `None` if it does not fit (the
    /// caller then stores the plain bytes: give `dst` fewer bytes than `src` to
    /// stop as soon as compression does not pay).
    pub fn encode(&mut self, src: &[u8], dst: &mut [u8]) -> Option<usize> {
        let n = src.len();
        let Ok(t) = <&mut [u32; 1 << HASH_LOG]>::try_from(&mut self.table[..1 << HASH_LOG]) else { return None };
        let mut out = 0usize;
        let mut anchor = 0usize;
        if n > MFLIMIT + 1 {
            t.fill(0);
            // Positions up to `mflimit` may start a match (and have 8 bytes
            // after them to hash); matches end by `match_limit`.
            let mflimit = n - MFLIMIT;
            let match_limit = n - LASTLITERALS;
            let mut ip = 1usize;
            // The hash of the next position to look at, computed one step ahead
            // (the load of the next position does not wait for this one's test).
            let mut next_h = hash5(rd64(src, ip));
            // A match found right after the previous one (no literals between).
            let mut found: Option<usize> = None;
            loop {
                let mut m = match found.take() {
                    Some(m) => m,
                    None => {
                        let mut attempts = 1usize << SKIP_LOG;
                        let mut step = 1usize;
                        loop {
                            let (cur, h) = (ip, next_h);
                            ip += step;
                            step = attempts >> SKIP_LOG;
                            attempts += 1;
                            if ip > mflimit {
                                return sequence(dst, out, src, anchor, n, None);
                            }
                            let cand = t[h] as usize;
                            next_h = hash5(rd64(src, ip));
                            t[h] = cur as u32;
                            // Every entry is an earlier position: 1..=MAX_DISTANCE back.
                            if cur - cand <= MAX_DISTANCE && rd32(src, cand) == rd32(src, cur) {
                                ip = cur;
                                break cand;
                            }
                        }
                    }
                };
                while ip > anchor && m > 0 && src[ip - 1] == src[m - 1] {
                    ip -= 1;
                    m -= 1;
                }
                let len = MINMATCH + match_len(src, m + MINMATCH, ip + MINMATCH, match_limit);
                out = sequence(dst, out, src, anchor, ip, Some((ip - m, len)))?;
                ip += len;
                anchor = ip;
                if ip > mflimit {
                    break;
                }
                t[hash5(rd64(src, ip - 2))] = (ip - 2) as u32;
                // Is there a match right here? (Runs of sequences without
                // literals: repeated records, stretches of zeros.)
                let h = hash5(rd64(src, ip));
                let cand = t[h] as usize;
                t[h] = ip as u32;
                if ip - cand <= MAX_DISTANCE && rd32(src, cand) == rd32(src, ip) {
                    found = Some(cand);
                } else {
                    ip += 1;
                    next_h = hash5(rd64(src, ip));
                }
            }
        }
        sequence(dst, out, src, anchor, n, None)
    }
}

/// How many bytes at `a` equal those at `b` (`a < b`), up to `limit` for `b`.
#[inline(always)]
fn match_len(src: &[u8], a: usize, b: usize, limit: usize) -> usize {
    let mut len = 0;
    // 16 bytes at a time while both words fit before the limit.
    while b + len + 16 <= limit {
        let (x, y) = (rd128(src, a + len), rd128(src, b + len));
        if x != y {
            return len + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        len += 16;
    }
    while b + len < limit && src[a + len] == src[b + len] {
        len += 1;
    }
    len
}

/// The `N` bytes at `i` of `b`, a fixed-size copy.
#[inline(always)]
fn get<const N: usize>(b: &[u8], i: usize) -> [u8; N] {
    // A slice of exactly N bytes: the conversion cannot fail.
    b[i..i + N].try_into().unwrap_or([0; N])
}

/// Write the `N` bytes `w` at `i` of `b` (as [`get`]).
#[inline(always)]
fn put<const N: usize>(b: &mut [u8], i: usize, w: [u8; N]) {
    b[i..i + N].copy_from_slice(&w);
}

/// The little-endian u128 at byte `i` of `b` (as the crate's `rd64`).
#[inline(always)]
fn rd128(b: &[u8], i: usize) -> u128 {
    u128::from_le_bytes(get(b, i))
}

/// Append one sequence (the literals `src[from..to]`, then the match `(offset,
/// length)` unless it is the last) at `dst[at..]`; the new end, or `None` if
/// `dst` is too short.
///
/// Short copies are fixed-size ones: in the `no_std` runtime and loader a
/// `copy_from_slice` of variable length is a call to compiler_builtins' memcpy
/// (`rep movsb`), whose start-up cost dwarfs a copy of a few bytes; measured, the
/// decoder ran at a fifth of its speed with such calls.
#[inline(always)]
fn sequence(
    dst: &mut [u8],
    mut at: usize,
    src: &[u8],
    from: usize,
    to: usize,
    m: Option<(usize, usize)>,
) -> Option<usize> {
    let lit = &src[from..to];
    let ml = m.map_or(0, |(_, l)| l - MINMATCH);
    let ext = |n: usize| if n >= 15 { (n - 15) / 255 + 1 } else { 0 };
    let need = 1 + ext(lit.len()) + lit.len() + if m.is_some() { 2 + ext(ml) } else { 0 };
    if dst.len().saturating_sub(at) < need {
        return None;
    }
    let tok_at = at;
    dst[tok_at] = ((lit.len().min(15) as u8) << 4) | ml.min(15) as u8;
    at += 1;
    let put_len = |dst: &mut [u8], at: &mut usize, n: usize| {
        if n >= 15 {
            let mut r = n - 15;
            while r >= 255 {
                dst[*at] = 255;
                *at += 1;
                r -= 255;
            }
            dst[*at] = r as u8;
            *at += 1;
        }
    };
    put_len(dst, &mut at, lit.len());
    if lit.len() <= 16 && at + 16 <= dst.len() && from + 16 <= src.len() {
        // Short literals: one fixed 16-byte copy (the tail is overwritten next).
        let w: [u8; 16] = src[from..from + 16].try_into().ok()?;
        dst[at..at + 16].copy_from_slice(&w);
    } else {
        dst[at..at + lit.len()].copy_from_slice(lit);
    }
    at += lit.len();
    if let Some((off, _)) = m {
        dst[at..at + 2].copy_from_slice(&(off as u16).to_le_bytes());
        at += 2;
        put_len(dst, &mut at, ml);
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    fn round(src: &[u8]) -> Option<usize> {
        let mut t = vec![0u32; Encoder::TABLE];
        let mut e = Encoder::new(&mut t).unwrap();
        let mut c = vec![0u8; src.len() + src.len() / 255 + 16];
        let n = e.encode(src, &mut c)?;
        let mut d = vec![0xaau8; src.len()];
        decode(&c[..n], &mut d).unwrap();
        assert_eq!(d, src);
        Some(n)
    }

    fn rng(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn round_trips() {
        for n in [0usize, 1, 5, 12, 13, 14, 20, 64, 100, 4096, 65536, 300_000] {
            round(&vec![0u8; n]).unwrap();
            round(&rng(n as u64, n)).unwrap();
            let text: Vec<u8> =
                b"the quick brown fox jumps over the lazy dog; ".iter().copied().cycle().take(n).collect();
            let c = round(&text).unwrap();
            if n >= 4096 {
                assert!(c < n / 10, "{n}: {c}");
            }
            // Mixed: runs of a byte, text, noise, long literal stretches.
            let mut mix = Vec::new();
            let noise = rng(7, n);
            for (i, ch) in noise.chunks(97).enumerate() {
                match i % 4 {
                    0 => mix.extend_from_slice(ch),
                    1 => mix.extend(std::iter::repeat_n(i as u8, ch.len() * 3)),
                    2 => mix.extend_from_slice(&text[..ch.len().min(text.len())]),
                    _ => mix.extend_from_slice(&mix[mix.len().saturating_sub(300)..].to_vec()[..ch.len().min(50)]),
                }
            }
            round(&mix).unwrap();
            if n > 0 {
                round(&heapish(n)).unwrap();
            }
        }
    }

    /// Heap-like test data: text records, small integers, pointers, zeros and
    /// a part of noise.
    fn heapish(n: usize) -> Vec<u8> {
        let noise = rng(11, n);
        let mut v = Vec::with_capacity(n);
        let mut i = 0u64;
        while v.len() < n {
            match i % 5 {
                0 => v.extend_from_slice(
                    std::format!("{{\"id\": {i}, \"name\": \"user{i}\", \"score\": 0.{}}}", i * 7919 % 1000).as_bytes(),
                ),
                1 => v.extend_from_slice(&(0x7f00_1234_0000u64 + i * 48).to_le_bytes()),
                2 => v.extend(std::iter::repeat_n(0u8, (i % 97) as usize)),
                3 => v.extend_from_slice(&noise[(i as usize * 13) % (n - 40)..][..(i % 37) as usize]),
                _ => v.extend_from_slice(&(i as u32).to_le_bytes()),
            }
            i += 1;
        }
        v.truncate(n);
        v
    }

    /// Our blocks against the reference implementation, both ways, when the
    /// `lz4` tool is installed (Debian's lz4, from `cargo xtask setup`): in
    /// its legacy frame (magic, then each block after its u32 length; no
    /// header checksum), `lz4 -d` decodes ours, and we decode its blocks.
    #[test]
    fn same_blocks_as_the_lz4_tool() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        const LEGACY: u32 = 0x184c_2102;
        let run = |args: &[&str], input: &[u8]| -> Option<Vec<u8>> {
            let mut c = Command::new("lz4")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .ok()?;
            let mut stdin = c.stdin.take()?;
            let data = input.to_vec();
            let w = std::thread::spawn(move || stdin.write_all(&data));
            let out = c.wait_with_output().ok()?;
            w.join().ok()?.ok()?;
            assert!(out.status.success(), "lz4 {args:?}: {}", std::string::String::from_utf8_lossy(&out.stderr));
            Some(out.stdout)
        };
        assert!(run(&["-V"], b"").is_some(), "the lz4 tool is missing: `cargo xtask setup` installs it");
        let text: Vec<u8> =
            b"the quick brown fox jumps over the lazy dog; ".iter().copied().cycle().take(100_000).collect();
        for src in [heapish(256 << 10), heapish(1000), text, vec![0u8; 256 << 10], rng(5, 70_000)] {
            // Ours decoded by lz4.
            let mut t = vec![0u32; Encoder::TABLE];
            let mut e = Encoder::new(&mut t).unwrap();
            let mut c = vec![0u8; src.len() + src.len() / 255 + 16];
            let n = e.encode(&src, &mut c).unwrap();
            let mut frame = LEGACY.to_le_bytes().to_vec();
            frame.extend_from_slice(&(n as u32).to_le_bytes());
            frame.extend_from_slice(&c[..n]);
            assert_eq!(run(&["-d", "-c"], &frame).unwrap(), src, "lz4 -d of our block of {} bytes", src.len());
            // lz4's block (level 1 and 9) decoded by us.
            for level in ["-1", "-9"] {
                let f = run(&["-l", level, "-c"], &src).unwrap();
                assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()), LEGACY);
                let k = u32::from_le_bytes(f[4..8].try_into().unwrap()) as usize;
                assert_eq!(f.len(), 8 + k, "one block");
                let mut d = vec![0u8; src.len()];
                decode(&f[8..], &mut d).unwrap();
                assert!(d == src, "our decoding of lz4 {level}'s block of {} bytes", src.len());
            }
        }
    }

    /// A block that would not be smaller than the input is given up.
    #[test]
    fn incompressible_does_not_fit() {
        let src = rng(3, 65536);
        let mut t = vec![0u32; Encoder::TABLE];
        let mut e = Encoder::new(&mut t).unwrap();
        let mut c = vec![0u8; src.len() - 1];
        assert_eq!(e.encode(&src, &mut c), None);
    }

    /// A hand-made block: a literal, an overlapping match (offset 1), literals.
    #[test]
    fn decodes_reference_sequences() {
        // "aaaaaaaaaaaaaaaa" + "bcd": literal 'a', match off 1 len 15, literals.
        let block = [0x1b, b'a', 1, 0, 0x30, b'b', b'c', b'd'];
        let mut d = [0u8; 1 + 15 + 3];
        decode(&block, &mut d).unwrap();
        assert_eq!(&d, b"aaaaaaaaaaaaaaaabcd");
    }

    /// Damaged blocks are refused with an offset, never a panic; a changed byte
    /// that still decodes gives different bytes (the piece hash catches those).
    #[test]
    fn damaged_blocks_are_refused_not_panicking() {
        let text: Vec<u8> =
            b"int main(void) { return 0; } /* comment */ ".iter().copied().cycle().take(20000).collect();
        let mut src = text.clone();
        src.extend(rng(9, 5000));
        let mut t = vec![0u32; Encoder::TABLE];
        let mut e = Encoder::new(&mut t).unwrap();
        let mut c = vec![0u8; src.len()];
        let n = e.encode(&src, &mut c).unwrap();
        let c = &c[..n];
        let mut d = vec![0u8; src.len()];
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = c.to_vec();
            let k = (x as usize) % b.len();
            b[k] ^= 1 << ((x >> 32) % 8);
            if x.is_multiple_of(7) {
                b.truncate((x >> 40) as usize % b.len());
            }
            match decode(&b, &mut d) {
                Ok(()) => {}
                Err(e) => assert!(e.at <= b.len()),
            }
        }
        // Short outputs and inputs.
        for cut in 0..n.min(200) {
            assert!(decode(&c[..cut], &mut d).is_err());
        }
        assert!(decode(c, &mut d[..src.len() - 1]).is_err());
        let mut longer = vec![0u8; src.len() + 1];
        assert!(decode(c, &mut longer).is_err());
    }
}
