//! Fuzz target `ipc_frame`: see [`atlas_fuzz::ipc_frame`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atlas_fuzz::ipc_frame(data));
