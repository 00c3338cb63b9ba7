/*
 * test_normalize.c: the request path normalization policy (worker/normalize.h).
 */
#include <check.h>
#include <stdlib.h>

#include "check_main.h"
#include "worker/normalize.h"

/* Normalizes <in> and asserts the result is exactly <want> (length and NUL included). */
static void assert_normalizes(const char *in, const char *want)
{
    size_t len = strlen(in), out_len = 12345;
    char *out = malloc(3 * len + 1);

    ck_assert_ptr_nonnull(out);
    ck_assert_msg(pt_path_normalize(in, len, out, &out_len) == PT_OK, "\"%s\" rejected", in);
    ck_assert_uint_eq(out_len, strlen(want));
    ck_assert_str_eq(out, want);
    free(out);
}

/* Asserts that normalizing <in>/<len> answers 400. */
static void assert_rejected_len(const char *in, size_t len)
{
    size_t out_len = 0;
    char *out = malloc(3 * len + 1);

    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(pt_path_normalize(in, len, out, &out_len), 400);
    free(out);
}

static void assert_rejected(const char *in)
{
    assert_rejected_len(in, strlen(in));
}

START_TEST(plain_path_is_unchanged)
{
    assert_normalizes("/a/b/c.html", "/a/b/c.html");
}
END_TEST

START_TEST(root_is_unchanged)
{
    assert_normalizes("/", "/");
}
END_TEST

START_TEST(trailing_slash_is_kept)
{
    assert_normalizes("/a/b/", "/a/b/");
}
END_TEST

START_TEST(runs_of_slashes_are_merged)
{
    assert_normalizes("//a///b//c//", "/a/b/c/");
}
END_TEST

START_TEST(dot_segment_is_removed)
{
    assert_normalizes("/a/./b/./c", "/a/b/c");
}
END_TEST

START_TEST(dotdot_removes_previous_segment)
{
    assert_normalizes("/a/b/../c", "/a/c");
}
END_TEST

START_TEST(consecutive_dotdots_remove_one_segment_each)
{
    assert_normalizes("/a/b/c/../../d", "/a/d");
}
END_TEST

START_TEST(dotdot_after_merged_slashes_removes_previous_segment)
{
    assert_normalizes("/a//b//..//c", "/a/c");
}
END_TEST

START_TEST(trailing_dot_leaves_trailing_slash)
{
    assert_normalizes("/a/b/.", "/a/b/");
}
END_TEST

START_TEST(trailing_dotdot_leaves_trailing_slash)
{
    assert_normalizes("/a/b/..", "/a/");
}
END_TEST

START_TEST(dotdot_back_to_root_gives_root)
{
    assert_normalizes("/a/..", "/");
}
END_TEST

START_TEST(single_dot_at_root_gives_root)
{
    assert_normalizes("/.", "/");
}
END_TEST

START_TEST(dotdot_above_root_is_rejected)
{
    assert_rejected("/..");
}
END_TEST

START_TEST(dotdot_above_root_after_a_segment_is_rejected)
{
    assert_rejected("/a/../..");
}
END_TEST

START_TEST(leading_dotdot_with_more_path_is_rejected)
{
    assert_rejected("/../etc/passwd");
}
END_TEST

START_TEST(dots_that_are_not_whole_segments_are_kept)
{
    assert_normalizes("/a/.../.b/c./d..e", "/a/.../.b/c./d..e");
}
END_TEST

START_TEST(encoded_dotdot_is_a_dot_segment)
{
    assert_normalizes("/a/b/%2e%2E/c", "/a/c");
}
END_TEST

START_TEST(mixed_encoded_and_raw_dots_are_a_dot_segment)
{
    assert_normalizes("/a/b/.%2e/c", "/a/c");
}
END_TEST

START_TEST(encoded_single_dot_is_removed)
{
    assert_normalizes("/a/%2E/b", "/a/b");
}
END_TEST

START_TEST(encoded_dotdot_above_root_is_rejected)
{
    assert_rejected("/%2e%2e/etc/passwd");
}
END_TEST

START_TEST(unreserved_escapes_are_decoded)
{
    assert_normalizes("/%7Euser/%41%62%2D%5f%30", "/~user/Ab-_0");
}
END_TEST

START_TEST(reserved_escapes_are_kept_with_upper_case_hex)
{
    assert_normalizes("/a%3ab%3Fc%20d%e2%82%ac", "/a%3Ab%3Fc%20d%E2%82%AC");
}
END_TEST

START_TEST(encoded_slash_is_kept_encoded)
{
    assert_normalizes("/a%2fb", "/a%2Fb");
}
END_TEST

START_TEST(encoded_slash_is_not_a_separator_for_dotdot)
{
    assert_normalizes("/a/b%2F..%2Fc", "/a/b%2F..%2Fc");
}
END_TEST

START_TEST(dotdot_followed_by_encoded_slash_is_not_a_dot_segment)
{
    assert_normalizes("/a/..%2f", "/a/..%2F");
}
END_TEST

START_TEST(encoded_percent_is_not_decoded_twice)
{
    assert_normalizes("/%25%32%65", "/%252e");
}
END_TEST

START_TEST(sub_delims_colon_and_at_are_allowed_raw)
{
    assert_normalizes("/a!$&'()*+,;=:@b", "/a!$&'()*+,;=:@b");
}
END_TEST

START_TEST(raw_utf8_is_percent_encoded)
{
    assert_normalizes("/caf\xc3\xa9/\xd1\x8f", "/caf%C3%A9/%D1%8F");
}
END_TEST

START_TEST(raw_bytes_0x80_to_0xff_are_percent_encoded)
{
    assert_normalizes("/\x80\xff", "/%80%FF");
}
END_TEST

START_TEST(encoded_utf8_is_not_decoded)
{
    /* so "/caf%c3%a9" and "/caf\xc3\xa9" are one canonical path (policy in normalize.h) */
    assert_normalizes("/caf%c3%a9", "/caf%C3%A9");
}
END_TEST

START_TEST(raw_utf8_segment_is_removed_by_dotdot)
{
    assert_normalizes("/a/\xc3\xa9/../b", "/a/b");
}
END_TEST

START_TEST(dots_next_to_raw_utf8_are_not_a_dot_segment)
{
    assert_normalizes("/a/..\xc2\xa0/b", "/a/..%C2%A0/b");
}
END_TEST

START_TEST(escape_with_non_hex_digit_is_rejected)
{
    assert_rejected("/a%G1");
}
END_TEST

START_TEST(escape_with_second_non_hex_digit_is_rejected)
{
    assert_rejected("/a%1z");
}
END_TEST

START_TEST(truncated_escape_at_end_is_rejected)
{
    assert_rejected("/a%4");
}
END_TEST

START_TEST(bare_percent_at_end_is_rejected)
{
    assert_rejected("/a%");
}
END_TEST

START_TEST(truncated_escape_before_slash_is_rejected)
{
    assert_rejected("/a%4/b");
}
END_TEST

START_TEST(encoded_nul_is_rejected)
{
    assert_rejected("/a%00b");
}
END_TEST

START_TEST(raw_nul_is_rejected)
{
    assert_rejected_len("/a\0b", 4);
}
END_TEST

START_TEST(raw_backslash_is_rejected)
{
    assert_rejected("/a\\..\\b");
}
END_TEST

START_TEST(raw_controls_space_and_del_are_rejected)
{
    assert_rejected("/a\x01"
                    "b");
    assert_rejected("/a\tb");
    assert_rejected("/a b");
    assert_rejected("/a\x7f"
                    "b");
}
END_TEST

START_TEST(raw_delimiters_not_allowed_in_a_path_are_rejected)
{
    assert_rejected("/a\"b");
    assert_rejected("/a<b");
    assert_rejected("/a|b");
    assert_rejected("/a#b");
    assert_rejected("/a?b");
}
END_TEST

START_TEST(path_without_leading_slash_is_rejected)
{
    assert_rejected("a/b");
}
END_TEST

START_TEST(empty_path_is_rejected)
{
    assert_rejected("");
}
END_TEST

START_TEST(output_fits_in_input_length_plus_one)
{
    /* Only len + 1 bytes: ASan would catch a write past them. */
    assert_normalizes("//////", "/");
    assert_normalizes("/%41", "/A");
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("normalize");
    TCase *ok = tcase_create("canonical");
    TCase *bad = tcase_create("rejected");

    tcase_add_test(ok, plain_path_is_unchanged);
    tcase_add_test(ok, root_is_unchanged);
    tcase_add_test(ok, trailing_slash_is_kept);
    tcase_add_test(ok, runs_of_slashes_are_merged);
    tcase_add_test(ok, dot_segment_is_removed);
    tcase_add_test(ok, dotdot_removes_previous_segment);
    tcase_add_test(ok, consecutive_dotdots_remove_one_segment_each);
    tcase_add_test(ok, dotdot_after_merged_slashes_removes_previous_segment);
    tcase_add_test(ok, trailing_dot_leaves_trailing_slash);
    tcase_add_test(ok, trailing_dotdot_leaves_trailing_slash);
    tcase_add_test(ok, dotdot_back_to_root_gives_root);
    tcase_add_test(ok, single_dot_at_root_gives_root);
    tcase_add_test(ok, dots_that_are_not_whole_segments_are_kept);
    tcase_add_test(ok, encoded_dotdot_is_a_dot_segment);
    tcase_add_test(ok, mixed_encoded_and_raw_dots_are_a_dot_segment);
    tcase_add_test(ok, encoded_single_dot_is_removed);
    tcase_add_test(ok, unreserved_escapes_are_decoded);
    tcase_add_test(ok, reserved_escapes_are_kept_with_upper_case_hex);
    tcase_add_test(ok, encoded_slash_is_kept_encoded);
    tcase_add_test(ok, encoded_slash_is_not_a_separator_for_dotdot);
    tcase_add_test(ok, dotdot_followed_by_encoded_slash_is_not_a_dot_segment);
    tcase_add_test(ok, encoded_percent_is_not_decoded_twice);
    tcase_add_test(ok, sub_delims_colon_and_at_are_allowed_raw);
    tcase_add_test(ok, output_fits_in_input_length_plus_one);
    tcase_add_test(ok, raw_utf8_is_percent_encoded);
    tcase_add_test(ok, raw_bytes_0x80_to_0xff_are_percent_encoded);
    tcase_add_test(ok, encoded_utf8_is_not_decoded);
    tcase_add_test(ok, raw_utf8_segment_is_removed_by_dotdot);
    tcase_add_test(ok, dots_next_to_raw_utf8_are_not_a_dot_segment);
    suite_add_tcase(s, ok);

    tcase_add_test(bad, dotdot_above_root_is_rejected);
    tcase_add_test(bad, dotdot_above_root_after_a_segment_is_rejected);
    tcase_add_test(bad, leading_dotdot_with_more_path_is_rejected);
    tcase_add_test(bad, encoded_dotdot_above_root_is_rejected);
    tcase_add_test(bad, escape_with_non_hex_digit_is_rejected);
    tcase_add_test(bad, escape_with_second_non_hex_digit_is_rejected);
    tcase_add_test(bad, truncated_escape_at_end_is_rejected);
    tcase_add_test(bad, bare_percent_at_end_is_rejected);
    tcase_add_test(bad, truncated_escape_before_slash_is_rejected);
    tcase_add_test(bad, encoded_nul_is_rejected);
    tcase_add_test(bad, raw_nul_is_rejected);
    tcase_add_test(bad, raw_backslash_is_rejected);
    tcase_add_test(bad, raw_controls_space_and_del_are_rejected);
    tcase_add_test(bad, raw_delimiters_not_allowed_in_a_path_are_rejected);
    tcase_add_test(bad, path_without_leading_slash_is_rejected);
    tcase_add_test(bad, empty_path_is_rejected);
    suite_add_tcase(s, bad);
    return s;
}
