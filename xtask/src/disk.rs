//! The disk under the target directory: how much is free, and pruning the
//! build directories of earlier steps when it runs low, so that a CI run
//! on a machine with little room fails with a message instead of a
//! compiler that dies mid-write.
//!
//! A full disk does not look like one: rustc ends with status 101 ("LLVM
//! ERROR: IO failure on output stream") and the linker with a bus error.

use std::path::Path;
use std::process::Command;

const GIB: u64 = 1 << 30;

/// Below this much free space before a step, the build directories of the
/// earlier steps are removed first. A whole run from an empty target
/// directory writes about 21 GiB (measured: 71.4 GiB free before it, 50.5
/// after; the cross, object and ELF steps each build the crate, its tests
/// and examples for many triples).
pub const PRUNE_BELOW: u64 = 12 * GIB;

/// Below this much after pruning, the step is not started: it would fail
/// halfway with an error that does not name the cause.
pub const REFUSE_BELOW: u64 = 3 * GIB;

/// Free bytes on the filesystem that holds `path` (or its nearest existing
/// ancestor), from POSIX `df -Pk`. `None` if `df` cannot tell.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let mut dir = path;
    while !dir.exists() {
        dir = dir.parent()?;
    }
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_df_available(&String::from_utf8_lossy(&out.stdout))
}

/// The "Available" column (1024-byte blocks) of `df -Pk`'s one data line,
/// in bytes.
fn parse_df_available(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

/// `bytes` as GiB with one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// The entries of `target_dir` that pruning removes: everything but the
/// host's `debug` and `release` builds (which most steps share) and cargo's
/// own lock and tag files. Each is the build directory of one step or one
/// triple, rebuilt by the next step that needs it.
pub fn prunable(target_dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(target_dir) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !matches!(e.file_name().to_str(), Some("debug" | "release")))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Before a step: prunes when free space is below [`PRUNE_BELOW`], and
/// refuses (an error naming the free space) when it stays below
/// [`REFUSE_BELOW`]. Returns the free space the step starts with, if `df`
/// could tell.
pub fn make_room(target_dir: &Path) -> Result<Option<u64>, String> {
    let Some(free) = free_bytes(target_dir) else {
        return Ok(None);
    };
    if free >= PRUNE_BELOW {
        return Ok(Some(free));
    }
    println!(
        "disk: {} free under {}; removing earlier steps' build directories",
        gib(free),
        target_dir.display()
    );
    for dir in prunable(target_dir) {
        println!("disk: rm -rf {}", dir.display());
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            println!("disk: could not remove {}: {e}", dir.display());
        }
    }
    let free = free_bytes(target_dir).unwrap_or(free);
    if free < REFUSE_BELOW {
        return Err(format!(
            "only {} free on the filesystem of {} after pruning; a step needs at \
             least {} (a whole run writes about 21 GiB): free some space or point \
             CARGO_TARGET_DIR at a larger disk",
            gib(free),
            target_dir.display(),
            gib(REFUSE_BELOW)
        ));
    }
    println!("disk: {} free after pruning", gib(free));
    Ok(Some(free))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_available_from_posix_df() {
        let text = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                    /dev/vda         263112772  11848132 251264640       5% /\n";
        assert_eq!(parse_df_available(text), Some(251264640 * 1024));
        assert_eq!(parse_df_available("Filesystem\n"), None);
        assert_eq!(parse_df_available(""), None);
    }

    #[test]
    fn free_space_of_a_path_not_yet_made_is_its_ancestors() {
        let here = std::env::temp_dir();
        let missing = here.join("xtask-disk-test-missing/a/b");
        assert!(free_bytes(&here).is_some());
        assert!(free_bytes(&missing).is_some());
    }

    #[test]
    fn pruning_keeps_the_hosts_builds() {
        let root = std::env::temp_dir().join(format!("xtask-disk-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["debug", "release", "asan", "aarch64-unknown-linux-gnu"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("CACHEDIR.TAG"), "x").unwrap();
        let names: Vec<String> = prunable(&root)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["aarch64-unknown-linux-gnu", "asan"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn sizes_read_in_gib() {
        assert_eq!(gib(3 * GIB / 2), "1.5 GiB");
        assert_eq!(gib(0), "0.0 GiB");
    }
}
