//! Fuzz target `packwiz_pack`: see [`atlas_fuzz::packwiz_pack`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::packwiz_pack(data));
