/*
 * check_main.c: the one main() of the unit tests.  It runs the suite that the test file
 * linked with it registers (pt_test_suite), printing Check's CK_NORMAL summary, and exits
 * with EXIT_FAILURE when any test failed, else EXIT_SUCCESS.  CK_FORK, CK_RUN_CASE and
 * CK_VERBOSITY in the environment work as Check documents them.
 */
#include <stdlib.h>

#include "check_main.h"

#include <stdio.h>
#include <unistd.h>

#include "core/cycle.h"

int main(void)
{
    SRunner *sr = srunner_create(pt_test_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

struct pt_cycle *pt_test_load_conf(const char *text, char *path, char *err, size_t errlen)
{
    struct pt_cycle *cycle;
    FILE *f;
    int fd;

    snprintf(path, 64, "/tmp/pt-unit-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    err[0] = '\0';
    cycle = pt_cycle_load(path, "/tmp", err, errlen);
    unlink(path);
    return cycle;
}
