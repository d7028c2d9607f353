//! The markdown report: machine, method, the comparison table and raw medians.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::{summarize, Summary};
use crate::subjects::{Subject, Unsupported};
use crate::Options;

/// Everything a report is made of.
pub struct Report<'a> {
    /// What was asked for.
    pub options: &'a Options,
    /// The crates, baseline first.
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

/// Renders `report` as markdown.
fn render(r: &Report<'_>) -> String {
    let mut out = String::new();
    let names: Vec<String> = r.subjects.iter().map(|s| s.name()).collect();
    let summaries: Vec<Vec<Option<Summary>>> = r
        .samples
        .iter()
        .map(|per_subject| {
            per_subject
                .iter()
                .map(|samples| summarize(samples, &per_subject[0]))
                .collect()
        })
        .collect();

    let _ = writeln!(out, "## Stackful coroutine crates, side by side\n");
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(out, "- Compiler: {}", env!("BENCH_RUSTC_VERSION"));
    let _ = writeln!(out, "- Command: `{}`", command_line());
    let _ = writeln!(
        out,
        "- Method: {} rounds after {} warm-up rounds; in each round every crate runs \
         one batch of ~{} ms per operation, in an order rotated each round. \
         Cells: median ns/op over rounds (median over rounds of the ratio to \
         switchback in the same round).",
        r.options.rounds,
        r.options.warmup,
        r.options.batch.as_secs_f64() * 1e3,
    );
    let _ = writeln!(out, "- Run time: {:.1} s\n", r.elapsed.as_secs_f64());

    let _ = writeln!(out, "| operation | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(names.len()));
    for (op, row) in r.options.ops.iter().zip(&summaries) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(s, summary)| match summary {
                None => "n/a".into(),
                Some(sum) if s == 0 => format!("{} ns", ns(sum.median)),
                Some(sum) => format!("{} ns ({:.2}×)", ns(sum.median), sum.ratio),
            })
            .collect();
        let _ = writeln!(out, "| `{}` | {} |", op.name(), cells.join(" | "));
    }

    let _ = writeln!(out, "\nOperations:\n");
    let _ = writeln!(
        out,
        "- `switch`: resume + suspend round trip of an identity coroutine (`usize` in and out)."
    );
    let _ = writeln!(
        out,
        "- `call`: create a coroutine on an already-allocated stack, resume it once to return, drop it."
    );
    let _ = writeln!(
        out,
        "- `call-fresh`: the same on a newly allocated stack each time:"
    );
    for (subject, name) in r.subjects.iter().zip(&names) {
        let _ = writeln!(out, "  - {name}: {}", subject.fresh_stack());
    }
    let _ = writeln!(
        out,
        "- `call-pooled`: the same with a stack taken from a pool, and returned to it when \
         the coroutine drops (switchback: `Coroutine::with_pool` on a `StackPool` of 1 MiB \
         stacks)."
    );
    let _ = writeln!(
        out,
        "- `maybe-grow`: `stack::maybe_grow(32 KiB, 1 MiB, f)` with plenty of stack left, so \
         that `f` runs in place: the cost of finding the stack left (switchback only)."
    );

    let mut unsupported = Vec::new();
    for (op, row) in r.options.ops.iter().zip(r.iters) {
        for (name, iters) in names.iter().zip(row) {
            if let Err(why) = iters {
                unsupported.push(format!("- `{}` on {name}: {why}", op.name()));
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
                (Some(s), Ok(n)) => format!(
                    "{n} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3}..{:.3}",
                    s.median, s.min, s.max, s.ratio, s.ratio_q1, s.ratio_q3
                ),
                _ => "n/a | | | | |".into(),
            };
            let _ = writeln!(out, "| `{}` | {name} | {line} |", op.name());
        }
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
    use super::ns;

    #[test]
    fn ns_keeps_three_digits() {
        assert_eq!(ns(1.23456), "1.23");
        assert_eq!(ns(12.3456), "12.3");
        assert_eq!(ns(1234.56), "1235");
    }
}
