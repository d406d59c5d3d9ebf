//! Fuzz the LZ4 block decoder the loader runs on compressed page data: any
//! input decodes or is refused with an offset inside it, never a panic; and
//! whatever the encoder makes of the input decodes back to it. Input: two bytes
//! of output length, then the block.
#![no_main]

use ckpt_image::compress::{Encoder, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = u16::from_le_bytes([data[0], data[1]]) as usize;
    let block = &data[2..];
    let mut out = vec![0u8; n];
    if let Err(e) = decode(block, &mut out) {
        assert!(e.at <= block.len());
    }
    let mut table = vec![0u32; Encoder::TABLE];
    let mut enc = Encoder::new(&mut table).unwrap();
    let mut packed = vec![0u8; block.len() + block.len() / 255 + 16];
    let k = enc.encode(block, &mut packed).expect("room for any input");
    let mut back = vec![0u8; block.len()];
    decode(&packed[..k], &mut back).expect("our own block decodes");
    assert_eq!(back, block);
});
