//! Fuzz target `pointer`: see [`atlas_fuzz::pointer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::pointer(data));
