//! Running commands for CI: echoed before they run, their output shown as
//! it comes and kept when a check needs it; test runs judged by their
//! `test result:` lines; test binaries found from cargo's JSON messages.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The command as a shell line (environment assignments first).
pub fn show(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!(
                "{}={}",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    words.push(cmd.get_program().to_string_lossy().into_owned());
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let mut line = words.join(" ");
    if let Some(dir) = cmd.get_current_dir() {
        // Only a directory other than the one the run started in.
        if std::env::current_dir().ok().as_deref() != Some(dir) {
            line = format!("(cd {} && {line})", dir.display());
        }
    }
    line
}

/// Prints how long a command took, after its output, so that a step's
/// time can be split between its commands.
fn took(started: Instant) {
    println!("+ ({:.1} s)", started.elapsed().as_secs_f64());
}

/// Runs `cmd` (echoed); fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    println!("+ {}", show(cmd));
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    took(started);
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", show(cmd)))
    }
}

/// The lines of a failed command's output that name its cause (compiler
/// errors, panics, a full disk, a linker killed by a signal), at most
/// [`CAUSE_LINES`] of them, each indented on its own line; empty if none.
/// They are repeated in the failure message because a CI log is often read
/// from its end, where a compiler's first error is long gone.
fn causes(log: &str) -> String {
    let picked: Vec<&str> = log
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            line.starts_with("error")
                || line.contains("panicked at")
                || line.contains("LLVM ERROR")
                || line.contains("No space left on device")
                || line.contains("fatal error")
        })
        .take(CAUSE_LINES)
        .collect();
    picked
        .iter()
        .map(|l| format!("\n  | {}", l.trim_end()))
        .collect()
}

/// How many cause lines a failure message repeats.
const CAUSE_LINES: usize = 12;

/// Runs `cmd` (echoed) with stdout and stderr in one pipe, shown line by
/// line as they come; returns the output and whether it exited with 0.
pub fn run_logged(cmd: &mut Command) -> Result<(String, bool), String> {
    println!("+ {}", show(cmd));
    let started = Instant::now();
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
    cmd.stdout(writer).stderr(writer2).stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    // The child holds the writing ends now; the parent's copies go with
    // `cmd`'s configuration when it is reset below.
    cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let mut log = String::new();
    let mut out = std::io::stdout();
    for line in BufReader::new(reader).split(b'\n') {
        let line = line.map_err(|e| format!("reading output: {e}"))?;
        let line = String::from_utf8_lossy(&line);
        let _ = writeln!(out, "{line}");
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    took(started);
    Ok((log, status.success()))
}

/// Runs a cargo command (echoed) and fails if it fails or warns.
pub fn without_warnings(cmd: &mut Command) -> Result<(), String> {
    let (log, ok) = run_logged(cmd)?;
    if !ok {
        return Err(format!("{} failed{}", show(cmd), causes(&log)));
    }
    if log.lines().any(|l| l.starts_with("warning")) {
        return Err(format!("warnings (see above) from: {}", show(cmd)));
    }
    Ok(())
}

/// What a test run printed: how many test binaries (and doc-test runs)
/// reported, and how many tests passed in all.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct Tally {
    pub binaries: usize,
    pub passed: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.binaries += other.binaries;
        self.passed += other.passed;
    }
}

/// Reads the output of `cargo test` (or of one test binary): every test
/// binary cargo ran (a `Running ...` or `Doc-tests ...` line) must have
/// printed a `test result: ok.` line, and none `test result: FAILED`.
/// Output without such lines counts as one binary. A runner that exits 0
/// without running the binary fails here.
pub fn tally_tests(log: &str) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let mut current: Option<String> = None;
    let mut reported = false;
    let mut missing = Vec::new();
    let mut saw_sections = false;
    for line in log.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Running ") || trimmed.starts_with("Doc-tests ") {
            if let Some(name) = current.take() {
                if !reported {
                    missing.push(name);
                }
            }
            current = Some(trimmed.to_string());
            reported = false;
            saw_sections = true;
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            if rest.starts_with("FAILED") {
                return Err(format!("tests failed: {line}"));
            }
            let passed = rest
                .strip_prefix("ok. ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| format!("unreadable test result line: {line}"))?;
            tally.passed += passed;
            tally.binaries += 1;
            reported = true;
        }
    }
    if let Some(name) = current {
        if !reported {
            missing.push(name);
        }
    }
    if !saw_sections && tally.binaries == 0 {
        missing.push("the test binary".into());
    }
    if !missing.is_empty() {
        return Err(format!(
            "no `test result:` line (the tests did not run) from: {}",
            missing.join("; ")
        ));
    }
    Ok(tally)
}

/// Runs a test command (echoed): it must exit with 0, every binary must
/// report, and at least one test must have passed.
pub fn run_tests(cmd: &mut Command, what: &str) -> Result<Tally, String> {
    let (log, ok) = run_logged(cmd)?;
    if !ok {
        return Err(format!("{what}: {} failed{}", show(cmd), causes(&log)));
    }
    let tally = tally_tests(&log).map_err(|e| format!("{what}: {e}"))?;
    require_passed(tally, what)
}

/// Fails unless some test passed; prints the tally.
pub fn require_passed(tally: Tally, what: &str) -> Result<Tally, String> {
    if tally.passed == 0 {
        return Err(format!("{what}: no test ran"));
    }
    println!(
        "{what}: {} tests passed in {} test binaries",
        tally.passed, tally.binaries
    );
    Ok(tally)
}

/// The test executables (library unit tests and integration tests; not
/// benches or examples) in cargo's `--message-format=json` output.
pub fn test_binaries(json_lines: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for line in json_lines.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let kinds = msg["target"]["kind"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if kinds
            .iter()
            .any(|k| k == "test" || k == "lib" || k == "rlib")
        {
            found.push(PathBuf::from(exe));
        }
    }
    found
}

/// The names of the package's targets of kind `kind` (`test`, `example`),
/// from `cargo metadata`.
pub fn target_names(metadata: &str, package: &str, kind: &str) -> Result<Vec<String>, String> {
    let meta: serde_json::Value =
        serde_json::from_str(metadata).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    let pkg = packages
        .iter()
        .find(|p| p["name"] == package)
        .ok_or_else(|| format!("cargo metadata: no package {package}"))?;
    let mut names: Vec<String> = pkg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == kind))
        })
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_repeat_the_lines_that_say_why() {
        let log = "   Compiling bench-compare v0.0.0\n\
                   rustc-LLVM ERROR: IO failure on output stream: No space left on device\n\
                   error: could not compile `bench-compare` (bin \"bench-compare\" test)\n\
                   \n\
                   Caused by:\n\
                   process didn't exit successfully: `rustc ...` (exit status: 101)\n";
        assert_eq!(
            causes(log),
            "\n  | rustc-LLVM ERROR: IO failure on output stream: No space left on device\
             \n  | error: could not compile `bench-compare` (bin \"bench-compare\" test)"
        );
        assert_eq!(causes("all fine\n"), "");
        let many = "error: x\n".repeat(CAUSE_LINES + 5);
        assert_eq!(causes(&many).matches("\n  | ").count(), CAUSE_LINES);
    }

    const CARGO_TEST: &str = "\
   Compiling switchback v0.1.0
     Running unittests src/lib.rs (target/debug/deps/switchback-1)

running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/values.rs (target/debug/deps/values-2)

running 0 tests

test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests switchback

running 3 tests
test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s
";

    #[test]
    fn a_full_run_is_tallied() {
        assert_eq!(
            tally_tests(CARGO_TEST).unwrap(),
            Tally {
                binaries: 3,
                passed: 5
            }
        );
    }

    #[test]
    fn a_binary_that_printed_nothing_fails() {
        // A runner that exits 0 without running the binary.
        let log = CARGO_TEST.replace(
            "     Running tests/values.rs (target/debug/deps/values-2)\n",
            "     Running tests/values.rs (target/debug/deps/values-2)\n     Running tests/pool.rs (target/debug/deps/pool-3)\n",
        );
        let err = tally_tests(&log).unwrap_err();
        assert!(err.contains("values-2"), "{err}");
        assert!(!err.contains("pool-3"), "{err}");
        assert!(tally_tests("").is_err());
        assert!(tally_tests("     Running tests/x.rs (x)\n").is_err());
    }

    #[test]
    fn a_failure_fails() {
        let log = CARGO_TEST.replace("test result: ok. 0 passed", "test result: FAILED. 0 passed");
        assert!(tally_tests(&log).unwrap_err().contains("tests failed"));
    }

    #[test]
    fn one_binary_run_directly() {
        let log = "running 1 test\ntest x ... ok\n\ntest result: ok. 1 passed; 0 failed\n";
        assert_eq!(
            tally_tests(log).unwrap(),
            Tally {
                binaries: 1,
                passed: 1
            }
        );
        assert!(require_passed(
            Tally {
                binaries: 1,
                passed: 0
            },
            "x"
        )
        .is_err());
    }

    #[test]
    fn test_binaries_from_cargo_json() {
        let json = r#"{"reason":"compiler-artifact","profile":{"test":true},"target":{"kind":["lib"],"name":"switchback"},"executable":"/t/deps/switchback-1"}
{"reason":"compiler-artifact","profile":{"test":false},"target":{"kind":["lib"],"name":"switchback"},"executable":null}
{"reason":"compiler-artifact","profile":{"test":true},"target":{"kind":["test"],"name":"values"},"executable":"/t/deps/values-2"}
{"reason":"compiler-artifact","profile":{"test":true},"target":{"kind":["bench"],"name":"coroutine"},"executable":"/t/deps/coroutine-3"}
{"reason":"compiler-artifact","profile":{"test":false},"target":{"kind":["example"],"name":"basic"},"executable":"/t/examples/basic"}
{"reason":"build-finished","success":true}
not json
"#;
        assert_eq!(
            test_binaries(json),
            [
                PathBuf::from("/t/deps/switchback-1"),
                PathBuf::from("/t/deps/values-2")
            ]
        );
    }

    #[test]
    fn target_names_from_metadata() {
        let meta = r#"{"packages":[{"name":"switchback","targets":[
            {"kind":["lib"],"name":"switchback"},{"kind":["test"],"name":"values"},
            {"kind":["test"],"name":"trap"},{"kind":["example"],"name":"basic"}]},
            {"name":"xtask","targets":[{"kind":["bin"],"name":"xtask"}]}]}"#;
        assert_eq!(
            target_names(meta, "switchback", "test").unwrap(),
            ["trap", "values"]
        );
        assert_eq!(
            target_names(meta, "switchback", "example").unwrap(),
            ["basic"]
        );
        assert!(target_names(meta, "nope", "test").is_err());
    }
}
