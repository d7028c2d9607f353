//! The few UEFI tables and services the test application calls, declared
//! from the UEFI specification (2.10, chapter 4 "EFI System Table",
//! chapter 7 "Services - Boot Services", chapter 8 "Services - Runtime
//! Services", chapter 12 "Simple Text Output Protocol").
//!
//! Only the fields up to the last one used are declared; every table is
//! reached through a pointer the firmware gives, so the missing tails are
//! never read. Function pointers that are not called are `usize`.

use core::ffi::c_void;

/// `EFI_HANDLE`.
pub type Handle = *mut c_void;
/// `EFI_STATUS`: 0 is success, errors have the top bit set.
pub type Status = usize;
/// `EFI_SUCCESS`.
pub const SUCCESS: Status = 0;

/// `EFI_TABLE_HEADER`: the header of the system and services tables.
#[repr(C)]
pub struct TableHeader {
    pub signature: u64,
    pub revision: u32,
    pub header_size: u32,
    pub crc32: u32,
    pub reserved: u32,
}

/// `EFI_SYSTEM_TABLE`, up to the boot services.
#[repr(C)]
pub struct SystemTable {
    pub hdr: TableHeader,
    pub firmware_vendor: *const u16,
    pub firmware_revision: u32,
    pub console_in_handle: Handle,
    pub con_in: *mut c_void,
    pub console_out_handle: Handle,
    pub con_out: *mut SimpleTextOutput,
    pub standard_error_handle: Handle,
    pub std_err: *mut SimpleTextOutput,
    pub runtime_services: *mut RuntimeServices,
    pub boot_services: *mut BootServices,
}

/// `EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL`, up to `OutputString`.
#[repr(C)]
pub struct SimpleTextOutput {
    pub reset: usize,
    /// Writes a NUL-terminated UCS-2 string at the cursor.
    pub output_string:
        unsafe extern "efiapi" fn(this: *mut SimpleTextOutput, s: *const u16) -> Status,
}

/// `EFI_ALLOCATE_TYPE::AllocateAnyPages`.
pub const ALLOCATE_ANY_PAGES: u32 = 0;
/// `EFI_MEMORY_TYPE::EfiLoaderData`: the data of a loaded application.
pub const LOADER_DATA: u32 = 2;
/// The size of a page that `AllocatePages` counts in.
pub const PAGE_SIZE: usize = 4096;

/// `EFI_BOOT_SERVICES`, up to `FreePages`.
#[repr(C)]
pub struct BootServices {
    pub hdr: TableHeader,
    pub raise_tpl: usize,
    pub restore_tpl: usize,
    /// Allocates `pages` 4 KiB pages; `memory` receives their physical
    /// (identity-mapped) address.
    pub allocate_pages: unsafe extern "efiapi" fn(
        allocate_type: u32,
        memory_type: u32,
        pages: usize,
        memory: *mut u64,
    ) -> Status,
    /// Frees pages that `allocate_pages` returned.
    pub free_pages: unsafe extern "efiapi" fn(memory: u64, pages: usize) -> Status,
}

/// `EFI_RESET_TYPE::EfiResetShutdown`.
pub const RESET_SHUTDOWN: u32 = 2;

/// `EFI_RUNTIME_SERVICES`, up to `ResetSystem`.
#[repr(C)]
pub struct RuntimeServices {
    pub hdr: TableHeader,
    pub get_time: usize,
    pub set_time: usize,
    pub get_wakeup_time: usize,
    pub set_wakeup_time: usize,
    pub set_virtual_address_map: usize,
    pub convert_pointer: usize,
    pub get_variable: usize,
    pub get_next_variable_name: usize,
    pub set_variable: usize,
    pub get_next_high_monotonic_count: usize,
    /// Resets or shuts down the platform; does not return.
    pub reset_system: unsafe extern "efiapi" fn(
        reset_type: u32,
        status: Status,
        data_size: usize,
        data: *const c_void,
    ),
}
