//! The object checks of the compiled-only targets, read with `object` and
//! `gimli`: the switch's functions defined, the coroutine root's unwind
//! info as its architecture file wrote it (Windows SEH unwind codes,
//! Mach-O compact unwind leading to the DWARF FDE, DWARF CFI of the
//! signal-frame root), and AArch64 code leaving x18 alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use gimli::{BaseAddresses, CallFrameInstruction, EhFrame, Operation, UnwindSection};
use object::{
    BinaryFormat, Object, ObjectSection, ObjectSegment, ObjectSymbol, RelocationTarget,
    SectionIndex, SymbolKind,
};

/// The LLVM tools of rustup's `llvm-tools` component and rust-lld.
pub struct Tools {
    pub objdump: PathBuf,
    pub lld: PathBuf,
}

impl Tools {
    pub fn find() -> Result<Tools, String> {
        let output = |args: &[&str]| -> Result<String, String> {
            let out = Command::new("rustc")
                .args(args)
                .output()
                .map_err(|e| format!("rustc: {e}"))?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let sysroot = output(&["--print", "sysroot"])?;
        let version = output(&["-vV"])?;
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .ok_or("rustc -vV names no host")?;
        let bin = Path::new(&sysroot)
            .join("lib/rustlib")
            .join(host)
            .join("bin");
        let tools = Tools {
            objdump: bin.join("llvm-objdump"),
            lld: bin.join("rust-lld"),
        };
        for tool in [&tools.objdump, &tools.lld] {
            if !tool.exists() {
                return Err(format!(
                    "no {} (rustup's llvm-tools: run .ci/install.sh)",
                    tool.display()
                ));
            }
        }
        Ok(tools)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse<'a>(data: &'a [u8], path: &Path) -> Result<object::File<'a>, String> {
    object::File::parse(data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether `name` is the mangled symbol of the function `function`:
/// legacy mangling (`...<len><function>17h<16 hex digits>E`, stable's
/// default) or v0 (`_R...<len><function>`, nightly's default).
fn is_function(name: &str, function: &str) -> bool {
    let path_end = format!("{}{function}", function.len());
    if name.starts_with("_R") && name.ends_with(&path_end) {
        return true;
    }
    let Some(rest) = name.strip_suffix('E') else {
        return false;
    };
    let Some((before, hash)) = rest.rsplit_once("17h") else {
        return false;
    };
    hash.len() == 16
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && before.ends_with(&format!("{}{function}", function.len()))
}

/// The global function `function` defined in a text section of `file`.
fn defined_function<'data, 'file>(
    file: &'file object::File<'data>,
    function: &str,
) -> Option<object::Symbol<'data, 'file>> {
    file.symbols().find(|s| {
        s.is_definition()
            && s.is_global()
            && s.kind() == SymbolKind::Text
            && s.name().is_ok_and(|n| is_function(n, function))
    })
}

/// Fails unless the library object of `triple` at `path` holds the context
/// switch as its architecture file wrote it: the naked root functions
/// defined in the text section, and the unwind info of the root.
pub fn check_library_object(tools: &Tools, triple: &str, path: &Path) -> Result<(), String> {
    let data = read(path)?;
    let file = parse(&data, path)?;
    check_library(triple, &file).map_err(|e| format!("{triple}: {}: {e}", path.display()))?;
    if triple.contains("-apple-") {
        let dylib = link_dylib(tools, triple, path)?;
        let data = read(&dylib)?;
        let linked = parse(&data, &dylib)?;
        check_compact_unwind(triple, &linked)
            .map_err(|e| format!("{triple}: {}: {e}", dylib.display()))?;
    }
    println!(
        "{triple}: {} holds the switch and its unwind info",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    Ok(())
}

/// The checks of one library object (all but the Apple link).
pub fn check_library(triple: &str, file: &object::File) -> Result<(), String> {
    for function in ["coroutine_root", "stack_call_root"] {
        if defined_function(file, function).is_none() {
            return Err(format!("defines no global function {function}"));
        }
    }
    if triple.contains("-apple-") && file.format() != BinaryFormat::MachO {
        return Err(format!("not a Mach-O object: {:?}", file.format()));
    }
    if triple.contains("-windows-") {
        check_windows_unwind(triple, file)?;
    }
    Ok(())
}

/// Links the Apple object at `path` into a dylib with rust-lld's Mach-O
/// linker (ld64.lld, which follows ld64's compact-unwind rules; undefined
/// symbols are left to the loader), beside it.
fn link_dylib(tools: &Tools, triple: &str, path: &Path) -> Result<PathBuf, String> {
    let arch = if triple.starts_with("x86_64-") {
        "x86_64"
    } else {
        "arm64"
    };
    let platform = if triple.ends_with("-ios") {
        "ios"
    } else {
        "macos"
    };
    let dylib = path.with_extension("dylib");
    crate::cmd::run(
        Command::new(&tools.lld)
            .args(["-flavor", "darwin", "-dylib", "-arch", arch])
            .args(["-platform_version", platform, "14.0", "14.0"])
            .args(["-undefined", "dynamic_lookup", "-o"])
            .arg(&dylib)
            .arg(path),
    )?;
    Ok(dylib)
}

// --- Windows -----------------------------------------------------------------

/// Where a relocation of `section` at `offset` points: the section and
/// offset in it (the symbol's place plus the addend, which COFF stores in
/// the relocated field).
fn relocated_place(
    file: &object::File,
    section: &object::Section,
    offset: u64,
) -> Option<(SectionIndex, u64)> {
    let data = section.data().ok()?;
    let (_, reloc) = section.relocations().find(|(at, _)| *at == offset)?;
    let RelocationTarget::Symbol(index) = reloc.target() else {
        return None;
    };
    let symbol = file.symbol_by_index(index).ok()?;
    let addend = if reloc.has_implicit_addend() {
        let at = offset as usize;
        u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as i64
    } else {
        reloc.addend()
    };
    Some((
        symbol.section_index()?,
        symbol.address().wrapping_add(addend as u64),
    ))
}

/// The unwind info (the `.xdata` bytes from where the `.pdata` entry of
/// `function` points) in the COFF object `file`: entries are `entry_size`
/// bytes, the function's start at 0, the unwind info's address at 4 (ARM64,
/// 8-byte entries) or 8 (x64, 12-byte entries).
fn unwind_info<'a>(file: &object::File<'a>, function: &str) -> Result<&'a [u8], String> {
    let symbol = defined_function(file, function)
        .ok_or_else(|| format!("defines no global function {function}"))?;
    let place = (symbol.section_index(), symbol.address());
    let (entry_size, info_at) = match file.architecture() {
        object::Architecture::Aarch64 => (8, 4),
        _ => (12, 8),
    };
    for pdata in file
        .sections()
        .filter(|s| s.name().is_ok_and(|n| n.starts_with(".pdata")))
    {
        let len = pdata.size();
        let mut entry = 0;
        while entry + entry_size <= len {
            if let Some((section, offset)) = relocated_place(file, &pdata, entry) {
                if (Some(section), offset) == place {
                    let (xdata, at) =
                        relocated_place(file, &pdata, entry + info_at).ok_or_else(|| {
                            format!("{function}'s .pdata entry has packed or no unwind data")
                        })?;
                    let data = file
                        .section_by_index(xdata)
                        .and_then(|s| s.data())
                        .map_err(|e| format!("unwind data of {function}: {e}"))?;
                    return data
                        .get(at as usize..)
                        .ok_or_else(|| format!("unwind data of {function} outside its section"));
                }
            }
            entry += entry_size;
        }
    }
    Err(format!("no .pdata entry for {function}"))
}

/// The prologue unwind codes of an ARM64 `.xdata` record, each as the hex
/// of its bytes in the order they are stored (the unwinder's order), up to
/// and including the first `end`, as `llvm-readobj --unwind` shows them.
pub fn arm64_prologue_codes(xdata: &[u8]) -> Result<Vec<String>, String> {
    let word = |i: usize| -> Result<u32, String> {
        xdata
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated .xdata".to_string())
    };
    let header = word(0)?;
    let e = header >> 21 & 1;
    let mut epilogs = header >> 22 & 0x1f;
    let mut code_words = header >> 27;
    let mut at = 1;
    if epilogs == 0 && code_words == 0 {
        let extended = word(1)?;
        epilogs = extended & 0xffff;
        code_words = extended >> 16 & 0xff;
        at = 2;
    }
    if e == 0 {
        at += epilogs as usize;
    }
    let codes = xdata
        .get(4 * at..4 * at + 4 * code_words as usize)
        .ok_or("truncated .xdata unwind codes")?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let op = codes[i];
        let len = match op {
            0x00..=0xbf => 1,
            0xc0..=0xdf => 2,
            0xe0 => 4,
            0xe2 => 2,
            0xe7 => 3,
            _ => 1,
        };
        let bytes = codes.get(i..i + len).ok_or("truncated unwind code")?;
        out.push(format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        i += len;
        if op == 0xe4 || op == 0xe5 {
            return Ok(out);
        }
    }
    Err(format!("the prologue codes {out:?} have no end"))
}

/// The operations of an x64 `UNWIND_INFO`: (the frame register, the
/// operation codes of its unwind codes, in order).
pub fn x64_unwind_ops(info: &[u8]) -> Result<(u8, Vec<u8>), String> {
    let count = *info.get(2).ok_or("truncated UNWIND_INFO")? as usize;
    let frame_register = info[3] & 0xf;
    let codes = info.get(4..4 + 2 * count).ok_or("truncated unwind codes")?;
    let mut ops = Vec::new();
    let mut i = 0;
    while i < count {
        let op = codes[2 * i + 1] & 0xf;
        let info = codes[2 * i + 1] >> 4;
        ops.push(op);
        // Slots per code: UWOP_ALLOC_LARGE takes 2 or 3, SAVE_NONVOL and
        // SAVE_XMM128 2, their _FAR forms 3; the others 1.
        i += match (op, info) {
            (1, 0) => 2,
            (1, _) => 3,
            (4, _) | (8, _) => 2,
            (5, _) | (9, _) => 3,
            _ => 1,
        };
    }
    Ok((frame_register, ops))
}

/// The registers an x64 `UNWIND_INFO` says were pushed
/// (`UWOP_PUSH_NONVOL`), in the order of its unwind codes (last push
/// first).
pub fn x64_pushed_registers(info: &[u8]) -> Result<Vec<u8>, String> {
    let count = *info.get(2).ok_or("truncated UNWIND_INFO")? as usize;
    let codes = info.get(4..4 + 2 * count).ok_or("truncated unwind codes")?;
    let mut pushed = Vec::new();
    let mut i = 0;
    while i < count {
        let op = codes[2 * i + 1] & 0xf;
        let info = codes[2 * i + 1] >> 4;
        if op == UWOP_PUSH_NONVOL {
            pushed.push(info);
        }
        i += match (op, info) {
            (1, 0) => 2,
            (1, _) => 3,
            (4, _) | (8, _) => 2,
            (5, _) | (9, _) => 3,
            _ => 1,
        };
    }
    Ok(pushed)
}

const UWOP_PUSH_NONVOL: u8 = 0;
const UWOP_SET_FPREG: u8 = 3;
const UWOP_PUSH_MACHFRAME: u8 = 10;
const RBX: u8 = 3;
const RBP: u8 = 5;

/// Windows: the unwind info that leads from a coroutine's root frame into
/// its parent, decoded from the object, as each architecture file
/// describes it.
fn check_windows_unwind(triple: &str, file: &object::File) -> Result<(), String> {
    if triple.starts_with("aarch64-") {
        // The root: set_fp (sp from x29), then a machine frame (sp and pc
        // from [sp]); the parent frame: {x29, x30} pushed (0x81) after x19
        // (0xd401); each ends with 0xe4.
        let root = arm64_prologue_codes(unwind_info(file, "coroutine_root")?)?;
        if root != ["0xe1", "0xe9", "0xe4"] {
            return Err(format!(
                "coroutine_root's unwind codes are {root:?}, not set_fp, machine frame"
            ));
        }
        let parent = arm64_prologue_codes(unwind_info(file, "parent_frame")?)?;
        if parent != ["0x81", "0xd401", "0xe4"] {
            return Err(format!(
                "parent_frame's unwind codes are {parent:?}, not the x19 and {{x29, x30}} pushes"
            ));
        }
    } else if triple.starts_with("x86_64-") {
        let (frame, ops) = x64_unwind_ops(unwind_info(file, "coroutine_root")?)?;
        if !ops.contains(&UWOP_SET_FPREG) || frame != RBP || !ops.contains(&UWOP_PUSH_MACHFRAME) {
            return Err(format!(
                "coroutine_root's unwind info is not rbp then a machine frame \
                 (frame register {frame}, operations {ops:?})"
            ));
        }
        // The parent frame the machine frame leads into: rbx, then rbp
        // pushed below the return address (the parent's record); the codes
        // list the last push first.
        let pushed = x64_pushed_registers(unwind_info(file, "parent_frame")?)?;
        if pushed != [RBP, RBX] {
            return Err(format!(
                "parent_frame's unwind info is not the rbx and rbp pushes \
                 (pushed registers, last first: {pushed:?})"
            ));
        }
    } else if triple.starts_with("i686-") && triple.ends_with("-gnu") {
        // Panics and backtraces use DWARF CFI here: the roots' signal-frame
        // CIE, and the root's CFA read through the link (ebp is DWARF
        // register 5).
        let eh_frame = file
            .section_by_name(".eh_frame")
            .ok_or("no .eh_frame section")?;
        let data = eh_frame.data().map_err(|e| e.to_string())?;
        let (signal_cie, link_cfa) = scan_eh_frame(data, file.is_little_endian(), 4, 5)?;
        if !signal_cie || !link_cfa {
            return Err(format!(
                "lacks the root's DWARF CFI (a signal-frame CIE: {signal_cie}; \
                 a CFA read through the link: {link_cfa})"
            ));
        }
    }
    // i686-pc-windows-msvc has no unwind tables: its SEH chain lives on the
    // stack, and its backtraces follow frame pointers.
    Ok(())
}

// --- DWARF CFI -----------------------------------------------------------------

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

fn endian(little: bool) -> gimli::RunTimeEndian {
    if little {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    }
}

/// Whether the CFA rule is the root's: `DW_CFA_def_cfa_expression:
/// DW_OP_breg<frame> +0, DW_OP_deref, DW_OP_plus_uconst N` (the parent's
/// stack pointer read from the link that the frame register addresses).
fn is_link_cfa(
    instruction: &CallFrameInstruction<usize>,
    section: &EhFrame<Reader>,
    encoding: gimli::Encoding,
    frame: u16,
) -> bool {
    let CallFrameInstruction::DefCfaExpression { expression } = instruction else {
        return false;
    };
    let Ok(expression) = expression.get(section) else {
        return false;
    };
    let mut ops = expression.operations(encoding);
    let mut list = Vec::new();
    while let Ok(Some(op)) = ops.next() {
        list.push(op);
    }
    matches!(
        list.as_slice(),
        [
            Operation::RegisterOffset { register, offset: 0, .. },
            Operation::Deref { .. },
            Operation::PlusConstant { .. },
        ] if register.0 == frame
    )
}

/// Reads every entry of an `.eh_frame`: whether a CIE has the signal-frame
/// augmentation (`S`), and whether an FDE has the root's CFA rule.
pub fn scan_eh_frame(
    data: &[u8],
    little: bool,
    address_size: u8,
    frame: u16,
) -> Result<(bool, bool), String> {
    let mut section = EhFrame::new(data, endian(little));
    section.set_address_size(address_size);
    let bases = BaseAddresses::default();
    let mut entries = section.entries(&bases);
    let (mut signal_cie, mut link_cfa) = (false, false);
    while let Some(entry) = entries.next().map_err(|e| format!(".eh_frame: {e}"))? {
        match entry {
            gimli::CieOrFde::Cie(cie) => signal_cie |= cie.is_signal_trampoline(),
            gimli::CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(EhFrame::cie_from_offset)
                    .map_err(|e| format!(".eh_frame FDE: {e}"))?;
                let encoding = fde.cie().encoding();
                let mut instructions = fde.instructions(&section, &bases);
                while let Ok(Some(instruction)) = instructions.next() {
                    link_cfa |= is_link_cfa(&instruction, &section, encoding, frame);
                }
            }
        }
    }
    Ok((signal_cie, link_cfa))
}

// --- Apple compact unwind ------------------------------------------------------

/// The compact-unwind encoding that `__unwind_info` gives the function at
/// `function_offset` (from the image base).
pub fn compact_unwind_encoding(info: &[u8], function_offset: u32) -> Result<Option<u32>, String> {
    let u32_at = |at: usize| -> Result<u32, String> {
        info.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated __unwind_info".to_string())
    };
    let u16_at = |at: usize| -> Result<u16, String> {
        info.get(at..at + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated __unwind_info".to_string())
    };
    if u32_at(0)? != 1 {
        return Err("__unwind_info is not version 1".into());
    }
    let common_at = u32_at(4)? as usize;
    let common_count = u32_at(8)?;
    let index_at = u32_at(20)? as usize;
    let index_count = u32_at(24)? as usize;
    // The first-level index: the last entry whose function offset is at or
    // below ours names the page (the final entry is a sentinel).
    let mut page = None;
    for i in 0..index_count.saturating_sub(1) {
        let entry = index_at + 12 * i;
        let first = u32_at(entry)?;
        let next = u32_at(entry + 12)?;
        if first <= function_offset && function_offset < next {
            page = Some((first, u32_at(entry + 4)? as usize));
        }
    }
    let Some((page_first, page_at)) = page else {
        return Ok(None);
    };
    match u32_at(page_at)? {
        2 => {
            // Regular: (function offset, encoding) pairs.
            let entries_at = page_at + u16_at(page_at + 4)? as usize;
            let count = u16_at(page_at + 6)? as usize;
            for i in 0..count {
                if u32_at(entries_at + 8 * i)? == function_offset {
                    return Ok(Some(u32_at(entries_at + 8 * i + 4)?));
                }
            }
            Ok(None)
        }
        3 => {
            // Compressed: 24-bit offsets from the page's first function, an
            // 8-bit index into the common then the page's encodings.
            let entries_at = page_at + u16_at(page_at + 4)? as usize;
            let count = u16_at(page_at + 6)? as usize;
            let encodings_at = page_at + u16_at(page_at + 8)? as usize;
            for i in 0..count {
                let entry = u32_at(entries_at + 4 * i)?;
                if page_first + (entry & 0xff_ffff) == function_offset {
                    let index = entry >> 24;
                    return Ok(Some(if index < common_count {
                        u32_at(common_at + 4 * index as usize)?
                    } else {
                        u32_at(encodings_at + 4 * (index - common_count) as usize)?
                    }));
                }
            }
            Ok(None)
        }
        kind => Err(format!("second-level page of unknown kind {kind}")),
    }
}

/// Apple: the linked image's `__unwind_info` entry for the root must be in
/// DWARF mode (compact unwind cannot express a CFA expression) and lead to
/// the root's FDE in `__eh_frame`: its address range, the CFA expression,
/// and a CIE with the signal-frame augmentation.
pub fn check_compact_unwind(triple: &str, image: &object::File) -> Result<(), String> {
    let root = defined_function(image, "coroutine_root").ok_or("no coroutine_root")?;
    let base = image
        .segments()
        .find(|s| s.name().ok().flatten() == Some("__TEXT"))
        .map_or(0, |s| s.address());
    let offset = (root.address() - base) as u32;
    let info = image
        .section_by_name("__unwind_info")
        .ok_or("no __unwind_info")?;
    let encoding = compact_unwind_encoding(info.data().map_err(|e| e.to_string())?, offset)?;
    // Bits 24-27 of an encoding are the mode; DWARF mode is 4 on x86-64 and
    // 3 on arm64, and keeps the FDE's offset in bits 0-23.
    let (dwarf_mode, frame) = if triple.starts_with("x86_64-") {
        (4, 6)
    } else {
        (3, 29)
    };
    let encoding = match encoding {
        Some(e) if e >> 24 & 0xf == dwarf_mode => e,
        other => {
            return Err(format!(
                "coroutine_root has no compact-unwind entry in DWARF mode (encoding: {other:x?})"
            ))
        }
    };
    let eh = image.section_by_name("__eh_frame").ok_or("no __eh_frame")?;
    let data = eh.data().map_err(|e| e.to_string())?;
    let mut section = EhFrame::new(data, endian(image.is_little_endian()));
    section.set_address_size(if image.is_64() { 8 } else { 4 });
    let bases = BaseAddresses::default()
        .set_eh_frame(eh.address())
        .set_text(base);
    let fde = section
        .fde_from_offset(
            &bases,
            gimli::EhFrameOffset((encoding & 0xff_ffff) as usize),
            EhFrame::cie_from_offset,
        )
        .map_err(|e| format!("no FDE at the offset its compact-unwind entry gives: {e}"))?;
    let encoding = fde.cie().encoding();
    let mut link_cfa = false;
    let mut instructions = fde.instructions(&section, &bases);
    while let Ok(Some(instruction)) = instructions.next() {
        link_cfa |= is_link_cfa(&instruction, &section, encoding, frame);
    }
    if fde.initial_address() != root.address() || !link_cfa || !fde.cie().is_signal_trampoline() {
        return Err(format!(
            "the FDE its compact-unwind entry gives is not the one its file wrote \
             (starts at {:#x}, root at {:#x}; CFA through the link: {link_cfa}; \
             signal-frame CIE: {})",
            fde.initial_address(),
            root.address(),
            fde.cie().is_signal_trampoline()
        ));
    }
    Ok(())
}

// --- x18 -----------------------------------------------------------------------

/// Whether x18 is reserved on an AArch64 triple (Darwin and UEFI reserve
/// it, Windows keeps the TEB pointer in it).
pub fn platform_register_reserved(triple: &str) -> bool {
    triple.starts_with("aarch64-")
        && (triple.contains("-apple-") || triple.contains("-windows-") || triple.ends_with("-uefi"))
}

/// Whether `operands` names w18 or x18 (not as part of another name).
fn names_x18(operands: &str) -> bool {
    let bytes = operands.as_bytes();
    let mut i = 0;
    while let Some(found) = operands[i..].find("18") {
        let at = i + found;
        let reg = at > 0 && matches!(bytes[at - 1], b'w' | b'x');
        let before_ok = at < 2 || !(bytes[at - 2].is_ascii_alphanumeric() || bytes[at - 2] == b'_');
        let after_ok = bytes.get(at + 2).is_none_or(|b| !b.is_ascii_digit());
        if reg && before_ok && after_ok {
            return true;
        }
        i = at + 2;
    }
    false
}

/// The instructions of `llvm-objdump -d` output (lines `address: bytes
/// <TAB>mnemonic<TAB>operands`) that name x18; on Windows, where x18 holds
/// the TEB's address, reading it is allowed (a copy `mov xN, x18`, or a base
/// register without writeback `[x18]`, `[x18, #n]`), changing it is not.
pub fn x18_uses(disassembly: &str, windows: bool) -> Vec<String> {
    let mut found = Vec::new();
    for line in disassembly.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(mnemonic), Some(operands)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let operands = operands.trim_end();
        if !names_x18(operands) {
            continue;
        }
        if windows {
            if *mnemonic == "mov"
                && operands.ends_with(", x18")
                && operands.starts_with('x')
                && operands[1..operands.len() - 5]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            if let Some(start) = operands.rfind("[x18") {
                let base = &operands[start..];
                let plain = base == "[x18]"
                    || (base.starts_with("[x18, #")
                        && base.ends_with(']')
                        && !base[1..].contains('['));
                if plain && !names_x18(&operands[..start]) {
                    continue;
                }
            }
        }
        found.push(line.to_string());
    }
    found
}

/// Fails if the AArch64 code in `path` names x18 (Darwin, UEFI: reserved
/// there) or changes it (Windows: the TEB pointer).
pub fn check_no_x18(tools: &Tools, triple: &str, path: &Path) -> Result<(), String> {
    let out = Command::new(&tools.objdump)
        .arg("-d")
        .arg(path)
        .output()
        .map_err(|e| format!("llvm-objdump: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "llvm-objdump -d {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.lines().any(|l| l.split('\t').count() >= 2) {
        return Err(format!(
            "llvm-objdump -d {} shows no instructions",
            path.display()
        ));
    }
    let windows = triple.contains("-windows-");
    let used = x18_uses(&text, windows);
    if !used.is_empty() {
        return Err(format!(
            "{}\n{triple}: {} {}uses x18, the platform register",
            used.join("\n"),
            path.display(),
            if windows { "changes or " } else { "" }
        ));
    }
    println!(
        "{triple}: {} leaves x18 alone{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        if windows {
            " (reads of the TEB pointer aside)"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests;
