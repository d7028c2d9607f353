//! `--callgrind`: instructions and branch mispredictions per iteration,
//! counted under valgrind's callgrind with its branch simulation.
//!
//! Each (op, crate) runs as `bench-compare --count OP CRATE N` under
//! callgrind for N and for 2N iterations; (count(2N) - count(N)) / N
//! cancels start-up, set-up and tear-down. The counts do not depend on the
//! machine's load, so they can be compared between runs and commits.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::subjects::{self, thousands, Op, Unsupported};
use crate::Options;

/// Iterations of the shorter run (the longer runs twice as many).
pub const ITERS: u64 = 100_000;

/// The events callgrind counts with `--branch-sim=yes`, in table order.
pub const EVENTS: [&str; 5] = ["Ir", "Bc", "Bcm", "Bi", "Bim"];

/// Per-iteration counts of [`EVENTS`], in that order.
pub type Counts = [f64; 5];

/// Counts every op of `options` on every selected crate and prints the table.
pub fn run(options: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let version = valgrind_version()?;
    let scratch = std::env::temp_dir().join(format!("bench-compare-cg-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("creating {scratch:?}: {e}"))?;
    let mut subjects = subjects::select(options.crates.as_deref())?;
    let mut rows = Vec::new();
    for &op in &options.ops {
        for subject in &mut subjects {
            let name = subject.name();
            let krate = subjects::crate_name(&name).to_string();
            // Asked in this process: whether the crate can do the op.
            let supported = subject.batch(op, 1).map(drop);
            subject.release();
            let counts = match supported {
                Ok(()) => Ok(per_iteration(&exe, &scratch, op, &krate)?),
                Err(why) => Err(why),
            };
            rows.push((op, name, counts));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    print!("{}", render(&rows, &version));
    if let Some(path) = &options.summary_file {
        std::fs::write(path, summary(&rows))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `valgrind --version`, or why valgrind cannot run.
fn valgrind_version() -> Result<String, String> {
    let output = Command::new("valgrind")
        .arg("--version")
        .output()
        .map_err(|e| {
            format!("cannot run valgrind ({e}); .ci/apt-packages.txt lists it, .ci/install.sh installs it")
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// (counts(2N) - counts(N)) / N for `op` on `krate`.
fn per_iteration(exe: &Path, scratch: &Path, op: Op, krate: &str) -> Result<Counts, String> {
    let one = totals(exe, scratch, op, krate, ITERS)?;
    let two = totals(exe, scratch, op, krate, 2 * ITERS)?;
    let mut counts = [0.0; 5];
    for (i, count) in counts.iter_mut().enumerate() {
        *count = (two[i] as f64 - one[i] as f64) / ITERS as f64;
    }
    Ok(counts)
}

/// The totals of [`EVENTS`] of one run of `exe --count OP CRATE N` under
/// callgrind.
fn totals(exe: &Path, scratch: &Path, op: Op, krate: &str, iters: u64) -> Result<[u64; 5], String> {
    let out = scratch.join(format!("callgrind.{op}.{krate}.{iters}"));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--branch-sim=yes")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--count", &op.name(), krate, &iters.to_string()])
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "valgrind --tool=callgrind {} --count {op} {krate} {iters} failed ({}):\n{}",
            exe.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text =
        std::fs::read_to_string(&out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    let totals = parse_totals(&text)?;
    let mut values = [0; 5];
    for (value, event) in values.iter_mut().zip(EVENTS) {
        *value = totals
            .iter()
            .find(|(name, _)| name == event)
            .map(|(_, v)| *v)
            .ok_or(format!(
                "{}: no {event} events (--branch-sim=yes?)",
                out.display()
            ))?;
    }
    Ok(values)
}

/// The total of every event in a callgrind output file: the names of its
/// `events:` line with the numbers of its `summary:` line (or `totals:`,
/// which some versions write instead). A total left out counts 0.
pub fn parse_totals(text: &str) -> Result<Vec<(String, u64)>, String> {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .map(str::split_whitespace)
    };
    let events = field("events:").ok_or("no `events:` line in the callgrind output")?;
    let totals = field("summary:")
        .or_else(|| field("totals:"))
        .ok_or("no `summary:` or `totals:` line in the callgrind output")?;
    let totals: Vec<u64> = totals
        .map(|n| n.parse().map_err(|_| format!("not a count: {n}")))
        .collect::<Result<_, _>>()?;
    Ok(events
        .enumerate()
        .map(|(i, name)| (name.to_string(), totals.get(i).copied().unwrap_or(0)))
        .collect())
}

/// One row of the table: the op, the crate's report name, its counts.
type Row = (Op, String, Result<Counts, Unsupported>);

/// The table of per-iteration counts, as markdown.
fn render(rows: &[Row], valgrind: &str) -> String {
    let mut out = String::new();
    let layout =
        crate::layouts::current().map_or(String::new(), |l| format!(" (layout `{}`)", l.name));
    let _ = writeln!(
        out,
        "## Instructions and branch mispredictions per iteration, under callgrind{layout}\n"
    );
    let _ = writeln!(
        out,
        "| operation | crate | {} |\n|---|---|{}",
        EVENTS.join(" | "),
        "---:|".repeat(EVENTS.len())
    );
    let mut unsupported = Vec::new();
    for (op, name, counts) in rows {
        match counts {
            Ok(c) => {
                let _ = writeln!(
                    out,
                    "| `{op}` | {name} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} |",
                    c[0], c[1], c[2], c[3], c[4]
                );
            }
            Err(why) => unsupported.push(format!("- `{op}` on {name}: {why}")),
        }
    }
    if !unsupported.is_empty() {
        let _ = writeln!(out, "\nn/a:\n\n{}", unsupported.join("\n"));
    }
    let _ = writeln!(
        out,
        "\nIr: instructions; Bc, Bcm: conditional branches and their mispredictions; \
         Bi, Bim: indirect jumps and calls and their mispredictions. Per iteration of the \
         op as the harness times it: (count({}) - count({})) / {}, under `{valgrind} \
         --tool=callgrind --branch-sim=yes`. The predictor is valgrind's model (2-bit \
         counters with global history for conditional branches; the last target, in a \
         512-entry table, for indirect ones), not this CPU's, and it assumes that every \
         return is predicted: a return-address misprediction does not show here.",
        thousands(2 * ITERS),
        thousands(ITERS),
        thousands(ITERS),
    );
    out
}

/// The rows as `count  op  crate  Ir  Bc  Bcm  Bi  Bim` lines (for `--layouts`).
fn summary(rows: &[Row]) -> String {
    let mut out = String::new();
    for (op, name, counts) in rows {
        if let Ok(c) = counts {
            let _ = writeln!(
                out,
                "count\t{op}\t{}\t{:.1}\t{:.1}\t{:.2}\t{:.1}\t{:.2}",
                subjects::crate_name(name),
                c[0],
                c[1],
                c[2],
                c[3],
                c[4]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head and tail of a callgrind output file of valgrind 3.19 with
    /// `--branch-sim=yes`.
    const FIXTURE: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  ./bench-compare --count switch corosensei 100000
part: 1


desc: I1 cache: 
desc: D1 cache: 
desc: LL cache: 
desc: Timerange: Basic block 0 - 1234567
desc: Trigger: Program termination

positions: line
events: Ir Bc Bcm Bi Bim
summary: 4312345 512345 1234 204567 89
fl=(1) ???
fn=(1) 0x000000000001f100
0 3 1

totals: 4312345 512345 1234 204567 89
";

    #[test]
    fn parses_the_summary_line() {
        let totals = parse_totals(FIXTURE).unwrap();
        let names: Vec<&str> = totals.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, EVENTS);
        assert_eq!(totals[0].1, 4_312_345);
        assert_eq!(totals[2].1, 1234);
        assert_eq!(totals[4].1, 89);
    }

    #[test]
    fn falls_back_to_totals_and_fills_in_zeros() {
        let text = "events: Ir Bc Bcm\ntotals: 100 7\n";
        assert_eq!(
            parse_totals(text).unwrap(),
            [("Ir".into(), 100), ("Bc".into(), 7), ("Bcm".into(), 0)]
        );
        assert!(parse_totals("summary: 1 2\n").is_err());
        assert!(parse_totals("events: Ir\n").is_err());
        assert!(parse_totals("events: Ir\nsummary: many\n").is_err());
    }

    #[test]
    fn renders_rows_and_reasons() {
        let rows = vec![
            (
                Op::Switch,
                "switchback 0.1.0".to_string(),
                Ok([35.0, 4.0, 0.001, 2.0, 0.0]),
            ),
            (
                Op::Panic,
                "context 3.0.0".to_string(),
                Err(Unsupported::new("no panics here")),
            ),
        ];
        let out = render(&rows, "valgrind-3.19.0");
        assert!(
            out.contains("| operation | crate | Ir | Bc | Bcm | Bi | Bim |"),
            "{out}"
        );
        assert!(
            out.contains("| `switch` | switchback 0.1.0 | 35.0 | 4.0 | 0.00 | 2.0 | 0.00 |"),
            "{out}"
        );
        assert!(
            out.contains("- `panic` on context 3.0.0: no panics here"),
            "{out}"
        );
        assert!(
            out.contains("(count(200,000) - count(100,000)) / 100,000"),
            "{out}"
        );
        assert_eq!(
            summary(&rows),
            "count\tswitch\tswitchback\t35.0\t4.0\t0.00\t2.0\t0.00\n"
        );
    }
}
