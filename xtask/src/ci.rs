//! `cargo xtask ci`: every CI step after the install (which `.ci/run`
//! does first in shell: building this program needs the linker it
//! installs), timed, with a summary; the first failing step stops the run
//! unless KEEP_GOING=1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cmd::{
    require_passed, run, run_logged, run_tests, show, target_names, test_binaries,
    without_warnings, Tally,
};
use crate::objects;
use crate::targets::{self, Check};

/// A target without std, to check that the crate without features is no_std.
const NO_STD_TARGET: &str = "x86_64-unknown-none";

type Step = fn(&Ci) -> Result<(), String>;

/// The steps, numbered after `.ci/run`'s step 1 (the install).
const STEPS: &[(&str, Step)] = &[
    ("2. cargo fmt", check_fmt),
    (
        "3. cargo clippy; xtask's tests; the docs' target tables",
        clippy,
    ),
    ("4. cargo test (the README's test command)", test_default),
    (
        "5. feature combinations; the library on the MSRV (1.88)",
        feature_combinations,
    ),
    (
        "6. cargo doc in every feature set, and as docs.rs builds it",
        docs,
    ),
    ("7. valgrind memcheck of the test binaries", valgrind_tests),
    (
        "8. nightly: cargo +nightly test --features asm-unwind",
        nightly_asm_unwind,
    ),
    ("9. examples", host_examples),
    ("10. tests with frame pointers forced on", frame_pointers),
    ("11. tests in release mode; a million suspended coroutines", release_tests),
    ("12. benchmarks, each run once", benches),
    (
        "13. bench-compare: ratios to corosensei in two layouts, callgrind branch counts",
        bench_compare,
    ),
    (
        "14. two copies of switchback and corosensei in one binary",
        link_twice,
    ),
    (
        "15. nightly: AddressSanitizer with the sanitizer feature",
        address_sanitizer,
    ),
    (
        "16. fuzzing: the corpus replayed, then libFuzzer under ASan for two minutes",
        fuzz,
    ),
    (
        "17. cross targets: the test suite and examples under qemu-user (i686 and x86-64 musl natively)",
        cross_run,
    ),
    (
        "18. x86-64 Windows: the test suite and examples under Wine",
        windows_wine,
    ),
    ("19. no_std targets: no-std-check built", cross_no_std),
    (
        "20. LoongArch64 build, AArch64 branch protection, compiled-only targets",
        cross_objects,
    ),
    (
        "21. UEFI: the test application under QEMU with OVMF and AAVMF",
        uefi,
    ),
    (
        "22. the other ELF systems (BSDs, illumos, Android): compiled to objects, clippy clean",
        elf_systems,
    ),
    (
        "23. Miri: the portable tests under Tree Borrows (coroutines on threads)",
        miri,
    ),
];

pub struct Ci {
    pub root: PathBuf,
    pub target_dir: PathBuf,
}

impl Ci {
    pub fn new() -> Ci {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask/ has a parent")
            .to_path_buf();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Ci { root, target_dir }
    }

    /// `cargo ARGS` at the root, sharing the one target directory.
    fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("cargo");
        cmd.args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", &self.target_dir);
        cmd
    }

    fn bash(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", &self.target_dir);
        cmd
    }

    fn sub(&self, dir: &str) -> PathBuf {
        self.target_dir.join(dir)
    }
}

fn elapsed(secs: u64) -> String {
    format!("{}m{:02}s", secs / 60, secs % 60)
}

/// `ci [--install-took SECS] [STEP...]`: runs every step, or those whose
/// number or name starts with one of the STEP arguments.
pub fn run_ci(args: &[String]) -> Result<(), String> {
    let mut install = None;
    let mut install_failed = false;
    let mut picks = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--install-took" {
            let secs = it.next().ok_or("--install-took needs seconds")?;
            install = Some(secs.parse::<u64>().map_err(|e| format!("{secs}: {e}"))?);
        } else if arg == "--install-failed" {
            install_failed = true;
        } else {
            picks.push(arg.clone());
        }
    }
    let ci = Ci::new();
    std::env::set_current_dir(&ci.root).map_err(|e| format!("{}: {e}", ci.root.display()))?;
    // The same flags in every step, so that nothing is rebuilt needlessly.
    std::env::set_var("CARGO_INCREMENTAL", "0");
    if std::env::var_os("CARGO_TERM_COLOR").is_none() {
        std::env::set_var("CARGO_TERM_COLOR", "never");
    }
    std::env::set_var("RUST_BACKTRACE", "0");
    let keep_going = std::env::var("KEEP_GOING").is_ok_and(|v| v == "1");

    let chosen: Vec<&(&str, Step)> = STEPS
        .iter()
        .filter(|(name, _)| {
            picks.is_empty()
                || picks.iter().any(|p| {
                    let number = name.split('.').next().unwrap_or("");
                    number == p
                        || name[number.len() + 1..]
                            .trim_start()
                            .starts_with(p.as_str())
                })
        })
        .collect();
    if chosen.is_empty() {
        return Err(format!("no step matches {picks:?}"));
    }

    let start = Instant::now();
    let mut summary = Vec::new();
    let mut failed = Vec::new();
    if let Some(secs) = install {
        let status = if install_failed { "FAILED" } else { "ok" };
        summary.push(format!(
            "{status:<7} {:<8} 1. install tools (.ci/install.sh)",
            elapsed(secs)
        ));
        if install_failed {
            failed.push("1. install tools");
        }
    }
    for (name, step) in chosen {
        let step_start = Instant::now();
        println!();
        println!("================================================================");
        println!("== {name}   (at {})", elapsed(start.elapsed().as_secs()));
        println!("================================================================");
        let result = crate::disk::make_room(&ci.target_dir).and_then(|_| step(&ci));
        let took = elapsed(step_start.elapsed().as_secs());
        // What the step left free: the run's peak use shows in the summary.
        let free = crate::disk::free_bytes(&ci.target_dir)
            .map(|b| format!("  ({} free after)", crate::disk::gib(b)))
            .unwrap_or_default();
        match result {
            Ok(()) => summary.push(format!("ok      {took:<8} {name}{free}")),
            Err(e) => {
                summary.push(format!("FAILED  {took:<8} {name}{free}"));
                eprintln!("{e}");
                println!();
                println!("!! step failed: {name}");
                failed.push(*name);
                if !keep_going {
                    break;
                }
            }
        }
    }
    println!();
    println!("================================================================");
    println!("Steps:");
    for line in &summary {
        println!("  {line}");
    }
    let total = start.elapsed().as_secs() + install.unwrap_or(0);
    if failed.is_empty() {
        println!("All steps passed.");
        println!("Total time: {}", elapsed(total));
        Ok(())
    } else {
        println!("CI FAILED.");
        println!("Total time: {}", elapsed(total));
        Err(format!("failed: {}", failed.join("; ")))
    }
}

// ---------------------------------------------------------------------------
fn check_fmt(ci: &Ci) -> Result<(), String> {
    run(&mut ci.cargo(&["fmt", "--all", "--", "--check"]))?;
    // bench-compare is a workspace of its own (a user's crate).
    run(&mut ci.cargo(&[
        "fmt",
        "--manifest-path",
        "bench-compare/Cargo.toml",
        "--",
        "--check",
    ]))?;
    // So is fuzz/ (the fuzzer builds it with its own flags).
    run(&mut ci.cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"]))
}

// ---------------------------------------------------------------------------
fn clippy(ci: &Ci) -> Result<(), String> {
    run(&mut ci.cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    run(&mut ci.cargo(&[
        "clippy",
        "--all-targets",
        "--no-default-features",
        "--features",
        "default-stack",
        "--",
        "-D",
        "warnings",
    ]))?;
    // bench-compare is a workspace of its own (a user's crate).
    run(&mut ci.cargo(&[
        "clippy",
        "--manifest-path",
        "bench-compare/Cargo.toml",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // This program: its lints and its unit tests (the object checks on
    // their fixtures, the test-output reader, the target table).
    run(&mut ci.cargo(&[
        "clippy",
        "-p",
        "xtask",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_tests(&mut ci.cargo(&["test", "-p", "xtask"]), "xtask")?;
    // The README's and CONTRIBUTING.md's target tables list exactly the
    // triples of src/arch/targets.rs.
    targets::check_docs()
}

// ---------------------------------------------------------------------------
// The test command given in README.md, then the exact compile-fail messages
// (trybuild; ignored by plain `cargo test` because it is slow).
fn test_default(ci: &Ci) -> Result<(), String> {
    let readme = std::fs::read_to_string("README.md").map_err(|e| format!("README.md: {e}"))?;
    let command = targets::readme_test_command(&readme)?;
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    run_tests(&mut ci.cargo(&args), "the README's test command")?;
    run_tests(
        &mut ci.cargo(&["test", "--test", "compile_fail", "--", "--ignored"]),
        "compile_fail",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
fn feature_combinations(ci: &Ci) -> Result<(), String> {
    run_tests(
        &mut ci.cargo(&[
            "test",
            "--no-default-features",
            "--features",
            "default-stack",
        ]),
        "default-stack only",
    )?;
    // The minimum supported Rust version (`rust-version` in Cargo.toml) is
    // the library's: the dev-dependencies need a newer toolchain, so the
    // library alone is checked with it, with and without the default
    // features.
    run(&mut ci.cargo(&["+1.88", "check", "--lib"]))?;
    run(&mut ci.cargo(&["+1.88", "check", "--lib", "--no-default-features"]))?;
    // No features: the crate is no_std. Build it for the host, then for a
    // target that has no std at all.
    run(&mut ci.cargo(&["build", "--no-default-features"]))?;
    run(&mut ci.cargo(&["build", "--no-default-features", "--target", NO_STD_TARGET]))?;
    // corosensei's feature names resolve.
    run(&mut ci.cargo(&["build", "--no-default-features", "--features", "libc"]))?;
    run(&mut ci.cargo(&[
        "build",
        "--no-default-features",
        "--features",
        "windows-sys",
    ]))?;
    // sanitizer + asm-unwind is refused with a message that says why.
    let mut cmd = ci.cargo(&["+nightly", "check", "--features", "sanitizer,asm-unwind"]);
    println!("(must fail)");
    let (log, ok) = run_logged(&mut cmd)?;
    if ok {
        return Err("sanitizer + asm-unwind compiled; it must be refused".into());
    }
    if !log.contains("the `sanitizer` and `asm-unwind` features cannot be combined") {
        return Err("sanitizer + asm-unwind failed without the expected message".into());
    }
    println!("refused as expected");
    // Dropping a suspended coroutine where it cannot be unwound explains
    // itself before aborting.
    crate::abort_paths::run(&ci.root, &ci.target_dir)
}

// ---------------------------------------------------------------------------
fn docs(ci: &Ci) -> Result<(), String> {
    // Every feature set the tests run in, warnings (broken links) denied.
    for features in [
        &[][..],
        &["--no-default-features"],
        &["--no-default-features", "--features", "unwind"],
        &["--no-default-features", "--features", "default-stack"],
    ] {
        let mut args = vec!["doc", "--no-deps"];
        args.extend_from_slice(features);
        run(ci.cargo(&args).env("RUSTDOCFLAGS", "-D warnings"))?;
    }
    // As docs.rs builds them ([package.metadata.docs.rs]): nightly, with the
    // `doc(cfg)` badges of `--cfg docsrs`.
    run(ci
        .cargo(&["+nightly", "doc", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings --cfg docsrs"))
}

// ---------------------------------------------------------------------------
fn valgrind_tests(ci: &Ci) -> Result<(), String> {
    // The same build as `cargo test`: nothing is recompiled.
    let mut cmd = ci.cargo(&["test", "--no-run", "--message-format=json"]);
    println!("+ {}", show(&cmd));
    let out = cmd.output().map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo test --no-run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let binaries = test_binaries(&String::from_utf8_lossy(&out.stdout));
    if binaries.is_empty() {
        return Err("no test binaries found".into());
    }
    let mut failed = Vec::new();
    let mut tally = Tally::default();
    for bin in &binaries {
        let shown = bin
            .strip_prefix(&ci.target_dir)
            .unwrap_or(bin)
            .display()
            .to_string();
        println!();
        println!("-- valgrind: {shown}");
        let mut cmd = Command::new("timeout");
        cmd.args([
            "1200",
            "valgrind",
            "--error-exitcode=1",
            "--leak-check=no",
            "--quiet",
        ])
        .arg(bin)
        .arg("--test-threads=1")
        .env("SWITCHBACK_UNDER_VALGRIND", "1");
        let (log, ok) = run_logged(&mut cmd)?;
        // A binary that exits 0 without a `test result:` line ran nothing.
        match crate::cmd::tally_tests(&log) {
            Ok(t) if ok => tally += t,
            Ok(_) => failed.push(shown),
            Err(e) => failed.push(format!("{shown}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "valgrind reported errors (or the tests failed or did not run) in:\n  {}",
            failed.join("\n  ")
        ));
    }
    require_passed(tally, "valgrind").map(drop)
}

// ---------------------------------------------------------------------------
fn nightly_asm_unwind(ci: &Ci) -> Result<(), String> {
    run_tests(
        &mut ci.cargo(&["+nightly", "test", "--features", "asm-unwind"]),
        "asm-unwind",
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
/// What an example must print.
enum Expect {
    /// Exactly `.ci/expected/NAME.txt` on stdout.
    Stdout,
    /// That, and a panic message about foobar on stderr.
    StdoutAndPanic,
    /// Its output (stdout and stderr) names this function: a backtrace that
    /// reached it.
    Mentions(&'static str),
}

/// Every example and what it must print; `host_only` ones need
/// dev-dependencies that only the host has (tokio). Every file of
/// `examples/` must be listed (checked before they run), so a new example
/// is not silently skipped.
const EXAMPLES: &[(&str, Expect, bool)] = &[
    ("basic", Expect::Stdout, false),
    ("panic", Expect::StdoutAndPanic, false),
    ("trap", Expect::Stdout, false),
    ("async_bridge", Expect::Stdout, true),
    ("generator", Expect::Stdout, false),
    ("backtrace", Expect::Mentions("sub_function"), false),
];

/// Runs the examples with `cargo` (a function that gives the cargo command
/// of the target, `run -q --example NAME` appended) and checks their output;
/// `host` runs the host-only ones too. Reports every failure.
fn check_examples(
    ci: &Ci,
    what: &str,
    host: bool,
    cargo: &dyn Fn(&[&str]) -> Command,
) -> Result<(), String> {
    let listed: Vec<&str> = EXAMPLES.iter().map(|e| e.0).collect();
    let metadata = ci
        .cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let found = target_names(
        &String::from_utf8_lossy(&metadata.stdout),
        "switchback",
        "example",
    )?;
    let unlisted: Vec<&String> = found
        .iter()
        .filter(|n| !listed.contains(&n.as_str()))
        .collect();
    if !unlisted.is_empty() {
        return Err(format!(
            "examples not listed in xtask/src/ci.rs's EXAMPLES (say what they print): {unlisted:?}"
        ));
    }
    let mut failures = Vec::new();
    for (name, expect, host_only) in EXAMPLES {
        if *host_only && !host {
            continue;
        }
        let mut cmd = cargo(&["run", "-q", "--example", name]);
        // A hung example fails instead of stopping the run.
        let mut timed = Command::new("timeout");
        timed.arg("300").arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => timed.env(k, v),
                None => timed.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            timed.current_dir(dir);
        }
        cmd = timed;
        println!("+ {}", show(&cmd));
        let out = cmd.output().map_err(|e| format!("{}: {e}", show(&cmd)))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let problem = if !out.status.success() {
            Some(format!("failed ({})", out.status))
        } else {
            match expect {
                Expect::Stdout | Expect::StdoutAndPanic => {
                    let file = format!(".ci/expected/{name}.txt");
                    let want =
                        std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
                    if stdout != want {
                        Some(format!(
                            "stdout differs from {file}:\n{}",
                            diff(&want, &stdout)
                        ))
                    } else if matches!(expect, Expect::StdoutAndPanic)
                        && !(stderr.contains("panicked at") && stderr.contains("foobar"))
                    {
                        Some("no panic message about foobar on stderr".into())
                    } else {
                        None
                    }
                }
                Expect::Mentions(function) => {
                    if stdout.contains(function) || stderr.contains(function) {
                        None
                    } else {
                        Some(format!("the backtrace does not reach {function}"))
                    }
                }
            }
        };
        match problem {
            None => println!("{what}: example {name} printed what it should"),
            Some(p) => {
                eprintln!(
                    "{what}: example {name}: {p}\n--- stdout:\n{stdout}--- stderr:\n{stderr}"
                );
                failures.push(*name);
            }
        }
    }
    if failures.is_empty() {
        println!("{what}: examples print their expected output");
        Ok(())
    } else {
        Err(format!("{what}: examples failed: {}", failures.join(", ")))
    }
}

/// The lines of `got` that differ from `want`, as `-`/`+` pairs.
fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            if let Some(a) = a {
                out.push_str(&format!("-{a}\n"));
            }
            if let Some(b) = b {
                out.push_str(&format!("+{b}\n"));
            }
        }
    }
    out
}

fn host_examples(ci: &Ci) -> Result<(), String> {
    check_examples(ci, "host", true, &|args| ci.cargo(args))
}

// ---------------------------------------------------------------------------
const FRAME_POINTER_FLAGS: &str = "-C force-frame-pointers=yes --cfg switchback_frame_pointers";

fn frame_pointers(ci: &Ci) -> Result<(), String> {
    // tests/frame_pointers.rs only exists with this cfg. Other RUSTFLAGS
    // would invalidate the main build, so this one has its own subdirectory.
    run_tests(
        ci.cargo(&["test", "--tests"])
            .env("RUSTFLAGS", FRAME_POINTER_FLAGS)
            .env("CARGO_TARGET_DIR", ci.sub("frame-pointers")),
        "frame pointers",
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// The context switch is inline assembly whose surroundings the optimizer
// rearranges: run the tests optimized too. With debug info, so that the
// backtrace tests can resolve inlined frames.
fn release_tests(ci: &Ci) -> Result<(), String> {
    run_tests(
        ci.cargo(&["test", "--release", "--tests"])
            .env("CARGO_PROFILE_RELEASE_DEBUG", "true"),
        "release",
    )?;
    // A million suspended coroutines held at once, on slab stacks (about
    // 4.2 GB resident, 11-23 s): ignored by `cargo test`, run here alone,
    // with the build above.
    run_tests(
        ci.cargo(&[
            "test",
            "--release",
            "--test",
            "slab",
            "--",
            "--ignored",
            "--test-threads=1",
        ])
        .env("CARGO_PROFILE_RELEASE_DEBUG", "true"),
        "a million coroutines",
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// The README's bench command, each benchmark run once (criterion's test
// mode; no timing). Reuses the optimized build of the previous step.
fn benches(ci: &Ci) -> Result<(), String> {
    run(&mut ci.cargo(&["bench", "--bench", "coroutine", "--", "--test"]))?;
    run(&mut ci.cargo(&[
        "bench", "--bench", "future", "--bench", "iter", "--", "--test",
    ]))
}

// ---------------------------------------------------------------------------
// bench-compare, a user's crate that depends on switchback by path: its unit
// tests; then the per-round ratios to corosensei 0.3.4, in quick mode, in the
// `release` and `release-lto` layouts (Cargo profiles of bench-compare);
// then instructions and branch mispredictions per round trip under callgrind.
// Reported, never asserted: the step fails only if the harness fails.
fn bench_compare(ci: &Ci) -> Result<(), String> {
    let manifest = "bench-compare/Cargo.toml";
    run_tests(
        &mut ci.cargo(&["test", "--manifest-path", manifest]),
        "bench-compare",
    )?;
    run(&mut ci.cargo(&[
        "run",
        "--release",
        "--manifest-path",
        manifest,
        "--",
        "--layouts",
        "release,release-lto",
        "--quick",
        "--ops",
        "switch,switch-deep,call,call-pooled",
        "--crates",
        "corosensei",
    ]))?;
    run(&mut ci.cargo(&[
        "run",
        "--release",
        "--manifest-path",
        manifest,
        "--",
        "--callgrind",
        "--ops",
        "switch,switch-deep",
        "--crates",
        "corosensei",
    ]))
}

// ---------------------------------------------------------------------------
// Two copies of switchback and corosensei 0.3.4 linked into one binary: no
// assembly symbol may clash. Builds in $TARGET_DIR/link-twice.
fn link_twice(ci: &Ci) -> Result<(), String> {
    crate::link_twice::run(&ci.root, &ci.target_dir)
}

// ---------------------------------------------------------------------------
/// The integration tests left out of the AddressSanitizer run, and why;
/// every other test file runs under it.
const NOT_UNDER_ASAN: &[(&str, &str)] = &[
    (
        "trap",
        "deliberate faults, which ASan's own handler reports",
    ),
    ("compile_fail", "compile-fail cases: nothing runs"),
    (
        "frame_pointers",
        "exists only with frame pointers forced on",
    ),
];

/// The `--test` arguments of a run of every integration test but those
/// `left_out` (name, reason).
fn tests_but(tests: &[String], left_out: &[(&str, &str)]) -> Vec<String> {
    tests
        .iter()
        .filter(|t| !left_out.iter().any(|(n, _)| n == t))
        .flat_map(|t| ["--test".to_string(), t.clone()])
        .collect()
}

/// The integration tests of the crate, by name, from `cargo metadata`.
fn integration_tests(ci: &Ci) -> Result<Vec<String>, String> {
    let metadata = ci
        .cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    target_names(
        &String::from_utf8_lossy(&metadata.stdout),
        "switchback",
        "test",
    )
}

// The `sanitizer` feature under AddressSanitizer (nightly): every stack
// switch is announced, so ASan follows the coroutines without warnings or
// false reports. Explicit --target keeps build scripts and proc macros
// uninstrumented. Without fake stacks (detect_stack_use_after_return=0),
// because several tests check which stack a local lives on.
fn address_sanitizer(ci: &Ci) -> Result<(), String> {
    let tests = integration_tests(ci)?;
    for (name, why) in NOT_UNDER_ASAN {
        println!("left out: tests/{name}.rs ({why})");
    }
    let test_args = tests_but(&tests, NOT_UNDER_ASAN);
    let mut args = vec![
        "+nightly",
        "test",
        "--target",
        "x86_64-unknown-linux-gnu",
        "--features",
        "sanitizer",
        "--lib",
    ];
    args.extend(test_args.iter().map(String::as_str));
    let mut cmd = ci.cargo(&args);
    cmd.env("RUSTFLAGS", "-Zsanitizer=address")
        .env("CARGO_TARGET_DIR", ci.sub("asan"))
        .env("SWITCHBACK_UNDER_SANITIZER", "1")
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=0:detect_stack_use_after_return=0",
        );
    let (log, ok) = run_logged(&mut cmd)?;
    if !ok {
        return Err("the tests failed under AddressSanitizer".into());
    }
    let tally = crate::cmd::tally_tests(&log)?;
    // One binary per test file, and the library's.
    if tally.binaries != tests.len() - NOT_UNDER_ASAN.len() + 1 {
        return Err(format!(
            "{} test binaries reported, not {}",
            tally.binaries,
            tests.len() - NOT_UNDER_ASAN.len() + 1
        ));
    }
    require_passed(tally, "AddressSanitizer")?;
    // The tests passed; ASan must not have warned either (an unannounced
    // switch shows as "ASan is ignoring requested __asan_handle_no_return").
    if log.contains("AddressSanitizer") || log.contains("ASan is ignoring") {
        return Err("AddressSanitizer reported a problem (see above)".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
/// `cargo SUBCOMMAND --target TRIPLE` for a qemu row of the table, with its
/// linker and runner (`cargo xtask cross`, which scripts/cross.sh calls).
pub fn cross_cargo(triple: &str, subcommand: &str) -> Result<Command, String> {
    let row = targets::qemu_row(triple)
        .ok_or_else(|| format!("{triple} has no qemu row in src/arch/targets.rs"))?;
    let env_triple = triple.to_uppercase().replace('-', "_");
    let mut cmd = Command::new("cargo");
    if row.build_std {
        cmd.args(["+nightly", subcommand, "-Zbuild-std=std,panic_unwind"]);
    } else {
        cmd.arg(subcommand);
    }
    cmd.args(["--target", triple]);
    // An empty prefix (x86-64 musl) keeps the host's cc as the linker.
    if !row.gnu.is_empty() {
        cmd.env(
            format!("CARGO_TARGET_{env_triple}_LINKER"),
            format!("{}-gcc", row.gnu),
        );
        // The C compiler for build scripts that compile C.
        cmd.env(
            format!("CC_{}", triple.replace('-', "_")),
            format!("{}-gcc", row.gnu),
        );
    }
    // i686 binaries run natively on an x86-64 kernel (IA-32 compatibility
    // mode) where Debian's i386 libc provides their loader
    // (.ci/apt-packages.txt has it): qemu-i386 7.2 hangs in the first
    // thread creation on AMD EPYC hosts. Elsewhere, qemu; static musl
    // binaries of the host's architecture run natively too.
    let i686_native =
        triple == "i686-unknown-linux-gnu" && Path::new("/lib/ld-linux.so.2").exists();
    if i686_native || row.runner.is_empty() {
        eprintln!("cross: {triple} runs natively");
        cmd.env_remove(format!("CARGO_TARGET_{env_triple}_RUNNER"));
        cmd.env_remove("SWITCHBACK_QEMU_RUNNER");
    } else {
        // A static musl binary needs no sysroot to load from.
        let runner = if row.musl {
            row.runner.to_string()
        } else {
            format!("{} -L /usr/{}", row.runner, row.gnu)
        };
        cmd.env(format!("CARGO_TARGET_{env_triple}_RUNNER"), &runner);
        // The tests that re-run their own binary as a child process need
        // the same emulator command (tests/common/mod.rs).
        cmd.env("SWITCHBACK_QEMU_RUNNER", &runner);
        // Under qemu-i386 the trap tests hang when run in parallel.
        if triple.starts_with("i686-") {
            cmd.env("RUST_TEST_THREADS", "1");
        }
    }
    Ok(cmd)
}

/// `cross TRIPLE SUBCOMMAND ARGS...`: runs the cargo command for a qemu row.
pub fn cross(args: &[String]) -> Result<(), String> {
    let [triple, subcommand, rest @ ..] = args else {
        return Err(format!(
            "usage: cargo xtask cross TRIPLE CARGO-SUBCOMMAND [ARGS...]\nqemu rows: {}",
            targets::with(|c| matches!(c, Check::Qemu(_)))
                .iter()
                .map(|t| t.triple)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    };
    let mut cmd = cross_cargo(triple, subcommand)?;
    cmd.args(rest);
    let status = cmd.status().map_err(|e| format!("cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        std::process::exit(status.code().unwrap_or(1));
    }
}

fn cross_run(ci: &Ci) -> Result<(), String> {
    let mut failed = Vec::new();
    for target in targets::with(|c| matches!(c, Check::Qemu(_))) {
        let triple = target.triple;
        println!();
        println!("-- {triple}");
        let row = targets::qemu_row(triple).expect("a qemu row");
        let mut cmd = cross_cargo(triple, "test")?;
        cmd.args(["--lib", "--tests"])
            .current_dir(&ci.root)
            .env("CARGO_TARGET_DIR", &ci.target_dir);
        if let Err(e) = run_tests(&mut cmd, triple) {
            eprintln!("{e}");
            failed.push(format!("{triple} (tests)"));
            continue;
        }
        let cargo = |args: &[&str]| {
            let mut cmd = cross_cargo(triple, args[0]).expect("a qemu row");
            cmd.args(&args[1..])
                .current_dir(&ci.root)
                .env("CARGO_TARGET_DIR", &ci.target_dir);
            cmd
        };
        if let Err(e) = check_examples(ci, triple, false, &cargo) {
            eprintln!("{e}");
            failed.push(format!("{triple} (examples)"));
        }
        // The frame-pointer chain (tests/frame_pointers.rs exists only with
        // this cfg); s390x keeps a back chain only with +backchain. Skipped
        // for targets whose std is built from source (it would be built
        // again with these flags), and for musl, whose switch and frame
        // records are those of the glibc row of its architecture, walked
        // there.
        if row.build_std || row.musl {
            continue;
        }
        let mut flags = FRAME_POINTER_FLAGS.to_string();
        if triple.starts_with("s390x-") {
            flags.push_str(" -C target-feature=+backchain");
        }
        let mut cmd = cross_cargo(triple, "test")?;
        cmd.args(["--test", "frame_pointers"])
            .current_dir(&ci.root)
            .env("RUSTFLAGS", flags)
            .env("CARGO_TARGET_DIR", ci.sub("frame-pointers"));
        if let Err(e) = run_tests(&mut cmd, &format!("{triple} frame pointers")) {
            eprintln!("{e}");
            failed.push(format!("{triple} (frame pointers)"));
        }
    }
    all_passed(&failed)
}

/// The end of a step that goes on past failures to try every row: Ok if
/// none failed, else the rows that did.
fn all_passed(failed: &[String]) -> Result<(), String> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}

// ---------------------------------------------------------------------------
fn windows_wine(ci: &Ci) -> Result<(), String> {
    let wine = targets::with(|c| *c == Check::Wine);
    let mut failed = Vec::new();
    for target in wine {
        let triple = target.triple;
        without_warnings(&mut ci.cargo(&[
            "clippy",
            "-q",
            "--target",
            triple,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        let wine = |args: &[&str]| {
            let mut cmd = ci.bash("scripts/wine.sh", args);
            cmd.env("WINE_TARGET", triple);
            cmd
        };
        // Unit, integration and doc tests, all through Wine.
        if let Err(e) = run_tests(&mut wine(&["test"]), triple) {
            eprintln!("{e}");
            failed.push(format!("{triple} (tests)"));
        }
        if let Err(e) = run_tests(&mut wine(&["test", "--release", "--tests"]), triple) {
            eprintln!("{e}");
            failed.push(format!("{triple} (release tests)"));
        }
        if let Err(e) = check_examples(ci, triple, false, &wine) {
            eprintln!("{e}");
            failed.push(format!("{triple} (examples)"));
        }
    }
    all_passed(&failed)
}

// ---------------------------------------------------------------------------
fn no_std_check(ci: &Ci, args: &[&str], dir: &str) -> Result<(), String> {
    let mut cmd = ci.cargo(args);
    cmd.current_dir(ci.root.join("no-std-check"))
        .env("CARGO_TARGET_DIR", ci.sub(dir));
    run(&mut cmd)
}

fn cross_no_std(ci: &Ci) -> Result<(), String> {
    for target in targets::with(|c| *c == Check::NoStd) {
        no_std_check(ci, &["build", "--target", target.triple], "no-std-check")?;
        no_std_check(
            ci,
            &["build", "--release", "--target", target.triple],
            "no-std-check",
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
/// The library of an `Objects` row compiled to objects (one per feature
/// configuration) and inspected, then the tests and examples compiled and
/// assembled, with `true` as the linker: there is no linker or SDK for
/// these targets here, so nothing is linked.
fn compile_objects(ci: &Ci, triple: &str) -> Result<(), String> {
    let dir = ci.sub("objects/inspected").join(triple);
    // rustc asks xcrun for an Apple SDK to give the linker; an empty
    // directory named as the platform's SDK stands in for it (unused, since
    // nothing is linked) and keeps the build free of that warning.
    let sdk = if triple.ends_with("-apple-darwin") {
        Some(dir.join("sdk/MacOSX.sdk"))
    } else if triple.ends_with("-apple-ios") {
        Some(dir.join("sdk/iPhoneOS.sdk"))
    } else {
        None
    };
    std::fs::create_dir_all(dir.join("sdk/MacOSX.sdk")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("sdk/iPhoneOS.sdk")).map_err(|e| e.to_string())?;
    let cargo = |args: &[&str]| {
        let mut cmd = ci.cargo(args);
        cmd.env("CARGO_TARGET_DIR", ci.sub("objects")).env(
            format!(
                "CARGO_TARGET_{}_LINKER",
                triple.to_uppercase().replace('-', "_")
            ),
            "true",
        );
        if let Some(sdk) = &sdk {
            cmd.env("SDKROOT", sdk);
        }
        cmd
    };
    let tools = objects::Tools::find()?;
    for (config, features) in [
        ("default", &[][..]),
        ("no-default-features", &["--no-default-features"]),
        ("unwind", &["--no-default-features", "--features", "unwind"]),
    ] {
        let object = dir.join(format!("lib-{config}.o"));
        let emit = format!("--emit=obj={}", object.display());
        let mut args = vec!["rustc", "-q", "--lib", "--target", triple];
        args.extend_from_slice(features);
        args.extend(["--", "-C", "codegen-units=1", &emit]);
        without_warnings(&mut cargo(&args))?;
        objects::check_library_object(&tools, triple, &object)?;
    }
    without_warnings(&mut cargo(&[
        "build",
        "-q",
        "--target",
        triple,
        "--tests",
        "--examples",
    ]))?;
    // Code only these targets compile (their trap support, for one) gets
    // the lints the host's code gets.
    without_warnings(&mut cargo(&[
        "clippy",
        "-q",
        "--target",
        triple,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // tests/frame_pointers.rs exists only with this cfg (Apple targets keep
    // frame pointers anyway); passed to the test crate alone.
    without_warnings(&mut cargo(&[
        "rustc",
        "-q",
        "--target",
        triple,
        "--test",
        "frame_pointers",
        "--",
        "--cfg",
        "switchback_frame_pointers",
    ]))?;
    if objects::platform_register_reserved(triple) {
        // A test that instantiates every switch, as an object to inspect.
        let object = dir.join("test-values.o");
        let emit = format!("--emit=obj={}", object.display());
        without_warnings(&mut cargo(&[
            "rustc",
            "-q",
            "--target",
            triple,
            "--test",
            "values",
            "--",
            "-C",
            "codegen-units=1",
            &emit,
        ]))?;
        objects::check_no_x18(&tools, triple, &dir.join("lib-default.o"))?;
        objects::check_no_x18(&tools, triple, &object)?;
    }
    println!("{triple}: library, tests and examples compiled and assembled");
    Ok(())
}

fn cross_objects(ci: &Ci) -> Result<(), String> {
    for (_, script) in scripted() {
        run(&mut ci.bash(script, &[]))?;
    }
    for target in targets::with(|c| *c == Check::Objects) {
        compile_objects(ci, target.triple)?;
        no_std_check(ci, &["build", "--target", target.triple], "objects")?;
    }
    Ok(())
}

/// The (triple, script) pairs of the table's `Script` checks.
fn scripted() -> Vec<(&'static str, &'static str)> {
    targets::with(|c| matches!(c, Check::Script(_)))
        .into_iter()
        .flat_map(|t| {
            t.checks.iter().filter_map(move |c| match c {
                Check::Script(s) => Some((t.triple, *s)),
                _ => None,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
/// fuzz/: the corpus and every saved regression replayed against the model
/// (stable, no sanitizer), its lints, then a bounded libFuzzer session
/// under ASan from a scratch copy of the corpus (leaks not reported:
/// leaking a coroutine is the documented end of some programs). Fuzzing
/// time: SWITCHBACK_FUZZ_SECONDS, 120 by default.
fn fuzz(ci: &Ci) -> Result<(), String> {
    let dir = ci.root.join("fuzz");
    let in_fuzz = |args: &[&str]| {
        let mut cmd = ci.cargo(args);
        cmd.current_dir(&dir)
            .env("CARGO_TARGET_DIR", ci.sub("fuzz"));
        cmd
    };
    run_tests(&mut in_fuzz(&["test"]), "fuzz corpus")?;
    without_warnings(&mut in_fuzz(&[
        "clippy",
        "-q",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let corpus = ci.sub("fuzz/session-corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let committed = dir.join("corpus/coroutines");
    for entry in
        std::fs::read_dir(&committed).map_err(|e| format!("{}: {e}", committed.display()))?
    {
        let path = entry.map_err(|e| e.to_string())?.path();
        std::fs::copy(&path, corpus.join(path.file_name().expect("a file")))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let seconds = std::env::var("SWITCHBACK_FUZZ_SECONDS").unwrap_or_else(|_| "120".into());
    let max_time = format!("-max_total_time={seconds}");
    let corpus_arg = corpus.display().to_string();
    let mut session = in_fuzz(&[
        "+nightly",
        "fuzz",
        "run",
        "coroutines",
        "--features",
        "asan",
        &corpus_arg,
        "--",
        &max_time,
        "-print_final_stats=1",
    ]);
    session.env("ASAN_OPTIONS", "detect_leaks=0");
    let result = run(&mut session);
    let _ = std::fs::remove_dir_all(&corpus);
    result
}

// ---------------------------------------------------------------------------
/// An `Elf` row: the library compiled to an object and checked for the
/// switch, then the library, the tests and the examples compiled in one
/// build whose workspace crates go through clippy-driver, so that clippy's
/// lints and code generation (every `asm!` block assembled) take one pass.
/// `true` stands in for the linker (nothing is linked); no debug info,
/// which nothing here reads, and so nothing to strip.
fn elf_target(ci: &Ci, triple: &str, build_std: bool) -> Result<(), String> {
    let dir = ci.sub("elf/inspected").join(triple);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let toolchain = if build_std { "nightly" } else { "stable" };
    let sysroot = Command::new("rustc")
        .args([&format!("+{toolchain}"), "--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    let driver =
        PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join("bin/clippy-driver");
    if !driver.exists() {
        return Err(format!(
            "no clippy-driver in {toolchain} (run .ci/install.sh)"
        ));
    }
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new("cargo");
        if build_std {
            cmd.arg("+nightly");
        }
        cmd.arg(args[0]);
        if build_std {
            cmd.arg("-Zbuild-std=std,panic_unwind");
            // Nightly's clippy flags `thread_local!` statics whose
            // initializer is already `const` on targets without native
            // thread-locals (OpenBSD): rust-lang/rust-clippy#17566, a false
            // positive.
            cmd.env(
                "CLIPPY_ARGS",
                "-A__CLIPPY_HACKERY__clippy::missing_const_for_thread_local__CLIPPY_HACKERY__",
            );
        }
        cmd.args(&args[1..])
            .current_dir(&ci.root)
            .env("CARGO_TARGET_DIR", ci.sub("elf"))
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            // Without debug info cargo asks rustc to strip it from linked
            // binaries, which on illumos runs rust-objcopy on the file that
            // `true` never wrote.
            .env("CARGO_PROFILE_DEV_STRIP", "none")
            .env(
                format!(
                    "CARGO_TARGET_{}_LINKER",
                    triple.to_uppercase().replace('-', "_")
                ),
                "true",
            );
        cmd
    };
    let object = dir.join("lib-default.o");
    let emit = format!("--emit=obj={}", object.display());
    without_warnings(&mut cargo(&[
        "rustc",
        "-q",
        "--lib",
        "--target",
        triple,
        "--",
        "-C",
        "codegen-units=1",
        &emit,
    ]))?;
    let tools = objects::Tools::find()?;
    objects::check_library_object(&tools, triple, &object)?;
    let mut build = cargo(&[
        "build",
        "-q",
        "--target",
        triple,
        "--lib",
        "--tests",
        "--examples",
    ]);
    build.env("RUSTC_WORKSPACE_WRAPPER", &driver);
    without_warnings(&mut build)?;
    println!("{triple}: library, tests and examples compiled to objects, clippy clean");
    // Each row's build (std's included) takes 0.2-0.5 GB that no later step
    // reads: only the inspected object is kept.
    let _ = std::fs::remove_dir_all(ci.sub("elf").join(triple));
    Ok(())
}

fn elf_systems(ci: &Ci) -> Result<(), String> {
    let mut failed = Vec::new();
    for target in targets::with(|c| matches!(c, Check::Elf { .. })) {
        let build_std = target.checks.contains(&Check::Elf { build_std: true });
        println!();
        println!(
            "-- {} ({})",
            target.triple,
            if build_std { "nightly" } else { "stable" }
        );
        let started = Instant::now();
        if let Err(e) = elf_target(ci, target.triple, build_std) {
            eprintln!("{e}");
            failed.push(target.triple.to_string());
        }
        println!(
            "{}: {}",
            target.triple,
            elapsed(started.elapsed().as_secs())
        );
    }
    all_passed(&failed)
}

// ---------------------------------------------------------------------------
fn uefi(ci: &Ci) -> Result<(), String> {
    let uefi = targets::with(|c| *c == Check::Uefi);
    let in_app = |args: &[&str]| {
        let mut cmd = ci.cargo(args);
        cmd.current_dir(ci.root.join("uefi-test"))
            .env("CARGO_TARGET_DIR", ci.sub("uefi-test"));
        cmd
    };
    run(&mut in_app(&["fmt", "--", "--check"]))?;
    for target in &uefi {
        // The application's lints, and the crate's as compiled for UEFI;
        // i686 is built with nightly (scripts/uefi-run.sh), whose minimal
        // profile has no clippy: its build denies warnings.
        if target.triple.starts_with("i686-") {
            continue;
        }
        without_warnings(&mut in_app(&[
            "clippy",
            "-q",
            "--target",
            target.triple,
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let archs: Vec<&str> = uefi
        .iter()
        .map(|t| t.triple.split('-').next().unwrap_or(""))
        .collect();
    run(&mut ci.bash("scripts/uefi-run.sh", &archs))?;
    // The UEFI specification reserves x18 on AArch64 (as on Apple targets).
    let tools = objects::Tools::find()?;
    for target in &uefi {
        if objects::platform_register_reserved(target.triple) {
            let image = ci
                .sub("uefi-test")
                .join(target.triple)
                .join("release/switchback-uefi-test.efi");
            objects::check_no_x18(&tools, target.triple, &image)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Miri (nightly), with the backend it selects (src/arch/miri.rs: each
// coroutine on a thread of its own; src/os/miri.rs: stacks from the
// allocator): every integration test but those that need what Miri cannot
// run, under Tree Borrows. Tests that need leaks ignored run apart.
// `-Zmiri-permissive-provenance`: the `Stack` trait hands addresses over as
// integers (its `base`/`limit` are `NonZeroUsize`), which Miri would
// otherwise warn about at every stack; every access is still checked.
const NOT_UNDER_MIRI: &[(&str, &str)] = &[
    ("backtrace", "symbolizes frames: foreign calls"),
    ("closure_size", "mprotect's the stack under the closure"),
    ("compile_fail", "compile-fail cases: nothing runs"),
    (
        "frame_pointers",
        "exists only with frame pointers forced on",
    ),
    ("grow", "reads the stack bounds of the running thread"),
    ("high_water", "resident pages (mincore)"),
    (
        "interrupted_unwind",
        "leaks coroutines on purpose: run apart",
    ),
    ("overflow", "guard pages and signal handlers"),
    ("slab", "slab stacks, /proc/self/maps and child processes"),
    ("stress", "minutes of switches under an interpreter"),
    ("tokio", "tokio's runtime (foreign calls: epoll)"),
    ("trap", "deliberate faults and signal handlers"),
    ("windows_stack", "Windows only"),
];

const MIRI_FLAGS: &str = "-Zmiri-tree-borrows -Zmiri-permissive-provenance";

fn miri(ci: &Ci) -> Result<(), String> {
    let tests = integration_tests(ci)?;
    for (name, why) in NOT_UNDER_MIRI {
        println!("left out: tests/{name}.rs ({why})");
    }
    let test_args = tests_but(&tests, NOT_UNDER_MIRI);
    let mut args = vec!["+nightly", "miri", "test"];
    args.extend(test_args.iter().map(String::as_str));
    let miri_dir = ci.sub("miri");
    let mut cmd = ci.cargo(&args);
    cmd.env("MIRIFLAGS", MIRI_FLAGS)
        .env("CARGO_TARGET_DIR", &miri_dir);
    run_tests(&mut cmd, "Miri")?;
    let mut cmd = ci.cargo(&["+nightly", "miri", "test", "--test", "interrupted_unwind"]);
    cmd.env("MIRIFLAGS", format!("{MIRI_FLAGS} -Zmiri-ignore-leaks"))
        .env("CARGO_TARGET_DIR", &miri_dir);
    run_tests(&mut cmd, "Miri, leaks allowed").map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asan_runs_every_test_file_but_the_excluded() {
        let tests: Vec<String> = [
            "compile_fail",
            "frame_pointers",
            "new_file",
            "trap",
            "values",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            tests_but(&tests, NOT_UNDER_ASAN),
            ["--test", "new_file", "--test", "values"]
        );
    }

    #[test]
    fn every_test_file_left_out_exists() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests");
        for (name, _) in NOT_UNDER_ASAN.iter().chain(NOT_UNDER_MIRI) {
            let path = std::path::Path::new(dir).join(format!("{name}.rs"));
            assert!(
                path.exists(),
                "{} is left out but does not exist",
                path.display()
            );
        }
    }

    #[test]
    fn every_example_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_stem().unwrap().to_str().unwrap();
                assert!(EXAMPLES.iter().any(|e| e.0 == name), "{name} is not listed");
            }
        }
        for (name, expect, _) in EXAMPLES {
            if !matches!(expect, Expect::Mentions(_)) {
                let file = format!("{}/../.ci/expected/{name}.txt", env!("CARGO_MANIFEST_DIR"));
                assert!(Path::new(&file).exists(), "{file}");
            }
        }
    }

    #[test]
    fn steps_are_numbered_in_order() {
        for (i, (name, _)) in STEPS.iter().enumerate() {
            assert!(name.starts_with(&format!("{}. ", i + 2)), "{name}");
        }
    }

    #[test]
    fn cross_commands() {
        let cmd = cross_cargo("arm-unknown-linux-gnueabihf", "test").unwrap();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "+nightly",
                "test",
                "-Zbuild-std=std,panic_unwind",
                "--target",
                "arm-unknown-linux-gnueabihf"
            ]
        );
        let cmd = cross_cargo("s390x-unknown-linux-gnu", "run").unwrap();
        let envs: Vec<_> = cmd
            .get_envs()
            .map(|(k, v)| (k.to_str().unwrap(), v.and_then(|v| v.to_str())))
            .collect();
        assert!(envs.contains(&(
            "CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUNNER",
            Some("qemu-s390x-static -L /usr/s390x-linux-gnu")
        )));
        assert!(cross_cargo("x86_64-apple-darwin", "test").is_err());
    }
}
