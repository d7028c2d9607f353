//! libFuzzer target: random programs on several live coroutines, checked
//! against the reference model in `switchback_fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchback_fuzz::run(data));
