//! Fuzz target `keyset`: see [`atlas_fuzz::keyset`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::keyset(data));
