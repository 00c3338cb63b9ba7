/*
 * test_regex.c: the hints of core/regex.h: the literal text found at the start and the end
 * of the regexes nginx configurations are full of, none where it cannot be sure, and the
 * promise the rewrite module and the router rely on: a hint never rules out a subject that
 * PCRE2 matches (checked on a 300,000 random patterns and subjects).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "core/pt.h"
#include "core/regex.h"

static struct pt_regex_hint hint_of(const char *src, int caseless)
{
    struct pt_regex_hint h;

    pt_regex_hint(&h, src, strlen(src), caseless);
    return h;
}

/* The hint of <src> has <want> as its <part> (head or tail). */
#define ck_assert_hint(src, part, want)                                                            \
    do {                                                                                           \
        struct pt_regex_hint h_ = hint_of(src, 0);                                                 \
        ck_assert_msg(h_.part##_len == strlen(want) && memcmp(h_.part, want, h_.part##_len) == 0,  \
                      #part " of %s: \"%.*s\", expected \"%s\"", src, (int)h_.part##_len, h_.part, \
                      want);                                                                       \
    } while (0)
#define ck_assert_head(src, want) ck_assert_hint(src, head, want)
#define ck_assert_tail(src, want) ck_assert_hint(src, tail, want)

START_TEST(anchored_regex_has_its_literal_start_as_head)
{
    ck_assert_head("^/rules/old/(.*)$", "/rules/old/");
    ck_assert_head("^/blog/\\d+", "/blog/");
    ck_assert_head("^/a\\.b\\-c/x", "/a.b-c/x");
    ck_assert_head("^/ab+c", "/ab"); /* one b at least */
    ck_assert_head("^/ab?c", "/a");  /* b may be absent */
    ck_assert_head("^/ab*c", "/a");
    ck_assert_head("^/ab{2}c", "/a");
    ck_assert_head("^/api(?i)/v1", "/api"); /* an option after the head leaves it */
    ck_assert_head("/rules/old", "");       /* not anchored */
    ck_assert_head("^/a|^/b", "");          /* either branch */
    ck_assert_head("^(?i)/abc", "");
    ck_assert_head("^[/]abc", "");
    ck_assert_head("^\\d", "");
}
END_TEST

START_TEST(regex_ending_in_dollar_has_its_literal_end_as_tail)
{
    ck_assert_tail("\\.php$", ".php");
    ck_assert_tail("/index\\.html$", "/index.html");
    ck_assert_tail("^/rules/(.*)\\.(zip|tar\\.gz)$", "");
    ck_assert_tail("^/x/(.*)\\.jpg$", ".jpg");
    ck_assert_tail("[a-z]+\\.css$", ".css");
    ck_assert_tail("ab+c$", "bc"); /* a match ends with one b, then c */
    ck_assert_tail("a+?b$", "b");  /* lazy: still one a, but "a+?" itself is not text */
    ck_assert_tail("a[$]$", "");
    ck_assert_tail("\\.php\\$", ""); /* an escaped $ is text, not the end */
    ck_assert_tail("\\.php", "");
    ck_assert_tail("x|\\.php$", "");        /* the $ binds its branch */
    ck_assert_tail("(?i)\\.php$", "");      /* an option changes the text's case */
    ck_assert_tail("(*CR)\\.php$", "");     /* a verb changes what $ means */
    ck_assert_tail("\\Q.php\\E$", "");      /* quoted text */
    ck_assert_tail("(?:a|b)\\.js$", ".js"); /* a plain group is fine */
    ck_assert_tail("[[:alpha:]]\\.js$", ".js");
    ck_assert_tail("\\.php?$", ""); /* "x.ph" or "x.php": no common end */
}
END_TEST

START_TEST(long_literal_keeps_its_last_characters)
{
    struct pt_regex_hint h =
        hint_of("/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaz$", 0);

    ck_assert_uint_eq(h.tail_len, PT_REGEX_HINT_MAX);
    ck_assert_int_eq(h.tail[PT_REGEX_HINT_MAX - 1], 'z');
}
END_TEST

START_TEST(hint_rules_out_what_cannot_match)
{
    struct pt_regex_hint h = hint_of("\\.php$", 0);

    ck_assert(!pt_regex_may_match(&h, "/hello", 6));
    ck_assert(pt_regex_may_match(&h, "/a.php", 6));
    ck_assert(pt_regex_may_match(&h, "/a.php\n", 7)); /* $ before a final newline */
    ck_assert(!pt_regex_may_match(&h, "/a.PHP", 6));
    h = hint_of("\\.php$", 1);
    ck_assert(pt_regex_may_match(&h, "/a.PHP", 6));
    h = hint_of("^/rules/old/", 0);
    ck_assert(!pt_regex_may_match(&h, "/rules/hello", 12));
    ck_assert(!pt_regex_may_match(&h, "/rules", 6));
    ck_assert(pt_regex_may_match(&h, "/rules/old/x", 12));
    h = hint_of("(a|b)", 0);
    ck_assert(pt_regex_may_match(&h, "", 0));
    /* The byte after the head, as PCRE2 reads the rest. */
    h = hint_of("^/rules/(en|de|fr)/(.*)$", 0);
    ck_assert(h.has_next);
    ck_assert(!pt_regex_may_match(&h, "/rules/hello", 12));
    ck_assert(!pt_regex_may_match(&h, "/rules/", 7));
    ck_assert(pt_regex_may_match(&h, "/rules/de/x", 11));
    h = hint_of("^/rules/(wp-admin|wp-login\\.php|xmlrpc\\.php)", 0);
    ck_assert(!pt_regex_may_match(&h, "/rules/hello", 12));
    ck_assert(pt_regex_may_match(&h, "/rules/xmlrpc.php", 17));
    h = hint_of("^/a(?i)b", 0);
    ck_assert(pt_regex_may_match(&h, "/aB", 3));
    h = hint_of("^/a(.*)$", 0); /* the rest may be empty: nothing to say */
    ck_assert(!h.has_next);
}
END_TEST

/* Heads and tails of every length are compared whole: a subject differing from one in
 * any single byte is ruled out, the same bytes are not. */
START_TEST(every_byte_of_head_and_tail_counts)
{
    for (size_t n = 1; n <= PT_REGEX_HINT_MAX; n++) {
        char lit[PT_REGEX_HINT_MAX + 1], src[PT_REGEX_HINT_MAX + 3], subj[PT_REGEX_HINT_MAX + 2];
        struct pt_regex_hint head, tail;

        for (size_t k = 0; k < n; k++)
            lit[k] = (char)('a' + (k * 7 + n) % 26);
        lit[n] = '\0';
        snprintf(src, sizeof(src), "^%s", lit);
        head = hint_of(src, 0);
        snprintf(src, sizeof(src), "%s$", lit);
        tail = hint_of(src, 0);
        ck_assert_uint_eq(head.head_len, n);
        ck_assert_uint_eq(tail.tail_len, n);
        memcpy(subj, lit, n);
        subj[n] = '!';
        ck_assert(pt_regex_may_match(&head, subj, n + 1));
        ck_assert(pt_regex_may_match(&tail, subj, n));
        for (size_t k = 0; k < n; k++) {
            subj[k] ^= 0x20;
            ck_assert_msg(!pt_regex_may_match(&head, subj, n + 1), "head %zu, byte %zu", n, k);
            ck_assert_msg(!pt_regex_may_match(&tail, subj, n), "tail %zu, byte %zu", n, k);
            subj[k] ^= 0x20;
        }
    }
}
END_TEST

/* Random patterns from pieces that mean something to PCRE2 (and random subjects from their
 * letters): whenever PCRE2 matches, the hint must allow it. */
START_TEST(hint_never_rules_out_a_match)
{
    static const char *const pieces[] = {
        "a",     "b",       ".",           "\\.",  "/",         "^",      "$",     "(",
        ")",     "|",       "?",           "*",    "+",         "{2}",    "{1,",   "[ab]",
        "[^a]",  "[]a]",    "[[:alpha:]]", "\\d",  "\\w",       "(?:",    "(?i)",  "(?-i)",
        "\\Q",   "\\E",     "\\$",         "\\\\", "\n",        "(*CR)",  "(?#c)", "{",
        "}",     "]",       "\\n",         "A",    "B",         "+?",     "\\/",   "(?=a)",
        "\\x41", "\\x{62}", "\\cA",        "\\pL", "\\1",       "\\012",  "\\Na",  "\\ga",
        "(?R)",  "(?1)",    "(?<=a)",      "\\b",  "(*ACCEPT)", "(?i:a)", "(a|)",  "(?|a|b)"};
    static const char letters[] = "abAB./$\n\\[]{}";
    pcre2_match_data *md = pcre2_match_data_create(10, NULL);
    unsigned seed = 12345;
    int compiled = 0, hinted = 0, nexts = 0;

    for (int i = 0; i < 300000; i++) {
        char src[128] = "", subj[16];
        int caseless = rand_r(&seed) % 4 == 0, n = 1 + rand_r(&seed) % 8, rc;
        size_t slen = (size_t)(rand_r(&seed) % 12);
        PCRE2_SIZE off;
        pcre2_code *code;
        struct pt_regex_hint h;

        /* Half anchored at each end, where hints come from. */
        if (rand_r(&seed) % 2)
            strcat(src, "^");
        for (int k = 0; k < n; k++)
            strcat(src, pieces[rand_r(&seed) % (int)pt_nelems(pieces)]);
        if (rand_r(&seed) % 2)
            strcat(src, "$");
        code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, caseless ? PCRE2_CASELESS : 0,
                             &rc, &off, NULL);
        if (code == NULL)
            continue;
        compiled++;
        pt_regex_hint(&h, src, strlen(src), caseless);
        hinted += h.head_len || h.tail_len;
        nexts += h.has_next;
        for (int t = 0; t < 8; t++) {
            for (size_t k = 0; k < slen; k++)
                subj[k] = letters[rand_r(&seed) % (sizeof(letters) - 1)];
            if (pt_regex_exec(code, subj, slen, md) >= 0)
                ck_assert_msg(pt_regex_may_match(&h, subj, slen),
                              "\"%s\"%s matches \"%.*s\" but its hint (head \"%.*s\", tail "
                              "\"%.*s\") rules it out",
                              src, caseless ? " (caseless)" : "", (int)slen, subj, (int)h.head_len,
                              h.head, (int)h.tail_len, h.tail);
        }
        pcre2_code_free(code);
    }
    pcre2_match_data_free(md);
    /* The generator must reach the cases it is for. */
    ck_assert_int_gt(compiled, 60000);
    ck_assert_int_gt(hinted, 5000);
    ck_assert_int_gt(nexts, 5000);
}
END_TEST

START_TEST(exec_runs_with_and_without_jit)
{
    int rc;
    PCRE2_SIZE off;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR) "^/(\\w+)$", PCRE2_ZERO_TERMINATED, 0, &rc, &off, NULL);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);

    ck_assert_int_eq(pt_regex_exec(code, "/abc", 4, md), 2);
    ck_assert_int_eq(pt_regex_exec(code, "/a/b", 4, md), PCRE2_ERROR_NOMATCH);
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    ck_assert_int_eq(pt_regex_exec(code, "/abc", 4, md), 2);
    ck_assert_uint_eq(pcre2_get_ovector_pointer(md)[2], 1);
    ck_assert_int_eq(pt_regex_exec(code, NULL, 0, md), PCRE2_ERROR_NOMATCH);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("regex");
    TCase *tc = tcase_create("hints");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, anchored_regex_has_its_literal_start_as_head);
    tcase_add_test(tc, regex_ending_in_dollar_has_its_literal_end_as_tail);
    tcase_add_test(tc, long_literal_keeps_its_last_characters);
    tcase_add_test(tc, hint_rules_out_what_cannot_match);
    tcase_add_test(tc, every_byte_of_head_and_tail_counts);
    tcase_add_test(tc, hint_never_rules_out_a_match);
    tcase_add_test(tc, exec_runs_with_and_without_jit);
    suite_add_tcase(s, tc);
    return s;
}
