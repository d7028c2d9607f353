//! Times switchback against other stackful coroutine crates in one process,
//! round-robin, and prints a markdown report; builds and runs itself in
//! several layouts (Cargo profiles); counts instructions and branch
//! mispredictions under callgrind.
//!
//! ```text
//! cargo run --release --manifest-path bench-compare/Cargo.toml -- [options]
//! ```

mod callgrind;
mod layouts;
mod measure;
mod report;
mod scale;
mod subjects;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use subjects::{Op, Unsupported};

/// What a run does.
#[derive(Debug, PartialEq)]
enum Mode {
    /// Time the ops (the default).
    Time,
    /// Count instructions and branches per iteration under callgrind.
    Callgrind,
    /// Run `iters` iterations of one op on one crate, untimed: what
    /// [`Mode::Callgrind`] runs under valgrind.
    Count { op: Op, krate: String, iters: u64 },
    /// Hold many suspended coroutines at once, each count in a child.
    Scale { counts: Vec<usize> },
    /// One child of [`Mode::Scale`].
    ScaleChild { subject: String, count: usize },
}

/// Command-line options.
#[derive(Debug, PartialEq)]
struct Options {
    /// What to do.
    mode: Mode,
    /// Measured rounds.
    rounds: usize,
    /// Unmeasured rounds before them.
    warmup: usize,
    /// How long one batch should take.
    batch: Duration,
    /// Items of one [`Op::Generator`] batch.
    generator_items: u64,
    /// Operations, in report order.
    ops: Vec<Op>,
    /// Crates to time besides switchback (all when `None`), by name.
    crates: Option<Vec<String>>,
    /// Layouts to build and run the rest of the command line in.
    layouts: Option<Vec<String>>,
    /// The arguments without `--layouts LIST`: what each layout runs.
    forwarded: Vec<String>,
    /// Where to write the results as tab-separated lines too.
    summary_file: Option<PathBuf>,
}

const USAGE: &str = "\
usage: bench-compare [--rounds N] [--ops OP,...] [--crates NAME,...] [--quick]
                     [--layouts LAYOUT,...] [--callgrind] [--summary-file PATH]
       bench-compare --scale [N,...] [--crates NAME,...]
       bench-compare --count OP CRATE N

  --rounds N      measured rounds (default 31; at least 21 for a report worth quoting)
  --ops LIST      comma-separated subset of: switch, switch-deep, call, call-fresh,
                  call-pooled, generator, ring-2, ring-16, ring-256, ring-4096,
                  ring-100000 (or ring-N for any N >= 2), drop-suspended, panic,
                  maybe-grow; default all (with --callgrind: switch, switch-deep)
  --crates LIST   comma-separated crates to time besides switchback (always
                  timed): corosensei (the reference of every ratio), context,
                  generator, wasmtime-fiber; default all
  --quick         5 rounds of short batches and a generator of 100,000 items:
                  a smoke test, not a measurement
  --layouts LIST  build bench-compare in each layout (a Cargo profile of its
                  Cargo.toml) and run the rest of the command line in each,
                  then compare the layouts: release, release-cgu1, release-lto,
                  release-thin, release-o2, or all
  --callgrind     instead of timing, run each op under valgrind's callgrind with
                  branch simulation and print per iteration: instructions (Ir),
                  conditional branches (Bc) and their mispredictions (Bcm),
                  indirect branches (Bi) and their mispredictions (Bim)
  --summary-file PATH
                  also write the results as tab-separated lines (--layouts
                  reads them)
  --scale [LIST]  instead of timing, hold N suspended coroutines at once for each N
                  of the list (default 10000,100000,1000000), each on a 16 KiB
                  stack it has touched, every crate and count in a fresh child
                  process: how many were held, resident memory per coroutine,
                  how fast they were made and finished, mappings per coroutine,
                  and what stopped a crate short (switchback on DefaultStack and
                  on a StackPool; the peers of --crates)
  --count OP CRATE N
                  run N iterations of OP on CRATE once, untimed: what
                  --callgrind runs under valgrind";

impl Options {
    /// Parses the arguments after the program name.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            mode: Mode::Time,
            rounds: 31,
            warmup: 3,
            batch: Duration::from_millis(3),
            generator_items: subjects::GENERATOR_ITEMS,
            ops: Op::ALL.to_vec(),
            crates: None,
            layouts: None,
            forwarded: Vec::new(),
            summary_file: None,
        };
        let mut rounds = None;
        let mut ops = None;
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--rounds" => {
                    let value = value("--rounds")?;
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("--rounds: not a number: {value}"))?;
                    if n == 0 {
                        return Err("--rounds must be at least 1".into());
                    }
                    rounds = Some(n);
                    options.forwarded.extend(["--rounds".into(), value]);
                }
                "--ops" => {
                    let value = value("--ops")?;
                    ops = Some(parse_ops(&value)?);
                    options.forwarded.extend(["--ops".into(), value]);
                }
                "--crates" => {
                    let value = value("--crates")?;
                    let names = value.split(',').map(|name| name.trim().to_string());
                    options.crates = Some(names.collect());
                    options.forwarded.extend(["--crates".into(), value]);
                }
                "--quick" => {
                    options.rounds = 5;
                    options.warmup = 1;
                    options.batch = Duration::from_micros(500);
                    options.generator_items = subjects::QUICK_GENERATOR_ITEMS;
                    options.forwarded.push(arg);
                }
                "--layouts" => {
                    let value = value("--layouts")?;
                    options.layouts = Some(layouts::parse(&value)?);
                }
                "--callgrind" => {
                    options.mode = Mode::Callgrind;
                    options.forwarded.push(arg);
                }
                "--summary-file" => {
                    let value = value("--summary-file")?;
                    options.summary_file = Some(PathBuf::from(&value));
                }
                "--count" => {
                    let op = value("--count")?;
                    let op = Op::parse(&op).ok_or(format!("unknown op: {op}"))?;
                    let krate = value("--count")?;
                    let iters = value("--count")?;
                    let iters = iters
                        .parse()
                        .map_err(|_| format!("--count: not a number: {iters}"))?;
                    options.mode = Mode::Count { op, krate, iters };
                }
                "--scale" => {
                    let counts = match args.peek() {
                        Some(list) if !list.starts_with("--") => {
                            let list = args.next().expect("peeked");
                            parse_counts(&list)?
                        }
                        _ => scale::DEFAULT_COUNTS.to_vec(),
                    };
                    options.mode = Mode::Scale { counts };
                }
                "--scale-child" => {
                    let subject = value("--scale-child")?;
                    let count = value("--scale-child")?;
                    let count = count
                        .parse()
                        .map_err(|_| format!("--scale-child: not a number: {count}"))?;
                    options.mode = Mode::ScaleChild { subject, count };
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument: {other}")),
            }
        }
        if let Some(rounds) = rounds {
            options.rounds = rounds;
        }
        options.ops = match (ops, &options.mode) {
            (Some(ops), _) => ops,
            (None, Mode::Callgrind) => vec![Op::Switch, Op::SwitchDeep],
            (None, _) => Op::ALL.to_vec(),
        };
        if options.layouts.is_some() && options.summary_file.is_some() {
            return Err("--summary-file is for one layout; --layouts writes its own".into());
        }
        Ok(options)
    }
}

/// A comma-separated list of coroutine counts (`_` allowed as a digit
/// separator), each at least 1.
fn parse_counts(list: &str) -> Result<Vec<usize>, String> {
    list.split(',')
        .map(|n| match n.trim().replace('_', "").parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--scale: not a count: {n}")),
        })
        .collect()
}

/// A comma-separated list of op names, in report order without repeats.
fn parse_ops(list: &str) -> Result<Vec<Op>, String> {
    let mut ops = list
        .split(',')
        .map(|name| Op::parse(name.trim()).ok_or(format!("unknown op: {name}")))
        .collect::<Result<Vec<_>, _>>()?;
    ops.sort_by_key(|op| op.order());
    ops.dedup();
    Ok(ops)
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
    let result = if let Some(layouts) = &options.layouts {
        layouts::run(layouts, &options.forwarded)
    } else {
        match &options.mode {
            Mode::Time => time(&options),
            Mode::Callgrind => callgrind::run(&options),
            Mode::Count { op, krate, iters } => count(*op, krate, *iters),
            Mode::Scale { counts } => {
                let subjects = scale::SCALE_SUBJECTS.iter().filter(|name| {
                    name.starts_with("switchback")
                        || options
                            .crates
                            .as_ref()
                            .is_none_or(|c| c.iter().any(|c| c == *name))
                });
                scale::run(counts, &subjects.map(|s| s.to_string()).collect::<Vec<_>>())
            }
            Mode::ScaleChild { subject, count } => scale::child(subject, *count),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench-compare: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Times the ops and prints the report.
fn time(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let mut subjects = subjects::select(options.crates.as_deref())?;

    // Batch sizes per [op][subject], or why the subject cannot do the op.
    let iters: Vec<Vec<Result<u64, Unsupported>>> = options
        .ops
        .iter()
        .map(|&op| {
            subjects
                .iter_mut()
                .map(|subject| {
                    let supported = subject.batch(op, 1).map(drop);
                    let iters = supported.map(|()| match op {
                        // Fixed: a generator of that many items.
                        Op::Generator => options.generator_items,
                        _ => measure::calibrate(
                            |n| subject.batch(op, n).expect("supported op"),
                            options.batch,
                        ),
                    });
                    subject.release();
                    iters
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
            subjects[s].release();
            Some(measure::ns_per_op(elapsed, n))
        },
    );

    let report = report::Report {
        options,
        subjects: &subjects,
        iters: &iters,
        samples: &samples,
        elapsed: started.elapsed(),
    };
    report::print(&report);
    if let Some(path) = &options.summary_file {
        std::fs::write(path, report::summary(&report))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs `iters` iterations of `op` on the crate named `krate`, once.
fn count(op: Op, krate: &str, iters: u64) -> Result<(), String> {
    let mut subjects = subjects::select(Some(&[krate.to_string()]))?;
    let subject = subjects
        .iter_mut()
        .find(|s| subjects::crate_name(&s.name()) == krate)
        .expect("selected");
    subject
        .batch(op, iters)
        .map_err(|why| format!("{op} on {krate}: n/a: {why}"))?;
    subject.release();
    Ok(())
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
        assert_eq!((defaults.rounds, defaults.ops.len()), (31, Op::ALL.len()));
        assert_eq!(defaults.mode, Mode::Time);
        assert_eq!(defaults.generator_items, 10_000_000);
        let quick = parse(&["--rounds", "7", "--quick"]).unwrap();
        assert_eq!(quick.rounds, 7);
        assert_eq!(quick.warmup, 1);
        assert_eq!(quick.generator_items, 100_000);
        let ops = parse(&["--ops", "call,switch,call"]).unwrap().ops;
        assert_eq!(ops, [Op::Switch, Op::Call]);
        let ops = parse(&["--ops", "ring-4096,switch-deep,ring-2,ring-33"]).unwrap();
        assert_eq!(
            ops.ops,
            [Op::SwitchDeep, Op::Ring(2), Op::Ring(33), Op::Ring(4096)]
        );
        assert!(parse(&["--ops", "jump"]).is_err());
        assert!(parse(&["--ops", "ring-1"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert_eq!(parse(&["--help"]), Err(String::new()));
        let crates = parse(&["--crates", "corosensei, context"]).unwrap().crates;
        assert_eq!(crates, Some(vec!["corosensei".into(), "context".into()]));
        assert!(parse(&["--crates"]).is_err());
    }

    #[test]
    fn callgrind_defaults_to_the_two_switches() {
        let options = parse(&["--callgrind"]).unwrap();
        assert_eq!(options.mode, Mode::Callgrind);
        assert_eq!(options.ops, [Op::Switch, Op::SwitchDeep]);
        let options = parse(&["--ops", "call", "--callgrind"]).unwrap();
        assert_eq!(options.ops, [Op::Call]);
    }

    #[test]
    fn count_mode() {
        let options = parse(&["--count", "switch-deep", "corosensei", "1000"]).unwrap();
        assert_eq!(
            options.mode,
            Mode::Count {
                op: Op::SwitchDeep,
                krate: "corosensei".into(),
                iters: 1000
            }
        );
        assert!(parse(&["--count", "switch", "corosensei"]).is_err());
        assert!(parse(&["--count", "switch", "corosensei", "many"]).is_err());
        assert!(parse(&["--count", "hop", "corosensei", "1"]).is_err());
    }

    #[test]
    fn layouts_forward_the_other_arguments() {
        let options = parse(&[
            "--quick",
            "--layouts",
            "release,release-lto",
            "--ops",
            "switch",
            "--crates",
            "corosensei",
        ])
        .unwrap();
        assert_eq!(
            options.layouts,
            Some(vec!["release".into(), "release-lto".into()])
        );
        assert_eq!(
            options.forwarded,
            ["--quick", "--ops", "switch", "--crates", "corosensei"]
        );
        let all = parse(&["--layouts", "all"]).unwrap().layouts.unwrap();
        assert_eq!(all.len(), layouts::LAYOUTS.len());
        assert!(parse(&["--layouts", "debug"]).is_err());
        assert!(parse(&["--layouts", "release", "--summary-file", "x"]).is_err());
    }

    #[test]
    #[cfg(feature = "corosensei")]
    fn counting_runs_an_op() {
        assert_eq!(count(Op::Switch, "corosensei", 10), Ok(()));
        assert!(count(Op::CallPooled, "corosensei", 10).is_err());
        assert!(count(Op::Switch, "may", 10).is_err());
    }
}
