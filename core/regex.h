/*
 * regex.h: running the configuration's PCRE2 regexes on a request's strings, and what a
 * regex's source tells before it runs.  A location's rewrites, a server's regex locations
 * and a map's entries are mostly regexes that a given URI or header does not match; the
 * literal text a regex must start or end with ("^/blog/", "\.php$") rules most of them out
 * with a compare, and the one that must run goes straight into its JIT code.
 */
#ifndef PT_REGEX_H
#define PT_REGEX_H

#include <pcre2.h>
#include <stddef.h>

/* How much of a regex's leading or trailing literal text a hint keeps: less of it is still
 * text every match has. */
#define PT_REGEX_HINT_MAX 32

/*
 * What every subject a regex matches starts with (<head>, only for a regex anchored with
 * '^') and ends with (<tail>, only for one that ends in '$'; '$' also matches before a final
 * newline, which the check allows).  Either may be empty: no hint.  <caseless>: compared
 * ignoring ASCII case, as the regex was compiled.  <next>: for an anchored regex, the bytes
 * the one after the head can be, as PCRE2 works them out ("^/rules/(en|de|fr)/" wants e, d
 * or f after "/rules/"), when <has_next>.
 */
struct pt_regex_hint {
    unsigned char head_len, tail_len;
    unsigned caseless : 1;
    unsigned has_next : 1;
    char head[PT_REGEX_HINT_MAX], tail[PT_REGEX_HINT_MAX];
    unsigned char next[32]; /* a bit a byte value */
};

/* Fills <h> from the regex source <src>/<len> as pcre2_compile() takes it, compiled with
 * PCRE2_CASELESS when <caseless> and no other option.  Conservative: the hint ends at the
 * first thing that is not plainly one literal character every match has (a class, a group,
 * a quantified character, an escape other than of punctuation), and a regex with a
 * top-level '|', inline options, verbs or \Q quoting gets no tail. */
void pt_regex_hint(struct pt_regex_hint *h, const char *src, size_t len, int caseless);

/* The check behind pt_regex_may_match, for a hint that has something to check. */
int pt_regex_hint_check(const struct pt_regex_hint *h, const char *s, size_t len);

/* False when <h> rules out that its regex matches <s>/<len>; true when it may.  Inline: a
 * location's rewrites ask it for each one on every request. */
static inline int pt_regex_may_match(const struct pt_regex_hint *h, const char *s, size_t len)
{
    if (h->head_len == 0 && h->tail_len == 0 && !h->has_next)
        return 1;
    /* Most URIs differ from a head by its end ("/rules/old/" from "/rules/hello"), or are
     * shorter. */
    if (h->head_len &&
        (len < h->head_len || (!h->caseless && s[h->head_len - 1] != h->head[h->head_len - 1])))
        return 0;
    return pt_regex_hint_check(h, s, len);
}

/* Matches <code> against <s>/<len> from its start with no options into <md>: its JIT code
 * when pcre2_jit_compile() made some (pcre2_jit_match, without the checks pcre2_match()
 * repeats at each call, on a JIT stack of the process's own from 32 KiB up to 512 KiB
 * instead of 32 KiB set up on the machine stack at each call), else the interpreter.
 * Returns what pcre2_match() would, but PCRE2_ERROR_JIT_STACKLIMIT only past 512 KiB. */
int pt_regex_exec(const pcre2_code *code, const char *s, size_t len, pcre2_match_data *md);

#endif
