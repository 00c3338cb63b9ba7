/*
 * pool.h: an arena.  Everything allocated from a pool is freed at once when the pool is
 * destroyed: a configuration generation (cycle) and a request each own one.
 */
#ifndef PT_POOL_H
#define PT_POOL_H

#include <stddef.h>

#include "core/pt.h"

struct pt_pool;

/* Creates a pool whose blocks are <block_size> bytes (larger allocations get their own
 * block).  Returns NULL when out of memory. */
struct pt_pool *pt_pool_create(size_t block_size);

/* Frees the pool <p> and everything allocated from it. */
void pt_pool_destroy(struct pt_pool *p);

/* Frees everything allocated from <p> but keeps its first block, for reuse by the next
 * request on the same connection. */
void pt_pool_reset(struct pt_pool *p);

/* Allocates <n> zeroed bytes from <p>, aligned for any type.  NULL when out of memory. */
void *pt_palloc(struct pt_pool *p, size_t n);

/* The same, not zeroed: for bytes about to be overwritten whole. */
void *pt_pnalloc(struct pt_pool *p, size_t n);

/* Copies <s> (NUL-terminated) or the slice <s> into <p> and NUL-terminates it. */
char *pt_pstrdup(struct pt_pool *p, const char *s);
char *pt_pstrndup(struct pt_pool *p, const char *s, size_t n);

/* Registers <fn>(<arg>) to run when <p> is destroyed or reset (for memory the pool does not
 * own, such as compiled regexes).  Returns PT_OK or PT_ERROR. */
int pt_pool_cleanup(struct pt_pool *p, void (*fn)(void *), void *arg);

#endif
