//! A bump allocator for skip-list nodes: memory is taken from large blocks and freed all at
//! once when the arena drops, so nodes never move and readers can follow raw pointers into
//! them for as long as the arena lives.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Size of each block the arena takes from the global allocator.
const BLOCK_SIZE: usize = 1 << 20;
/// Alignment of every allocation: one cache line, so a node's header and first links share
/// one line and never straddle two.
pub const ALIGN: usize = 64;

/// The allocation state. Not thread-safe by itself: the skip list keeps it behind the lock
/// that serialises writers. Readers never touch it.
pub struct Arena {
    blocks: Vec<(NonNull<u8>, Layout)>,
    /// Next free byte in the current block and the bytes left after it.
    next: *mut u8,
    left: usize,
    /// Bytes taken from the global allocator.
    reserved: usize,
    /// Bytes handed out (alignment padding included).
    used: usize,
}

// SAFETY: the arena owns its blocks exclusively; the raw pointers are only addresses into
// them. Moving the arena to another thread moves that ownership.
unsafe impl Send for Arena {}

impl Arena {
    /// An empty arena; the first allocation takes a block.
    pub fn new() -> Self {
        Arena {
            blocks: Vec::new(),
            next: std::ptr::null_mut(),
            left: 0,
            reserved: 0,
            used: 0,
        }
    }

    /// Bytes taken from the global allocator so far.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Bytes handed out so far, alignment padding included.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Returns `size` zeroed bytes aligned to [`ALIGN`], valid until the arena drops.
    pub fn allocate(&mut self, size: usize) -> NonNull<u8> {
        let size = size.next_multiple_of(ALIGN);
        self.used += size;
        if size > self.left {
            // Large entries get a block of their own, so a big value does not waste the
            // rest of the current block.
            if size > BLOCK_SIZE / 4 {
                return self.new_block(size);
            }
            let block = self.new_block(BLOCK_SIZE);
            self.next = block.as_ptr();
            self.left = BLOCK_SIZE;
        }
        let ptr = self.next;
        // SAFETY: `size <= self.left`, so `ptr + size` stays inside the current block.
        self.next = unsafe { ptr.add(size) };
        self.left -= size;
        // SAFETY: `ptr` points into a live block, so it is not null.
        unsafe { NonNull::new_unchecked(ptr) }
    }

    fn new_block(&mut self, size: usize) -> NonNull<u8> {
        let Ok(layout) = Layout::from_size_align(size, ALIGN) else {
            // Sizes are bounded by the options (keys ≤ 16 MiB, values ≤ 1 GiB).
            panic!("arena allocation of {size} bytes exceeds the address space");
        };
        // SAFETY: `layout` has a non-zero size (every caller asks for at least ALIGN bytes).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        self.blocks.push((ptr, layout));
        self.reserved += size;
        ptr
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for (ptr, layout) in self.blocks.drain(..) {
            // SAFETY: each block was allocated with exactly this layout and is freed once.
            unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_disjoint_and_zeroed() {
        let mut arena = Arena::new();
        let mut spans = Vec::new();
        for size in [1, 63, 64, 65, 1000, BLOCK_SIZE / 2, 17, BLOCK_SIZE - 64] {
            let ptr = arena.allocate(size);
            assert_eq!(ptr.as_ptr() as usize % ALIGN, 0);
            // SAFETY: the arena returned `size` bytes at `ptr`.
            let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), size) };
            assert!(bytes.iter().all(|&b| b == 0));
            bytes.fill(0xAA);
            spans.push((ptr.as_ptr() as usize, size));
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "allocations overlap");
        }
        assert!(arena.used() >= spans.iter().map(|s| s.1).sum::<usize>());
        assert!(arena.reserved() >= arena.used());
    }
}
