/*
 * test_http_chunked.c: the chunked body decoder (worker/http_parse.c).
 */
#include "check_main.h"
#include "test_http_util.h"

static struct pt_chunked ck;
static char body[16384];
static size_t body_len;

/*
 * Decodes the <n> bytes <s>, handed over in pieces of at most <piece> bytes (each piece
 * from a fresh copy, so that a slice kept too long would be caught by ASan), collecting
 * the body into <body>.  Returns the bytes consumed in all, or PT_ERROR.
 */
static ssize_t decode_pieces(const char *s, size_t n, size_t piece)
{
    size_t off = 0;

    memset(&ck, 0, sizeof(ck));
    body_len = 0;
    while (off < n && !ck.done) {
        size_t avail = pt_min(piece, n - off);
        char *copy = malloc(avail);
        struct pt_str data;

        memcpy(copy, s + off, avail);
        ssize_t used = pt_chunked_parse(&ck, copy, avail, &data);
        if (used >= 0) {
            ck_assert_uint_le((size_t)used, avail);
            /* a call that returns data stops right after it */
            ck_assert(data.len == 0 || (data.p >= copy && data.p + data.len == copy + used));
            memcpy(body + body_len, data.p, data.len);
            body_len += data.len;
        }
        free(copy);
        if (used < 0)
            return used;
        off += (size_t)used;
    }
    return (ssize_t)off;
}

static ssize_t decode(const char *s)
{
    return decode_pieces(s, strlen(s), SIZE_MAX);
}

#define ck_assert_body(lit)                                                      \
    ck_assert_msg(body_len == strlen(lit) && memcmp(body, (lit), body_len) == 0, \
                  "expected body \"%s\", got \"%.*s\"", (lit), (int)body_len, body)

START_TEST(single_chunk_is_decoded)
{
    const char *s = "5\r\nhello\r\n0\r\n\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen(s));
    ck_assert(ck.done);
    ck_assert_body("hello");
}
END_TEST

START_TEST(several_chunks_are_decoded)
{
    const char *s = "5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen(s));
    ck_assert_body("hello 0123456789");
}
END_TEST

START_TEST(hex_digits_are_case_insensitive)
{
    char s[64] = "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen(s));
    ck_assert_uint_eq(body_len, 20);
}
END_TEST

START_TEST(empty_body_is_just_the_last_chunk)
{
    ck_assert_int_eq(decode("0\r\n\r\n"), 5);
    ck_assert(ck.done);
    ck_assert_uint_eq(body_len, 0);
}
END_TEST

START_TEST(one_call_stops_right_after_its_data_slice)
{
    const char *s = "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
    struct pt_str data;

    memset(&ck, 0, sizeof(ck));
    ck_assert_int_eq(pt_chunked_parse(&ck, s, strlen(s), &data), 5);
    ck_assert_ptr_eq(data.p, s + 3);
    ck_assert_uint_eq(data.len, 2);
    /* the next call starts at the CRLF after "ab" */
    ck_assert_int_eq(pt_chunked_parse(&ck, s + 5, strlen(s) - 5, &data), 7);
    ck_assert_ptr_eq(data.p, s + 10);
    ck_assert_uint_eq(data.len, 2);
    ck_assert_int_eq(pt_chunked_parse(&ck, s + 12, strlen(s) - 12, &data), 7);
    ck_assert_uint_eq(data.len, 0);
    ck_assert(ck.done);
}
END_TEST

START_TEST(partial_chunk_data_is_returned_as_it_comes)
{
    struct pt_str data;

    memset(&ck, 0, sizeof(ck));
    ck_assert_int_eq(pt_chunked_parse(&ck, "a\r\nhel", 6, &data), 6);
    ck_assert_uint_eq(data.len, 3);
    ck_assert(ck.remaining == 7);
    ck_assert_int_eq(pt_chunked_parse(&ck, "lo world\r\n", 10, &data), 7);
    ck_assert_uint_eq(data.len, 7);
    ck_assert(!ck.done);
}
END_TEST

START_TEST(bytes_after_the_body_are_not_consumed)
{
    const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen("3\r\nabc\r\n0\r\n\r\n"));
    ck_assert(ck.done);
}
END_TEST

START_TEST(empty_input_consumes_nothing)
{
    struct pt_str data;
    memset(&ck, 0, sizeof(ck));
    ck_assert_int_eq(pt_chunked_parse(&ck, "", 0, &data), 0);
    ck_assert_uint_eq(data.len, 0);
    ck_assert(!ck.done);
}
END_TEST

START_TEST(bytewise_feeding_gives_the_same_body)
{
    const char *s = "5;ext=\"q;\\\"x\"\r\nhello\r\n3\r\n!!!\r\n0\r\nX-Sum: 1\r\n\r\n";
    for (size_t piece = 1; piece <= 7; piece++) {
        ck_assert_int_eq(decode_pieces(s, strlen(s), piece), (ssize_t)strlen(s));
        ck_assert(ck.done);
        ck_assert_body("hello!!!");
    }
}
END_TEST

START_TEST(sixteen_digit_chunk_size_is_accepted)
{
    struct pt_str data;
    const char *s = "ffffffffffffffff\r\nab";
    memset(&ck, 0, sizeof(ck));
    ck_assert_int_eq(pt_chunked_parse(&ck, s, strlen(s), &data), (ssize_t)strlen(s));
    ck_assert_uint_eq(data.len, 2);
    ck_assert(ck.remaining == UINT64_MAX - 2);
}
END_TEST

START_TEST(chunk_size_over_sixteen_digits_is_error)
{
    ck_assert_int_eq(decode("10000000000000000\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("00000000000000005\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(missing_chunk_size_is_error)
{
    ck_assert_int_eq(decode("\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(decode(";a\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(non_hex_chunk_size_is_error)
{
    ck_assert_int_eq(decode("g\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("0x5\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("-5\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("+5\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bare_lf_after_chunk_size_is_error)
{
    ck_assert_int_eq(decode("5\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bare_cr_after_chunk_size_is_error)
{
    ck_assert_int_eq(decode("5\rhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(chunk_data_longer_than_size_is_error)
{
    ck_assert_int_eq(decode("5\r\nhello!\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bare_lf_after_chunk_data_is_error)
{
    ck_assert_int_eq(decode("5\r\nhello\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(extensions_are_accepted_and_dropped)
{
    const char *s = "5;a=1;b;c=\"x y\" ;d = 2\r\nhello\r\n0;last\r\n\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen(s));
    ck_assert_body("hello");
}
END_TEST

START_TEST(whitespace_before_extension_is_accepted)
{
    const char *s = "5 \t;a\r\nhello\r\n0\r\n\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen(s));
    ck_assert_body("hello");
}
END_TEST

START_TEST(whitespace_after_size_without_extension_is_error)
{
    ck_assert_int_eq(decode("5 \r\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(ctl_in_extension_is_error)
{
    ck_assert_int_eq(decode("5;a\x01\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bare_lf_in_extension_is_error)
{
    ck_assert_int_eq(decode("5;a\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(line_break_inside_quoted_extension_is_error)
{
    ck_assert_int_eq(decode("5;a=\"x\r\n\"\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(non_token_char_in_extension_is_error)
{
    ck_assert_int_eq(decode("5;a@b\r\nhello\r\n0\r\n\r\n"), PT_ERROR);
}
END_TEST

/* A chunk line "1;" followed by <ext> bytes of extension, then data "x". */
static ssize_t decode_with_ext(size_t ext)
{
    static char s[8192];
    size_t n = 0;

    s[n++] = '1';
    s[n++] = ';';
    memset(s + n, 'e', ext - 1); /* the ';' counts as extension */
    n += ext - 1;
    memcpy(s + n, "\r\nx\r\n0\r\n\r\n", 10);
    return decode_pieces(s, n + 10, SIZE_MAX);
}

START_TEST(extension_of_4096_bytes_is_accepted)
{
    ck_assert_int_eq(decode_with_ext(PT_CHUNK_MAX_EXT), PT_CHUNK_MAX_EXT + 11);
    ck_assert_body("x");
}
END_TEST

START_TEST(extension_over_4096_bytes_is_error)
{
    ck_assert_int_eq(decode_with_ext(PT_CHUNK_MAX_EXT + 1), PT_ERROR);
}
END_TEST

START_TEST(extension_bound_is_per_chunk_line)
{
    static char s[16384];
    size_t n = 0;

    for (int i = 0; i < 3; i++) {
        s[n++] = '1';
        s[n++] = ';';
        memset(s + n, 'e', 3000);
        n += 3000;
        memcpy(s + n, "\r\nx\r\n", 5);
        n += 5;
    }
    memcpy(s + n, "0\r\n\r\n", 5);
    ck_assert_int_eq(decode_pieces(s, n + 5, SIZE_MAX), (ssize_t)n + 5);
    ck_assert_body("xxx");
}
END_TEST

START_TEST(trailers_are_validated_and_dropped)
{
    const char *s = "3\r\nabc\r\n0\r\nX-Checksum: 123\r\nX-Other:\tv v\r\n\r\n";
    ck_assert_int_eq(decode(s), (ssize_t)strlen(s));
    ck_assert(ck.done);
    ck_assert_body("abc");
}
END_TEST

START_TEST(obs_fold_in_trailer_is_error)
{
    ck_assert_int_eq(decode("0\r\nX-A: a\r\n b\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(trailer_without_colon_is_error)
{
    ck_assert_int_eq(decode("0\r\nX-A\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("0\r\nX-A b\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(ctl_in_trailer_value_is_error)
{
    ck_assert_int_eq(decode("0\r\nX-A: a\x01\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bare_lf_in_trailers_is_error)
{
    ck_assert_int_eq(decode("0\r\nX-A: a\n\r\n"), PT_ERROR);
    ck_assert_int_eq(decode("0\r\n\n"), PT_ERROR);
}
END_TEST

START_TEST(trailers_over_8k_are_error)
{
    static char s[PT_CHUNK_MAX_TRAILERS + 64];
    size_t n = (size_t)sprintf(s, "0\r\nX-Big: ");

    memset(s + n, 'v', PT_CHUNK_MAX_TRAILERS);
    n += PT_CHUNK_MAX_TRAILERS;
    memcpy(s + n, "\r\n\r\n", 4);
    ck_assert_int_eq(decode_pieces(s, n + 4, SIZE_MAX), PT_ERROR);
}
END_TEST

START_TEST(trailers_of_exactly_8k_are_accepted)
{
    static char s[PT_CHUNK_MAX_TRAILERS + 64];
    size_t n = (size_t)sprintf(s, "0\r\nX-Big: ");
    size_t fill = PT_CHUNK_MAX_TRAILERS - strlen("X-Big: ") - 4; /* line CRLF + final CRLF */

    memset(s + n, 'v', fill);
    n += fill;
    memcpy(s + n, "\r\n\r\n", 4);
    ck_assert_int_eq(decode_pieces(s, n + 4, SIZE_MAX), (ssize_t)n + 4);
    ck_assert(ck.done);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("http_chunked");
    TCase *data = tcase_create("data");
    TCase *size = tcase_create("size");
    TCase *ext = tcase_create("extensions");
    TCase *trailers = tcase_create("trailers");

    tcase_add_test(data, single_chunk_is_decoded);
    tcase_add_test(data, several_chunks_are_decoded);
    tcase_add_test(data, hex_digits_are_case_insensitive);
    tcase_add_test(data, empty_body_is_just_the_last_chunk);
    tcase_add_test(data, one_call_stops_right_after_its_data_slice);
    tcase_add_test(data, partial_chunk_data_is_returned_as_it_comes);
    tcase_add_test(data, bytes_after_the_body_are_not_consumed);
    tcase_add_test(data, empty_input_consumes_nothing);
    tcase_add_test(data, bytewise_feeding_gives_the_same_body);
    tcase_add_test(data, chunk_data_longer_than_size_is_error);
    tcase_add_test(data, bare_lf_after_chunk_data_is_error);
    suite_add_tcase(s, data);

    tcase_add_test(size, sixteen_digit_chunk_size_is_accepted);
    tcase_add_test(size, chunk_size_over_sixteen_digits_is_error);
    tcase_add_test(size, missing_chunk_size_is_error);
    tcase_add_test(size, non_hex_chunk_size_is_error);
    tcase_add_test(size, bare_lf_after_chunk_size_is_error);
    tcase_add_test(size, bare_cr_after_chunk_size_is_error);
    suite_add_tcase(s, size);

    tcase_add_test(ext, extensions_are_accepted_and_dropped);
    tcase_add_test(ext, whitespace_before_extension_is_accepted);
    tcase_add_test(ext, whitespace_after_size_without_extension_is_error);
    tcase_add_test(ext, ctl_in_extension_is_error);
    tcase_add_test(ext, bare_lf_in_extension_is_error);
    tcase_add_test(ext, line_break_inside_quoted_extension_is_error);
    tcase_add_test(ext, non_token_char_in_extension_is_error);
    tcase_add_test(ext, extension_of_4096_bytes_is_accepted);
    tcase_add_test(ext, extension_over_4096_bytes_is_error);
    tcase_add_test(ext, extension_bound_is_per_chunk_line);
    suite_add_tcase(s, ext);

    tcase_add_test(trailers, trailers_are_validated_and_dropped);
    tcase_add_test(trailers, obs_fold_in_trailer_is_error);
    tcase_add_test(trailers, trailer_without_colon_is_error);
    tcase_add_test(trailers, ctl_in_trailer_value_is_error);
    tcase_add_test(trailers, bare_lf_in_trailers_is_error);
    tcase_add_test(trailers, trailers_over_8k_are_error);
    tcase_add_test(trailers, trailers_of_exactly_8k_are_accepted);
    suite_add_tcase(s, trailers);
    return s;
}
