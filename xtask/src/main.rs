//! switchback's CI and maintenance tasks, run as `cargo xtask <task>`.

use std::process::ExitCode;

mod abort_paths;
mod audit;
mod ci;
mod cmd;
mod disk;
mod link_twice;
mod objects;
mod targets;

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
  ci [--install-took SECS] [STEP...]
      The CI steps after the install (bash .ci/run installs, then runs
      this): each step timed, a summary at the end; the first failing step
      stops the run (KEEP_GOING=1: every step runs, and the run fails at the
      end). STEP picks steps by number or by the start of their name;
      CI_TARGETS=TRIPLE,... limits the cross steps to those triples.
  cross TRIPLE CARGO-SUBCOMMAND [ARGS...]
      `cargo SUBCOMMAND --target TRIPLE ARGS` for a qemu-user row of the
      target table (src/arch/targets.rs), with its cross linker and qemu
      runner (i686 natively where the kernel can load it).
  abort-paths
      Part of step 5: a suspended coroutine dropped where it cannot be
      unwound (panic = abort, or without the `unwind` feature) aborts
      with a message that says why.
  link-twice
      Step 14: two copies of switchback and corosensei 0.3.4 in one binary.
  check-docs
      Checks that README.md's and CONTRIBUTING.md's target tables list
      exactly the triples of src/arch/targets.rs.
  check-object TRIPLE OBJECT
      The object checks of step 20 on one library object compiled for
      TRIPLE (`cargo rustc --lib --target TRIPLE -- --emit=obj=OBJECT`).
  targets
      Prints the target table: each triple, its file and how CI checks it.
  help
      Prints this text.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("audit-tools") => audit::run(&args[1..]),
        Some("ci") => ci::run_ci(&args[1..]),
        Some("cross") => ci::cross(&args[1..]),
        Some("check-docs") => targets::check_docs(),
        Some("abort-paths") => {
            let ci = ci::Ci::new();
            abort_paths::run(&ci.root, &ci.target_dir)
        }
        Some("link-twice") => {
            let ci = ci::Ci::new();
            link_twice::run(&ci.root, &ci.target_dir)
        }
        Some("check-object") => match &args[1..] {
            [triple, path] => objects::Tools::find().and_then(|tools| {
                let path = std::path::Path::new(path);
                objects::check_library_object(&tools, triple, path)?;
                if objects::platform_register_reserved(triple) {
                    objects::check_no_x18(&tools, triple, path)?;
                }
                Ok(())
            }),
            _ => Err("usage: cargo xtask check-object TRIPLE OBJECT".into()),
        },
        Some("targets") => {
            for f in targets::FILES {
                println!(
                    "src/arch/{}.rs: target_arch {:?}, target_os {:?}",
                    f.name, f.arch, f.os
                );
            }
            for t in targets::TARGETS {
                println!("{:<38} {:<16} {:?}", t.triple, t.file, t.checks);
            }
            Ok(())
        }
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
