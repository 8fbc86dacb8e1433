//! Muster's global allocator: mimalloc.
//!
//! The `mimalloc` crate's allocator hands every request to `mi_malloc_aligned`, whose fast path
//! serves only blocks of up to 1 KiB that happen to be aligned already; a larger one (a
//! connection's read buffer, a response body, a statement's SQL text) goes through its generic
//! path, which over-allocates by the alignment (an 8 KiB buffer took a block of the next size
//! class) and costs about twice the instructions. Under callgrind that was 10 allocations and
//! about 2,000 instructions of a `GET /Users/{id}` (docs/benchmarks.md, "The allocator's
//! aligned path"). mimalloc is a drop-in `malloc`: `mi_malloc` returns blocks aligned to 16 bytes
//! (`MI_MAX_ALIGN_SIZE`, the alignment of C's `max_align_t`) whenever the size is at least 16,
//! and to 8 below (on 64-bit targets it rounds blocks of up to 8 words to an even number of
//! words, its larger size classes are multiples of 16 bytes, and a page's first block is
//! 16-aligned). So a request whose alignment is at most 16 and not larger than its size goes to
//! `mi_malloc`/`mi_zalloc`/`mi_realloc`, the test std's own `System` allocator makes before
//! calling C's `malloc`; any other goes to the aligned functions as before.
//!
//! A few lines written here rather than a crate's, because the crate's allocator is the cost
//! measured above (the same change is proposed to the `mimalloc` crate, purpleprotocol/
//! mimalloc_rust pull request 170, not released).

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every `mi_malloc` block of at least this size has (`MI_MAX_ALIGN_SIZE`).
const MALLOC_ALIGN: usize = 16;

/// mimalloc as the global allocator; see the crate's documentation.
pub struct Mimalloc;

/// Whether `mi_malloc(size)` is aligned enough for `align` (see the crate's documentation).
#[inline]
fn malloc_suffices(align: usize, size: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: every function returns what mimalloc returns for the layout's size, aligned as the
// layout asks (the aligned functions where `malloc_suffices` is false, and mimalloc's own
// guarantee where it is true), or null when mimalloc has no memory; `dealloc` and `realloc`
// receive only pointers this allocator returned, which `mi_free` and `mi_realloc*` accept
// whichever function made them.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if malloc_suffices(layout.align(), layout.size()) {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if malloc_suffices(layout.align(), layout.size()) {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if malloc_suffices(layout.align(), new_size) {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around every power of two up to 4 MiB, and alignments from 1 to
    /// 4 KiB: every block is aligned as asked, writable to its end, and keeps its bytes when it
    /// grows or shrinks. (The aligned functions are the ones already trusted; what this checks
    /// is the claim that plain `mi_malloc` is aligned enough wherever it is used.)
    #[test]
    fn every_block_is_aligned_as_asked_and_keeps_its_bytes() {
        let mut sizes: Vec<usize> = (1..=512).collect();
        let mut s = 512;
        while s <= 4 << 20 {
            sizes.extend([s - 16, s - 8, s - 1, s, s + 1, s + 8, s + 16, s + s / 2]);
            s *= 2;
        }
        let a = Mimalloc;
        let mut checked = 0;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for &size in &sizes {
                // Sizes need not be multiples of the alignment (`Layout` allows 24 bytes at
                // 16): mimalloc rounds blocks of 16 bytes or more to multiples of 16.
                let size = size.max(align);
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // A few blocks of each, so that later blocks of a page are checked too.
                let blocks: Vec<*mut u8> = (0..3)
                    .map(|i| {
                        // SAFETY: the layout's size is not zero.
                        let p = unsafe {
                            if i == 1 {
                                a.alloc_zeroed(layout)
                            } else {
                                a.alloc(layout)
                            }
                        };
                        assert!(!p.is_null(), "no memory for {layout:?}");
                        assert_eq!(p as usize % align, 0, "{layout:?} gave {p:p}");
                        if i == 1 {
                            // SAFETY: `p` holds `size` bytes.
                            let zeroed = unsafe { std::slice::from_raw_parts(p, size) };
                            assert!(zeroed == &vec![0; size][..], "{layout:?} not zeroed");
                        }
                        // SAFETY: `p` holds `size` bytes.
                        unsafe { std::ptr::write_bytes(p, (size % 251) as u8, size) };
                        p
                    })
                    .collect();
                for p in blocks {
                    let new_size = (size * 3 / 2 + 7).max(align);
                    // SAFETY: `p` came from `alloc` with `layout`; the new size is not zero.
                    let q = unsafe { a.realloc(p, layout, new_size) };
                    assert!(!q.is_null(), "no memory to grow {layout:?}");
                    assert_eq!(
                        q as usize % align,
                        0,
                        "{layout:?} grown to {new_size}: {q:p}"
                    );
                    // SAFETY: `q` holds at least the `size` bytes written above.
                    let kept = unsafe { std::slice::from_raw_parts(q, size) };
                    assert!(kept == &vec![(size % 251) as u8; size][..]);
                    let grown = Layout::from_size_align(new_size, align).unwrap_or(layout);
                    let small = (size / 3).max(align);
                    // SAFETY: `q` came from `realloc` with size `new_size`.
                    let r = unsafe { a.realloc(q, grown, small) };
                    assert!(!r.is_null());
                    assert_eq!(r as usize % align, 0, "{layout:?} shrunk to {small}: {r:p}");
                    // SAFETY: `r` holds `small` bytes, all of them written above.
                    let kept = unsafe { std::slice::from_raw_parts(r, small.min(size)) };
                    assert!(kept == &vec![(size % 251) as u8; small.min(size)][..]);
                    let last = Layout::from_size_align(small, align).unwrap_or(layout);
                    // SAFETY: `r` came from this allocator with that layout.
                    unsafe { a.dealloc(r, last) };
                    checked += 1;
                }
            }
        }
        assert!(checked > 5_000, "checked only {checked} blocks");
    }

    #[test]
    fn only_alignments_malloc_meets_go_to_malloc() {
        assert!(malloc_suffices(8, 8));
        assert!(malloc_suffices(16, 16));
        assert!(malloc_suffices(8, 8192));
        assert!(
            !malloc_suffices(16, 8),
            "a block under 16 bytes may be 8-aligned only"
        );
        assert!(!malloc_suffices(32, 64));
        assert!(
            !malloc_suffices(128, 128),
            "tokio's task cells are 128-aligned"
        );
    }
}
