/*
 * fuzz.h: what the libFuzzer targets of test/fuzz share.  Header-only.
 *
 * A target checks more than "no crash": each states properties of the code it drives (one
 * call agrees with many, a result keeps its documented contract) and aborts with
 * fuzz_fail() when one does not hold, so that libFuzzer keeps the input as a crash.
 */
#ifndef PT_FUZZ_H
#define PT_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "core/pt.h"

/* Prints what property failed and aborts: libFuzzer saves the input as a crash. */
#define fuzz_fail(...)                                        \
    do {                                                      \
        fprintf(stderr, "fuzz: %s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                         \
        fputc('\n', stderr);                                  \
        abort();                                              \
    } while (0)

#define fuzz_check(cond, ...)       \
    do {                            \
        if (!(cond))                \
            fuzz_fail(__VA_ARGS__); \
    } while (0)

/*
 * Two buffers that take turns holding what an incremental parser is given, so that the
 * bytes of each call are at another address than those of the call before, as when a
 * caller moves its data to a larger buffer.  Each call's bytes end exactly at the end of
 * their allocation (a read past them is an ASan report) and the rest is poisoned: the
 * bytes before them and the whole other buffer (a slice kept from the call before is a
 * report too).  Cheaper than a fresh allocation per byte, which matters when every input
 * is fed one byte at a time.
 */
struct fuzz_feed {
    char *buf[2];
    size_t cap;
    unsigned turn;
};

/* Prepares <f> for pieces of at most <cap> bytes (0 allowed). */
static inline void fuzz_feed_init(struct fuzz_feed *f, size_t cap)
{
    f->cap = cap;
    f->turn = 0;
    for (int i = 0; i < 2; i++) {
        f->buf[i] = malloc(cap ? cap : 1);
        if (f->buf[i] == NULL)
            abort();
        ASAN_POISON_MEMORY_REGION(f->buf[i], cap);
    }
}

/* Copies the <n> bytes <p> (<n> <= cap) into the other buffer, poisons the one used so far,
 * and returns where the copy is: at the end of its allocation. */
static inline const char *fuzz_feed(struct fuzz_feed *f, const void *p, size_t n)
{
    char *prev = f->buf[f->turn], *next = f->buf[f->turn ^= 1];

    ASAN_POISON_MEMORY_REGION(prev, f->cap);
    ASAN_UNPOISON_MEMORY_REGION(next + f->cap - n, n);
    memcpy(next + f->cap - n, p, n);
    return next + f->cap - n;
}

static inline void fuzz_feed_free(struct fuzz_feed *f)
{
    for (int i = 0; i < 2; i++) {
        ASAN_UNPOISON_MEMORY_REGION(f->buf[i], f->cap);
        free(f->buf[i]);
    }
}

/* Offset of slice <s> from <base>, or -1 when it does not point into <base>/<len> (NULL,
 * or a string literal such as the "/" of an absolute-form target without a path). */
static inline long fuzz_offset(struct pt_str s, const char *base, size_t len)
{
    if (s.p == NULL || s.p < base || s.p > base + len)
        return -1;
    return (long)(s.p - base);
}

/* Asserts that slices <a> (into <abase>) and <b> (into <bbase>), both of a head of <len>
 * bytes, are the same: same length, same offset, or the same pointer when outside. */
static inline void fuzz_same_slice(const char *what, struct pt_str a, const char *abase,
                                   struct pt_str b, const char *bbase, size_t len)
{
    long oa = fuzz_offset(a, abase, len), ob = fuzz_offset(b, bbase, len);

    fuzz_check(a.len == b.len, "%s: length %zu in one call, %zu byte by byte", what, a.len, b.len);
    fuzz_check(oa == ob, "%s: offset %ld in one call, %ld byte by byte", what, oa, ob);
    fuzz_check(oa >= 0 || a.len == 0 || a.p == b.p, "%s: points outside the buffer", what);
    fuzz_check(oa < 0 || (size_t)oa + a.len <= len, "%s: runs past the head (%ld+%zu > %zu)", what,
               oa, a.len, len);
}

#endif
