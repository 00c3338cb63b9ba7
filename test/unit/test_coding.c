/*
 * test_coding.c: Accept-Encoding negotiation of the gzip module (modules/gzip/gzip.h):
 * which coding pt_coding_negotiate() picks for a header value and the codings offered, and
 * the names pt_coding_name() gives them.  No process, no encoder: pure logic.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check_main.h"
#include "modules/gzip/gzip.h"

#define BR   (1u << PT_CODING_BR)
#define ZSTD (1u << PT_CODING_ZSTD)
#define GZIP (1u << PT_CODING_GZIP)
#define ALL  (BR | ZSTD | GZIP)

/* The coding chosen for Accept-Encoding value <ae> (a C string) among <offered>. */
static enum pt_coding pick(const char *ae, unsigned offered)
{
    return pt_coding_negotiate(pt_str_c(ae), offered);
}

#define ck_assert_coding(ae, offered, want)                                                   \
    ck_assert_msg(pick(ae, offered) == (want), "Accept-Encoding \"%s\": got %s, want %s", ae, \
                  pt_coding_name(pick(ae, offered)), pt_coding_name(want))

/* --- q-values --- */

START_TEST(higher_qvalue_wins)
{
    ck_assert_coding("gzip;q=0.5, br;q=0.9", ALL, PT_CODING_BR);
    ck_assert_coding("br;q=0.5, gzip;q=0.9", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=0.3, zstd;q=0.2, gzip;q=0.1", ALL, PT_CODING_BR);
}
END_TEST

START_TEST(missing_qvalue_is_one)
{
    ck_assert_coding("gzip, br;q=0.999", ALL, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=1, br;q=1.000, zstd;q=0.999", ALL, PT_CODING_BR);
}
END_TEST

START_TEST(qvalue_has_three_decimals_of_precision)
{
    ck_assert_coding("br;q=0.001, gzip;q=0.002", ALL, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.001", GZIP, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.01, br;q=0.009", ALL, PT_CODING_GZIP);
}
END_TEST

START_TEST(qvalue_forms_allowed_by_the_grammar)
{
    /* RFC 9110 12.4.2: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ] */
    ck_assert_coding("gzip;q=0.", GZIP, PT_CODING_NONE);
    ck_assert_coding("gzip;q=1.", GZIP, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.50, br;q=0.5", ALL, PT_CODING_BR); /* equal: server order */
    ck_assert_coding("gzip;q=0.000", GZIP, PT_CODING_NONE);
}
END_TEST

START_TEST(other_parameters_do_not_change_the_weight)
{
    ck_assert_coding("gzip;level=9;q=0.9, br;q=0.5", ALL, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.2;foo=bar, br;q=0.5", ALL, PT_CODING_BR);
}
END_TEST

/* --- ties --- */

START_TEST(ties_go_to_server_order)
{
    ck_assert_coding("gzip, zstd, br", ALL, PT_CODING_BR);
    ck_assert_coding("gzip, zstd", ALL, PT_CODING_ZSTD);
    ck_assert_coding("gzip;q=0.5, zstd;q=0.5, br;q=0.4", ALL, PT_CODING_ZSTD);
    ck_assert_coding("gzip, deflate, br, zstd", ALL, PT_CODING_BR); /* a browser's header */
}
END_TEST

/* --- "*" --- */

START_TEST(star_weights_unlisted_codings)
{
    ck_assert_coding("*", ALL, PT_CODING_BR);
    ck_assert_coding("*", GZIP, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.5, *;q=0.8", ALL, PT_CODING_BR);
    ck_assert_coding("gzip;q=0.5, *;q=0.8", GZIP, PT_CODING_GZIP);
    ck_assert_coding("*;q=0.1, gzip", ALL, PT_CODING_GZIP);
}
END_TEST

START_TEST(star_q0_refuses_unlisted_but_not_listed)
{
    ck_assert_coding("*;q=0, gzip", ALL, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.2, *;q=0", ALL, PT_CODING_GZIP);
    ck_assert_coding("*;q=0", ALL, PT_CODING_NONE);
}
END_TEST

START_TEST(gzip_q0_refuses_gzip_even_with_star)
{
    ck_assert_coding("gzip;q=0, *", GZIP, PT_CODING_NONE);
    ck_assert_coding("*, gzip;q=0", GZIP, PT_CODING_NONE);
    ck_assert_coding("gzip;q=0, *", ALL, PT_CODING_BR);
    ck_assert_coding("gzip;q=0, *", GZIP | ZSTD, PT_CODING_ZSTD);
}
END_TEST

START_TEST(q0_refuses_a_listed_coding)
{
    ck_assert_coding("br;q=0, gzip;q=0.1", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=0", BR, PT_CODING_NONE);
    ck_assert_coding("br;q=0.000, zstd", ALL, PT_CODING_ZSTD);
}
END_TEST

/* --- names --- */

START_TEST(x_gzip_is_gzip)
{
    ck_assert_coding("x-gzip", ALL, PT_CODING_GZIP);
    ck_assert_coding("x-gzip;q=0.5, br;q=0.4", ALL, PT_CODING_GZIP);
    ck_assert_coding("X-GZIP", GZIP, PT_CODING_GZIP);
}
END_TEST

START_TEST(names_are_case_insensitive)
{
    ck_assert_coding("GZIP", GZIP, PT_CODING_GZIP);
    ck_assert_coding("Br;Q=0.9, gZiP;q=0.5", ALL, PT_CODING_BR);
    ck_assert_coding("ZSTD", ALL, PT_CODING_ZSTD);
    ck_assert_coding("gzip;Q=0", GZIP, PT_CODING_NONE);
}
END_TEST

START_TEST(names_match_whole_tokens_only)
{
    ck_assert_coding("gzipx", ALL, PT_CODING_NONE);
    ck_assert_coding("xgzip, brotli, zst", ALL, PT_CODING_NONE);
    ck_assert_coding("deflate, compress", ALL, PT_CODING_NONE);
}
END_TEST

/* --- syntax --- */

START_TEST(optional_white_space_is_ignored)
{
    ck_assert_coding("  gzip ;q=0.5 ,\tbr\t; q=0.9  ", ALL, PT_CODING_BR);
    ck_assert_coding("\tgzip\t", GZIP, PT_CODING_GZIP);
    ck_assert_coding("br;q=0.1 ,gzip ; q=0.2", ALL, PT_CODING_GZIP);
}
END_TEST

START_TEST(empty_list_elements_are_ignored)
{
    ck_assert_coding(", , gzip, ,", GZIP, PT_CODING_GZIP);
    ck_assert_coding(",;q=0.5,", ALL, PT_CODING_NONE);
}
END_TEST

START_TEST(qvalue_above_one_ignores_the_element)
{
    ck_assert_coding("gzip;q=2", GZIP, PT_CODING_NONE);
    ck_assert_coding("br;q=2, gzip;q=0.5", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=1.001, gzip;q=0.5", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=1.5, gzip;q=0.5", ALL, PT_CODING_GZIP);
}
END_TEST

START_TEST(qvalue_with_four_decimals_ignores_the_element)
{
    ck_assert_coding("br;q=0.1234, gzip;q=0.1", ALL, PT_CODING_GZIP);
    ck_assert_coding("gzip;q=0.1234", GZIP, PT_CODING_NONE);
}
END_TEST

START_TEST(non_numeric_qvalue_ignores_the_element)
{
    ck_assert_coding("br;q=abc, gzip;q=0.1", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=, gzip;q=0.1", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=.5, gzip;q=0.1", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=0.5x, gzip;q=0.1", ALL, PT_CODING_GZIP);
    ck_assert_coding("br;q=-0, gzip;q=0.1", ALL, PT_CODING_GZIP);
}
END_TEST

START_TEST(bad_qvalue_on_zero_does_not_refuse)
{
    /* "gzip;q=abc" is ignored, not read as q=0: gzip keeps the weight of "*" */
    ck_assert_coding("gzip;q=abc, *", GZIP, PT_CODING_GZIP);
}
END_TEST

/* --- nothing acceptable --- */

START_TEST(empty_header_means_identity)
{
    ck_assert_coding("", ALL, PT_CODING_NONE);
    ck_assert_coding("   ", ALL, PT_CODING_NONE);
}
END_TEST

START_TEST(absent_header_means_identity)
{
    ck_assert_int_eq(pt_coding_negotiate(PT_NULL_STR, ALL), PT_CODING_NONE);
    ck_assert_int_eq(pt_coding_negotiate(PT_NULL_STR, GZIP), PT_CODING_NONE);
}
END_TEST

START_TEST(only_identity_means_identity)
{
    ck_assert_coding("identity", ALL, PT_CODING_NONE);
    ck_assert_coding("identity;q=1, *;q=0", ALL, PT_CODING_NONE);
}
END_TEST

/* --- what the server offers --- */

START_TEST(offered_mask_limits_the_choice)
{
    ck_assert_coding("br, gzip;q=0.5", GZIP, PT_CODING_GZIP);
    ck_assert_coding("br;q=1, zstd;q=0.9, gzip;q=0.8", GZIP | ZSTD, PT_CODING_ZSTD);
    ck_assert_coding("br", GZIP, PT_CODING_NONE);
    ck_assert_coding("zstd, br", GZIP | BR, PT_CODING_BR);
}
END_TEST

START_TEST(nothing_offered_means_identity)
{
    ck_assert_coding("gzip, br, zstd, *", 0, PT_CODING_NONE);
}
END_TEST

START_TEST(coding_names)
{
    ck_assert_str_eq(pt_coding_name(PT_CODING_BR), "br");
    ck_assert_str_eq(pt_coding_name(PT_CODING_ZSTD), "zstd");
    ck_assert_str_eq(pt_coding_name(PT_CODING_GZIP), "gzip");
    ck_assert_str_eq(pt_coding_name(PT_CODING_NONE), "identity");
}
END_TEST

/* --- encoders --- */

struct sink {
    char buf[4096];
    size_t len;
};

static int collect(void *arg, const char *out, size_t n)
{
    struct sink *k = arg;

    ck_assert_uint_le(k->len + n, sizeof(k->buf));
    memcpy(k->buf + k->len, out, n);
    k->len += n;
    return PT_OK;
}

/* Gzip-compresses <text> with a fresh or spare encoder and checks it decompresses to it. */
static void round_trip(const char *text)
{
    struct pt_encoder *e = pt_encoder_new(PT_CODING_GZIP, 1);
    struct sink k = {.len = 0};
    char out[256];
    z_stream z = {0};

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(pt_encoder_write(e, text, strlen(text), PT_ENC_END, collect, &k), PT_OK);
    pt_encoder_done(e);
    ck_assert_int_eq(inflateInit2(&z, 16 + 15), Z_OK);
    z.next_in = (Bytef *)k.buf;
    z.avail_in = (uInt)k.len;
    z.next_out = (Bytef *)out;
    z.avail_out = sizeof(out);
    ck_assert_int_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    ck_assert_uint_eq(sizeof(out) - z.avail_out, strlen(text));
    ck_assert_mem_eq(out, text, strlen(text));
    inflateEnd(&z);
}

/* Compresses <text> whole with <e> into <k>. */
static void encode_whole(struct pt_encoder *e, const char *text, struct sink *k)
{
    ck_assert_ptr_nonnull(e);
    k->len = 0;
    ck_assert_int_eq(pt_encoder_write(e, text, strlen(text), PT_ENC_END, collect, k), PT_OK);
}

START_TEST(a_finished_encoder_is_kept_and_handed_out_again)
{
    /* Level 7: no other encoder of this process is of it. */
    struct pt_encoder *e = pt_encoder_new(PT_CODING_GZIP, 7), *fresh;
    struct sink reused, plain;
    int spares = pt_encoder_spares();

    encode_whole(e, "the first response", &reused);
    pt_encoder_done(e);
    ck_assert_int_eq(pt_encoder_spares(), spares + 1);
    e = pt_encoder_new(PT_CODING_GZIP, 7);
    ck_assert_int_eq(pt_encoder_spares(), spares);
    /* None is left for a second one at once: it is new, and the reset one must write the
     * very bytes it does. */
    fresh = pt_encoder_new(PT_CODING_GZIP, 7);
    ck_assert_ptr_ne(fresh, e);
    encode_whole(e, "the second response", &reused);
    encode_whole(fresh, "the second response", &plain);
    ck_assert_uint_eq(reused.len, plain.len);
    ck_assert_mem_eq(reused.buf, plain.buf, plain.len);
    pt_encoder_free(e);
    pt_encoder_free(fresh);
}
END_TEST

START_TEST(a_reused_encoder_starts_a_new_stream)
{
    /* The second and third streams come from the encoder the first one handed back. */
    round_trip("first response, first stream");
    round_trip("second response: nothing of the first may leak in");
    round_trip("third");
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("coding");
    TCase *q = tcase_create("qvalues"), *star = tcase_create("star");
    TCase *names = tcase_create("names"), *syntax = tcase_create("syntax");
    TCase *none = tcase_create("identity"), *offer = tcase_create("offered");
    TCase *enc = tcase_create("encoders");

    tcase_add_test(q, higher_qvalue_wins);
    tcase_add_test(q, missing_qvalue_is_one);
    tcase_add_test(q, qvalue_has_three_decimals_of_precision);
    tcase_add_test(q, qvalue_forms_allowed_by_the_grammar);
    tcase_add_test(q, other_parameters_do_not_change_the_weight);
    tcase_add_test(q, ties_go_to_server_order);
    tcase_add_test(q, q0_refuses_a_listed_coding);
    suite_add_tcase(s, q);

    tcase_add_test(star, star_weights_unlisted_codings);
    tcase_add_test(star, star_q0_refuses_unlisted_but_not_listed);
    tcase_add_test(star, gzip_q0_refuses_gzip_even_with_star);
    suite_add_tcase(s, star);

    tcase_add_test(names, x_gzip_is_gzip);
    tcase_add_test(names, names_are_case_insensitive);
    tcase_add_test(names, names_match_whole_tokens_only);
    tcase_add_test(names, coding_names);
    suite_add_tcase(s, names);

    tcase_add_test(syntax, optional_white_space_is_ignored);
    tcase_add_test(syntax, empty_list_elements_are_ignored);
    tcase_add_test(syntax, qvalue_above_one_ignores_the_element);
    tcase_add_test(syntax, qvalue_with_four_decimals_ignores_the_element);
    tcase_add_test(syntax, non_numeric_qvalue_ignores_the_element);
    tcase_add_test(syntax, bad_qvalue_on_zero_does_not_refuse);
    suite_add_tcase(s, syntax);

    tcase_add_test(none, empty_header_means_identity);
    tcase_add_test(none, absent_header_means_identity);
    tcase_add_test(none, only_identity_means_identity);
    suite_add_tcase(s, none);

    tcase_add_test(offer, offered_mask_limits_the_choice);
    tcase_add_test(offer, nothing_offered_means_identity);
    suite_add_tcase(s, offer);

    tcase_add_test(enc, a_finished_encoder_is_kept_and_handed_out_again);
    tcase_add_test(enc, a_reused_encoder_starts_a_new_stream);
    suite_add_tcase(s, enc);
    return s;
}
