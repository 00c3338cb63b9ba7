/*
 * check_main.c: the one main() of the unit tests.  It runs the suite that the test file
 * linked with it registers (pt_test_suite), printing Check's CK_NORMAL summary, and exits
 * with EXIT_FAILURE when any test failed, else EXIT_SUCCESS.  CK_FORK, CK_RUN_CASE and
 * CK_VERBOSITY in the environment work as Check documents them.
 */
#include <stdlib.h>

#include "check_main.h"

int main(void)
{
    SRunner *sr = srunner_create(pt_test_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
