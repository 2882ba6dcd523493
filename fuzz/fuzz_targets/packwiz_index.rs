//! Fuzz target `packwiz_index`: see [`atlas_fuzz::packwiz_index`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::packwiz_index(data));
