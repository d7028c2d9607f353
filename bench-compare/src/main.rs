//! Times switchback against other stackful coroutine crates in one process,
//! round-robin, and prints a markdown report.
//!
//! ```text
//! cargo run --release -p bench-compare -- [--rounds N] [--ops switch,call,...] [--quick]
//! ```

mod measure;
mod report;
mod subjects;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use subjects::{Op, Unsupported};

/// Command-line options.
#[derive(Debug, PartialEq)]
struct Options {
    /// Measured rounds.
    rounds: usize,
    /// Unmeasured rounds before them.
    warmup: usize,
    /// How long one batch should take.
    batch: Duration,
    /// Operations to time, in report order.
    ops: Vec<Op>,
    /// Crates to time besides switchback (all when `None`), by name.
    crates: Option<Vec<String>>,
}

const USAGE: &str = "\
usage: bench-compare [--rounds N] [--ops OP,OP,...] [--crates NAME,...] [--quick]

  --rounds N     measured rounds (default 31; at least 21 for a report worth quoting)
  --ops LIST     comma-separated subset of: switch, call, call-fresh, call-pooled,
                 maybe-grow
  --crates LIST  comma-separated crates to time besides switchback (the
                 baseline, always timed): corosensei, context, generator,
                 wasmtime-fiber; default all
  --quick        5 rounds of short batches: a smoke test, not a measurement";

impl Options {
    /// Parses the arguments after the program name.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            rounds: 31,
            warmup: 3,
            batch: Duration::from_millis(3),
            ops: Op::ALL.to_vec(),
            crates: None,
        };
        let mut rounds = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--rounds" => {
                    let value = args.next().ok_or("--rounds needs a value")?;
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("--rounds: not a number: {value}"))?;
                    if n == 0 {
                        return Err("--rounds must be at least 1".into());
                    }
                    rounds = Some(n);
                }
                "--ops" => {
                    let value = args.next().ok_or("--ops needs a value")?;
                    let mut ops = value
                        .split(',')
                        .map(|name| Op::parse(name.trim()).ok_or(format!("unknown op: {name}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    ops.sort_by_key(|op| Op::ALL.iter().position(|o| o == op));
                    ops.dedup();
                    options.ops = ops;
                }
                "--crates" => {
                    let value = args.next().ok_or("--crates needs a value")?;
                    let names = value.split(',').map(|name| name.trim().to_string());
                    options.crates = Some(names.collect());
                }
                "--quick" => {
                    options.rounds = 5;
                    options.warmup = 1;
                    options.batch = Duration::from_micros(500);
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument: {other}")),
            }
        }
        if let Some(rounds) = rounds {
            options.rounds = rounds;
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("bench-compare: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut subjects = subjects::all();
    if let Some(crates) = &options.crates {
        let known: Vec<String> = subjects.iter().map(|s| crate_name(&s.name())).collect();
        if let Some(unknown) = crates.iter().find(|name| !known.contains(name)) {
            eprintln!(
                "bench-compare: unknown crate: {unknown} (known: {})",
                known.join(", ")
            );
            return ExitCode::from(2);
        }
        // switchback, the baseline of every ratio, stays first.
        subjects.retain(|s| {
            let name = crate_name(&s.name());
            name == "switchback" || crates.contains(&name)
        });
    }

    // Batch sizes per [op][subject], or why the subject cannot do the op.
    let iters: Vec<Vec<Result<u64, Unsupported>>> = options
        .ops
        .iter()
        .map(|&op| {
            subjects
                .iter_mut()
                .map(|subject| {
                    subject.batch(op, 1)?;
                    Ok(measure::calibrate(
                        |n| subject.batch(op, n).expect("supported op"),
                        options.batch,
                    ))
                })
                .collect()
        })
        .collect();

    let samples = measure::run_rounds(
        options.ops.len(),
        subjects.len(),
        options.warmup,
        options.rounds,
        |op, s| {
            let n = *iters[op][s].as_ref().ok()?;
            let elapsed = subjects[s].batch(options.ops[op], n).expect("supported op");
            Some(measure::ns_per_op(elapsed, n))
        },
    );

    report::print(&report::Report {
        options: &options,
        subjects: &subjects,
        iters: &iters,
        samples: &samples,
        elapsed: started.elapsed(),
    });
    ExitCode::SUCCESS
}

/// A subject's crate name: its report name without the version.
fn crate_name(report_name: &str) -> String {
    report_name
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        let defaults = parse(&[]).unwrap();
        assert_eq!((defaults.rounds, defaults.ops.len()), (31, 5));
        let quick = parse(&["--rounds", "7", "--quick"]).unwrap();
        assert_eq!(quick.rounds, 7);
        assert_eq!(quick.warmup, 1);
        let ops = parse(&["--ops", "call,switch,call"]).unwrap().ops;
        assert_eq!(ops, [Op::Switch, Op::Call]);
        assert!(parse(&["--ops", "jump"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--rounds"]).is_err());
        let crates = parse(&["--crates", "corosensei, context"]).unwrap().crates;
        assert_eq!(crates, Some(vec!["corosensei".into(), "context".into()]));
        assert!(parse(&["--crates"]).is_err());
    }

    #[test]
    fn crate_names_drop_the_version() {
        assert_eq!(crate_name("wasmtime-fiber 34.0.2"), "wasmtime-fiber");
        assert_eq!(crate_name("switchback"), "switchback");
    }
}
