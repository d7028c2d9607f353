//! switchback's CI and maintenance tasks, run as `cargo xtask <task>`.

use std::process::ExitCode;

mod audit;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  audit-tools [--log FILE] [-- COMMAND...]
      Runs COMMAND (default: bash .ci/run) under strace, or reads the
      strace log FILE of an earlier run, and checks that every program it
      executed comes from a package that .ci/install.sh installs (listed in
      .ci/apt-packages.txt, or a dependency of one), from Debian's base
      system (priority required or important), from rustup, or from the
      build itself. Fails and lists the programs that come from anywhere
      else: a fresh machine would not have them. A traced run is slower,
      and under strace Wine cannot symbolize backtraces, so the x86-64
      Windows step's backtrace tests fail there (and only there); the audit
      judges the programs run, not the steps' results.
  help
      Prints this text.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("audit-tools") => audit::run(&args[1..]),
        Some("help") | Some("--help") | Some("-h") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown or missing task\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
