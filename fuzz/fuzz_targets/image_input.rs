//! A picture file opened or dropped on the Draw view: decoding, ink
//! extraction and MNIST-style preprocessing on arbitrary bytes.
#![no_main]

#[allow(dead_code)]
mod data {
    pub const IMAGE_SIDE: usize = 28;
    pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
}

#[path = "../../src/draw.rs"]
#[allow(dead_code)]
mod draw;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((w, h, ink)) = draw::image_to_ink(data) {
        assert_eq!(ink.len(), w * h);
        if let Some(img) = draw::to_mnist(&ink, w, h, true) {
            assert!(img.iter().all(|v| v.is_finite()));
        }
        let _ = draw::to_mnist(&ink, w, h, false);
    }
});
