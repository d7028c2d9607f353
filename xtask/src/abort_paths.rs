//! Part of step 5: dropping a suspended coroutine where it cannot be
//! unwound must say why before aborting, in a program built with
//! `panic = "abort"` and in one built without the `unwind` feature. Two tiny
//! programs are written against this checkout (in a temporary directory,
//! built in `$CARGO_TARGET_DIR/abort-paths`); each must die of SIGABRT with
//! the crate's message on stderr.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

const MAIN: &str = r#"use switchback::Coroutine;

fn main() {
    let mut co: Coroutine<(), u32, ()> = Coroutine::new(|yielder, ()| {
        let _owned = String::from("needs dropping");
        yielder.suspend(1);
    });
    assert_eq!(co.resume(()).as_yield(), Some(1));
    drop(co);
    println!("dropped without aborting");
}
"#;

/// (package name, features, profile.dev panic strategy, the message).
const PROGRAMS: &[(&str, &str, &str, &str)] = &[
    (
        "panic-abort",
        r#""default-stack", "unwind""#,
        "abort",
        r#"this program is built with panic = "abort", so its stack cannot be unwound"#,
    ),
    (
        "no-unwind-feature",
        r#""default-stack""#,
        "unwind",
        "unwinding its stack needs the `unwind` feature",
    ),
];

/// Whether a run that ended with `signal` and printed `stderr` is the
/// expected abort; the reason it is not otherwise.
pub fn judge(
    signal: Option<i32>,
    code: Option<i32>,
    stderr: &str,
    message: &str,
) -> Result<(), String> {
    // SIGABRT is 6 (a shell reports it as exit status 134).
    if signal != Some(6) {
        return Err(format!(
            "expected SIGABRT, got exit code {code:?}, signal {signal:?}"
        ));
    }
    if !stderr.contains(message) {
        return Err(format!(
            "stderr does not explain the abort; expected: {message}"
        ));
    }
    Ok(())
}

pub fn run(root: &Path, target_dir: &Path) -> Result<(), String> {
    let work = std::env::temp_dir().join(format!("switchback-abort-paths-{}", std::process::id()));
    let io = |e: std::io::Error| format!("abort-paths: {e}");
    let mut result = Ok(());
    for (name, features, panic, message) in PROGRAMS {
        let dir = work.join(name);
        std::fs::create_dir_all(dir.join("src")).map_err(io)?;
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
                 publish = false\n\n[dependencies]\nswitchback = {{ path = {:?}, \
                 default-features = false, features = [{features}] }}\n\n\
                 [profile.dev]\npanic = \"{panic}\"\n\n[workspace]\n",
                root.display().to_string()
            ),
        )
        .map_err(io)?;
        std::fs::write(dir.join("src/main.rs"), MAIN).map_err(io)?;
        let cargo = |sub: &str| {
            let mut cmd = Command::new("cargo");
            cmd.args([sub, "-q"])
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", target_dir.join("abort-paths"));
            cmd
        };
        crate::cmd::run(&mut cargo("build"))?;
        let mut cmd = cargo("run");
        println!("+ {}", crate::cmd::show(&cmd));
        let out = cmd.output().map_err(io)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match judge(out.status.signal(), out.status.code(), &stderr, message) {
            Ok(()) => println!("{name}: aborted with: {message}"),
            Err(e) => {
                eprintln!(
                    "{name}: {e}\n--- stdout:\n{}--- stderr:\n{stderr}",
                    String::from_utf8_lossy(&out.stdout)
                );
                result = Err(format!("{name}: {e}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn only_an_explained_sigabrt_passes() {
        let msg = "needs the `unwind` feature";
        assert!(judge(Some(6), None, "x needs the `unwind` feature y", msg).is_ok());
        assert!(judge(Some(6), None, "aborted", msg).is_err());
        assert!(judge(None, Some(0), msg, msg).is_err());
        assert!(judge(Some(11), None, msg, msg).is_err());
    }
}
