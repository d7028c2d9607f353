//! The scale run: how many suspended coroutines each crate holds at once,
//! what each costs in memory, and how fast they are made and finished.
//!
//! Each (crate, count) runs in a child process of its own (`--scale-child`),
//! so that every run starts from the same memory and mapping baseline and a
//! crate that aborts when it runs out of stacks only ends its own run. The
//! child makes up to `count` coroutines, each on a [`SCALE_STACK_SIZE`]
//! stack, resumes each once (it touches its stack and suspends), measures,
//! then resumes each to completion and drops it. It reports on stdout, one
//! line per event (see [`Event`]), so that the parent learns how far it got
//! even if it dies.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::subjects::thousands;

/// The usable stack size asked of every crate: small, as runtimes holding
/// many coroutines use, and what corosensei and switchback accept.
pub const SCALE_STACK_SIZE: usize = 16 * 1024;

/// The counts `--scale` tries by default.
pub const DEFAULT_COUNTS: [usize; 3] = [10_000, 100_000, 1_000_000];

/// The crates (and stack kinds) of the scale run, by name.
pub const SCALE_SUBJECTS: [&str; 6] = [
    "switchback",
    "switchback-pool",
    "corosensei",
    "context",
    "generator",
    "wasmtime-fiber",
];

/// Bytes of stack each coroutine writes before it suspends (so that at
/// least one page of its stack is resident, as for a coroutine that ran).
const TOUCHED_BYTES: usize = 512;

/// How often the child reports how many it holds.
const PROGRESS_EVERY: usize = 4096;

/// What one child run found.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleResult {
    pub subject: String,
    pub asked: usize,
    /// How many were made and suspended at once.
    pub held: usize,
    /// Seconds to make and first resume them all.
    pub create_secs: Option<f64>,
    /// Seconds to resume them all to completion and drop them.
    pub finish_secs: Option<f64>,
    /// Resident memory added while they were held, in bytes.
    pub rss_delta: Option<u64>,
    /// Memory mappings added while they were held.
    pub maps_delta: Option<i64>,
    /// Why making more failed, or how the child ended, if it did not get
    /// through.
    pub error: Option<String>,
}

/// One line of the child's report.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// `progress HELD`
    Progress(usize),
    /// `failed MESSAGE`: making the next coroutine failed.
    Failed(String),
    /// `created HELD SECS RSS_DELTA MAPS_DELTA`
    Created(usize, f64, u64, i64),
    /// `finished SECS`
    Finished(f64),
}

impl Event {
    fn to_line(&self) -> String {
        match self {
            Event::Progress(n) => format!("progress {n}"),
            Event::Failed(message) => format!("failed {}", message.replace('\n', " ")),
            Event::Created(n, secs, rss, maps) => format!("created {n} {secs} {rss} {maps}"),
            Event::Finished(secs) => format!("finished {secs}"),
        }
    }

    fn parse(line: &str) -> Option<Event> {
        let (word, rest) = line.split_once(' ')?;
        let mut fields = rest.split(' ');
        let mut next = || fields.next();
        Some(match word {
            "progress" => Event::Progress(rest.parse().ok()?),
            "failed" => Event::Failed(rest.to_string()),
            "created" => Event::Created(
                next()?.parse().ok()?,
                next()?.parse().ok()?,
                next()?.parse().ok()?,
                next()?.parse().ok()?,
            ),
            "finished" => Event::Finished(rest.parse().ok()?),
            _ => return None,
        })
    }
}

/// Folds the child's report (and how it ended) into a result.
fn collect(subject: &str, asked: usize, stdout: &str, ended: Result<(), String>) -> ScaleResult {
    let mut result = ScaleResult {
        subject: subject.to_string(),
        asked,
        held: 0,
        create_secs: None,
        finish_secs: None,
        rss_delta: None,
        maps_delta: None,
        error: None,
    };
    for event in stdout.lines().filter_map(Event::parse) {
        match event {
            Event::Progress(n) => result.held = n,
            Event::Failed(message) => result.error = Some(message),
            Event::Created(n, secs, rss, maps) => {
                result.held = n;
                result.create_secs = Some(secs);
                result.rss_delta = Some(rss);
                result.maps_delta = Some(maps);
            }
            Event::Finished(secs) => result.finish_secs = Some(secs),
        }
    }
    if let Err(how) = ended {
        let held = thousands(result.held as u64);
        let reported = result
            .error
            .take()
            .map_or(String::new(), |e| format!("{e}; "));
        result.error = Some(format!(
            "{reported}the process {how} after {held} were made"
        ));
    }
    result
}

/// The parent: runs every (subject, count) in a child and prints the table.
pub fn run(counts: &[usize], subjects: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding bench-compare: {e}"))?;
    let mut results = Vec::new();
    for &count in counts {
        for subject in subjects {
            eprintln!("scale: {subject}, {} coroutines", thousands(count as u64));
            let mut child = Command::new(&exe)
                .args(["--scale-child", subject, &count.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("running {}: {e}", exe.display()))?;
            // A crate may hang once it runs out of memory (one did, in its
            // allocation-failure abort): give each run a deadline.
            let deadline = Instant::now() + child_time_limit(count);
            let timed_out = loop {
                match child
                    .try_wait()
                    .map_err(|e| format!("waiting for a child: {e}"))?
                {
                    Some(_) => break false,
                    None if Instant::now() > deadline => {
                        let _ = child.kill();
                        break true;
                    }
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            let output = child
                .wait_with_output()
                .map_err(|e| format!("reading a child's report: {e}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let ended = if timed_out {
                let secs = child_time_limit(count).as_secs();
                Err(format!("was stopped after {secs} s without finishing"))
            } else if output.status.success() {
                Ok(())
            } else {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                Err(format!("ended with {} ({})", output.status, last.trim()))
            };
            results.push(collect(subject, count, &stdout, ended));
        }
    }
    print!("{}", table(&results));
    Ok(())
}

/// How long a child of `count` coroutines may take: a minute, plus a
/// second per 10,000 coroutines (at worst a few thousand are made per
/// second here).
fn child_time_limit(count: usize) -> Duration {
    Duration::from_secs(60 + count as u64 / 10_000)
}

/// The markdown table of the results.
pub fn table(results: &[ScaleResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Suspended coroutines held at once, each on a {} KiB stack it has touched \
         ({TOUCHED_BYTES} bytes written), in a fresh process per row; `max_map_count` = {}.\n",
        SCALE_STACK_SIZE / 1024,
        max_map_count().map_or("unknown".into(), |n| thousands(n as u64)),
    );
    out.push_str(
        "| crate | asked | held | memory per coroutine | made / s | finished / s | mappings per coroutine | stopped by |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in results {
        let per = |total: f64| {
            if r.held == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", total / r.held as f64)
            }
        };
        let rate = |secs: Option<f64>| match secs {
            Some(secs) if secs > 0.0 => thousands((r.held as f64 / secs) as u64),
            _ => "-".into(),
        };
        let memory = r.rss_delta.map_or("-".into(), |rss| {
            if r.held == 0 {
                "-".into()
            } else {
                format!("{:.1} KiB", rss as f64 / r.held as f64 / 1024.0)
            }
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.subject,
            thousands(r.asked as u64),
            thousands(r.held as u64),
            memory,
            rate(r.create_secs),
            rate(r.finish_secs),
            r.maps_delta
                .filter(|&maps| maps >= 0)
                .map_or("-".into(), |maps| per(maps as f64)),
            r.error.as_deref().unwrap_or("-").replace('|', "/"),
        );
    }
    out
}

/// Reports one event on stdout at once.
fn emit(event: Event) {
    println!("{}", event.to_line());
    let _ = std::io::stdout().flush();
}

/// Resident memory of this process in bytes (Linux), or 0.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Memory mappings of this process (Linux), if it can be read (it may not
/// be, when the process is out of memory).
fn mapping_count() -> Option<i64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    Some(maps.lines().count() as i64)
}

fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The measurements around making and finishing the coroutines.
struct Probe {
    held: usize,
    started: Instant,
    rss: u64,
    maps: Option<i64>,
}

impl Probe {
    fn start() -> Probe {
        Probe {
            held: 0,
            rss: resident_bytes(),
            maps: mapping_count(),
            started: Instant::now(),
        }
    }

    fn made_one(&mut self) {
        self.held += 1;
        if self.held.is_multiple_of(PROGRESS_EVERY) {
            emit(Event::Progress(self.held));
        }
    }

    fn failed(&mut self, error: impl std::fmt::Display) {
        emit(Event::Failed(error.to_string()));
    }

    /// All made: reports, and starts timing the finish.
    fn all_made(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let rss = resident_bytes().saturating_sub(self.rss);
        // -1: unknown (the table shows "-").
        let maps = match (mapping_count(), self.maps) {
            (Some(after), Some(before)) => after - before,
            _ => -1,
        };
        emit(Event::Created(self.held, secs, rss, maps));
        self.started = Instant::now();
    }

    fn all_finished(&self) {
        emit(Event::Finished(self.started.elapsed().as_secs_f64()));
    }
}

/// Writes [`TOUCHED_BYTES`] of the current stack.
#[inline(never)]
fn touch_stack() {
    black_box([1u8; TOUCHED_BYTES]);
}

/// The closure of every corosensei-API coroutine: touch the stack, suspend
/// once, return.
macro_rules! touch_and_suspend {
    ($krate:ident) => {
        |yielder: &$krate::Yielder<(), ()>, ()| {
            touch_stack();
            yielder.suspend(());
        }
    };
}

/// The scale run of a crate with corosensei's API; `$make` makes one
/// coroutine or returns the error that stops the run.
macro_rules! corosensei_api_scale {
    ($krate:ident, $count:expr, |$held:ident| $make:expr) => {{
        let mut $held = Vec::with_capacity($count);
        let mut probe = Probe::start();
        for _ in 0..$count {
            match $make {
                Ok(mut co) => {
                    assert!(co.resume(()).as_yield().is_some());
                    $held.push(co);
                    probe.made_one();
                }
                Err(error) => {
                    probe.failed(error);
                    break;
                }
            }
        }
        probe.all_made();
        for mut co in $held.drain(..) {
            assert!(co.resume(()).as_return().is_some());
        }
        drop($held);
        probe.all_finished();
    }};
}

/// The child: makes, holds and finishes `count` coroutines of `subject`.
pub fn child(subject: &str, count: usize) -> Result<(), String> {
    match subject {
        "switchback" => corosensei_api_scale!(switchback, count, |held| {
            switchback::stack::DefaultStack::new(SCALE_STACK_SIZE).map(|stack| {
                switchback::Coroutine::with_stack(stack, touch_and_suspend!(switchback))
            })
        }),
        "switchback-pool" => {
            let pool = switchback::stack::StackPool::new(SCALE_STACK_SIZE)
                .map_err(|e| format!("making the pool: {e}"))?;
            corosensei_api_scale!(switchback, count, |held| {
                switchback::Coroutine::try_with_pool(&pool, touch_and_suspend!(switchback))
            })
        }
        #[cfg(feature = "corosensei")]
        "corosensei" => corosensei_api_scale!(corosensei, count, |held| {
            corosensei::stack::DefaultStack::new(SCALE_STACK_SIZE).map(|stack| {
                corosensei::Coroutine::with_stack(stack, touch_and_suspend!(corosensei))
            })
        }),
        #[cfg(feature = "context")]
        "context" => context_scale(count),
        #[cfg(feature = "generator")]
        "generator" => generator_scale(count),
        #[cfg(feature = "wasmtime-fiber")]
        "wasmtime-fiber" => wasmtime_fiber_scale(count),
        other => return Err(format!("unknown or disabled scale subject: {other}")),
    }
    Ok(())
}

#[cfg(feature = "context")]
fn context_scale(count: usize) {
    use ::context::stack::ProtectedFixedSizeStack;
    use ::context::{Context, Transfer};

    extern "C" fn touch_and_suspend(t: Transfer) -> ! {
        touch_stack();
        // SAFETY: `t.context` is the suspended caller, resumed once.
        let t = unsafe { t.context.resume(0) };
        // SAFETY: as above. The caller never resumes this context again:
        // it drops the stack, abandoning it here.
        unsafe { t.context.resume(1) };
        unreachable!("a finished context is never resumed");
    }
    let mut held = Vec::with_capacity(count);
    let mut probe = Probe::start();
    for _ in 0..count {
        match ProtectedFixedSizeStack::new(SCALE_STACK_SIZE) {
            Ok(stack) => {
                // SAFETY: the stack outlives the context (both in `held`).
                let context = unsafe { Context::new(&stack, touch_and_suspend) };
                // SAFETY: a new context, resumed once.
                let t = unsafe { context.resume(0) };
                held.push((t.context, stack));
                probe.made_one();
            }
            Err(error) => {
                probe.failed(error);
                break;
            }
        }
    }
    probe.all_made();
    for (context, stack) in held.drain(..) {
        // SAFETY: suspended in `touch_and_suspend`, which hands control back
        // once more and is then abandoned with its stack (context has no
        // unwinding; nothing on that stack needs dropping).
        let t = unsafe { context.resume(0) };
        assert_eq!(t.data, 1);
        drop(stack);
    }
    probe.all_finished();
}

#[cfg(feature = "generator")]
fn generator_scale(count: usize) {
    use ::generator::Gn;

    let mut held = Vec::with_capacity(count);
    let mut probe = Probe::start();
    for _ in 0..count {
        // Gn panics if it cannot map a stack: the child then dies, and the
        // parent reports how far it got.
        let mut g = Gn::<()>::new_scoped_opt(SCALE_STACK_SIZE / 8, |mut s| {
            touch_stack();
            s.yield_with(1usize);
            2usize
        });
        assert_eq!(g.resume(), Some(1));
        held.push(g);
        probe.made_one();
    }
    probe.all_made();
    for mut g in held.drain(..) {
        assert_eq!(g.resume(), Some(2));
    }
    probe.all_finished();
}

#[cfg(feature = "wasmtime-fiber")]
fn wasmtime_fiber_scale(count: usize) {
    use ::wasmtime_fiber::{Fiber, FiberStack, Suspend};

    let mut held = Vec::with_capacity(count);
    let mut probe = Probe::start();
    for _ in 0..count {
        let stack = match FiberStack::new(SCALE_STACK_SIZE, false) {
            Ok(stack) => stack,
            Err(error) => {
                probe.failed(error);
                break;
            }
        };
        let fiber = Fiber::new(stack, |(), suspend: &mut Suspend<(), (), ()>| {
            touch_stack();
            suspend.suspend(());
        });
        match fiber {
            Ok(fiber) => {
                assert!(fiber.resume(()).is_err());
                held.push(fiber);
                probe.made_one();
            }
            Err(error) => {
                probe.failed(error);
                break;
            }
        }
    }
    probe.all_made();
    for fiber in held.drain(..) {
        assert!(fiber.resume(()).is_ok());
    }
    probe.all_finished();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_lines() {
        for event in [
            Event::Progress(4096),
            Event::Failed("Cannot allocate memory (os error 12)".into()),
            Event::Created(32_750, 0.25, 140_000_000, 65_500),
            Event::Finished(0.125),
        ] {
            assert_eq!(Event::parse(&event.to_line()), Some(event));
        }
        assert_eq!(Event::parse("nonsense"), None);
        assert_eq!(Event::parse("created 1 x 2 3"), None);
    }

    #[test]
    fn a_child_that_died_reports_how_far_it_got() {
        let stdout = "progress 4096\nprogress 8192\nfailed out of stacks\n";
        let result = collect(
            "generator",
            100_000,
            stdout,
            Err("ended with signal 6".into()),
        );
        assert_eq!(result.held, 8192);
        assert_eq!(result.create_secs, None);
        let error = result.error.unwrap();
        assert!(
            error.contains("out of stacks") && error.contains("8,192"),
            "{error}"
        );
    }

    #[test]
    fn a_full_run_fills_every_column() {
        let stdout = "progress 4096\ncreated 5000 0.5 20480000 10000\nfinished 0.25\n";
        let result = collect("switchback", 5000, stdout, Ok(()));
        assert_eq!(result.held, 5000);
        assert_eq!(result.maps_delta, Some(10000));
        let table = table(&[result]);
        let row = table.lines().last().unwrap();
        assert_eq!(
            row,
            "| switchback | 5,000 | 5,000 | 4.0 KiB | 10,000 | 20,000 | 2.00 | - |"
        );
    }

    #[test]
    fn the_child_holds_and_finishes_switchback_coroutines() {
        // In-process: the child's work without the process around it.
        child("switchback", 100).unwrap();
        child("switchback-pool", 100).unwrap();
        assert!(child("nonesuch", 1).is_err());
    }
}
