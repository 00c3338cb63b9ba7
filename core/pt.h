/*
 * pt.h: what every portier file shares: the return vocabulary, slices, and a few
 * small helpers.  Nothing here allocates.
 */
#ifndef PT_H
#define PT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#define PORTIER_VERSION "0.1.0"

/*
 * The one return vocabulary.  A handler or function returns one of these, or (where its
 * contract says so) a positive HTTP status code such as 400 or 502.
 */
#define PT_OK       0
#define PT_ERROR    (-1)
#define PT_AGAIN    (-2)
#define PT_DECLINED (-3)
#define PT_DONE     (-4)

/* Exit code of a worker or master that failed at start-up: the master does not respawn. */
#define PT_EXIT_FATAL 2

/* A slice: a pointer into a buffer someone else owns, and a length. */
struct pt_str {
    const char *p;
    size_t len;
};

#define PT_STR(lit) ((struct pt_str){(lit), sizeof(lit) - 1})
#define PT_NULL_STR ((struct pt_str){NULL, 0})

#define pt_min(a, b)                       ((a) < (b) ? (a) : (b))
#define pt_max(a, b)                       ((a) > (b) ? (a) : (b))
#define pt_nelems(a)                       (sizeof(a) / sizeof((a)[0]))
#define pt_unused(x)                       ((void)(x))
#define pt_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Zeroes the <size> bytes at <p> but the <hole_len> bytes at <hole> inside them: for a
 * struct whose large array is written before it is read (a parsed head's header slots,
 * 3.2 KB that would otherwise be zeroed for every request and every response). */
static inline void pt_zero_except(void *p, size_t size, const void *hole, size_t hole_len)
{
    size_t head = (size_t)((const char *)hole - (const char *)p);

    memset(p, 0, head);
    memset((char *)p + head + hole_len, 0, size - head - hole_len);
}

/* Case-insensitive equality of slice <s> and NUL-terminated <lit>. */
static inline int pt_str_ieq(struct pt_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

/* Case-insensitive equality of slices <a> and <b>: for tables of names kept as slices, whose
 * lengths are known, so that most compares end at the lengths. */
static inline int pt_str_ieq_str(struct pt_str a, struct pt_str b)
{
    return a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0;
}

/* Exact equality of slice <s> and NUL-terminated <lit>. */
static inline int pt_str_eq(struct pt_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static inline struct pt_str pt_str_c(const char *s)
{
    return (struct pt_str){s, s ? strlen(s) : 0};
}

static inline char pt_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* Writes <v> in base <base> (10 or 16, lower-case) at <p>, without a NUL; returns the
 * number of bytes written (at most 20).  The hot paths' replacement for sprintf. */
static inline size_t pt_format_uint(char *p, uint64_t v, unsigned base)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

#endif
