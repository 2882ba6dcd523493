//! Fuzz target `manifest`: see [`atlas_fuzz::manifest`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::manifest(data));
