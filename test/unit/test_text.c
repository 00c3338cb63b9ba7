/*
 * test_text.c: the growing text (core/text.h): appends of any size, printf past any fixed
 * buffer, and the empty text after pt_text_free.
 */
#include <check.h>
#include <string.h>

#include "check_main.h"
#include "core/text.h"

START_TEST(appends_are_kept_in_order)
{
    struct pt_text t = {0};

    pt_text_puts(&t, "portier_");
    pt_text_put(&t, "build_info{x}", 10);
    pt_text_printf(&t, " %d\n", 1);
    ck_assert_int_eq(t.failed, 0);
    ck_assert_uint_eq(t.len, strlen("portier_build_info 1\n"));
    ck_assert_int_eq(memcmp(t.p, "portier_build_info 1\n", t.len), 0);
    pt_text_free(&t);
    ck_assert_ptr_null(t.p);
    ck_assert_uint_eq(t.len, 0);
}
END_TEST

START_TEST(printf_writes_more_than_a_page_whole)
{
    struct pt_text t = {0};
    char big[10000];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pt_text_puts(&t, "<");
    pt_text_printf(&t, "%s>", big);
    ck_assert_uint_eq(t.len, sizeof(big) + 1);
    ck_assert_int_eq(t.p[0], '<');
    ck_assert_int_eq(t.p[t.len - 2], 'a');
    ck_assert_int_eq(t.p[t.len - 1], '>');
    pt_text_free(&t);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("text");

    tcase_add_test(tc, appends_are_kept_in_order);
    tcase_add_test(tc, printf_writes_more_than_a_page_whole);
    suite_add_tcase(s, tc);
    return s;
}
