/*
 * test_conf.c: configuration errors are "file:line: message" naming the thing and the fix,
 * and a valid file loads.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cycle.h"

static char path[64];

/* Writes <text> to a temporary file and loads it; returns the cycle (or NULL) and fills
 * <err>. */
static struct pt_cycle *load(const char *text, char *err, size_t errlen)
{
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/tmp/pt-conf-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return pt_cycle_load(path, "/tmp", err, errlen);
}

static void assert_error(const char *text, int line, const char *message)
{
    char err[1024], want[128];
    struct pt_cycle *c = load(text, err, sizeof(err));

    unlink(path);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"", err,
                  want);
    ck_assert_msg(strstr(err, message) != NULL, "\"%s\" does not say \"%s\"", err, message);
}

START_TEST(valid_file_loads)
{
    char err[1024];
    struct pt_cycle *c = load("worker_processes = 1;\n"
                              "http = { access_log = \"off\";\n"
                              "  server = ( { listen = [ \"127.0.0.1:1\" ];\n"
                              "  location = ( { path = \"/\"; return = \"200 ok\"; } ); } ); };\n",
                              err, sizeof(err));

    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_nonnull(c->listens);
    pt_cycle_free(c);
}
END_TEST

START_TEST(unknown_directive_names_line_and_suggests)
{
    assert_error("worker_processes = 1;\nhttp = {\n  server = ( { location = (\n"
                 "    { path = \"/\"; proxy_pas = \"http://127.0.0.1:1\"; } ); } );\n};\n",
                 4, "unknown directive \"proxy_pas\" in location (did you mean \"proxy_pass\"?)");
}
END_TEST

START_TEST(misplaced_directive_says_where)
{
    assert_error("http = {\n  proxy_pass = \"http://127.0.0.1:1\";\n};\n", 2,
                 "\"proxy_pass\" directive is not allowed in http");
}
END_TEST

START_TEST(syntax_error_has_its_line)
{
    assert_error("worker_processes = 1;\nhttp = {\n  server = ( { listen = [ \"1\" ; } );\n};\n", 3,
                 "syntax error");
}
END_TEST

START_TEST(bad_duration_is_refused)
{
    assert_error("http = {\n  keepalive_timeout = \"5 parsecs\";\n};\n", 2,
                 "invalid time \"5 parsecs\" for \"keepalive_timeout\"");
}
END_TEST

START_TEST(list_given_to_single_value_directive_is_refused)
{
    assert_error("worker_processes = [ 1, 2 ];\n", 1, "\"worker_processes\" takes one value");
}
END_TEST

START_TEST(duplicate_directive_is_refused)
{
    assert_error("http = {\n  server = ( { location = ( { path = \"/\";\n"
                 "    return = \"200 a\"; return = \"200 b\"; } ); } );\n};\n",
                 3, "duplicate");
}
END_TEST

START_TEST(invalid_listen_address_is_refused)
{
    assert_error("http = {\n  server = ( { listen = [ \"127.0.0.1:99999\" ]; } );\n};\n", 2,
                 "invalid listen address \"127.0.0.1:99999\"");
}
END_TEST

START_TEST(location_without_path_is_refused)
{
    assert_error("http = {\n  server = ( { location = (\n    { return = \"200 x\"; } ); } );\n};\n",
                 3, "location needs path");
}
END_TEST

START_TEST(bad_regex_location_reports_offset)
{
    assert_error("http = {\n  server = ( { location = (\n    { path = \"~ ^(a\"; return = \"200\"; "
                 "} ); } );\n};\n",
                 3, "invalid location \"~ ^(a\"");
}
END_TEST

START_TEST(unknown_upstream_server_option_is_refused)
{
    assert_error(
        "http = {\n  upstream = { app = {\n    server = [ \"127.0.0.1:1 wieght=2\" ]; }; };\n};\n",
        3, "invalid server option \"wieght=2\"");
}
END_TEST

START_TEST(unknown_variable_is_refused)
{
    assert_error("http = {\n  server = ( { location = ( { path = \"/\";\n"
                 "    return = \"200 $no_such_thing\"; } ); } );\n};\n",
                 3, "unknown variable \"$no_such_thing\"");
}
END_TEST

/* An upstream of two servers whose health_check is <hc>, on line 3. */
static void assert_health_error(const char *hc, const char *message)
{
    char text[512];

    snprintf(text, sizeof(text),
             "http = {\n  upstream = { app = {\n    server = [ \"127.0.0.1:1\", \"127.0.0.1:2\" ]; "
             "health_check = \"%s\"; }; };\n};\n",
             hc);
    assert_error(text, 3, message);
}

START_TEST(bad_health_check_options_are_refused)
{
    assert_health_error("interval=fast", "invalid interval \"fast\" in \"health_check\"");
    assert_health_error("rise=0", "invalid rise \"0\" in \"health_check\": use 1 to 1000");
    assert_health_error("status=600", "invalid status \"600\" in \"health_check\"");
    assert_health_error("status=299-200", "invalid status \"299-200\"");
    assert_health_error("body=(unclosed", "invalid body regex \"(unclosed\"");
    assert_health_error("uri=health", "invalid health_check option \"uri=health\"");
    assert_health_error("type=udp", "invalid health_check option \"type=udp\"");
    assert_health_error("port=70000", "invalid port \"70000\" in \"health_check\"");
}
END_TEST

START_TEST(good_health_check_loads)
{
    char err[512] = "";
    struct pt_cycle *c = load("http = {\n  upstream = { app = {\n    server = [ \"127.0.0.1:1\", "
                              "\"127.0.0.1:2\" ];\n    health_check = \"type=http uri=/h "
                              "method=HEAD status=200,204,301-302 body=^ok host=app.example "
                              "port=81 interval=1s timeout=500ms rise=1 fails=5 mandatory\"; "
                              "}; };\n};\n",
                              err, sizeof(err));

    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert(c->need_helper);
    pt_cycle_free(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("conf");
    TCase *t = tcase_create("errors");

    tcase_add_test(t, valid_file_loads);
    tcase_add_test(t, unknown_directive_names_line_and_suggests);
    tcase_add_test(t, misplaced_directive_says_where);
    tcase_add_test(t, syntax_error_has_its_line);
    tcase_add_test(t, bad_duration_is_refused);
    tcase_add_test(t, list_given_to_single_value_directive_is_refused);
    tcase_add_test(t, duplicate_directive_is_refused);
    tcase_add_test(t, invalid_listen_address_is_refused);
    tcase_add_test(t, location_without_path_is_refused);
    tcase_add_test(t, bad_regex_location_reports_offset);
    tcase_add_test(t, unknown_upstream_server_option_is_refused);
    tcase_add_test(t, unknown_variable_is_refused);
    tcase_add_test(t, bad_health_check_options_are_refused);
    tcase_add_test(t, good_health_check_loads);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
