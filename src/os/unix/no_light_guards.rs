//! What the systems without light guard pages (every Unix but Linux and
//! Android) give for them: nothing, so that every stack keeps a mapping of
//! its own and the slab allocator is never tried.

/// Whether the system has guard regions that do not split a mapping: no.
pub(crate) const LIGHT_GUARDS: bool = false;

/// Light guard pages (guards that do not split a mapping): not on this
/// system.
pub(crate) fn install_light_guard(
    _start: usize,
    _len: usize,
    _verify: bool,
) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The system's limit on a process's memory mappings: not read here.
pub(crate) fn max_map_count() -> Option<usize> {
    None
}
