//! Fuzz `Header::parse` + `Meta::parse` and the iteration the loader does after
//! them. Input: one mode byte, the file length the loader would see (8 bytes),
//! a 128-byte header, then the metadata. In mode "sealed" (bit 0) the magic,
//! version and both checksums are made right, so that the fuzzer reaches the
//! structural checks instead of stopping at a checksum it cannot forge.
#![no_main]

use ckpt_image::{HEADER_LEN, Header, MAGIC, Meta, VERSION, hash64};
use libfuzzer_sys::fuzz_target;

fn walk(h: &Header, m: &Meta, file_len: u64) {
    assert!(h.file_len <= file_len || file_len == u64::MAX);
    let mut saved = 0u64;
    for r in m.regions() {
        assert!(r.start < r.end);
        let _ = m.string((r.name_off, r.name_len));
        for run in m.runs_of(&r) {
            assert!(run.addr >= r.start && run.addr + run.len <= r.end);
            assert!(run.file_off >= h.data_offset && run.file_off + run.len <= h.data_offset + h.data_len);
            saved += run.len;
        }
    }
    assert_eq!(saved, h.data_len);
    for s in m.process.strings {
        let _ = m.string(s);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 + HEADER_LEN {
        return;
    }
    let sealed = data[0] & 1 != 0;
    let file_len = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let mut hb = [0u8; HEADER_LEN];
    hb.copy_from_slice(&data[9..9 + HEADER_LEN]);
    let meta = &data[9 + HEADER_LEN..];
    let mut h = Header::decode(&hb).unwrap();
    if sealed {
        h.magic = u64::from_le_bytes(MAGIC);
        h.version = VERSION;
        h.meta_hash = hash64(&meta[..(h.meta_len.min(meta.len() as u64)) as usize]);
        h.seal(&mut hb);
    }
    if let Ok(h) = Header::parse(&hb, file_len, 0) {
        if let Ok(m) = Meta::parse(&h, meta) {
            walk(&h, &m, file_len);
        }
    }
    // Meta::parse must also survive a header that never went through Header::parse.
    let _ = Meta::parse(&h, meta).map(|m| m.regions().map(|r| m.runs_of(&r).count()).sum::<usize>());
});
