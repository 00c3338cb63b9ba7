/*
 * check_main.h: what a unit test file gives the shared main() of check_main.c.  Each
 * test/unit/test_<name>.c is built with check_main.c into the executable unit/<name>.
 */
#ifndef PT_CHECK_MAIN_H
#define PT_CHECK_MAIN_H

#include <check.h>

/* The Check suite of the test file linked in: its test cases, created afresh (the runner
 * frees it).  Defined once by every test/unit/test_<name>.c. */
Suite *pt_test_suite(void);

struct pt_cycle;

/* Writes <text> to a temporary file, named in <path> (64 bytes), and loads it as a
 * configuration file (relative paths from /tmp): the cycle, or NULL with "file:line:
 * message" in <err>/<errlen>.  The file is gone when it returns. */
struct pt_cycle *pt_test_load_conf(const char *text, char *path, char *err, size_t errlen);

#endif
