//! Runs one fuzz input against the model: `cargo run --example replay --
//! FILE` (with `SWITCHBACK_FUZZ_TRACE=1` to see each operation).

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: replay FILE (a fuzz input)");
    let data = std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"));
    switchback_fuzz::run_named(&path, &data);
    eprintln!("{path}: agrees with the model");
}
