/* slab.c: the shared-memory allocator (see slab.h for the layout and its reasons). */
#include "core/slab.h"

#include <stdint.h>
#include <string.h>

#define PAGE         PT_SLAB_PAGE_SIZE
#define NIL          UINT32_MAX
#define MIN_SHIFT    3                         /* log2(PT_SLAB_MIN_SIZE) */
#define NCLASSES     9                         /* 8 .. 2048 */
#define MAX_OBJS     (PAGE / PT_SLAB_MIN_SIZE) /* objects in a page of the 8-byte class */
#define BITMAP_WORDS (MAX_OBJS / 64)

_Static_assert((PT_SLAB_MIN_SIZE << (NCLASSES - 1)) == PT_SLAB_MAX_SMALL, "size classes");

enum { PAGE_FREE, PAGE_SMALL, PAGE_LARGE, PAGE_LARGE_CONT };

/*
 * One descriptor per page.  The descriptors are the truth: the lists and counters in the
 * pool header can all be rebuilt from them (see repair()).
 *  - PAGE_FREE: part of a free run.  The first and the last page of a run hold its length
 *    in <n>, and the first is linked in the pool's list of free runs.  Runs are always
 *    merged, so a free page next to a used one is the end of a run.
 *  - PAGE_SMALL: objects of class <cls>; <bitmap> marks the used ones (bits past the page's
 *    capacity are set, so a search never returns them) and <n> counts them.  Linked in
 *    the class's partial list while it has room.
 *  - PAGE_LARGE: first page of a run of <n> pages given out whole; the others are
 *    PAGE_LARGE_CONT.
 */
struct page {
    uint32_t next, prev; /* page indexes, NIL at the ends */
    uint32_t n;
    uint8_t kind, cls;
    uint16_t unused;
    uint64_t bitmap[BITMAP_WORDS];
};

struct pt_slab_pool {
    struct pt_shmtx lock;
    uint64_t pages_off; /* from the pool to page 0 */
    uint64_t used_bytes;
    uint32_t npages;
    uint32_t free_pages;
    uint32_t free_runs; /* first page of the first free run */
    uint32_t partial[NCLASSES];
    uint32_t dirty; /* an operation is under way: a holder dying now leaves it half done */
    struct page pages[];
};

static inline char *page_addr(struct pt_slab_pool *pool, uint32_t i)
{
    return (char *)pool + pool->pages_off + (size_t)i * PAGE;
}

static inline size_t class_size(unsigned cls)
{
    return (size_t)PT_SLAB_MIN_SIZE << cls;
}

static inline uint32_t class_capacity(unsigned cls)
{
    return PAGE >> (cls + MIN_SHIFT);
}

/* The smallest class holding <size> bytes (<size> <= PT_SLAB_MAX_SMALL). */
static unsigned class_of(size_t size)
{
    if (size <= PT_SLAB_MIN_SIZE)
        return 0;
    return (unsigned)(64 - __builtin_clzll((unsigned long long)size - 1)) - MIN_SHIFT;
}

static void list_push(struct pt_slab_pool *pool, uint32_t *head, uint32_t i)
{
    struct page *pg = &pool->pages[i];

    pg->prev = NIL;
    pg->next = *head;
    if (*head != NIL)
        pool->pages[*head].prev = i;
    *head = i;
}

static void list_remove(struct pt_slab_pool *pool, uint32_t *head, uint32_t i)
{
    struct page *pg = &pool->pages[i];

    if (pg->prev != NIL)
        pool->pages[pg->prev].next = pg->next;
    else
        *head = pg->next;
    if (pg->next != NIL)
        pool->pages[pg->next].prev = pg->prev;
    pg->next = pg->prev = NIL;
}

/* Records [<first>, <first> + <n>) as one free run. */
static void run_link(struct pt_slab_pool *pool, uint32_t first, uint32_t n)
{
    pool->pages[first].n = n;
    pool->pages[first + n - 1].n = n;
    list_push(pool, &pool->free_runs, first);
}

/* Takes <n> pages from the first free run long enough (from its end, so that the rest of
 * the run keeps its place in the list).  Returns the first page, or NIL.  The pages are
 * still marked free: the caller marks them. */
static uint32_t run_alloc(struct pt_slab_pool *pool, uint32_t n)
{
    uint32_t i, len;

    for (i = pool->free_runs; i != NIL; i = pool->pages[i].next) {
        len = pool->pages[i].n;
        if (len < n)
            continue;
        if (len == n) {
            list_remove(pool, &pool->free_runs, i);
        } else {
            pool->pages[i].n = len - n;
            pool->pages[i + len - n - 1].n = len - n;
        }
        pool->free_pages -= n;
        return i + len - n;
    }
    return NIL;
}

/* Gives back the <n> pages from <first>, merged with the free runs on either side. */
static void run_free(struct pt_slab_pool *pool, uint32_t first, uint32_t n)
{
    uint32_t i, len;

    /* The first page first: dying midway leaves orphaned continuation pages, which
     * repair() frees, rather than a head claiming pages already free. */
    for (i = first; i < first + n; i++)
        pool->pages[i].kind = PAGE_FREE;
    pool->free_pages += n;

    i = first + n;
    if (i < pool->npages && pool->pages[i].kind == PAGE_FREE) {
        n += pool->pages[i].n;
        list_remove(pool, &pool->free_runs, i);
    }
    if (first > 0 && pool->pages[first - 1].kind == PAGE_FREE) {
        len = pool->pages[first - 1].n;
        first -= len;
        n += len;
        list_remove(pool, &pool->free_runs, first);
    }
    run_link(pool, first, n);
}

/* Sets the bits of <pg> past the capacity of class <cls>, so they never look free. */
static void small_fill_padding(struct page *pg, unsigned cls)
{
    uint32_t cap = class_capacity(cls), w;

    for (w = 0; w < BITMAP_WORDS; w++) {
        if (cap >= (w + 1) * 64)
            continue;
        if (cap <= w * 64)
            pg->bitmap[w] = ~0ULL;
        else
            pg->bitmap[w] |= ~0ULL << (cap - w * 64);
    }
}

static uint32_t small_count(const struct page *pg)
{
    uint32_t w, bits = 0;

    for (w = 0; w < BITMAP_WORDS; w++)
        bits += (uint32_t)__builtin_popcountll(pg->bitmap[w]);
    return bits - (MAX_OBJS - class_capacity(pg->cls));
}

static void *small_alloc(struct pt_slab_pool *pool, unsigned cls)
{
    uint32_t i = pool->partial[cls], w, bit;
    struct page *pg;

    if (i == NIL) {
        i = run_alloc(pool, 1);
        if (i == NIL)
            return NULL;
        pg = &pool->pages[i];
        memset(pg->bitmap, 0, sizeof(pg->bitmap));
        small_fill_padding(pg, cls);
        pg->cls = (uint8_t)cls;
        pg->n = 0;
        pg->kind = PAGE_SMALL;
        list_push(pool, &pool->partial[cls], i);
    }
    pg = &pool->pages[i];
    for (w = 0; pg->bitmap[w] == ~0ULL; w++)
        ;
    bit = (uint32_t)__builtin_ctzll(~pg->bitmap[w]);
    pg->bitmap[w] |= 1ULL << bit;
    if (++pg->n == class_capacity(cls))
        list_remove(pool, &pool->partial[cls], i);
    pool->used_bytes += class_size(cls);
    return page_addr(pool, i) + (size_t)(w * 64 + bit) * class_size(cls);
}

/* Frees the object at byte <off> of small page <i>, if it is one. */
static void small_free(struct pt_slab_pool *pool, uint32_t i, size_t off)
{
    struct page *pg = &pool->pages[i];
    unsigned cls = pg->cls;
    size_t obj = off / class_size(cls);
    uint64_t mask = 1ULL << (obj % 64);

    if (off % class_size(cls) != 0 || !(pg->bitmap[obj / 64] & mask))
        return;
    pg->bitmap[obj / 64] &= ~mask;
    pool->used_bytes -= class_size(cls);
    if (pg->n-- == class_capacity(cls))
        list_push(pool, &pool->partial[cls], i);
    if (pg->n > 0)
        return;
    /* An empty page goes back to the free runs, so that small objects freed can make
     * room for large ones. */
    list_remove(pool, &pool->partial[cls], i);
    run_free(pool, i, 1);
}

static void *large_alloc(struct pt_slab_pool *pool, size_t size)
{
    uint32_t n, first, i;

    if (size > (size_t)pool->npages * PAGE)
        return NULL;
    n = (uint32_t)((size + PAGE - 1) / PAGE);
    first = run_alloc(pool, n);
    if (first == NIL)
        return NULL;
    /* The first page last: dying midway leaves continuation pages without a head, which
     * repair() frees. */
    for (i = first + 1; i < first + n; i++)
        pool->pages[i].kind = PAGE_LARGE_CONT;
    pool->pages[first].n = n;
    pool->pages[first].kind = PAGE_LARGE;
    pool->used_bytes += (size_t)n * PAGE;
    return page_addr(pool, first);
}

/* Whether the page run headed by page <i> (PAGE_LARGE) is whole. */
static int large_intact(const struct pt_slab_pool *pool, uint32_t i)
{
    uint32_t n = pool->pages[i].n, k;

    if (n == 0 || n > pool->npages - i)
        return 0;
    for (k = i + 1; k < i + n; k++) {
        if (pool->pages[k].kind != PAGE_LARGE_CONT)
            return 0;
    }
    return 1;
}

/* Accounts page <i> during repair(): keeps it if it is a sound used page (or run), frees it
 * otherwise.  Returns how many pages it covered. */
static uint32_t repair_page(struct pt_slab_pool *pool, uint32_t i)
{
    struct page *pg = &pool->pages[i];

    if (pg->kind == PAGE_SMALL && pg->cls < NCLASSES) {
        small_fill_padding(pg, pg->cls);
        pg->n = small_count(pg);
        if (pg->n > 0) {
            pool->used_bytes += (size_t)pg->n * class_size(pg->cls);
            if (pg->n < class_capacity(pg->cls))
                list_push(pool, &pool->partial[pg->cls], i);
            return 1;
        }
    } else if (pg->kind == PAGE_LARGE && large_intact(pool, i)) {
        pool->used_bytes += (size_t)pg->n * PAGE;
        return pg->n;
    }
    pg->kind = PAGE_FREE;
    return 1;
}

/*
 * Rebuilds the lists and counters from the page descriptors, after a process died in the
 * middle of an operation.  Each operation orders its writes so that what it leaves behind
 * reads as either done or not started (an object or run the dead process was taking may
 * leak; nothing is given out twice).
 */
static void repair(struct pt_slab_pool *pool)
{
    uint32_t i, end, c;

    pool->free_runs = NIL;
    for (c = 0; c < NCLASSES; c++)
        pool->partial[c] = NIL;
    pool->used_bytes = 0;
    pool->free_pages = 0;

    for (i = 0; i < pool->npages; i += repair_page(pool, i))
        ;
    for (i = 0; i < pool->npages; i = end + 1) {
        end = i;
        if (pool->pages[i].kind != PAGE_FREE)
            continue;
        while (end + 1 < pool->npages && pool->pages[end + 1].kind == PAGE_FREE)
            end++;
        run_link(pool, i, end - i + 1);
        pool->free_pages += end - i + 1;
    }
}

/* Brackets every change to the pool.  The signal fences keep the compiler from moving
 * the flag's stores across the change: a process may be killed between any two of its
 * instructions, and the flag must say so. */
static void op_begin(struct pt_slab_pool *pool)
{
    if (pool->dirty)
        repair(pool);
    pool->dirty = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void op_end(struct pt_slab_pool *pool)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pool->dirty = 0;
}

size_t pt_slab_region_size(size_t usable)
{
    size_t n = usable / PAGE + (usable % PAGE != 0);

    if (n == 0)
        n = 1;
    if (n >= NIL || n > (SIZE_MAX / 2) / (PAGE + sizeof(struct page)))
        return 0;
    return sizeof(struct pt_slab_pool) + n * (sizeof(struct page) + PAGE) + (PAGE - 1);
}

/* Computes how many pages a region of <size> bytes at <base> holds, and where the first
 * one starts (*<pages_off>, 4 KiB aligned in the address space).  Returns 0 if none. */
static uint32_t layout(uintptr_t base, size_t size, uint64_t *pages_off)
{
    size_t hdr = sizeof(struct pt_slab_pool), n, off;

    if (size < hdr + sizeof(struct page) + PAGE)
        return 0;
    n = (size - hdr) / (PAGE + sizeof(struct page));
    if (n >= NIL)
        n = NIL - 1;
    for (; n > 0; n--) {
        off = ((base + hdr + n * sizeof(struct page) + PAGE - 1) & ~(uintptr_t)(PAGE - 1)) - base;
        if (off + n * PAGE <= size) {
            *pages_off = off;
            return (uint32_t)n;
        }
    }
    return 0;
}

struct pt_slab_pool *pt_slab_init(void *region, size_t size)
{
    struct pt_slab_pool *pool = region;
    uint64_t pages_off = 0;
    uint32_t n, c;

    if ((uintptr_t)region % 16 != 0)
        return NULL;
    n = layout((uintptr_t)region, size, &pages_off);
    if (n == 0)
        return NULL;
    memset(pool, 0, sizeof(*pool) + (size_t)n * sizeof(struct page));
    if (pt_shmtx_init(&pool->lock) != PT_OK)
        return NULL;
    pool->pages_off = pages_off;
    pool->npages = n;
    pool->free_pages = n;
    pool->free_runs = NIL;
    for (c = 0; c < NCLASSES; c++)
        pool->partial[c] = NIL;
    run_link(pool, 0, n);
    return pool;
}

void *pt_slab_alloc_locked(struct pt_slab_pool *pool, size_t size)
{
    void *p;

    if (size == 0)
        size = 1;
    op_begin(pool);
    if (size <= PT_SLAB_MAX_SMALL)
        p = small_alloc(pool, class_of(size));
    else
        p = large_alloc(pool, size);
    op_end(pool);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

void pt_slab_free_locked(struct pt_slab_pool *pool, void *p)
{
    uintptr_t base = (uintptr_t)pool + pool->pages_off, a = (uintptr_t)p;
    uint32_t i;
    size_t off;

    if (a < base || a >= base + (uintptr_t)pool->npages * PAGE)
        return;
    i = (uint32_t)((a - base) / PAGE);
    off = (a - base) % PAGE;
    op_begin(pool);
    if (pool->pages[i].kind == PAGE_SMALL) {
        small_free(pool, i, off);
    } else if (pool->pages[i].kind == PAGE_LARGE && off == 0) {
        pool->used_bytes -= (size_t)pool->pages[i].n * PAGE;
        run_free(pool, i, pool->pages[i].n);
    }
    op_end(pool);
}

void *pt_slab_alloc(struct pt_slab_pool *pool, size_t size)
{
    void *p;

    if (pt_shmtx_lock(&pool->lock) < 0)
        return NULL;
    p = pt_slab_alloc_locked(pool, size);
    pt_shmtx_unlock(&pool->lock);
    return p;
}

void pt_slab_free(struct pt_slab_pool *pool, void *p)
{
    if (p == NULL || pt_shmtx_lock(&pool->lock) < 0)
        return;
    pt_slab_free_locked(pool, p);
    pt_shmtx_unlock(&pool->lock);
}

struct pt_shmtx *pt_slab_lock(struct pt_slab_pool *pool)
{
    return &pool->lock;
}

void pt_slab_stats(struct pt_slab_pool *pool, size_t *used, size_t *free_bytes)
{
    int locked = pt_shmtx_lock(&pool->lock) >= 0;

    /* Without the lock (unrecoverable), the figures may be torn but are still figures. */
    if (locked && pool->dirty) {
        repair(pool);
        pool->dirty = 0;
    }
    *used = pool->used_bytes;
    *free_bytes = (size_t)pool->free_pages * PAGE;
    if (locked)
        pt_shmtx_unlock(&pool->lock);
}

void pt_slab_stats_locked(struct pt_slab_pool *pool, size_t *used, size_t *free_bytes)
{
    *used = pool->used_bytes;
    *free_bytes = (size_t)pool->free_pages * PAGE;
}

/* What a scan of the descriptors finds, to compare with the lists and counters. */
struct census {
    uint64_t used_bytes;
    uint32_t free_pages;
    uint32_t partial[NCLASSES];
};

/* Checks the descriptor of page <i> and adds it to <cs>.  Returns the pages it covers, or
 * 0 if it is unsound. */
static uint32_t check_page(const struct pt_slab_pool *pool, uint32_t i, struct census *cs)
{
    const struct page *pg = &pool->pages[i];
    struct page copy;

    switch (pg->kind) {
    case PAGE_FREE: cs->free_pages++; return 1;
    case PAGE_SMALL:
        if (pg->cls >= NCLASSES)
            return 0;
        copy = *pg;
        small_fill_padding(&copy, pg->cls);
        if (memcmp(copy.bitmap, pg->bitmap, sizeof(copy.bitmap)) != 0 || pg->n == 0 ||
            small_count(pg) != pg->n)
            return 0;
        cs->used_bytes += (uint64_t)pg->n * class_size(pg->cls);
        cs->partial[pg->cls] += pg->n < class_capacity(pg->cls);
        return 1;
    case PAGE_LARGE:
        if (!large_intact(pool, i))
            return 0;
        cs->used_bytes += (uint64_t)pg->n * PAGE;
        return pg->n;
    default: return 0; /* an orphan continuation page */
    }
}

/* Whether page <i> heads a sound free run: all pages free, length at both ends, and used
 * pages (or the pool's ends) on either side. */
static int check_run(const struct pt_slab_pool *pool, uint32_t i)
{
    uint32_t n = pool->pages[i].n, k;

    if (n == 0 || n > pool->npages - i || pool->pages[i + n - 1].n != n)
        return 0;
    for (k = i; k < i + n; k++) {
        if (pool->pages[k].kind != PAGE_FREE)
            return 0;
    }
    if (i > 0 && pool->pages[i - 1].kind == PAGE_FREE)
        return 0;
    return i + n == pool->npages || pool->pages[i + n].kind != PAGE_FREE;
}

/* Walks the list from <head>, checking its links and that each entry is a free run
 * (<cls> < 0) or a partial page of class <cls>.  Returns the pages (free runs) or entries
 * (partial pages) it holds, or -1 if unsound. */
static long check_list(const struct pt_slab_pool *pool, uint32_t head, int cls)
{
    uint32_t i, prev = NIL, steps = 0;
    long total = 0;
    const struct page *pg;

    for (i = head; i != NIL; prev = i, i = pg->next) {
        if (i >= pool->npages || ++steps > pool->npages)
            return -1;
        pg = &pool->pages[i];
        if (pg->prev != prev)
            return -1;
        if (cls < 0) {
            if (!check_run(pool, i))
                return -1;
            total += pg->n;
            continue;
        }
        if (pg->kind != PAGE_SMALL || pg->cls != cls || pg->n >= class_capacity(pg->cls))
            return -1;
        total++;
    }
    return total;
}

static int check_locked(const struct pt_slab_pool *pool)
{
    struct census cs = {0};
    uint32_t i, n;
    int c;

    if (pool->dirty)
        return PT_ERROR;
    for (i = 0; i < pool->npages; i += n) {
        n = check_page(pool, i, &cs);
        if (n == 0)
            return PT_ERROR;
    }
    if (cs.used_bytes != pool->used_bytes || cs.free_pages != pool->free_pages ||
        check_list(pool, pool->free_runs, -1) != (long)cs.free_pages)
        return PT_ERROR;
    for (c = 0; c < NCLASSES; c++) {
        if (check_list(pool, pool->partial[c], c) != (long)cs.partial[c])
            return PT_ERROR;
    }
    return PT_OK;
}

int pt_slab_check(struct pt_slab_pool *pool)
{
    int rc;

    if (pt_shmtx_lock(&pool->lock) < 0)
        return PT_ERROR;
    rc = check_locked(pool);
    pt_shmtx_unlock(&pool->lock);
    return rc;
}
