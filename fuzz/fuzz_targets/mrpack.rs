//! Fuzz target `mrpack`: see [`atlas_fuzz::mrpack`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::mrpack(data));
