//! Values cross a switch as one register word: in it if they fit, else by
//! pointer; and the stack pointers the switch saves and restores.

use core::mem::{self, MaybeUninit};
use core::num::NonZeroUsize;
use core::ptr;

/// A stack address: the value of a stack pointer.
pub type StackPointer = NonZeroUsize;

/// The register word passed across a switch. `MaybeUninit` because a small
/// value's padding bytes may be uninitialised; `asm!` accepts such operands
/// without reading them as integers.
pub type Word = MaybeUninit<usize>;

/// Whether a `T` is carried in the word itself.
#[inline(always)]
const fn fits_in_word<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<usize>()
        && mem::align_of::<T>() <= mem::align_of::<usize>()
}

/// Moves `value` into a word: into the word itself if it fits, else into
/// `slot`, which must then stay in place until the receiver has decoded it.
#[inline(always)]
pub fn encode<T>(value: T, slot: &mut MaybeUninit<T>) -> Word {
    if fits_in_word::<T>() {
        let mut word = Word::uninit();
        // SAFETY: a T fits in the word and the word is at least as aligned.
        unsafe { ptr::write(word.as_mut_ptr() as *mut T, value) };
        word
    } else {
        slot.write(value);
        Word::new(slot.as_ptr() as usize)
    }
}

/// Takes the value out of a word made by [`encode`].
///
/// # Safety
/// `word` must come from `encode::<T>` and be decoded once, while the slot
/// it may point to is still in place.
#[inline(always)]
pub unsafe fn decode<T>(word: Word) -> T {
    if fits_in_word::<T>() {
        // SAFETY: `encode` wrote a T at the start of the word.
        unsafe { ptr::read(word.as_ptr() as *const T) }
    } else {
        // SAFETY: `encode` stored the address of the slot holding a T, which
        // the caller guarantees is still there and not yet read.
        unsafe { ptr::read(word.assume_init() as *const T) }
    }
}
