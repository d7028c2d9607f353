// The target table, written once. Each row names an architecture file of
// `src/arch/`, the `target_arch` and `target_os` values it serves, and the
// target triples CI checks it on, with how CI checks each.
//
// Three readers expand this file with their own `targets!` macro:
// - `src/arch/mod.rs`: the dispatch (each file declared and re-exported
//   where its row's cfg holds) and, for every other target, the
//   compile error that lists the rows;
// - `xtask/src/targets.rs` (CI): which triples run natively, under
//   qemu-user (with which cross gcc and qemu binary), under Wine, booted
//   under UEFI firmware, built `no_std`, compiled to objects and inspected,
//   or checked by a script of their own;
// - `cargo xtask check-docs` (CI): the README's and CONTRIBUTING.md's target
//   tables list exactly these triples.
//
// A new target is one line here (and a row in those two tables); a new
// architecture file is one row. The `ci` part is tokens that the crate's
// macro ignores; `xtask/src/targets.rs` defines the checks it names.
targets! {
    x86_64 {
        arch: ["x86_64"],
        os: ["linux", "android", "freebsd", "netbsd", "openbsd", "dragonfly", "illumos", "none", "macos"],
        ci: {
            "x86_64-unknown-linux-gnu" => [Host],
            // Static, with rustup's own musl libc and libunwind, natively.
            "x86_64-unknown-linux-musl" => [musl("", "")],
            "x86_64-unknown-none" => [NoStd],
            "x86_64-apple-darwin" => [Objects],
            "x86_64-unknown-freebsd" => [elf()],
            "x86_64-unknown-netbsd" => [elf()],
            // Tier 3: nightly builds std.
            "x86_64-unknown-openbsd" => [elf().build_std()],
            "x86_64-unknown-dragonfly" => [elf().build_std()],
            "x86_64-unknown-illumos" => [elf()],
            "x86_64-linux-android" => [elf()],
        },
    }
    x86_64_windows {
        arch: ["x86_64"],
        os: ["windows", "uefi"],
        ci: {
            "x86_64-pc-windows-gnu" => [Wine],
            "x86_64-pc-windows-msvc" => [Objects],
            "x86_64-unknown-uefi" => [Uefi],
        },
    }
    x86 {
        arch: ["x86"],
        os: ["linux", "android", "freebsd", "none", "uefi"],
        ci: {
            "i686-unknown-linux-gnu" => [qemu("i686-linux-gnu", "qemu-i386-static")],
            "i686-unknown-uefi" => [Uefi],
            // rustup lists its std, but its mirror here does not serve it.
            "i686-unknown-freebsd" => [elf().build_std()],
            "i686-linux-android" => [elf()],
        },
    }
    x86_windows {
        arch: ["x86"],
        os: ["windows"],
        ci: {
            "i686-pc-windows-gnu" => [Objects],
            "i686-pc-windows-msvc" => [Objects],
        },
    }
    riscv {
        arch: ["riscv64", "riscv32"],
        os: ["linux", "none"],
        ci: {
            "riscv64gc-unknown-linux-gnu" => [qemu("riscv64-linux-gnu", "qemu-riscv64-static")],
            "riscv32imac-unknown-none-elf" => [NoStd],
            "riscv64imac-unknown-none-elf" => [NoStd],
        },
    }
    loongarch64 {
        arch: ["loongarch64"],
        os: ["linux", "none"],
        ci: {
            "loongarch64-unknown-linux-gnu" => [Script("scripts/loongarch64-build.sh")],
        },
    }
    powerpc64 {
        arch: ["powerpc64"],
        os: ["linux", "none"],
        ci: {
            "powerpc64le-unknown-linux-gnu" => [qemu("powerpc64le-linux-gnu", "qemu-ppc64le-static")],
            "powerpc64-unknown-linux-gnu" => [qemu("powerpc64-linux-gnu", "qemu-ppc64-static")],
        },
    }
    s390x {
        arch: ["s390x"],
        os: ["linux", "none"],
        ci: {
            "s390x-unknown-linux-gnu" => [qemu("s390x-linux-gnu", "qemu-s390x-static")],
        },
    }
    arm {
        arch: ["arm"],
        os: ["linux", "android", "none"],
        ci: {
            "armv7-linux-androideabi" => [elf()],
            "armv7-unknown-linux-gnueabihf" => [qemu("arm-linux-gnueabihf", "qemu-arm-static")],
            "thumbv7neon-unknown-linux-gnueabihf" => [qemu("arm-linux-gnueabihf", "qemu-arm-static")],
            // rustup ships no std for ARMv6 hard-float here: nightly builds it.
            "arm-unknown-linux-gnueabihf" => [qemu("arm-linux-gnueabihf", "qemu-arm-static").build_std()],
            "thumbv7em-none-eabihf" => [NoStd],
            "thumbv6m-none-eabi" => [NoStd],
        },
    }
    aarch64 {
        arch: ["aarch64"],
        os: ["linux", "android", "freebsd", "none", "macos", "ios", "uefi"],
        ci: {
            "aarch64-unknown-linux-gnu" => [
                qemu("aarch64-linux-gnu", "qemu-aarch64-static"),
                Script("scripts/aarch64-branch-protection.sh"),
            ],
            "aarch64-unknown-linux-musl" => [musl("aarch64-linux-gnu", "qemu-aarch64-static")],
            "aarch64-unknown-none" => [NoStd],
            "aarch64-apple-darwin" => [Objects],
            "aarch64-linux-android" => [elf()],
            // Tier 3: nightly builds std.
            "aarch64-unknown-freebsd" => [elf().build_std()],
            "aarch64-apple-ios" => [Objects],
            "aarch64-unknown-uefi" => [Uefi],
        },
    }
    aarch64_windows {
        arch: ["aarch64"],
        os: ["windows"],
        ci: {
            "aarch64-pc-windows-msvc" => [Objects],
            "aarch64-pc-windows-gnullvm" => [Objects],
        },
    }
}
