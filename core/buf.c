/* buf.c: I/O buffers and their free list. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

static struct pt_buf *free_list;
static size_t free_count;

/* More than this many idle standard blocks are returned to malloc: a burst of connections
 * must not leave the worker holding its peak memory forever. */
#define FREE_MAX 256

struct pt_buf *pt_buf_get(size_t size)
{
    struct pt_buf *b;

    if (size <= PT_BUF_SIZE && free_list) {
        b = free_list;
        free_list = b->next;
        free_count--;
    } else {
        size_t n = size <= PT_BUF_SIZE ? PT_BUF_SIZE : size;
        b = malloc(sizeof(*b) + n);
        if (b == NULL)
            return NULL;
        b->start = (char *)(b + 1);
        b->end = b->start + n;
    }
    b->pos = b->last = b->start;
    b->next = NULL;
    return b;
}

void pt_buf_put(struct pt_buf *b)
{
    if (b == NULL)
        return;
    if (pt_buf_size(b) != PT_BUF_SIZE || free_count >= FREE_MAX) {
        free(b);
        return;
    }
    b->next = free_list;
    free_list = b;
    free_count++;
}

void pt_buf_compact(struct pt_buf *b)
{
    size_t n = pt_buf_len(b);

    if (b->pos != b->start && n)
        memmove(b->start, b->pos, n);
    b->pos = b->start;
    b->last = b->start + n;
}

int pt_buf_append(struct pt_buf *b, const void *p, size_t n)
{
    if (pt_buf_room(b) < n)
        return PT_AGAIN;
    memcpy(b->last, p, n);
    b->last += n;
    return PT_OK;
}
