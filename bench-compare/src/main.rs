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
}

const USAGE: &str = "\
usage: bench-compare [--rounds N] [--ops OP,OP,...] [--quick]

  --rounds N   measured rounds (default 31; at least 21 for a report worth quoting)
  --ops LIST   comma-separated subset of: switch, call, call-fresh, call-pooled, maybe-grow
  --quick      5 rounds of short batches: a smoke test, not a measurement";

impl Options {
    /// Parses the arguments after the program name.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            rounds: 31,
            warmup: 3,
            batch: Duration::from_millis(3),
            ops: Op::ALL.to_vec(),
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
    }
}
