//! Records the compiler version and the locked versions of the compared
//! crates for the report.

use std::path::Path;
use std::process::Command;

/// Crates whose locked version is exported as `BENCH_VERSION_<NAME>`.
const CRATES: [&str; 5] = [
    "switchback",
    "corosensei",
    "context",
    "generator",
    "wasmtime-fiber",
];

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BENCH_RUSTC_VERSION={version}");

    // This crate's own lock file: it is a workspace of its own.
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    for name in CRATES {
        let env = format!("BENCH_VERSION_{}", name.to_uppercase().replace('-', "_"));
        println!(
            "cargo:rustc-env={env}={}",
            locked_version(&lock, name).unwrap_or("?")
        );
    }
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
}

/// The version of package `name` in a Cargo.lock (the first, if several).
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let header = format!("name = \"{name}\"\n");
    let rest = &lock[lock.find(&header)? + header.len()..];
    rest.strip_prefix("version = \"")?.split('"').next()
}
