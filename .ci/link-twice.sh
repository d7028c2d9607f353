#!/usr/bin/env bash
# Links two copies of switchback (under two package names, as two versions
# would be) and corosensei into one binary and runs a coroutine of each:
# no assembly symbol may clash.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/copy" "$work/app/src"
cp -r "$repo/src" "$repo/Cargo.toml" "$work/copy/"
# The copy: another package name, no workspace, no dev-only sections.
python3 - "$work/copy/Cargo.toml" <<'PY'
import sys
path = sys.argv[1]
kept, skipping = [], False
for line in open(path).read().splitlines():
    if line.startswith("["):
        section = line.strip()
        skipping = (section in ("[workspace]", "[[bench]]", "[[example]]", "[lints.rust]")
                    or section.endswith("dev-dependencies]"))
    if not skipping:
        kept.append(line)
text = "\n".join(kept) + "\n"
open(path, "w").write(text.replace('name = "switchback"', 'name = "switchback_copy"', 1))
PY
cat > "$work/app/Cargo.toml" <<TOML
[package]
name = "link-twice"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
switchback = { path = "$repo", default-features = true }
switchback_copy = { path = "$work/copy" }
corosensei = "=0.3.4"

[workspace]
TOML
cat > "$work/app/src/main.rs" <<'RS'
fn main() {
    let mut a = switchback::Coroutine::<u32, u32, u32>::new(|y, x| y.suspend(x + 1) * 2);
    let mut b = switchback_copy::Coroutine::<u32, u32, u32>::new(|y, x| y.suspend(x + 10) * 3);
    let mut c = corosensei::Coroutine::<u32, u32, u32>::new(|y, x| y.suspend(x + 100) * 4);
    let yields = (a.resume(1), b.resume(1), c.resume(1));
    let returns = (a.resume(5), b.resume(5), c.resume(5));
    let nested = switchback::on_stack(switchback::stack::DefaultStack::default(), || {
        switchback_copy::on_stack(switchback_copy::stack::DefaultStack::default(), || 7)
    });
    println!("{:?} {:?} {}", yields, returns, nested);
    assert_eq!(yields.0.as_yield(), Some(2));
    assert_eq!(yields.1.as_yield(), Some(11));
    assert_eq!(yields.2.as_yield(), Some(101));
    assert_eq!(returns.0.as_return(), Some(10));
    assert_eq!(returns.1.as_return(), Some(15));
    assert_eq!(returns.2.as_return(), Some(20));
    assert_eq!(nested, 7);
    println!("link-twice: ok");
}
RS
cd "$work/app"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}/link-twice" cargo run --quiet --release
