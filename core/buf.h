/*
 * buf.h: I/O buffers.  A buffer is a fixed-size block with a window [pos, last) of
 * unconsumed bytes.  Blocks of the standard size come from a per-process free list, so a
 * busy worker stops calling malloc after warm-up and an idle connection gives its block
 * back.
 */
#ifndef PT_BUF_H
#define PT_BUF_H

#include <stddef.h>

#include "core/pt.h"

#define PT_BUF_SIZE 16384

struct pt_buf {
    char *start;         /* first byte of the block */
    char *pos;           /* first unconsumed byte */
    char *last;          /* one past the last byte written */
    char *end;           /* one past the block */
    struct pt_buf *next; /* free-list link */
};

/* Returns a buffer of at least <size> bytes with an empty window, or NULL when out of
 * memory.  Sizes up to PT_BUF_SIZE come from the free list. */
struct pt_buf *pt_buf_get(size_t size);

/* Gives <b> back (NULL is ignored). */
void pt_buf_put(struct pt_buf *b);

/* Frees the standard blocks that stayed unused on the free list since the previous call
 * (all the while, it held more than it needed), keeping a few.  Called every few seconds,
 * it lets a worker give back what a burst of requests took.  Returns the bytes freed. */
size_t pt_buf_trim(void);

/* Moves the window of <b> to the start of the block so that all free space is at the end. */
void pt_buf_compact(struct pt_buf *b);

static inline size_t pt_buf_len(const struct pt_buf *b)
{
    return (size_t)(b->last - b->pos);
}

static inline size_t pt_buf_room(const struct pt_buf *b)
{
    return (size_t)(b->end - b->last);
}

static inline size_t pt_buf_size(const struct pt_buf *b)
{
    return (size_t)(b->end - b->start);
}

/* Appends <n> bytes of <p> to <b>.  Returns PT_OK, or PT_AGAIN when they do not fit (nothing
 * is written then). */
int pt_buf_append(struct pt_buf *b, const void *p, size_t n);

#endif
