//! Fuzz target `atlas_settings`: see [`atlas_fuzz::atlas_settings`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::atlas_settings(data));
