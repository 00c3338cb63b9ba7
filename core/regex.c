/*
 * regex.c: running regexes, and the literal text their sources say every match has
 * (regex.h).
 *
 * The hint reads a pattern as pcre2_compile() does without options, but only as far as it
 * is sure: an atom is one plainly literal character (not a metacharacter, or a backslash
 * and punctuation, which PCRE2 always takes literally), or something else; a literal that a
 * quantifier follows is not in every match.  Whatever it is unsure of ends the text.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "core/pt.h"
#include "core/regex.h"

/* One atom of a pattern: how long it is, and the character when it is a plain literal. */
struct atom {
    size_t len;
    int literal;
    char c;
    char quant; /* the quantifier after it ('?', '*', '+', '{'), or 0 */
};

/* The length of the class starting at p[0] == '[' (all that is left if it is not closed). */
static size_t class_len(const char *p, const char *end)
{
    const char *q = p + 1;

    q += q < end && *q == '^';
    q += q < end && *q == ']'; /* a ']' first in a class is literal */
    while (q < end && *q != ']') {
        const char *close;
        if (*q == '\\' && q + 1 < end)
            q += 2;
        else if (*q == '[' && q + 1 < end && q[1] == ':' &&
                 (close = memchr(q + 2, ']', (size_t)(end - q - 2))) != NULL)
            q = close + 1; /* [:alpha:] */
        else
            q++;
    }
    return (size_t)(q < end ? q + 1 - p : end - p);
}

/* The atom at <p> (before <end>). */
static struct atom next_atom(const char *p, const char *end)
{
    struct atom a = {1, 0, *p, 0};

    if (*p == '\\') {
        a.len = p + 1 < end ? 2 : 1;
        a.literal = a.len == 2 && ispunct((unsigned char)p[1]);
        a.c = p[a.len - 1];
    } else if (*p == '[') {
        a.len = class_len(p, end);
    } else {
        a.literal = strchr("^$.[]|()?*+{}", *p) == NULL;
    }
    if (p + a.len < end && strchr("?*+{", p[a.len]))
        a.quant = p[a.len];
    return a;
}

/* What in <src>/<end> changes how the rest of it reads: UNSURE_TAIL for an inline option
 * ("(?i)", "(?x:") or a verb ("(*UCP)"), after which the text may not mean what it says;
 * UNSURE_ALL for a comment or \Q...\E, which may also stand between a character and its
 * quantifier ("a(?#c)?" is "a?"), or an escape that takes what follows as its argument
 * ("\x41", "\cA", "\pL", "\012"), read here as text; 0 for none.  *<alternation> when it has a '|'
 * outside any group, which makes '^' and '$' bind their own branch only. */
enum { UNSURE_TAIL = 1, UNSURE_ALL = 2 };

static int unsure(const char *src, const char *end, int *alternation)
{
    int depth = 0, how = 0;

    *alternation = 0;
    for (const char *p = src; p < end;) {
        struct atom a = next_atom(p, end);
        if (*p == '(' && p + 2 < end &&
            ((p[1] == '?' && strchr("iJmnsUxX-^)", p[2])) || p[1] == '*'))
            how = pt_max(how, UNSURE_TAIL);
        if ((*p == '(' && p + 2 < end && p[1] == '?' && p[2] == '#') ||
            (*p == '\\' && a.len == 2 && strchr("QEcxopPgkNu0123456789", p[1])))
            how = UNSURE_ALL;
        depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
        if (*p == '|' && depth == 0)
            *alternation = 1;
        p += a.len;
    }
    return how;
}

static void append(char *buf, unsigned char *n, char c)
{
    if (*n == PT_REGEX_HINT_MAX) {
        memmove(buf, buf + 1, PT_REGEX_HINT_MAX - 1);
        (*n)--;
    }
    buf[(*n)++] = c;
}

/* A character the hint can compare: any byte when case counts, ASCII when it does not. */
static int comparable(const struct pt_regex_hint *h, char c)
{
    return !h->caseless || (unsigned char)c < 0x80;
}

/* Reads the head after the '^' of <src>; returns where the rest of the pattern starts, or
 * NULL when the head did not end cleanly before it (a "+" or the hint's size). */
static const char *find_head(struct pt_regex_hint *h, const char *src, const char *end)
{
    const char *p = src + 1;

    while (p < end) {
        struct atom a = next_atom(p, end);
        if (!a.literal || !comparable(h, a.c) || (a.quant && a.quant != '+'))
            return p;
        if (h->head_len == PT_REGEX_HINT_MAX)
            return NULL;
        h->head[h->head_len++] = a.c;
        if (a.quant) /* "a+": one 'a' at least, then who knows */
            return NULL;
        p += a.len;
    }
    return p;
}

/* The bytes that the rest of an anchored pattern, <rest>/<len> after its head, can start
 * with: PCRE2's own first code unit or first-byte table for it compiled alone.  That table
 * is what PCRE2 skips start positions by, so it holds wherever the rest matches, after a
 * head too.  Left out where the rest alone would mean something else: (?R) and (?0)
 * recurse into the whole pattern. */
static void find_next(struct pt_regex_hint *h, const char *rest, size_t len, int caseless)
{
    pcre2_code *code;
    const uint8_t *bits = NULL;
    uint32_t type = 0, unit = 0;
    PCRE2_SIZE off;
    int rc;

    if (len == 0 || memmem(rest, len, "(?R", 3) || memmem(rest, len, "(?0", 3))
        return;
    code = pcre2_compile((PCRE2_SPTR)rest, len, caseless ? PCRE2_CASELESS : 0, &rc, &off, NULL);
    if (code == NULL)
        return;
    if (pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODETYPE, &type) == 0 && type == 1 &&
        pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODEUNIT, &unit) == 0 && unit < 256) {
        /* An inline (?i) may make it caseless without saying: both cases. */
        char c = (char)unit;
        h->next[(unsigned char)c >> 3] |= (unsigned char)(1u << (c & 7));
        c = isupper((unsigned char)c) ? pt_lower(c) : (char)toupper((unsigned char)c);
        h->next[(unsigned char)c >> 3] |= (unsigned char)(1u << (c & 7));
        h->has_next = 1;
    } else if (pcre2_pattern_info(code, PCRE2_INFO_FIRSTBITMAP, &bits) == 0 && bits) {
        memcpy(h->next, bits, sizeof(h->next));
        h->has_next = 1;
    }
    pcre2_code_free(code);
}

static void find_tail(struct pt_regex_hint *h, const char *src, const char *end)
{
    /* '(' and ')' are not literal: the run starts again after a group, and a '$' last is
     * outside every group. */
    for (const char *p = src; p < end;) {
        struct atom a = next_atom(p, end);
        if (*p == '$' && p + 1 == end) /* the anchor, last: the run before it is the tail */
            return;
        if (!a.literal || !comparable(h, a.c) || (a.quant && a.quant != '+'))
            h->tail_len = 0;
        else if (a.quant) /* "x+" ends a match with one x: the run starts again there */
            h->tail_len = 0, append(h->tail, &h->tail_len, a.c);
        else
            append(h->tail, &h->tail_len, a.c);
        p += a.len + (a.quant ? 1 : 0);
    }
    h->tail_len = 0; /* not anchored at the end */
}

void pt_regex_hint(struct pt_regex_hint *h, const char *src, size_t len, int caseless)
{
    const char *end = src + len;
    int alternation, how = unsure(src, end, &alternation);
    const char *rest;

    memset(h, 0, sizeof(*h));
    h->caseless = caseless != 0;
    if (alternation || how == UNSURE_ALL)
        return;
    /* An option after the head does not change it; the tail may come after one. */
    if (len && src[0] == '^' && (rest = find_head(h, src, end)) != NULL)
        find_next(h, rest, (size_t)(end - rest), caseless);
    if (how == 0 && len >= 2 && src[len - 1] == '$')
        find_tail(h, src, end);
}

/* <a> and <b> alike for <n> bytes, ignoring ASCII case when <caseless>.  Heads and tails
 * are short, and a call to memcmp() costs more than they do: two loads that may overlap
 * for up to 16 bytes, then eight at a time. */
static int same(const char *a, const char *b, size_t n, int caseless)
{
    uint64_t x, y, u, v;
    uint32_t i, j, k, l;

    if (caseless) {
        for (size_t m = 0; m < n; m++)
            if (pt_lower(a[m]) != pt_lower(b[m]))
                return 0;
        return 1;
    }
    if (n < 4) {
        for (size_t m = 0; m < n; m++)
            if (a[m] != b[m])
                return 0;
        return 1;
    }
    if (n < 8) {
        memcpy(&i, a, 4), memcpy(&j, b, 4);
        memcpy(&k, a + n - 4, 4), memcpy(&l, b + n - 4, 4);
        return ((i ^ j) | (k ^ l)) == 0;
    }
    for (; n > 16; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        if (x != y)
            return 0;
    }
    memcpy(&x, a, 8), memcpy(&y, b, 8);
    memcpy(&u, a + n - 8, 8), memcpy(&v, b + n - 8, 8);
    return ((x ^ y) | (u ^ v)) == 0;
}

int pt_regex_hint_check(const struct pt_regex_hint *h, const char *s, size_t len)
{
    unsigned char c;

    if (h->head_len && (len < h->head_len || !same(s, h->head, h->head_len, h->caseless)))
        return 0;
    if (h->has_next) {
        if (len <= h->head_len)
            return 0;
        c = (unsigned char)s[h->head_len];
        if (!(h->next[c >> 3] & (1u << (c & 7))))
            return 0;
    }
    if (h->tail_len == 0)
        return 1;
    /* '$' matches at the end or before a newline there: one or two of CR and LF, whichever
     * convention the library was built with, leaves it to the regex. */
    for (size_t k = 0; k <= 2 && k <= len; k++) {
        if (k && s[len - k] != '\n' && s[len - k] != '\r')
            break;
        if (len - k >= h->tail_len &&
            same(s + len - k - h->tail_len, h->tail, h->tail_len, h->caseless))
            return 1;
    }
    return 0;
}

/* The process's match context, with a JIT stack of its own; NULL (the defaults) when it
 * could not be made.  Made at the first match, in the worker. */
static pcre2_match_context *match_context(void)
{
    static pcre2_match_context *mc;
    static int tried;
    pcre2_jit_stack *stack;

    if (tried)
        return mc;
    tried = 1;
    if ((stack = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL)) == NULL)
        return NULL;
    if ((mc = pcre2_match_context_create(NULL)) == NULL) {
        pcre2_jit_stack_free(stack);
        return NULL;
    }
    pcre2_jit_stack_assign(mc, NULL, stack);
    return mc;
}

int pt_regex_exec(const pcre2_code *code, const char *s, size_t len, pcre2_match_data *md)
{
    int rc;

    if (s == NULL)
        s = "";
    rc = pcre2_jit_match(code, (PCRE2_SPTR)s, len, 0, 0, md, match_context());
    if (rc == PCRE2_ERROR_JIT_BADOPTION) /* no JIT code for it */
        rc = pcre2_match(code, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    return rc;
}
