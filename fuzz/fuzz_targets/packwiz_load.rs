//! Fuzz target `packwiz_load`: see [`atlas_fuzz::packwiz_load`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::packwiz_load(data));
