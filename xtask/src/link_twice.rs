//! Step 14: two copies of switchback (under two package names, as two
//! versions would be) and corosensei linked into one binary, a coroutine of
//! each run: no assembly symbol may clash. The two crates are written to a
//! temporary directory; builds in `$CARGO_TARGET_DIR/link-twice`.

use std::path::Path;
use std::process::Command;

/// The manifest of the copy: another package name, no workspace, no
/// dev-only sections.
pub fn copy_manifest(manifest: &str) -> String {
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            let section = line.trim();
            skipping = matches!(
                section,
                "[workspace]" | "[[bench]]" | "[[example]]" | "[lints.rust]"
            ) || section.ends_with("dev-dependencies]");
        }
        if !skipping {
            kept.push(line);
        }
    }
    let text = kept.join("\n") + "\n";
    text.replacen("name = \"switchback\"", "name = \"switchback_copy\"", 1)
}

const MAIN: &str = r#"fn main() {
    let mut a = switchback::Coroutine::<u32, u32, u32>::new(|y, x| y.suspend(x + 1) * 2);
    let mut b = switchback_copy::Coroutine::<u32, u32, u32>::new(|y, x| y.suspend(x + 10) * 3);
    let mut c = corosensei::Coroutine::<u32, u32, u32>::new(|y, x| y.suspend(x + 100) * 4);
    let yields = (a.resume(1), b.resume(1), c.resume(1));
    let returns = (a.resume(5), b.resume(5), c.resume(5));
    let nested = switchback::on_stack(switchback::stack::DefaultStack::default(), || {
        switchback_copy::on_stack(switchback_copy::stack::DefaultStack::default(), || 7)
    });
    println!("{:?} {:?} {}", yields, returns, nested);
    assert_eq!(yields.0.as_yield(), Some(2));
    assert_eq!(yields.1.as_yield(), Some(11));
    assert_eq!(yields.2.as_yield(), Some(101));
    assert_eq!(returns.0.as_return(), Some(10));
    assert_eq!(returns.1.as_return(), Some(15));
    assert_eq!(returns.2.as_return(), Some(20));
    assert_eq!(nested, 7);
    println!("link-twice: ok");
}
"#;

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

pub fn run(root: &Path, target_dir: &Path) -> Result<(), String> {
    let work = std::env::temp_dir().join(format!("switchback-link-twice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let io = |e: std::io::Error| format!("link-twice: {e}");
    let copy = work.join("copy");
    copy_dir(&root.join("src"), &copy.join("src")).map_err(io)?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).map_err(io)?;
    std::fs::write(copy.join("Cargo.toml"), copy_manifest(&manifest)).map_err(io)?;
    let app = work.join("app");
    std::fs::create_dir_all(app.join("src")).map_err(io)?;
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"link-twice\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\n\
             switchback = {{ path = {:?}, default-features = true }}\n\
             switchback_copy = {{ path = {:?} }}\ncorosensei = \"=0.3.4\"\n\n[workspace]\n",
            root.display().to_string(),
            copy.display().to_string()
        ),
    )
    .map_err(io)?;
    std::fs::write(app.join("src/main.rs"), MAIN).map_err(io)?;
    let result = crate::cmd::run(
        Command::new("cargo")
            .args(["run", "--quiet", "--release"])
            .current_dir(&app)
            .env("CARGO_TARGET_DIR", target_dir.join("link-twice")),
    );
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_copy_keeps_the_library_only() {
        let manifest = "[package]\nname = \"switchback\"\nversion = \"0.1.0\"\n\n\
            [dependencies]\nlibc = \"0.2\"\n\n[dev-dependencies]\nproptest = \"1\"\n\n\
            [target.'cfg(unix)'.dev-dependencies]\nlibc = \"0.2\"\n\n[[bench]]\nname = \"x\"\n\n\
            [features]\ndefault = []\n\n[workspace]\nmembers = [\"xtask\"]\n\n[lints.rust]\nx = 1\n";
        assert_eq!(
            super::copy_manifest(manifest),
            "[package]\nname = \"switchback_copy\"\nversion = \"0.1.0\"\n\n\
             [dependencies]\nlibc = \"0.2\"\n\n[features]\ndefault = []\n\n"
        );
        // The real manifest still parses into the same shape.
        let real =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
        let copy = super::copy_manifest(&real);
        assert!(copy.contains("name = \"switchback_copy\""));
        assert!(!copy.contains("[workspace]") && !copy.contains("proptest"));
    }
}
