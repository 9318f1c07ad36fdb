/**
 * Keeping freed memory in the process (glibc's malloc), once per process.
 *
 * A connection's bytes live in buffers outside V8's heap (a 64 KiB one per TCP read, one per AEAD
 * `update`), which glibc's malloc hands out from the top of its heap. A collection frees many of
 * them at once, and glibc gives the free top of its heap back to the kernel as soon as more than
 * its trim threshold (128 KiB at start) is free: the next MiBs then touch fresh pages, each a page
 * fault and a page zeroed by the kernel. A sealed transfer of 1 MiB writes took 30-60 such faults
 * per MiB and ran at two thirds of the speed it has without them (docs/BENCHMARKS.md).
 *
 * glibc raises its mmap threshold to the size of an mmapped block once that block is freed, and
 * its trim threshold to twice that (mallopt(3), "dynamic mmap threshold"). Node offers no
 * mallopt, so one such block is allocated here and dropped: V8 frees it at its next collection.
 * Afterwards the heap keeps up to 32 MiB free for reuse: the cost is that much resident memory a
 * process may hold without using it. Elsewhere than glibc it changes nothing.
 */

/** Under glibc's largest dynamic mmap threshold (32 MiB), well over the 128 KiB start. */
const KEPT_FREE_BLOCK_BYTES = 16 * 1024 * 1024;

let kept = false;

/** Have the process's malloc keep freed memory for reuse (see the module comment); once per process. */
export function keepFreedMemory(): void {
  if (kept) return;
  kept = true;
  void Buffer.allocUnsafeSlow(KEPT_FREE_BLOCK_BYTES);
}
