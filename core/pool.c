/* pool.c: the arena. */
#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) char data[];
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *);
    void *arg;
};

struct pt_pool {
    struct block *head; /* current block first; the pool's first block is last */
    struct cleanup *cleanups;
    size_t block_size;
};

static struct block *block_new(size_t size)
{
    struct block *b = malloc(sizeof(*b) + size);

    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct pt_pool *pt_pool_create(size_t block_size)
{
    struct pt_pool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->block_size = block_size;
    p->head = block_new(block_size);
    if (p->head == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static void run_cleanups(struct pt_pool *p)
{
    while (p->cleanups) {
        struct cleanup *c = p->cleanups;
        p->cleanups = c->next;
        c->fn(c->arg);
    }
}

void pt_pool_reset(struct pt_pool *p)
{
    run_cleanups(p);
    while (p->head->next) {
        struct block *b = p->head;
        p->head = b->next;
        free(b);
    }
    p->head->used = 0;
}

void pt_pool_destroy(struct pt_pool *p)
{
    if (p == NULL)
        return;
    pt_pool_reset(p);
    free(p->head);
    free(p);
}

void *pt_pnalloc(struct pt_pool *p, size_t n)
{
    struct block *b = p->head;
    size_t off = (b->used + 15) & ~(size_t)15;

    if (off + n > b->size) {
        /* A large allocation gets a block of its own, placed behind the current one so
         * the current block's free space is not abandoned. */
        size_t size = n > p->block_size / 4 ? n : p->block_size;
        struct block *nb = block_new(size);
        if (nb == NULL)
            return NULL;
        if (size != p->block_size) {
            nb->next = b->next;
            b->next = nb;
            nb->used = n;
            return nb->data;
        }
        nb->next = b;
        p->head = b = nb;
        off = 0;
    }
    b->used = off + n;
    return b->data + off;
}

void *pt_palloc(struct pt_pool *p, size_t n)
{
    void *m = pt_pnalloc(p, n);

    if (m)
        memset(m, 0, n);
    return m;
}

char *pt_pstrndup(struct pt_pool *p, const char *s, size_t n)
{
    char *d = pt_palloc(p, n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *pt_pstrdup(struct pt_pool *p, const char *s)
{
    return pt_pstrndup(p, s, strlen(s));
}

int pt_pool_cleanup(struct pt_pool *p, void (*fn)(void *), void *arg)
{
    struct cleanup *c = pt_palloc(p, sizeof(*c));

    if (c == NULL)
        return PT_ERROR;
    c->fn = fn;
    c->arg = arg;
    c->next = p->cleanups;
    p->cleanups = c;
    return PT_OK;
}
