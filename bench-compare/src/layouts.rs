//! `--layouts`: builds this crate in several Cargo profiles (the build
//! layouts that a user's crate might have) and runs the harness in each,
//! then puts the layouts side by side.
//!
//! A layout changes where the compiler places and inlines the code around
//! the context switch: a cost that moves with it shows as a row whose
//! ratio differs between layouts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A build layout: a Cargo profile of this crate's Cargo.toml.
pub struct Layout {
    /// The profile's name.
    pub name: &'static str,
    /// What it sets.
    pub what: &'static str,
    /// Peer crates built without in this layout, and why.
    pub left_out: &'static [(&'static str, &'static str)],
}

/// The layouts.
pub const LAYOUTS: [Layout; 5] = [
    Layout {
        name: "release",
        what: "cargo's release defaults: opt-level 3, 16 codegen units, thin local LTO",
        left_out: &[],
    },
    Layout {
        name: "release-cgu1",
        what: "release with codegen-units = 1",
        left_out: &[],
    },
    Layout {
        name: "release-lto",
        what: "release with lto = \"fat\", codegen-units = 1",
        left_out: &[(
            "wasmtime-fiber",
            "wasmtime-fiber 34.0.2 does not link with lto = \"fat\" (rust-lld: relocation \
             refers to a symbol in a discarded section: wasmtime_fiber_init_34_0_2)",
        )],
    },
    Layout {
        name: "release-thin",
        what: "release with lto = \"thin\" (across crates)",
        left_out: &[],
    },
    Layout {
        name: "release-o2",
        what: "release with opt-level = 2",
        left_out: &[],
    },
];

/// The layout named `name`, if any.
pub fn find(name: &str) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|layout| layout.name == name)
}

/// The layout this program was built in: the directory it lies in
/// (`target/<profile>/bench-compare`), if that is a layout.
pub fn current() -> Option<&'static Layout> {
    let exe = std::env::current_exe().ok()?;
    find(exe.parent()?.file_name()?.to_str()?)
}

/// Parses `--layouts`: comma-separated layout names, or `all`.
pub fn parse(list: &str) -> Result<Vec<String>, String> {
    if list.trim() == "all" {
        return Ok(LAYOUTS.iter().map(|l| l.name.to_string()).collect());
    }
    let mut layouts = Vec::new();
    for name in list.split(',').map(str::trim) {
        if find(name).is_none() {
            let known: Vec<&str> = LAYOUTS.iter().map(|l| l.name).collect();
            return Err(format!(
                "unknown layout: {name} (known: {}, all)",
                known.join(", ")
            ));
        }
        if !layouts.iter().any(|l| l == name) {
            layouts.push(name.to_string());
        }
    }
    Ok(layouts)
}

/// Builds and runs the harness in each of `layouts` with `args`, then
/// prints the layouts side by side.
pub fn run(layouts: &[String], args: &[String]) -> Result<(), String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let scratch = std::env::temp_dir().join(format!("bench-compare-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("creating {scratch:?}: {e}"))?;
    let mut results = Vec::new();
    for name in layouts {
        let layout = find(name).ok_or(format!("unknown layout: {name}"))?;
        println!("\n# Layout `{name}`: {}\n", layout.what);
        // Every peer crate that links in this layout, as a plain `cargo
        // run` has them, whatever `--crates` picks: the same program.
        let peers: Vec<&str> = crate::subjects::KNOWN[1..]
            .iter()
            .copied()
            .filter(|peer| !layout.left_out.iter().any(|(left, _)| left == peer))
            .collect();
        for (peer, why) in layout.left_out {
            println!("Left out of this layout: {peer}: {why}.\n");
        }
        let exe = build(&cargo, &manifest, name, &peers)?;
        let summary = scratch.join(format!("{name}.tsv"));
        let status = Command::new(&exe)
            .args(args)
            .arg("--summary-file")
            .arg(&summary)
            .status()
            .map_err(|e| format!("running {}: {e}", exe.display()))?;
        if !status.success() {
            return Err(format!("the harness failed in layout {name}: {status}"));
        }
        let text = std::fs::read_to_string(&summary)
            .map_err(|e| format!("reading {}: {e}", summary.display()))?;
        results.push((name.clone(), text));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    print!("{}", side_by_side(&results));
    Ok(())
}

/// `cargo build --profile LAYOUT` of this crate's harness with the peer
/// crates `peers`; the executable's path.
fn build(
    cargo: &std::ffi::OsStr,
    manifest: &Path,
    layout: &str,
    peers: &[&str],
) -> Result<PathBuf, String> {
    let features = peers.join(",");
    eprintln!(
        "+ cargo build --profile {layout} --manifest-path {} --bin bench-compare \
         --no-default-features --features '{features}'",
        manifest.display()
    );
    let output = Command::new(cargo)
        .args(["build", "--quiet", "--profile", layout, "--manifest-path"])
        .arg(manifest)
        .args([
            "--bin",
            "bench-compare",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--no-default-features", "--features", &features])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building layout {layout} failed: {}",
            output.status
        ));
    }
    let messages = String::from_utf8_lossy(&output.stdout);
    executable(&messages, "bench-compare")
        .ok_or_else(|| format!("cargo built no bench-compare executable for layout {layout}"))
}

/// The path of the executable named `name` in cargo's JSON messages.
fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|line| json_string(line, "executable"))
        .find(|path| Path::new(path).file_stem().and_then(|s| s.to_str()) == Some(name))
        .map(PathBuf::from)
}

/// The string value of `"key":"..."` in one line of JSON (with `\"` and
/// `\\` unescaped); `None` if absent or not a string.
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// One summary line (`--summary-file`), split into its fields.
fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

/// The tables that put the layouts side by side: switchback against
/// corosensei per op, issue 16's targets, and callgrind's counts.
fn side_by_side(results: &[(String, String)]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = results.iter().map(|(layout, _)| layout.as_str()).collect();
    let header = |out: &mut String, first: &str| {
        let _ = writeln!(out, "| {first} | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(names.len()));
    };
    // Rows in the order of their first appearance, cells per layout.
    let rows = |kind: &str, key: &dyn Fn(&[&str]) -> String, cell: &dyn Fn(&[&str]) -> String| {
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        for (i, (_, text)) in results.iter().enumerate() {
            let lines = text.lines().map(fields);
            for line in lines.filter(|f| f[0] == kind && f.len() >= 4) {
                let key = key(&line);
                let at = match rows.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        rows.push((key, vec!["".into(); results.len()]));
                        rows.len() - 1
                    }
                };
                rows[at].1[i] = cell(&line);
            }
        }
        rows
    };

    // `time  op  crate  median  ratio`: switchback's cells.
    let time = rows("time", &|f| format!("{}\t{}", f[1], f[2]), &|f| match f
        .get(4)
        .copied()
        .unwrap_or("")
    {
        "" => format!("{} ns", f[3]),
        ratio => format!("{} ns ({ratio}×)", f[3]),
    });
    let time: Vec<(String, Vec<String>)> = time
        .into_iter()
        .filter_map(|(key, cells)| {
            let (op, krate) = key.split_once('\t')?;
            (krate == "switchback").then(|| (op.to_string(), cells))
        })
        .collect();
    if !time.is_empty() {
        let _ = writeln!(
            out,
            "\n# The layouts side by side\n\nswitchback's median ns/op, and in brackets \
             the median per-round ratio switchback / corosensei (below 1: switchback is faster):\n"
        );
        header(&mut out, "operation");
        for (op, cells) in &time {
            let _ = writeln!(out, "| `{op}` | {} |", cells.join(" | "));
        }
    }

    // `target  label  value  goal`.
    let targets = rows(
        "target",
        &|f| format!("{} | {}", f[1], f[3]),
        &|f| match f[2] {
            "" => "n/a".into(),
            value => format!("{value}×"),
        },
    );
    if !targets.is_empty() {
        let _ = writeln!(out, "\nIssue 16's targets (reported, not asserted):\n");
        let _ = writeln!(out, "| target | goal | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|---:|{}", "---:|".repeat(names.len()));
        for (target, cells) in &targets {
            let _ = writeln!(out, "| {target} | {} |", cells.join(" | "));
        }
    }

    // `count  op  crate  Ir  Bc  Bcm  Bi  Bim`.
    let counts = rows("count", &|f| format!("`{}` | {}", f[1], f[2]), &|f| match (
        f.get(5),
        f.get(7),
    ) {
        (Some(bcm), Some(bim)) => format!("{} / {bcm} / {bim}", f[3]),
        _ => f[3].to_string(),
    });
    if !counts.is_empty() {
        let _ = writeln!(
            out,
            "\n# Callgrind counts side by side\n\nPer iteration: instructions / conditional \
             branch mispredictions / indirect branch mispredictions (Ir / Bcm / Bim):\n"
        );
        let _ = writeln!(out, "| operation | crate | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---:|".repeat(names.len()));
        for (row, cells) in &counts {
            let _ = writeln!(out, "| {row} | {} |", cells.join(" | "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_layouts() {
        assert_eq!(parse("release").unwrap(), ["release"]);
        assert_eq!(
            parse("release-lto, release,release-lto").unwrap(),
            ["release-lto", "release"]
        );
        assert_eq!(parse("all").unwrap().len(), LAYOUTS.len());
        assert!(parse("dev").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn every_layout_is_a_profile_of_the_manifest() {
        let manifest = include_str!("../Cargo.toml");
        for layout in LAYOUTS.iter().skip(1) {
            let header = format!("[profile.{}]\ninherits = \"release\"", layout.name);
            assert!(
                manifest.contains(&header),
                "{} is not in Cargo.toml",
                layout.name
            );
        }
        assert_eq!(LAYOUTS[0].name, "release");
        for layout in &LAYOUTS {
            for (peer, _) in layout.left_out {
                assert!(crate::subjects::KNOWN[1..].contains(peer), "{peer}");
            }
        }
    }

    #[test]
    fn finding_the_executable_in_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"libc"},"executable":null}"#,
            "\n",
            r#"{"reason":"build-script-executed","package_id":"x"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","executable":"/t/release-lto/bench-compare","fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable(messages, "bench-compare"),
            Some(PathBuf::from("/t/release-lto/bench-compare"))
        );
        assert_eq!(executable(messages, "other"), None);
        assert_eq!(
            json_string(r#"{"a":"x\"y\\z","b":1}"#, "a").as_deref(),
            Some("x\"y\\z")
        );
        assert_eq!(json_string(r#"{"a":null}"#, "a"), None);
    }

    #[test]
    fn layouts_side_by_side() {
        let release = "time\tswitch\tswitchback\t7.14\t1.86\n\
                       time\tswitch\tcorosensei\t3.85\t\n\
                       target\t`switch`: switchback / corosensei\t1.86\t≤ 0.85×\n\
                       count\tswitch\tswitchback\t35.0\t3.0\t0.00\t2.0\t0.00\n";
        let lto = "time\tswitch\tswitchback\t3.50\t0.91\n\
                   target\t`switch`: switchback / corosensei\t0.91\t≤ 0.85×\n";
        let out = side_by_side(&[
            ("release".into(), release.into()),
            ("release-lto".into(), lto.into()),
        ]);
        assert!(
            out.contains("| operation | release | release-lto |"),
            "{out}"
        );
        assert!(
            out.contains("| `switch` | 7.14 ns (1.86×) | 3.50 ns (0.91×) |"),
            "{out}"
        );
        assert!(
            out.contains("| `switch`: switchback / corosensei | ≤ 0.85× | 1.86× | 0.91× |"),
            "{out}"
        );
        assert!(
            out.contains("| `switch` | switchback | 35.0 / 0.00 / 0.00 |  |"),
            "{out}"
        );
    }
}
