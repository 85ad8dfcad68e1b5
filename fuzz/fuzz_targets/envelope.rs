//! Fuzz target `envelope`: the harness of the same name in `breakglass_fuzz`.
#![no_main]
// libfuzzer-sys's entry point is an exported (`no_mangle`) function.
#![allow(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| breakglass_fuzz::envelope(data));
