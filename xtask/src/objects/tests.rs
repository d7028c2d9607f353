//! The object checks on small fixture objects written here with
//! `object::write` (and `gimli::write` for the CFI), each shaped as the
//! compiler and linker lay the real ones out, and each also broken the way
//! the check must catch.

use super::*;
use object::write::{self, Relocation, StandardSegment, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolScope,
};

const ROOT: &str = "_ZN10switchback4arch14coroutine_root17h0123456789abcdefE";
const CALL_ROOT: &str = "_ZN10switchback4arch15stack_call_root17hfedcba9876543210E";
const PARENT: &str = "_ZN10switchback4arch12parent_frame17h00112233445566aaE";

/// An object with a text section holding `functions` (16 bytes each, in
/// order), global.
struct Fixture {
    obj: write::Object<'static>,
    text: write::SectionId,
    symbols: Vec<write::SymbolId>,
}

fn fixture(format: BinaryFormat, arch: Architecture, functions: &[&str]) -> Fixture {
    let mut obj = write::Object::new(format, arch, Endianness::Little);
    let text = obj.section_id(write::StandardSection::Text);
    obj.append_section_data(text, &vec![0; 16 * functions.len()], 16);
    let symbols = functions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            obj.add_symbol(write::Symbol {
                name: name.as_bytes().to_vec(),
                value: 16 * i as u64,
                size: 16,
                kind: SymbolKind::Text,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Section(text),
                flags: SymbolFlags::None,
            })
        })
        .collect();
    Fixture { obj, text, symbols }
}

impl Fixture {
    fn section(&mut self, name: &str, kind: SectionKind, data: &[u8]) -> write::SectionId {
        let segment = self.obj.segment_name(StandardSegment::Text).to_vec();
        let id = self
            .obj
            .add_section(segment, name.as_bytes().to_vec(), kind);
        self.obj.append_section_data(id, data, 4);
        id
    }

    /// A `.pdata` with one entry per function: its start, then (at
    /// `info_at`) its own `.xdata` section holding `infos[i]`.
    fn pdata(
        &mut self,
        entry_size: usize,
        info_at: u64,
        typ: object::pe::RelocationType,
        infos: &[Vec<u8>],
    ) {
        let xdata: Vec<_> = infos
            .iter()
            .map(|info| self.section(".xdata", SectionKind::ReadOnlyData, info))
            .collect();
        let pdata = self.section(
            ".pdata",
            SectionKind::ReadOnlyData,
            &vec![0; entry_size * infos.len()],
        );
        for (i, x) in xdata.into_iter().enumerate() {
            let at = (entry_size * i) as u64;
            let flags = RelocationFlags::Coff { typ };
            let function = self.symbols[i];
            self.obj
                .add_relocation(
                    pdata,
                    Relocation {
                        offset: at,
                        symbol: function,
                        addend: 0,
                        flags,
                    },
                )
                .unwrap();
            let symbol = self.obj.section_symbol(x);
            self.obj
                .add_relocation(
                    pdata,
                    Relocation {
                        offset: at + info_at,
                        symbol,
                        addend: 0,
                        flags,
                    },
                )
                .unwrap();
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.obj.write().unwrap()
    }
}

fn check(triple: &str, bytes: &[u8]) -> Result<(), String> {
    check_library(triple, &object::File::parse(bytes).unwrap())
}

#[test]
fn mangled_names() {
    assert!(is_function(ROOT, "coroutine_root"));
    assert!(is_function(&format!("_{ROOT}"), "coroutine_root"));
    assert!(!is_function(ROOT, "stack_call_root"));
    // v0 mangling, nightly's default.
    assert!(is_function(
        "_RNvNtCs1a2b3c_10switchback4arch14coroutine_root",
        "coroutine_root"
    ));
    assert!(!is_function(
        "_RNvNtCs1a2b3c_10switchback4arch17my_coroutine_root",
        "coroutine_root"
    ));
    assert!(!is_function(
        "_ZN10switchback4arch15coroutine_root17h0123E",
        "coroutine_root"
    ));
    assert!(!is_function(
        "_ZN10switchback4arch19my_coroutine_root17h0123456789abcdefE",
        "coroutine_root"
    ));
}

#[test]
fn the_switch_functions_must_be_defined() {
    let both = fixture(BinaryFormat::Elf, Architecture::X86_64, &[ROOT, CALL_ROOT]).bytes();
    check("x86_64-unknown-linux-gnu", &both).unwrap();
    let one = fixture(BinaryFormat::Elf, Architecture::X86_64, &[ROOT]).bytes();
    let err = check("x86_64-unknown-linux-gnu", &one).unwrap_err();
    assert!(err.contains("stack_call_root"), "{err}");
    // An Apple target's object must be Mach-O.
    let err = check("x86_64-apple-darwin", &both).unwrap_err();
    assert!(err.contains("Mach-O"), "{err}");
}

/// An ARM64 `.xdata` record: one packed epilog (E set), the codes in one
/// or more words.
fn arm64_xdata(codes: &[u8]) -> Vec<u8> {
    let words = codes.len().div_ceil(4) as u32;
    let header: u32 = 4 | 1 << 21 | words << 27;
    let mut out = header.to_le_bytes().to_vec();
    out.extend_from_slice(codes);
    out.resize(4 + 4 * words as usize, 0xe3);
    out
}

#[test]
fn arm64_unwind_codes_are_decoded() {
    assert_eq!(
        arm64_prologue_codes(&arm64_xdata(&[0xe1, 0xe9, 0xe4])).unwrap(),
        ["0xe1", "0xe9", "0xe4"]
    );
    assert_eq!(
        arm64_prologue_codes(&arm64_xdata(&[0x81, 0xd4, 0x01, 0xe4])).unwrap(),
        ["0x81", "0xd401", "0xe4"]
    );
    // Epilog scopes (E clear) come before the codes; an alloc_l is 4 bytes.
    let header: u32 = 4 | 1 << 22 | 2 << 27;
    let mut xdata = header.to_le_bytes().to_vec();
    xdata.extend_from_slice(&0x0400_0003u32.to_le_bytes());
    xdata.extend_from_slice(&[0xe0, 0x00, 0x01, 0x00, 0xe1, 0xe4, 0xe3, 0xe3]);
    assert_eq!(
        arm64_prologue_codes(&xdata).unwrap(),
        ["0xe0000100", "0xe1", "0xe4"]
    );
    assert!(arm64_prologue_codes(&arm64_xdata(&[0xe1, 0xe3, 0xe3, 0xe3])).is_err());
}

fn arm64_windows(root: &[u8]) -> Vec<u8> {
    let mut f = fixture(
        BinaryFormat::Coff,
        Architecture::Aarch64,
        &[ROOT, PARENT, CALL_ROOT],
    );
    f.pdata(
        8,
        4,
        object::pe::IMAGE_REL_ARM64_ADDR32NB,
        &[arm64_xdata(root), arm64_xdata(&[0x81, 0xd4, 0x01, 0xe4])],
    );
    f.bytes()
}

#[test]
fn arm64_windows_root_and_parent_frame() {
    check(
        "aarch64-pc-windows-msvc",
        &arm64_windows(&[0xe1, 0xe9, 0xe4]),
    )
    .unwrap();
    let err = check("aarch64-pc-windows-msvc", &arm64_windows(&[0xe1, 0xe4])).unwrap_err();
    assert!(err.contains("coroutine_root's unwind codes"), "{err}");
}

/// An x64 `UNWIND_INFO`: version 1, frame register `frame`, these codes
/// (offset, operation | info << 4).
fn x64_info(frame: u8, codes: &[(u8, u8)]) -> Vec<u8> {
    let mut out = vec![1, 8, codes.len() as u8, frame];
    for (offset, op) in codes {
        out.extend_from_slice(&[*offset, *op]);
    }
    if codes.len() % 2 == 1 {
        out.extend_from_slice(&[0, 0]);
    }
    out
}

/// The parent frame's unwind info as the x86-64 Windows file writes it:
/// `rbx`, then `rbp` pushed (the codes list the last push first).
fn x64_parent_info() -> Vec<u8> {
    x64_info(
        0,
        &[
            (2, UWOP_PUSH_NONVOL | (RBP << 4)),
            (1, UWOP_PUSH_NONVOL | (RBX << 4)),
        ],
    )
}

fn x64_windows_with_parent(root: Vec<u8>, parent: Vec<u8>) -> Vec<u8> {
    let mut f = fixture(
        BinaryFormat::Coff,
        Architecture::X86_64,
        &[ROOT, PARENT, CALL_ROOT],
    );
    f.pdata(12, 8, object::pe::IMAGE_REL_AMD64_ADDR32NB, &[root, parent]);
    f.bytes()
}

fn x64_windows(info: Vec<u8>) -> Vec<u8> {
    x64_windows_with_parent(info, x64_parent_info())
}

#[test]
fn x64_windows_parent_frame() {
    assert_eq!(
        x64_pushed_registers(&x64_parent_info()).unwrap(),
        [RBP, RBX]
    );
    let root = x64_info(5, &[(8, UWOP_SET_FPREG), (1, UWOP_PUSH_MACHFRAME)]);
    check("x86_64-pc-windows-msvc", &x64_windows(root.clone())).unwrap();
    // Only rbp pushed: not the parent's record.
    let rbp_only = x64_info(0, &[(1, UWOP_PUSH_NONVOL | (RBP << 4))]);
    let err = check(
        "x86_64-pc-windows-msvc",
        &x64_windows_with_parent(root, rbp_only),
    )
    .unwrap_err();
    assert!(err.contains("parent_frame's unwind info"), "{err}");
}

#[test]
fn x64_windows_root() {
    // A push of rbx (op 0), then the machine frame, then rbp as the frame
    // register; an ALLOC_LARGE of two slots between.
    let good = x64_info(
        5,
        &[
            (8, UWOP_SET_FPREG),
            (6, 1),
            (0, 0),
            (2, 3 << 4),
            (1, UWOP_PUSH_MACHFRAME),
        ],
    );
    assert_eq!(x64_unwind_ops(&good).unwrap(), (5, vec![3, 1, 0, 10]));
    check("x86_64-pc-windows-msvc", &x64_windows(good)).unwrap();
    let no_machframe = x64_info(5, &[(8, UWOP_SET_FPREG)]);
    assert!(check("x86_64-pc-windows-msvc", &x64_windows(no_machframe)).is_err());
    let not_rbp = x64_info(3, &[(8, UWOP_SET_FPREG), (1, UWOP_PUSH_MACHFRAME)]);
    assert!(check("x86_64-pc-windows-msvc", &x64_windows(not_rbp)).is_err());
}

/// An `.eh_frame` with one CIE (signal frame or not) and one FDE at
/// `address` whose CFA is `DW_OP_breg<frame> +0, DW_OP_deref,
/// DW_OP_plus_uconst 16`.
fn eh_frame(address_size: u8, signal: bool, frame: u16, address: u64) -> Vec<u8> {
    use gimli::write::{
        Address, CallFrameInstruction as Cfi, CommonInformationEntry, EhFrame as WEhFrame,
        EndianVec, Expression, FrameDescriptionEntry, FrameTable,
    };
    let encoding = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 1,
        address_size,
    };
    let mut cie = CommonInformationEntry::new(encoding, 1, -4, gimli::Register(8));
    cie.signal_trampoline = signal;
    let mut table = FrameTable::default();
    let cie = table.add_cie(cie);
    let mut fde = FrameDescriptionEntry::new(Address::Constant(address), 16);
    let mut expression = Expression::new();
    expression.op_breg(gimli::Register(frame), 0);
    expression.op_deref();
    expression.op_plus_uconst(16);
    fde.add_instruction(0, Cfi::CfaExpression(expression));
    table.add_fde(cie, fde);
    let mut out = WEhFrame(EndianVec::new(gimli::LittleEndian));
    table.write_eh_frame(&mut out).unwrap();
    out.0.into_vec()
}

#[test]
fn eh_frame_of_the_root() {
    assert_eq!(
        scan_eh_frame(&eh_frame(4, true, 5, 0), true, 4, 5).unwrap(),
        (true, true)
    );
    assert_eq!(
        scan_eh_frame(&eh_frame(4, false, 5, 0), true, 4, 5).unwrap(),
        (false, true)
    );
    assert_eq!(
        scan_eh_frame(&eh_frame(4, true, 4, 0), true, 4, 5).unwrap(),
        (true, false)
    );

    let i686 = |eh: Vec<u8>| {
        let mut f = fixture(BinaryFormat::Coff, Architecture::I386, &[ROOT, CALL_ROOT]);
        f.section(".eh_frame", SectionKind::ReadOnlyData, &eh);
        f.bytes()
    };
    check("i686-pc-windows-gnu", &i686(eh_frame(4, true, 5, 0))).unwrap();
    let err = check("i686-pc-windows-gnu", &i686(eh_frame(4, false, 5, 0))).unwrap_err();
    assert!(err.contains("signal-frame CIE: false"), "{err}");
    // The MSVC target has no unwind tables to check.
    check("i686-pc-windows-msvc", &i686(Vec::new())).unwrap();
}

/// `__unwind_info` with one second-level page of `kind` (2 regular, 3
/// compressed) covering [0, 0x100): a frame-mode entry for the function at
/// 0, and `encoding` for the one at 0x10.
fn unwind_info(kind: u32, encoding: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let u32s = |out: &mut Vec<u8>, values: &[u32]| {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    };
    // Header: version, common encodings at 28 (one), personalities at 32
    // (none), the index at 32 (two entries, the second a sentinel).
    u32s(&mut out, &[1, 28, 1, 32, 0, 32, 2]);
    u32s(&mut out, &[0x0100_0000]);
    u32s(&mut out, &[0, 56, 0, 0x100, 0, 0]);
    assert_eq!(out.len(), 56);
    if kind == 2 {
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        u32s(&mut out, &[0, 0x0100_0000, 0x10, encoding]);
    } else {
        out.extend_from_slice(&3u32.to_le_bytes());
        for v in [12u16, 2, 20, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        // Entry 0: common encoding 0; entry 1: the page's encoding 0.
        u32s(&mut out, &[0, 0x10 | 1 << 24, encoding]);
    }
    out
}

#[test]
fn compact_unwind_entries_are_found() {
    for kind in [2, 3] {
        let info = unwind_info(kind, 0x0400_0040);
        assert_eq!(
            compact_unwind_encoding(&info, 0x10).unwrap(),
            Some(0x0400_0040),
            "kind {kind}"
        );
        assert_eq!(
            compact_unwind_encoding(&info, 0).unwrap(),
            Some(0x0100_0000),
            "kind {kind}"
        );
        assert_eq!(
            compact_unwind_encoding(&info, 0x20).unwrap(),
            None,
            "kind {kind}"
        );
        assert_eq!(
            compact_unwind_encoding(&info, 0x200).unwrap(),
            None,
            "kind {kind}"
        );
    }
    assert!(compact_unwind_encoding(&[0; 28], 0).is_err());
}

/// A Mach-O x86-64 image laid out as the linked dylib: coroutine_root at
/// 0x10, `__unwind_info` with `encoding` for it (its FDE offset filled in
/// when `fde` is set), `__eh_frame` with an FDE for `fde_address`.
fn macho(signal: bool, mode: u32, fde_address: u64) -> Vec<u8> {
    let mut f = fixture(
        BinaryFormat::MachO,
        Architecture::X86_64,
        &["_zero", ROOT, CALL_ROOT],
    );
    let eh = eh_frame(8, signal, 6, fde_address);
    // The CIE comes first; the FDE follows it.
    let fde_offset = 4 + u32::from_le_bytes(eh[0..4].try_into().unwrap());
    f.section(
        "__unwind_info",
        SectionKind::ReadOnlyData,
        &unwind_info(3, mode << 24 | fde_offset),
    );
    let _ = f.text;
    f.section("__eh_frame", SectionKind::ReadOnlyData, &eh);
    f.bytes()
}

#[test]
fn compact_unwind_leads_to_the_roots_fde() {
    let check = |bytes: Vec<u8>| {
        check_compact_unwind(
            "x86_64-apple-darwin",
            &object::File::parse(&*bytes).unwrap(),
        )
    };
    check(macho(true, 4, 0x10)).unwrap();
    let err = check(macho(true, 1, 0x10)).unwrap_err();
    assert!(err.contains("DWARF mode"), "{err}");
    let err = check(macho(false, 4, 0x10)).unwrap_err();
    assert!(err.contains("signal-frame CIE: false"), "{err}");
    let err = check(macho(true, 4, 0x20)).unwrap_err();
    assert!(err.contains("starts at 0x20"), "{err}");
}

#[test]
fn x18_is_found_in_disassembly() {
    let text = "\
0000000000000000 <f>:
       0: aa1203e0     \tmov\tx0, x18
       4: f9400240     \tldr\tx0, [x18]
       8: f9400a40     \tldr\tx0, [x18, #0x10]
       c: 91000652     \tadd\tx18, x18, #0x1
      10: f8410e40     \tldr\tx0, [x18, #0x10]!
      14: 2a1203e0     \tmov\tw0, w18
      18: aa1803e0     \tmov\tx0, x24
      1c: d2800240     \tmov\tx0, #0x18
      20: aa1203f2     \tmov\tx18, x0
";
    let windows = x18_uses(text, true);
    assert_eq!(windows.len(), 4, "{windows:#?}");
    assert!(windows[0].contains("add\tx18"));
    assert!(windows[1].contains("[x18, #0x10]!"));
    assert!(windows[2].contains("w0, w18"));
    assert!(windows[3].contains("x18, x0"));
    // Darwin and UEFI: any mention.
    assert_eq!(x18_uses(text, false).len(), 7);
    assert!(platform_register_reserved("aarch64-apple-ios"));
    assert!(platform_register_reserved("aarch64-unknown-uefi"));
    assert!(platform_register_reserved("aarch64-pc-windows-gnullvm"));
    assert!(!platform_register_reserved("aarch64-unknown-linux-gnu"));
    assert!(!platform_register_reserved("x86_64-apple-darwin"));
}
