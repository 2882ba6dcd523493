//! Fuzz target `native_pack`: see [`atlas_fuzz::native_pack`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::native_pack(data));
