//! The target table (`src/arch/targets.rs`, the one the crate's dispatch
//! expands) as CI reads it, and `check-docs`: the README's and
//! CONTRIBUTING.md's target tables list exactly its triples.

use std::collections::BTreeSet;

/// How CI checks a triple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The host: every host step runs on it.
    Host,
    /// The whole suite and the examples under qemu-user (i686 natively on
    /// an x86-64 kernel that can load it), through `cargo xtask cross`.
    Qemu(Qemu),
    /// The whole suite and the examples under Wine (`scripts/wine.sh`).
    Wine,
    /// `no-std-check/` built, debug and release.
    NoStd,
    /// The library compiled to objects and inspected; the tests, examples
    /// and `no-std-check/` compiled and assembled, not linked.
    Objects,
    /// `uefi-test/` booted under QEMU with UEFI firmware.
    Uefi,
    /// A script of its own (what it checks is in its header).
    Script(&'static str),
    /// Another ELF system with no libc, linker or emulator here: the
    /// library compiled to an object and inspected, then the library, the
    /// tests and the examples compiled (not linked) with clippy's lints in
    /// the same pass. `build_std`: rustup ships no std for it here, nightly
    /// builds it (`-Zbuild-std`).
    Elf { build_std: bool },
}

/// A qemu-user row: the Debian cross gcc's prefix (which links it and
/// whose sysroot `/usr/<prefix>` qemu loads from) and the qemu binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qemu {
    pub gnu: &'static str,
    pub runner: &'static str,
    /// rustup ships no std for it: nightly builds it (`-Zbuild-std`).
    pub build_std: bool,
    /// Linked statically against the musl libc, C runtime and libunwind
    /// that rustup ships inside the target's std (rustc's self-contained
    /// mode): no Debian libc and so no sysroot for qemu's `-L`; an empty
    /// `gnu` keeps the host's cc as the linker, an empty `runner` runs the
    /// binaries natively.
    pub musl: bool,
}

const fn qemu(gnu: &'static str, runner: &'static str) -> Check {
    Check::Qemu(Qemu {
        gnu,
        runner,
        build_std: false,
        musl: false,
    })
}

/// A musl row of the run step (see [`Qemu::musl`]).
const fn musl(gnu: &'static str, runner: &'static str) -> Check {
    Check::Qemu(Qemu {
        gnu,
        runner,
        build_std: false,
        musl: true,
    })
}

/// An [`Check::Elf`] row, with rustup's std.
const fn elf() -> Check {
    Check::Elf { build_std: false }
}

impl Check {
    const fn build_std(self) -> Check {
        match self {
            Check::Qemu(q) => Check::Qemu(Qemu {
                build_std: true,
                ..q
            }),
            Check::Elf { .. } => Check::Elf { build_std: true },
            other => other,
        }
    }
}

use Check::*;

/// An architecture file and the cfg values it serves.
#[derive(Debug)]
pub struct File {
    pub name: &'static str,
    pub arch: &'static [&'static str],
    pub os: &'static [&'static str],
}

/// A triple CI checks, the file that serves it, and how CI checks it.
#[derive(Debug)]
pub struct Target {
    pub file: &'static str,
    pub triple: &'static str,
    pub checks: &'static [Check],
}

macro_rules! targets {
    ($(
        $file:ident {
            arch: [$($arch:literal),+ $(,)?],
            os: [$($os:literal),+ $(,)?],
            ci: { $($triple:literal => [$($check:expr),* $(,)?]),* $(,)? } $(,)?
        }
    )*) => {
        pub const FILES: &[File] = &[$(File {
            name: stringify!($file),
            arch: &[$($arch),+],
            os: &[$($os),+],
        }),*];
        pub const TARGETS: &[Target] = &[$($(Target {
            file: stringify!($file),
            triple: $triple,
            checks: &[$($check),*],
        },)*)*];
    };
}

include!("../../src/arch/targets.rs");

/// The triples checked with `pick` (in table order); if CI_TARGETS is set
/// (triples separated by commas), only those of them.
pub fn with(pick: impl Fn(&Check) -> bool) -> Vec<&'static Target> {
    let only = std::env::var("CI_TARGETS").ok();
    TARGETS
        .iter()
        .filter(|t| t.checks.iter().any(&pick))
        .filter(|t| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|x| x == t.triple))
        })
        .collect()
}

/// The qemu row of `triple`, if it has one.
pub fn qemu_row(triple: &str) -> Option<Qemu> {
    TARGETS
        .iter()
        .filter(|t| t.triple == triple)
        .flat_map(|t| t.checks)
        .find_map(|c| match c {
            Qemu(q) => Some(*q),
            _ => None,
        })
}

/// The target triples named in the first column of the Markdown table that
/// follows the heading `heading` in `text` (each in backticks; a cell may
/// name several).
pub fn doc_table_triples(text: &str, heading: &str) -> Result<BTreeSet<String>, String> {
    let start = text
        .lines()
        .position(|l| l.trim() == heading)
        .ok_or_else(|| format!("no heading `{heading}`"))?;
    let mut triples = BTreeSet::new();
    let mut in_table = false;
    for line in text.lines().skip(start + 1) {
        if line.starts_with("## ") {
            break;
        }
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let first = line.split('|').nth(1).unwrap_or("");
        for (i, part) in first.split('`').enumerate() {
            // Odd parts are inside backticks.
            if i % 2 == 1 && part.contains('-') {
                triples.insert(part.to_string());
            }
        }
    }
    if triples.is_empty() {
        return Err(format!("no target table after `{heading}`"));
    }
    Ok(triples)
}

/// Differences between the table's triples and a document's.
pub fn compare(doc: &str, found: &BTreeSet<String>) -> Vec<String> {
    let table: BTreeSet<String> = TARGETS.iter().map(|t| t.triple.to_string()).collect();
    let mut problems = Vec::new();
    for t in table.difference(found) {
        problems.push(format!(
            "{doc}: `{t}` is in src/arch/targets.rs but not in its table"
        ));
    }
    for t in found.difference(&table) {
        problems.push(format!(
            "{doc}: `{t}` is in its table but not in src/arch/targets.rs"
        ));
    }
    problems
}

/// The README's test command: the line of its getting-started block that
/// ends in `# the test suite`.
pub fn readme_test_command(readme: &str) -> Result<Vec<String>, String> {
    let line = readme
        .lines()
        .find(|l| l.trim_end().ends_with("# the test suite"))
        .ok_or("README.md has no line ending in `# the test suite`")?;
    let command = line.split('#').next().unwrap_or("").trim();
    let words: Vec<String> = command.split_whitespace().map(String::from).collect();
    if words.first().map(String::as_str) != Some("cargo") {
        return Err(format!(
            "README.md's test command is not a cargo command: {line}"
        ));
    }
    Ok(words)
}

/// The triples whose std or core rustup must install (the rows that
/// nightly builds from source, and those checked only by a script of their
/// own, need none).
pub fn rustup_targets() -> BTreeSet<&'static str> {
    TARGETS
        .iter()
        .filter(|t| {
            t.checks.iter().any(|c| match c {
                Qemu(q) => !q.build_std,
                Elf { build_std } => !build_std,
                Wine | NoStd | Objects | Uefi => true,
                Host | Script(_) => false,
            })
        })
        .map(|t| t.triple)
        .collect()
}

/// The rustup targets that `.ci/install.sh --list` prints (of every
/// toolchain).
pub fn installed_targets(list: &str) -> BTreeSet<String> {
    list.lines()
        .filter_map(|l| l.split_once("targets:"))
        .flat_map(|(_, rest)| rest.split_whitespace().map(String::from))
        .collect()
}

/// `check-docs`: the README's and CONTRIBUTING.md's target tables list
/// exactly the table's triples, the README names a test command, and
/// `.ci/install.sh` installs the rustup target of every row that needs one.
pub fn check_docs() -> Result<(), String> {
    let mut problems = Vec::new();
    for (doc, heading) in [
        ("README.md", "## Supported targets"),
        ("CONTRIBUTING.md", "## How each target is checked"),
    ] {
        let text = std::fs::read_to_string(doc).map_err(|e| format!("{doc}: {e}"))?;
        match doc_table_triples(&text, heading) {
            Ok(found) => problems.extend(compare(doc, &found)),
            Err(e) => problems.push(format!("{doc}: {e}")),
        }
    }
    let readme = std::fs::read_to_string("README.md").map_err(|e| format!("README.md: {e}"))?;
    if let Err(e) = readme_test_command(&readme) {
        problems.push(e);
    }
    // Provisioning stays shell: .ci/install.sh must add every rustup target
    // the table's rows build with.
    let list = std::process::Command::new("bash")
        .args([".ci/install.sh", "--list"])
        .output()
        .map_err(|e| format!("bash .ci/install.sh --list: {e}"))?;
    let installed = installed_targets(&String::from_utf8_lossy(&list.stdout));
    for triple in rustup_targets() {
        if !installed.contains(triple) {
            problems.push(format!(
                ".ci/install.sh: no rustup target {triple} (src/arch/targets.rs builds it)"
            ));
        }
    }
    if problems.is_empty() {
        println!(
            "README.md and CONTRIBUTING.md list the {} triples of src/arch/targets.rs",
            TARGETS.len()
        );
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_a_file_and_triples_are_unique() {
        let names: BTreeSet<_> = FILES.iter().map(|f| f.name).collect();
        let mut seen = BTreeSet::new();
        for t in TARGETS {
            assert!(names.contains(t.file), "{}", t.file);
            assert!(seen.insert(t.triple), "{} twice", t.triple);
            assert!(!t.checks.is_empty(), "{} is not checked", t.triple);
            let arch = t.triple.split('-').next().unwrap();
            let file = FILES.iter().find(|f| f.name == t.file).unwrap();
            // The triple's architecture is one the file serves.
            let family = match arch {
                "i686" => "x86",
                a if a.starts_with("riscv64") => "riscv64",
                a if a.starts_with("riscv32") => "riscv32",
                a if a.starts_with("arm") || a.starts_with("thumb") => "arm",
                "powerpc64le" => "powerpc64",
                a => a,
            };
            assert!(file.arch.contains(&family), "{} in {}", t.triple, t.file);
        }
        assert_eq!(with(|c| *c == Host).len(), 1);
        assert_eq!(with(|c| *c == Wine).len(), 1);
    }

    #[test]
    fn qemu_rows() {
        let arm = qemu_row("arm-unknown-linux-gnueabihf").unwrap();
        assert!(arm.build_std);
        assert_eq!(arm.runner, "qemu-arm-static");
        assert!(!qemu_row("aarch64-unknown-linux-gnu").unwrap().build_std);
        assert_eq!(qemu_row("x86_64-apple-darwin"), None);
    }

    #[test]
    fn doc_tables_are_read_by_their_first_column() {
        let text = "# T\n\n## Supported targets\n\nSome text `not-a-row`.\n\n\
            | target | how | n |\n|---|---|---|\n\
            | `a-b-c` (note `x-y`) | run `cargo-test` | 1 |\n\
            | `d-e`, `f-g` | built | |\n\nAfter `h-i`.\n\n## Next\n| `j-k` | |\n";
        let found = doc_table_triples(text, "## Supported targets").unwrap();
        let want: BTreeSet<String> = ["a-b-c", "x-y", "d-e", "f-g"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(found, want);
        assert!(doc_table_triples(text, "## Missing").is_err());
    }

    #[test]
    fn the_repository_docs_match_the_table() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for (doc, heading) in [
            ("README.md", "## Supported targets"),
            ("CONTRIBUTING.md", "## How each target is checked"),
        ] {
            let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
            let found = doc_table_triples(&text, heading).unwrap();
            assert_eq!(compare(doc, &found), Vec::<String>::new());
        }
    }

    #[test]
    fn install_lists_are_read() {
        let list = "apt:               gcc git\nstable components: rustfmt clippy\n\
            stable targets:    a-b c-d\nnightly components: rust-src\n\
            nightly targets:    e-f\nMSRV toolchain:    1.88\n";
        let want: BTreeSet<String> = ["a-b", "c-d", "e-f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(installed_targets(list), want);
        let needed = rustup_targets();
        assert!(needed.contains("x86_64-apple-darwin"));
        assert!(needed.contains("i686-unknown-uefi"));
        assert!(!needed.contains("arm-unknown-linux-gnueabihf"));
        assert!(!needed.contains("loongarch64-unknown-linux-gnu"));
        assert!(!needed.contains("x86_64-unknown-linux-gnu"));
    }

    #[test]
    fn readme_test_command_is_found() {
        let readme = "```sh\ncargo run --example basic   # the example below\n\
            cargo test                  # the test suite\n```\n";
        assert_eq!(readme_test_command(readme).unwrap(), ["cargo", "test"]);
        assert!(readme_test_command("make check # the test suite").is_err());
    }
}
