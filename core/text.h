/*
 * text.h: a growing text in malloc'd memory, for answers made whole before they are sent
 * (a status document, a metrics exposition).  Appending never fails visibly: once memory
 * runs out the text is marked failed and further appends do nothing, so that a writer
 * checks once, at the end.
 */
#ifndef PT_TEXT_H
#define PT_TEXT_H

#include <stdarg.h>
#include <stddef.h>

struct pt_text {
    char *p; /* malloc'd; the owner frees it with pt_text_free() */
    size_t len, cap;
    int failed; /* out of memory: the text is incomplete */
};

/* Appends the <n> bytes at <s> to <t>. */
void pt_text_put(struct pt_text *t, const char *s, size_t n);

/* Appends the NUL-terminated <s> to <t>. */
void pt_text_puts(struct pt_text *t, const char *s);

/* Appends what printf would write for <fmt> and its arguments (any length). */
void pt_text_printf(struct pt_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pt_text_vprintf(struct pt_text *t, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Frees the memory of <t> and empties it. */
void pt_text_free(struct pt_text *t);

#endif
