//! Fuzz target `packwiz_metafile`: see [`atlas_fuzz::packwiz_metafile`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::packwiz_metafile(data));
