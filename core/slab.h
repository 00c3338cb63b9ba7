/*
 * slab.h: an allocator for memory shared by processes (the inside of a shm zone).
 *
 * The pool lives at the start of the region it manages and stores no pointers, only page
 * indexes and offsets, so the region keeps working when it is mapped at another address
 * (a new binary after USR2 inherits the zone's memfd and maps it wherever mmap says).
 *
 * Memory is cut into 4 KiB pages.  A request of up to half a page is rounded up to a
 * power-of-two size class (8, 16, ... 2048 bytes) and served from a page of that class,
 * tracked by a bitmap; a larger one takes a run of contiguous whole pages.  Freed page runs
 * are merged with free neighbours, so a pool emptied of small objects can serve a large
 * one again.  An object is aligned to its size class (large ones to a page).
 *
 * Every operation runs under the pool's process-shared lock.  If a process dies in the
 * middle of one, the next operation rebuilds the pool's lists from its page descriptors
 * (at worst leaking what the dead process was allocating) instead of trusting them.
 */
#ifndef PT_SLAB_H
#define PT_SLAB_H

#include <stddef.h>

#include "core/pt.h"
#include "core/shmtx.h"

#define PT_SLAB_PAGE_SIZE 4096
#define PT_SLAB_MIN_SIZE  8
#define PT_SLAB_MAX_SMALL (PT_SLAB_PAGE_SIZE / 2) /* beyond this, whole pages */

/* Version of the pool's layout in memory.  A zone stamps it in its header so that a
 * binary with another layout does not misread an inherited zone. */
#define PT_SLAB_FORMAT 1

struct pt_slab_pool;

/* Returns the size of a region for which pt_slab_init() yields at least <usable> bytes of
 * pages (header, page descriptors and alignment included), or 0 on overflow. */
size_t pt_slab_region_size(size_t usable);

/* Formats the <size> bytes at <region> as an empty pool and returns it (it is <region>).
 * <region> must be aligned to 16 bytes and, for the pool to be shared, lie in shared
 * memory; nothing may be using it.  Pages are aligned to 4 KiB in the address space where
 * the pool is formatted, which a later mapping of the same file keeps (mmap addresses are
 * page aligned).  Returns NULL if <region> is misaligned or too small for one page. */
struct pt_slab_pool *pt_slab_init(void *region, size_t size);

/* Takes the pool's lock and allocates <size> zeroed bytes (0 counts as 1).  Returns the
 * memory, or NULL when no room is left (or the lock is unrecoverable).  Store it in shared
 * memory as an offset, never as a pointer. */
void *pt_slab_alloc(struct pt_slab_pool *pool, size_t size);

/* Takes the pool's lock and frees <p>, which came from pt_slab_alloc*() on <pool>.  NULL is
 * ignored; so are a pointer that is not a live allocation of <pool> and a double free, so
 * that one buggy process cannot corrupt what all processes share. */
void pt_slab_free(struct pt_slab_pool *pool, void *p);

/* Same as pt_slab_alloc() and pt_slab_free(), for a caller that already holds the pool's
 * lock (see pt_slab_lock()) because it updates its own data under the same lock. */
void *pt_slab_alloc_locked(struct pt_slab_pool *pool, size_t size);
void pt_slab_free_locked(struct pt_slab_pool *pool, void *p);

/* Returns the lock of <pool>, which users may also take to protect their own data in the
 * region.  A PT_SHMTX_RECOVERED from it concerns the user's data only: the pool repairs
 * itself. */
struct pt_shmtx *pt_slab_lock(struct pt_slab_pool *pool);

/* Stores in *<used> the bytes held by live allocations (rounded up to their size class or
 * to whole pages) and in *<free_bytes> the bytes of free pages (room for any request up to
 * the largest free run).  Takes the pool's lock. */
void pt_slab_stats(struct pt_slab_pool *pool, size_t *used, size_t *free_bytes);

/* The same for a caller that holds the pool's lock (see pt_slab_lock()). */
void pt_slab_stats_locked(struct pt_slab_pool *pool, size_t *used, size_t *free_bytes);

/* Verifies every invariant of <pool> (lists, counters, bitmaps, merged free runs).  For
 * tests and debugging; takes the pool's lock.  Returns PT_OK, or PT_ERROR when the pool is
 * inconsistent (including a pending repair after a holder died). */
int pt_slab_check(struct pt_slab_pool *pool);

#endif
