/*
 * test_http_phase.c: phase handlers and response filters are registered into the http
 * module's main configuration of one cycle, in order, up to their bound.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check_main.h"
#include "core/cycle.h"
#include "worker/http.h"
#include "worker/http_phase.h"

static struct pt_cycle *load(void)
{
    char path[64], err[1024];
    struct pt_cycle *c;
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/tmp/pt-phase-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    /* No http block: the http module's main configuration, and its hooks, exist anyway. */
    fputs("worker_processes = 1;\n", f);
    fclose(f);
    c = pt_cycle_load(path, "/tmp", err, sizeof(err));
    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static struct pt_http_hooks *hooks(struct pt_cycle *c)
{
    struct pt_http_main_conf *mc = pt_http_main_conf_of(c, pt_http_module);

    return &mc->hooks;
}

static int h1(struct pt_request *r)
{
    (void)r;
    return PT_DECLINED;
}

static int h2(struct pt_request *r)
{
    (void)r;
    return PT_OK;
}

static int bf(struct pt_request *r, int self, const char *data, size_t len, int last)
{
    return pt_body_filter_next(r, self, data, len, last);
}

START_TEST(handlers_run_in_registration_order)
{
    struct pt_cycle *c = load();
    struct pt_http_hooks *hk = hooks(c);
    int n = hk->nphase[PT_PHASE_ACCESS];

    ck_assert_int_eq(pt_phase_add(c, PT_PHASE_ACCESS, h1), PT_OK);
    ck_assert_int_eq(pt_phase_add(c, PT_PHASE_ACCESS, h2), PT_OK);
    ck_assert_int_eq(hk->nphase[PT_PHASE_ACCESS], n + 2);
    ck_assert_ptr_eq(hk->phases[PT_PHASE_ACCESS][n], h1);
    ck_assert_ptr_eq(hk->phases[PT_PHASE_ACCESS][n + 1], h2);
    pt_cycle_free(c);
}
END_TEST

START_TEST(full_phase_refuses_the_next_handler_and_others_still_take_one)
{
    struct pt_cycle *c = load();
    struct pt_http_hooks *hk = hooks(c);
    int log = hk->nphase[PT_PHASE_LOG];

    while (hk->nphase[PT_PHASE_REWRITE] < PT_MAX_PHASE_HANDLERS)
        ck_assert_int_eq(pt_phase_add(c, PT_PHASE_REWRITE, h1), PT_OK);
    ck_assert_int_eq(pt_phase_add(c, PT_PHASE_REWRITE, h2), PT_ERROR);
    ck_assert_int_eq(hk->nphase[PT_PHASE_REWRITE], PT_MAX_PHASE_HANDLERS);
    ck_assert_ptr_eq(hk->phases[PT_PHASE_REWRITE][PT_MAX_PHASE_HANDLERS - 1], h1);
    ck_assert_int_eq(pt_phase_add(c, PT_PHASE_LOG, h2), PT_OK);
    ck_assert_int_eq(hk->nphase[PT_PHASE_LOG], log + 1);
    pt_cycle_free(c);
}
END_TEST

START_TEST(filters_are_bounded_in_order)
{
    struct pt_cycle *c = load();
    struct pt_http_hooks *hk = hooks(c);
    int nh = hk->nheader_filters;

    while (hk->nbody_filters < PT_MAX_FILTERS)
        ck_assert_int_eq(pt_body_filter_add(c, bf), PT_OK);
    ck_assert_int_eq(pt_body_filter_add(c, bf), PT_ERROR);
    ck_assert_int_eq(pt_header_filter_add(c, h2), PT_OK);
    ck_assert_int_eq(hk->nheader_filters, nh + 1);
    ck_assert_ptr_eq(hk->header_filters[nh], h2);
    while (hk->nheader_filters < PT_MAX_FILTERS)
        ck_assert_int_eq(pt_header_filter_add(c, h2), PT_OK);
    ck_assert_int_eq(pt_header_filter_add(c, h2), PT_ERROR);
    pt_cycle_free(c);
}
END_TEST

/* A reload loads a second cycle while the first still serves: each keeps its own hooks. */
START_TEST(each_cycle_keeps_its_own_hooks)
{
    struct pt_cycle *a = load(), *b;
    int n;

    n = hooks(a)->nphase[PT_PHASE_ACCESS];
    ck_assert_int_eq(pt_phase_add(a, PT_PHASE_ACCESS, h2), PT_OK);
    b = load();
    ck_assert_int_eq(hooks(b)->nphase[PT_PHASE_ACCESS], n);
    ck_assert_int_eq(hooks(a)->nphase[PT_PHASE_ACCESS], n + 1);
    ck_assert_ptr_ne(hooks(a), hooks(b));
    pt_cycle_free(b);
    pt_cycle_free(a);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("http_phase");
    TCase *t = tcase_create("register");

    tcase_add_test(t, handlers_run_in_registration_order);
    tcase_add_test(t, full_phase_refuses_the_next_handler_and_others_still_take_one);
    tcase_add_test(t, filters_are_bounded_in_order);
    tcase_add_test(t, each_cycle_keeps_its_own_hooks);
    suite_add_tcase(s, t);
    return s;
}
