//! `audit-tools`: every program a CI run executes must come from what
//! `.ci/install.sh` installs, from Debian's base system, from rustup or from
//! the build itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where an executed program comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// A file of this Debian package.
    Package(String),
    /// A rustup toolchain or one of rustup's proxies.
    Rustup,
    /// Built by the run (the repository, its target directory, a temporary
    /// directory).
    Built,
    /// None of the above.
    Unknown,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let (log_file, command) = parse_args(args)?;
    let log = match log_file {
        Some(file) => std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
        None => trace(&command)?,
    };
    let programs = executed_programs(&log);
    if programs.is_empty() {
        return Err(
            "the log shows no successful execve: was it made by strace -f -e execve?".into(),
        );
    }

    let listed = listed_packages(Path::new(".ci/apt-packages.txt"))?;
    let provided = with_dependencies(&listed)?;
    let base = base_system()?;
    let owners = package_owners(&programs)?;
    let homes = Homes::from_env();

    let mut rows: BTreeMap<Source, Vec<&str>> = BTreeMap::new();
    for program in &programs {
        let source = homes.classify(program, &owners);
        rows.entry(source).or_default().push(program);
    }

    let mut missing = Vec::new();
    println!("| source | why it is on a fresh machine | programs |");
    println!("|---|---|---|");
    for (source, programs) in &rows {
        let (name, why) = match source {
            Source::Package(package) if listed.contains(package) => {
                (package.clone(), "listed in .ci/apt-packages.txt")
            }
            Source::Package(package) if provided.contains(package) => {
                (package.clone(), "a dependency of a listed package")
            }
            Source::Package(package) if base.contains(package) => {
                (package.clone(), "Debian base system")
            }
            Source::Package(package) => {
                missing.extend(programs.iter().map(|p| format!("{p} ({package})")));
                (package.clone(), "MISSING: nothing installs it")
            }
            Source::Rustup => ("rustup".into(), "the Rust toolchain and its components"),
            Source::Built => ("the build".into(), "made by the run itself"),
            Source::Unknown => {
                missing.extend(programs.iter().map(|p| p.to_string()));
                ("unknown".into(), "MISSING: not from any package")
            }
        };
        println!("| {name} | {why} | {} |", programs.join(", "));
    }
    println!();
    println!(
        "{} programs executed; {} packages listed, {} with their dependencies",
        programs.len(),
        listed.len(),
        provided.len()
    );
    if missing.is_empty() {
        println!("every program comes from the list, the base system, rustup or the build");
        Ok(())
    } else {
        Err(format!(
            "{} programs come from nowhere a fresh machine has:\n  {}",
            missing.len(),
            missing.join("\n  ")
        ))
    }
}

/// `[--log FILE] [-- COMMAND...]`; the command defaults to `bash .ci/run`.
fn parse_args(args: &[String]) -> Result<(Option<PathBuf>, Vec<String>), String> {
    let mut log = None;
    let mut command = vec!["bash".to_string(), ".ci/run".to_string()];
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--log" => {
                let file = rest.next().ok_or("--log needs a file")?;
                log = Some(PathBuf::from(file));
            }
            "--" => {
                command = rest.by_ref().cloned().collect();
                if command.is_empty() {
                    return Err("no command after --".into());
                }
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok((log, command))
}

/// Runs `command` under `strace -f`, tracing only `execve`, and returns the
/// log. The command's own exit status is reported but does not stop the
/// audit: a failing step still shows which programs it used.
///
/// The command gets the PATH of a fresh Debian system with rustup (cargo's
/// `bin` and the standard directories), so that programs this machine has
/// in other places (a Python of its own, say) do not stand in for packages.
fn trace(command: &[String]) -> Result<String, String> {
    let log = std::env::temp_dir().join(format!("xtask-audit-{}.strace", std::process::id()));
    let cargo_bin = Homes::from_env().rustup[1].clone();
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", cargo_bin.display());
    let status = Command::new("strace")
        .env("PATH", path)
        .args([
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-e",
            "trace=execve",
            "-e",
            "signal=none",
            "-o",
        ])
        .arg(&log)
        .args(command)
        .status()
        .map_err(|e| format!("cannot run strace (apt-get install strace): {e}"))?;
    if !status.success() {
        eprintln!("xtask: the traced command exited with {status}; auditing what it ran");
    }
    let text =
        std::fs::read_to_string(&log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let _ = std::fs::remove_file(&log);
    Ok(text)
}

/// The paths of every successful `execve` in an `strace -f` log, including
/// calls that strace split into `<unfinished ...>` and `<... resumed>`
/// lines.
fn executed_programs(log: &str) -> BTreeSet<String> {
    let mut pending: HashMap<&str, &str> = HashMap::new();
    let mut programs = BTreeSet::new();
    for line in log.lines() {
        let (pid, call) = match line.split_once(' ') {
            Some((pid, call)) if pid.bytes().all(|b| b.is_ascii_digit()) => (pid, call.trim()),
            _ => ("", line.trim()),
        };
        if let Some(rest) = call.strip_prefix("execve(\"") {
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            if call.ends_with("<unfinished ...>") {
                pending.insert(pid, path);
            } else if succeeded(call) {
                programs.insert(path.to_string());
            }
        } else if call.starts_with("<... execve resumed>") {
            if let Some(path) = pending.remove(pid) {
                if succeeded(call) {
                    programs.insert(path.to_string());
                }
            }
        }
    }
    programs
}

/// Whether a system call line ends in `= 0`.
fn succeeded(call: &str) -> bool {
    call.rsplit_once(" = ")
        .is_some_and(|(_, result)| result.trim() == "0")
}

/// The package names of a list file: whitespace-separated, `#` comments.
fn listed_packages(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(parse_package_list(&text))
}

fn parse_package_list(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

/// `packages` and everything they depend on, as installed.
fn with_dependencies(packages: &BTreeSet<String>) -> Result<BTreeSet<String>, String> {
    let output = command_output(
        Command::new("apt-cache")
            .args([
                "depends",
                "--recurse",
                "--installed",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
            ])
            .args(packages),
    )?;
    let mut all: BTreeSet<String> = parse_depends_packages(&output);
    all.extend(packages.iter().cloned());
    Ok(all)
}

/// The package names in `apt-cache depends --recurse` output: the lines
/// that are not indented (virtual packages, in angle brackets, left out).
fn parse_depends_packages(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with('<') && !line.is_empty())
        .map(|line| line.split(':').next().unwrap_or(line).trim().to_string())
        .collect()
}

/// The installed packages that every Debian system has: essential ones and
/// those of priority required or important (debootstrap's default set).
fn base_system() -> Result<BTreeSet<String>, String> {
    let output = command_output(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Package} ${Priority} ${Essential}\\n",
    ]))?;
    Ok(output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (name, priority, essential) = (fields.next()?, fields.next()?, fields.next());
            (matches!(priority, "required" | "important") || essential == Some("yes"))
                .then(|| name.to_string())
        })
        .collect())
}

/// The package owning each path that dpkg knows, looked up under the path
/// as given, its canonical form and its `/usr`-merged twin.
fn package_owners(programs: &BTreeSet<String>) -> Result<HashMap<String, String>, String> {
    let candidates: BTreeSet<String> = programs.iter().flat_map(|p| path_variants(p)).collect();
    // dpkg -S fails if any path is unknown, but still prints the others.
    let output = Command::new("dpkg")
        .arg("-S")
        .args(&candidates)
        .output()
        .map_err(|e| format!("cannot run dpkg: {e}"))?;
    Ok(parse_dpkg_search(&String::from_utf8_lossy(&output.stdout)))
}

/// `package[:arch][, other]: /path` lines of `dpkg -S`, as path -> first
/// package; diversion notes are skipped.
fn parse_dpkg_search(output: &str) -> HashMap<String, String> {
    output
        .lines()
        .filter(|line| !line.starts_with("diversion "))
        .filter_map(|line| {
            let (packages, path) = line.split_once(": ")?;
            let package = packages.split(", ").next()?.split(':').next()?;
            Some((path.trim().to_string(), package.to_string()))
        })
        .collect()
}

/// The path as given, canonical, and with `/usr` added or removed (Debian
/// 12 merges `/bin` into `/usr/bin`; dpkg knows each file under one name).
fn path_variants(path: &str) -> Vec<String> {
    let mut variants = vec![path.to_string()];
    if let Ok(canonical) = std::fs::canonicalize(path) {
        variants.push(canonical.to_string_lossy().into_owned());
    }
    for variant in variants.clone() {
        if let Some(rest) = variant.strip_prefix("/usr") {
            variants.push(rest.to_string());
        } else if variant.starts_with("/bin/")
            || variant.starts_with("/sbin/")
            || variant.starts_with("/lib")
        {
            variants.push(format!("/usr{variant}"));
        }
    }
    variants.sort();
    variants.dedup();
    variants
}

/// The directories whose programs count as rustup's or the build's.
struct Homes {
    rustup: Vec<PathBuf>,
    built: Vec<PathBuf>,
}

impl Homes {
    fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let var = |name: &str, default: PathBuf| {
            std::env::var_os(name).map(PathBuf::from).unwrap_or(default)
        };
        let rustup = vec![
            var("RUSTUP_HOME", home.join(".rustup")),
            var("CARGO_HOME", home.join(".cargo")).join("bin"),
        ];
        let mut built = vec![std::env::temp_dir(), PathBuf::from("/tmp")];
        if let Ok(dir) = std::env::current_dir() {
            built.push(dir);
        }
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            built.push(PathBuf::from(dir));
        }
        Homes { rustup, built }
    }

    fn classify(&self, program: &str, owners: &HashMap<String, String>) -> Source {
        let variants = path_variants(program);
        let under = |dirs: &[PathBuf]| {
            variants.iter().any(|v| {
                dirs.iter()
                    .any(|d| !d.as_os_str().is_empty() && Path::new(v).starts_with(d))
            })
        };
        if under(&self.rustup) {
            return Source::Rustup;
        }
        if let Some(package) = variants.iter().find_map(|v| owners.get(v)) {
            return Source::Package(package.clone());
        }
        if under(&self.built) {
            return Source::Built;
        }
        Source::Unknown
    }
}

fn command_output(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_successful_execs_including_split_ones() {
        let log = r#"100 execve("/usr/bin/bash", ["bash", ".ci/run"], 0x7ffd /* 30 vars */) = 0
101 execve("/usr/local/bin/cc", ["cc"], 0x1 /* 3 vars */) = -1 ENOENT (No such file or directory)
101 execve("/usr/bin/cc", ["cc"], 0x1 /* 3 vars */) = 0
102 execve("/usr/bin/qemu-aarch64-static", ["qemu"], 0x2 /* 4 vars */ <unfinished ...>
103 execve("/usr/bin/true", [], 0x3) = 0
102 <... execve resumed>) = 0
104 execve("/usr/bin/missing", [], 0x3 <unfinished ...>
104 <... execve resumed>) = -1 ENOENT (No such file or directory)
"#;
        let programs: Vec<String> = executed_programs(log).into_iter().collect();
        assert_eq!(
            programs,
            [
                "/usr/bin/bash",
                "/usr/bin/cc",
                "/usr/bin/qemu-aarch64-static",
                "/usr/bin/true"
            ]
        );
    }

    #[test]
    fn reads_package_lists_with_comments() {
        let list = "# header\ngcc libc6-dev # linking\n\n  wine\twine64\n";
        let packages: Vec<String> = parse_package_list(list).into_iter().collect();
        assert_eq!(packages, ["gcc", "libc6-dev", "wine", "wine64"]);
    }

    #[test]
    fn reads_apt_cache_depends_output() {
        let output = "wine\n  Depends: wine64\n  Depends: <wine64-binary>\nwine64\n  Depends: libwine\nlibwine\n<wine64-binary>\n";
        let packages: Vec<String> = parse_depends_packages(output).into_iter().collect();
        assert_eq!(packages, ["libwine", "wine", "wine64"]);
    }

    #[test]
    fn reads_dpkg_search_output() {
        let output = "coreutils: /usr/bin/true\ndiversion by dash from: /bin/sh\nlibc-bin, locales: /usr/bin/locale\nqemu-user-static:amd64: /usr/bin/qemu-aarch64-static\n";
        let owners = parse_dpkg_search(output);
        assert_eq!(owners["/usr/bin/true"], "coreutils");
        assert_eq!(owners["/usr/bin/locale"], "libc-bin");
        assert_eq!(owners["/usr/bin/qemu-aarch64-static"], "qemu-user-static");
        assert_eq!(owners.len(), 3);
    }

    #[test]
    fn merged_usr_variants() {
        let variants = path_variants("/bin/sh-that-does-not-exist");
        assert!(variants.contains(&"/bin/sh-that-does-not-exist".to_string()));
        assert!(variants.contains(&"/usr/bin/sh-that-does-not-exist".to_string()));
    }

    #[test]
    fn classifies_by_owner_and_home() {
        let homes = Homes {
            rustup: vec![PathBuf::from("/home/u/.rustup")],
            built: vec![PathBuf::from("/work/repo")],
        };
        let owners: HashMap<String, String> =
            [("/usr/bin/gcc-12".to_string(), "gcc-12".to_string())].into();
        assert_eq!(
            homes.classify("/usr/bin/gcc-12", &owners),
            Source::Package("gcc-12".into())
        );
        assert_eq!(
            homes.classify("/home/u/.rustup/toolchains/x/bin/rustc", &owners),
            Source::Rustup
        );
        assert_eq!(
            homes.classify("/work/repo/target/debug/deps/values-1", &owners),
            Source::Built
        );
        assert_eq!(
            homes.classify("/opt/tool/bin/thing", &owners),
            Source::Unknown
        );
    }

    #[test]
    fn arguments() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&[]).unwrap(), (None, args(&["bash", ".ci/run"])));
        assert_eq!(
            parse_args(&args(&["--log", "x.log"])).unwrap(),
            (Some(PathBuf::from("x.log")), args(&["bash", ".ci/run"]))
        );
        assert_eq!(
            parse_args(&args(&["--", "make", "check"])).unwrap().1,
            args(&["make", "check"])
        );
        assert!(parse_args(&args(&["--"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
    }
}
