/* buf.c: I/O buffers and their free list. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

static struct pt_buf *free_list;
static size_t free_count;
static size_t free_low; /* the fewest blocks the free list held since the last trim */

/* More than this many idle standard blocks are returned to malloc at once; fewer are
 * returned by pt_buf_trim once they have sat unused for a while. */
#define FREE_MAX 256

/* What pt_buf_trim leaves on the free list: enough for the requests of a moderately busy
 * worker without a malloc each. */
#define FREE_KEEP 32

struct pt_buf *pt_buf_get(size_t size)
{
    struct pt_buf *b;

    if (size <= PT_BUF_SIZE && free_list) {
        b = free_list;
        free_list = b->next;
        free_count--;
        if (free_count < free_low)
            free_low = free_count;
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

size_t pt_buf_trim(void)
{
    size_t surplus = free_low > FREE_KEEP ? free_low - FREE_KEEP : 0;

    for (size_t i = 0; i < surplus; i++) {
        struct pt_buf *b = free_list;
        free_list = b->next;
        free(b);
    }
    free_count -= surplus;
    free_low = free_count;
    return surplus * (sizeof(struct pt_buf) + PT_BUF_SIZE);
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
