//! The markdown report: machine, method, the comparison table, issue 16's
//! targets and raw medians; and the same results as tab-separated lines for
//! `--layouts`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::{summarize, Ratio, Summary};
use crate::subjects::{crate_name, Op, Subject, Unsupported, REFERENCE};
use crate::{layouts, Options};

/// Everything a report is made of.
pub struct Report<'a> {
    /// What was asked for.
    pub options: &'a Options,
    /// The crates, switchback first.
    pub subjects: &'a [Box<dyn Subject>],
    /// Iterations per batch, `[op][subject]`.
    pub iters: &'a [Vec<Result<u64, Unsupported>>],
    /// ns/op per round, `[op][subject][round]`.
    pub samples: &'a [Vec<Vec<f64>>],
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

/// Prints `report` to stdout.
pub fn print(report: &Report<'_>) {
    print!("{}", render(report));
}

/// One of issue 16's targets for switchback.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What is compared.
    pub label: &'static str,
    /// The measured ratio, if both sides were timed.
    pub value: Option<f64>,
    /// The ratio to stay at or below.
    pub goal: f64,
}

/// The targets: switchback / corosensei for three ops, and
/// switchback's pooled call / its call on a reused stack. Only those whose
/// ops ran.
fn targets(ops: &[Op], names: &[String], samples: &[Vec<Vec<f64>>]) -> Vec<Target> {
    let op_index = |op: Op| ops.iter().position(|&o| o == op);
    let crate_index = |name: &str| names.iter().position(|n| crate_name(n) == name);
    let (switchback, reference) = (crate_index("switchback"), crate_index(REFERENCE));
    let against_reference = |op: Op| {
        let (op, s, r) = (op_index(op)?, switchback?, reference?);
        Some(Ratio::of(&samples[op][s], &samples[op][r])?.median)
    };
    let mut targets = Vec::new();
    for (op, label, goal) in [
        (Op::Switch, "`switch`: switchback / corosensei", 0.85),
        (
            Op::SwitchDeep,
            "`switch-deep`: switchback / corosensei",
            1.00,
        ),
        (Op::Call, "`call`: switchback / corosensei", 0.90),
    ] {
        if op_index(op).is_some() {
            let value = against_reference(op);
            targets.push(Target { label, value, goal });
        }
    }
    if let (Some(pooled), Some(call)) = (op_index(Op::CallPooled), op_index(Op::Call)) {
        let value = switchback
            .and_then(|s| Ratio::of(&samples[pooled][s], &samples[call][s]))
            .map(|ratio| ratio.median);
        targets.push(Target {
            label: "`call-pooled` / `call`, switchback",
            value,
            goal: 1.20,
        });
    }
    targets
}

/// The statistics of every (op, subject), against the reference crate.
fn summaries(r: &Report<'_>, names: &[String]) -> Vec<Vec<Option<Summary>>> {
    let reference = names.iter().position(|n| crate_name(n) == REFERENCE);
    r.samples
        .iter()
        .map(|per_subject| {
            let reference = reference
                .map(|i| per_subject[i].as_slice())
                .filter(|samples| !samples.is_empty());
            per_subject
                .iter()
                .map(|samples| summarize(samples, reference))
                .collect()
        })
        .collect()
}

/// Renders `report` as markdown.
fn render(r: &Report<'_>) -> String {
    let mut out = String::new();
    let names: Vec<String> = r.subjects.iter().map(|s| s.name()).collect();
    let summaries = summaries(r, &names);
    let reference = names.iter().find(|n| crate_name(n) == REFERENCE).cloned();

    let _ = writeln!(out, "## Stackful coroutine crates, side by side\n");
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(out, "- Compiler: {}", env!("BENCH_RUSTC_VERSION"));
    let _ = writeln!(out, "- switchback: {}", switchback_revision());
    let _ = writeln!(out, "- Layout: {}", layout());
    for name in crate::subjects::left_out() {
        let why = layouts::current()
            .and_then(|l| l.left_out.iter().find(|(peer, _)| *peer == name))
            .map_or("its feature is off", |(_, why)| why);
        let _ = writeln!(out, "- Not built in: {name} ({why})");
    }
    let _ = writeln!(out, "- Command: `{}`", command_line());
    let ratio_note = match &reference {
        Some(reference) => format!(
            "Cells: median ns/op over rounds (in brackets: the median over rounds of the \
             ratio to {reference} in the same round; below 1 is faster)."
        ),
        None => format!("Cells: median ns/op over rounds ({REFERENCE} not timed: no ratios)."),
    };
    let _ = writeln!(
        out,
        "- Method: {} rounds after {} warm-up rounds; in each round every crate runs \
         one batch of ~{} ms per operation (`generator`: one generator of {} items), in an \
         order rotated each round. {ratio_note}",
        r.options.rounds,
        r.options.warmup,
        r.options.batch.as_secs_f64() * 1e3,
        crate::subjects::thousands(r.options.generator_items),
    );
    let _ = writeln!(out, "- Run time: {:.1} s\n", r.elapsed.as_secs_f64());

    let _ = writeln!(out, "| operation | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(names.len()));
    for (op, row) in r.options.ops.iter().zip(&summaries) {
        let cells: Vec<String> = row
            .iter()
            .zip(&names)
            .map(|(summary, name)| cell(summary.as_ref(), crate_name(name) == REFERENCE))
            .collect();
        let _ = writeln!(out, "| `{op}` | {} |", cells.join(" | "));
    }

    let targets = targets(&r.options.ops, &names, r.samples);
    if !targets.is_empty() {
        let _ = writeln!(
            out,
            "\n### Issue 16's targets (reported, not asserted)\n\n\
             | target | measured | goal | |\n|---|---:|---:|---|"
        );
        for t in &targets {
            let (value, verdict) = match t.value {
                Some(v) if v <= t.goal => (format!("{v:.2}×"), "met"),
                Some(v) => (format!("{v:.2}×"), "not met"),
                None => ("n/a".into(), ""),
            };
            let _ = writeln!(
                out,
                "| {} | {value} | ≤ {:.2}× | {verdict} |",
                t.label, t.goal
            );
        }
    }

    let _ = writeln!(out, "\nOperations (per iteration):\n");
    let rings: Vec<String> = r
        .options
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Ring(_)))
        .map(|op| format!("`{op}`"))
        .collect();
    for op in &r.options.ops {
        match op {
            // The rings in one line.
            Op::Ring(_) if rings.len() > 1 => {
                if rings[0] == format!("`{op}`") {
                    let what = Op::describe_ring("N");
                    let _ = writeln!(out, "- {}: {what}.", rings.join(", "));
                }
                continue;
            }
            _ => {
                let what = op.describe(r.options.generator_items);
                let _ = writeln!(out, "- `{op}`: {what}.");
            }
        }
        match op {
            Op::CallFresh => {
                for (subject, name) in r.subjects.iter().zip(&names) {
                    let _ = writeln!(out, "  - {name}: {}", subject.fresh_stack());
                }
            }
            Op::CallPooled => {
                let _ = writeln!(
                    out,
                    "  - switchback: `Coroutine::with_pool` on a `StackPool` of 1 MiB stacks"
                );
            }
            _ => {}
        }
    }

    let mut unsupported = Vec::new();
    for (op, row) in r.options.ops.iter().zip(r.iters) {
        for (name, iters) in names.iter().zip(row) {
            if let Err(why) = iters {
                unsupported.push(format!("- `{op}` on {name}: {why}"));
            }
        }
    }
    if !unsupported.is_empty() {
        let _ = writeln!(out, "\nn/a:\n\n{}", unsupported.join("\n"));
    }

    let _ = writeln!(out, "\n### Raw medians\n");
    let _ = writeln!(
        out,
        "| operation | crate | iters/batch | median ns/op | min | max | ratio | ratio q1..q3 |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for ((op, row), iters) in r.options.ops.iter().zip(&summaries).zip(r.iters) {
        for ((name, summary), iters) in names.iter().zip(row).zip(iters) {
            let line = match (summary, iters) {
                (Some(s), Ok(n)) => {
                    let ratio = match s.ratio {
                        Some(q) => format!("{:.3} | {:.3}..{:.3}", q.median, q.q1, q.q3),
                        None => " | ".into(),
                    };
                    format!(
                        "{n} | {:.3} | {:.3} | {:.3} | {ratio}",
                        s.median, s.min, s.max
                    )
                }
                _ => "n/a | | | | |".into(),
            };
            let _ = writeln!(out, "| `{op}` | {name} | {line} |");
        }
    }
    out
}

/// A cell of the comparison table: median ns, and the ratio to the
/// reference unless this is the reference.
fn cell(summary: Option<&Summary>, is_reference: bool) -> String {
    match summary {
        None => "n/a".into(),
        Some(s) => match s.ratio {
            Some(ratio) if !is_reference => format!("{} ns ({:.2}×)", ns(s.median), ratio.median),
            _ => format!("{} ns", ns(s.median)),
        },
    }
}

/// The results as tab-separated lines, for `--layouts`:
/// `time  OP  CRATE  MEDIAN_NS  RATIO` for every (op, crate) with samples
/// (RATIO empty for the reference or without one), and
/// `target  LABEL  VALUE  GOAL` for issue 16's targets.
pub fn summary(r: &Report<'_>) -> String {
    let mut out = String::new();
    let names: Vec<String> = r.subjects.iter().map(|s| s.name()).collect();
    for (op, row) in r.options.ops.iter().zip(summaries(r, &names)) {
        for (name, summary) in names.iter().zip(row) {
            let Some(s) = summary else { continue };
            let ratio = match s.ratio {
                Some(ratio) if crate_name(name) != REFERENCE => format!("{:.2}", ratio.median),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "time\t{op}\t{}\t{}\t{ratio}",
                crate_name(name),
                ns(s.median)
            );
        }
    }
    for t in targets(&r.options.ops, &names, r.samples) {
        let value = t.value.map_or(String::new(), |v| format!("{v:.2}"));
        let _ = writeln!(out, "target\t{}\t{value}\t≤ {:.2}×", t.label, t.goal);
    }
    out
}

/// Nanoseconds with about three significant digits.
fn ns(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// The layout this program was built in, and what it sets.
fn layout() -> String {
    match layouts::current() {
        Some(layout) => format!("`{}` ({})", layout.name, layout.what),
        None => {
            let dir = std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.file_name()?.to_string_lossy().into_owned()))
                .unwrap_or_default();
            format!("not one of the layouts (built in `{dir}`)")
        }
    }
}

/// The commit of the switchback checkout this was built from, as `git
/// describe --always --dirty` tells it.
fn switchback_revision() -> String {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    std::process::Command::new("git")
        .args(["-C", repo, "describe", "--always", "--dirty", "--abbrev=10"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| format!("commit {}", String::from_utf8_lossy(&out.stdout).trim()))
        .unwrap_or_else(|| "commit unknown (no git)".into())
}

/// CPU model and core counts.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let online = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let available = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {online} logical CPUs ({available} available to this process)")
}

/// The command line, with the program's directory left out.
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(name) = args
        .first()
        .and_then(|program| std::path::Path::new(program).file_name())
    {
        args[0] = name.to_string_lossy().into_owned();
    }
    args.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_keeps_three_digits() {
        assert_eq!(ns(1.23456), "1.23");
        assert_eq!(ns(12.3456), "12.3");
        assert_eq!(ns(1234.56), "1235");
    }

    /// A subject that only has a name.
    struct Named(&'static str);

    impl Subject for Named {
        fn name(&self) -> String {
            self.0.into()
        }
        fn fresh_stack(&self) -> &'static str {
            "none"
        }
        fn batch(&mut self, _: Op, _: u64) -> Result<Duration, Unsupported> {
            unreachable!()
        }
    }

    fn options(ops: &[Op]) -> Options {
        let mut options = Options::parse(["--rounds".to_string(), "3".to_string()]).unwrap();
        options.ops = ops.to_vec();
        options
    }

    #[test]
    fn report_against_corosensei() {
        let ops = [Op::Switch, Op::Call, Op::CallPooled];
        let options = options(&ops);
        let subjects: Vec<Box<dyn Subject>> = vec![
            Box::new(Named("switchback 0.1.0")),
            Box::new(Named("corosensei 0.3.4")),
            Box::new(Named("context 3.0.0")),
        ];
        let iters = vec![
            vec![Ok(10), Ok(10), Ok(10)],
            vec![Ok(10), Ok(10), Ok(10)],
            vec![
                Ok(10),
                Err(Unsupported::new("no pool")),
                Err(Unsupported::new("none")),
            ],
        ];
        // switchback is 2x corosensei per switch, 0.5x per call; its pooled
        // call is 1.1x its call.
        let samples = vec![
            vec![
                vec![8.0, 8.0, 80.0],
                vec![4.0, 4.0, 40.0],
                vec![12.0, 12.0, 120.0],
            ],
            vec![
                vec![5.0, 5.0, 50.0],
                vec![10.0, 10.0, 10.0],
                vec![20.0, 20.0, 20.0],
            ],
            vec![vec![5.5, 5.5, 55.0], vec![], vec![]],
        ];
        let report = Report {
            options: &options,
            subjects: &subjects,
            iters: &iters,
            samples: &samples,
            elapsed: Duration::from_secs(1),
        };
        let out = render(&report);
        assert!(
            out.contains("| `switch` | 8.00 ns (2.00×) | 4.00 ns | 12.0 ns (3.00×) |"),
            "{out}"
        );
        assert!(
            out.contains("| `call-pooled` | 5.50 ns | n/a | n/a |"),
            "{out}"
        );
        assert!(out.contains("| `switch`: switchback / corosensei | 2.00× | ≤ 0.85× | not met |"));
        assert!(out.contains("| `call`: switchback / corosensei | 0.50× | ≤ 0.90× | met |"));
        assert!(out.contains("| `call-pooled` / `call`, switchback | 1.10× | ≤ 1.20× | met |"));
        assert!(out.contains("- `call-pooled` on corosensei 0.3.4: no pool"));
        assert!(out.contains("| `switch` | corosensei 0.3.4 | 10 | 4.000 | 4.000 | 40.000 | 1.000 | 1.000..1.000 |"), "{out}");

        let summary = summary(&report);
        assert!(
            summary.contains("time\tswitch\tswitchback\t8.00\t2.00\n"),
            "{summary}"
        );
        assert!(
            summary.contains("time\tswitch\tcorosensei\t4.00\t\n"),
            "{summary}"
        );
        assert!(
            summary.contains("time\tcall-pooled\tswitchback\t5.50\t\n"),
            "{summary}"
        );
        assert!(summary.contains("target\t`call-pooled` / `call`, switchback\t1.10\t≤ 1.20×\n"));
        assert!(!summary.contains("switch-deep"));
    }

    #[test]
    fn no_ratios_without_corosensei() {
        let ops = [Op::Switch, Op::SwitchDeep];
        let options = options(&ops);
        let subjects: Vec<Box<dyn Subject>> = vec![Box::new(Named("switchback 0.1.0"))];
        let iters = vec![vec![Ok(10)], vec![Ok(10)]];
        let samples = vec![vec![vec![3.0]], vec![vec![4.0]]];
        let report = Report {
            options: &options,
            subjects: &subjects,
            iters: &iters,
            samples: &samples,
            elapsed: Duration::from_secs(1),
        };
        let out = render(&report);
        assert!(out.contains("| `switch` | 3.00 ns |"), "{out}");
        assert!(out.contains("corosensei not timed: no ratios"), "{out}");
        assert!(out.contains("| `switch-deep`: switchback / corosensei | n/a | ≤ 1.00× |  |"));
        assert!(summary(&report).contains("target\t`switch`: switchback / corosensei\t\t≤ 0.85×\n"));
    }
}
