/*
 * text.c: a growing text (text.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pt.h"
#include "core/text.h"

/* Makes room for <n> more bytes and a NUL.  0, or -1 (marked failed). */
static int reserve(struct pt_text *t, size_t n)
{
    size_t cap;
    char *p;

    if (t->failed)
        return -1;
    if (t->len + n < t->cap)
        return 0;
    cap = pt_max(t->cap * 2, t->len + n + 4096);
    p = realloc(t->p, cap);
    if (p == NULL) {
        t->failed = 1;
        return -1;
    }
    t->p = p;
    t->cap = cap;
    return 0;
}

void pt_text_put(struct pt_text *t, const char *s, size_t n)
{
    if (reserve(t, n) != 0)
        return;
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

void pt_text_puts(struct pt_text *t, const char *s)
{
    pt_text_put(t, s, strlen(s));
}

void pt_text_vprintf(struct pt_text *t, const char *fmt, va_list ap)
{
    va_list again;
    int n;

    va_copy(again, ap);
    n = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    if (n < 0 || reserve(t, (size_t)n) != 0)
        return;
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    t->len += (size_t)n;
}

void pt_text_printf(struct pt_text *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pt_text_vprintf(t, fmt, ap);
    va_end(ap);
}

void pt_text_free(struct pt_text *t)
{
    free(t->p);
    *t = (struct pt_text){0};
}
