/*
 * test_conf.c: configuration errors are "file:line: message" naming the thing and the fix,
 * and a valid file loads.
 *
 * Its configurations use module directives as a user writes them (access_log = "off",
 * return, gzip), so it needs modules: access_log rewrite gzip
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "config/core_module.h"
#include "core/cycle.h"
#include "worker/http.h"

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
    /* Values are compiled once every module has registered its variables, after the
     * default access log is opened: off here, so that the variable is the first error. */
    assert_error("http = { access_log = \"off\";\n  server = ( { location = ( { path = \"/\";\n"
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

/* --- nginx habits --- */

START_TEST(bare_on_names_the_libconfig_spelling)
{
    assert_error("http = {\n  access_log = \"off\";\n  gzip = on;\n};\n", 3,
                 "\"on\" is not a libconfig value: write gzip = true; (or \"on\")");
}
END_TEST

START_TEST(bare_off_names_the_libconfig_spelling)
{
    assert_error("daemon = off;\n", 1,
                 "\"off\" is not a libconfig value: write daemon = false; (or \"off\")");
}
END_TEST

START_TEST(other_bare_word_is_told_to_be_quoted)
{
    assert_error("worker_processes = auto;\n", 1,
                 "\"auto\" is not a libconfig value: write worker_processes = \"auto\";");
}
END_TEST

START_TEST(unquoted_words_are_told_to_be_quoted)
{
    assert_error("http = {\n  server = ( {\n    listen = 80 default_server;\n  } );\n};\n", 3,
                 "write listen = \"80 default_server\"; (strings are quoted)");
    assert_error("http = {\n  access_log = /var/log/portier/access.log;\n};\n", 2,
                 "write access_log = \"/var/log/portier/access.log\";");
    assert_error("http = {\n  client_max_body_size = 8k;\n};\n", 2,
                 "write client_max_body_size = \"8k\";");
}
END_TEST

START_TEST(flag_takes_on_off_strings_and_booleans)
{
    static const char *const values[] = {"\"on\"", "true", "\"off\"", "false"};
    char text[128], err[1024];

    for (int i = 0; i < 4; i++) {
        struct pt_cycle *c;
        snprintf(text, sizeof(text), "daemon = %s;\n", values[i]);
        c = load(text, err, sizeof(err));
        unlink(path);
        ck_assert_msg(c != NULL, "%s: %s", values[i], err);
        ck_assert_int_eq(pt_core_conf(c)->daemon, i < 2);
        pt_cycle_free(c);
    }
}
END_TEST

START_TEST(flag_refuses_other_words_naming_the_choices)
{
    assert_error("daemon = \"yes\";\n", 1,
                 "invalid value \"yes\" for \"daemon\": use true/false or \"on\"/\"off\"");
}
END_TEST

START_TEST(server_tokens_refuses_unknown_value)
{
    assert_error("http = {\n  access_log = \"off\";\n  server_tokens = \"full\";\n};\n", 3,
                 "invalid value \"full\" for \"server_tokens\": use \"on\", \"off\", \"build\"");
}
END_TEST

START_TEST(resolver_is_accepted)
{
    char err[1024];
    struct pt_cycle *c = load("http = {\n  access_log = \"off\";\n  resolver = \"127.0.0.53 "
                              "valid=30s\";\n  resolver_timeout = \"5s\";\n};\n",
                              err, sizeof(err));

    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    pt_cycle_free(c);
}
END_TEST

START_TEST(access_log_in_missing_directory_names_its_line)
{
    assert_error("http = {\n  access_log = \"/nonexistent-pt/access.log\";\n};\n", 2,
                 "cannot open access log \"/nonexistent-pt/access.log\": No such file or "
                 "directory (the directory \"/nonexistent-pt\" does not exist)");
}
END_TEST

START_TEST(error_log_in_missing_directory_names_its_line)
{
    assert_error("worker_processes = 1;\nerror_log = \"/nonexistent-pt/error.log warn\";\n", 2,
                 "cannot open error log \"/nonexistent-pt/error.log\": No such file or directory");
}
END_TEST

START_TEST(default_access_log_in_missing_directory_names_the_http_block)
{
    char err[1024], want[1024];
    struct pt_cycle *c;

    snprintf(path, sizeof(path), "/tmp/pt-conf-XXXXXX");
    ck_assert_int_ge(mkstemp(path), 0);
    {
        FILE *f = fopen(path, "w");
        fputs(
            "worker_processes = 1;\nhttp = {\n  server = ( { listen = \"127.0.0.1:1\"; } );\n};\n",
            f);
        fclose(f);
    }
    c = pt_cycle_load(path, "/nonexistent-pt", err, sizeof(err));
    unlink(path);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want),
             "%s:2: cannot open the default access log \"/nonexistent-pt/logs/access.log\"", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"", err,
                  want);
}
END_TEST

START_TEST(pid_in_missing_directory_names_its_line)
{
    assert_error("error_log = \"stderr\";\npid = \"/nonexistent-pt/portier.pid\";\n", 2,
                 "cannot open pid file \"/nonexistent-pt/portier.pid\": No such file or directory "
                 "(the directory \"/nonexistent-pt\" does not exist)");
}
END_TEST

START_TEST(unknown_user_names_its_line)
{
    /* The user is only looked up when the master can switch to it. */
    if (geteuid() != 0)
        return;
    assert_error("error_log = \"stderr\";\nuser = \"no-such-user-pt\";\n", 2,
                 "user \"no-such-user-pt\" does not exist");
}
END_TEST

/* --- numbers: libconfig 1.5 reads 4294967298 as 2; the setters must see what was written --- */

START_TEST(number_past_32_bits_is_refused_as_written)
{
    assert_error("error_log = \"stderr\";\nworker_processes = 4294967298;\n", 2,
                 "invalid worker_processes \"4294967298\"");
}
END_TEST

START_TEST(count_past_int_is_refused_as_written)
{
    assert_error("http = {\n  access_log = \"off\";\n  keepalive_requests = 4294967297;\n};\n", 3,
                 "\"keepalive_requests\" must be between 0 and 2147483647, not 4294967297");
    assert_error("http = {\n  keepalive_requests = 4294967297L;\n};\n", 2,
                 "\"keepalive_requests\" must be between 0 and 2147483647, not 4294967297");
    assert_error("http = {\n  keepalive_requests = 0x100000001;\n};\n", 2,
                 "\"keepalive_requests\" must be between 0 and 2147483647, not 4294967297");
}
END_TEST

START_TEST(number_past_64_bits_is_refused_as_written)
{
    assert_error("http = {\n  keepalive_requests = 99999999999999999999;\n};\n", 2,
                 "invalid number \"99999999999999999999\" for \"keepalive_requests\"");
    assert_error("http = {\n  client_max_body_size = 99999999999999999999L;\n};\n", 2,
                 "invalid size \"99999999999999999999L\" for \"client_max_body_size\"");
    assert_error("worker_connections = -99999999999999999999;\n", 1,
                 "invalid number \"-99999999999999999999\" for \"worker_connections\"");
}
END_TEST

START_TEST(huge_number_in_a_string_is_refused)
{
    assert_error("http = {\n  client_max_body_size = \"99999999999999999999k\";\n};\n", 2,
                 "invalid size \"99999999999999999999k\" for \"client_max_body_size\"");
    assert_error("http = {\n  client_max_body_size = \"9999999999999g\";\n};\n", 2,
                 "invalid size \"9999999999999g\"");
    assert_error("http = {\n  send_timeout = \"9999999999999999d\";\n};\n", 2,
                 "invalid time \"9999999999999999d\"");
    assert_error("worker_processes = \"4294967298\";\n", 1,
                 "invalid worker_processes \"4294967298\"");
    assert_error("worker_connections = \"9223372036854775808\";\n", 1,
                 "invalid number \"9223372036854775808\"");
}
END_TEST

START_TEST(largest_values_are_taken)
{
    char err[1024];
    struct pt_cycle *c = load("worker_connections = 1048576;\nworker_rlimit_nofile = 2147483647;\n"
                              "http = { access_log = \"off\"; client_max_body_size = "
                              "9223372036854775807L; };\n",
                              err, sizeof(err));

    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(pt_core_conf(c)->worker_rlimit_nofile, 2147483647);
    ck_assert_int_eq(pt_core_conf(c)->worker_connections, 1048576);
    pt_cycle_free(c);
}
END_TEST

/* Literals are paired with settings in order: comments, strings, names with digits and
 * floats on the same line must not shift them. */
START_TEST(numbers_in_comments_and_strings_do_not_shift_values)
{
    char err[1024];
    struct pt_cycle *c =
        load("worker_processes = 2; # 4294967298\n"
             "/* 4294967299\n 4294967300 */ worker_connections = 4096; "
             "max_draining_generations = 3; // 4294967301\n"
             "error_log = \"stderr\"; pid = \"/tmp/4294967302.pid\";\n"
             "http = { access_log = \"off\"; server = ( { listen = [\"127.0.0.1:1\"]; "
             "server_name = [\"a4294967303\"]; location = ( { path = \"/x-4294967304\"; return = "
             "\"200 ok\"; } ); } ); keepalive_requests = 7; };\n",
             err, sizeof(err));

    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(pt_core_conf(c)->worker_processes, 2);
    ck_assert_int_eq(pt_core_conf(c)->worker_connections, 4096);
    ck_assert_int_eq(pt_core_conf(c)->max_draining_generations, 3);
    pt_cycle_free(c);
}
END_TEST

START_TEST(wrapped_number_is_found_among_others_on_its_line)
{
    /* 4294967304 reads as 8 and sits beside a real 8. */
    assert_error("worker_connections = 8; worker_processes = 4294967304;\n", 1,
                 "invalid worker_processes \"4294967304\"");
    assert_error("worker_processes = 4294967304; worker_connections = 8;\n", 1,
                 "invalid worker_processes \"4294967304\"");
    assert_error("http = {\n  server = ( { listen = [ 80, 4294967376 ]; } );\n};\n", 2,
                 "invalid listen address \"4294967376\"");
}
END_TEST

/* --- include --- */

static char dir[64];

/* Writes <text> as <name> in the test directory. */
static void put_file(const char *name, const char *text)
{
    char p[256];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(void)
{
    char p[128];

    snprintf(dir, sizeof(dir), "/tmp/pt-conf-inc-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/conf.d", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void remove_dir(void)
{
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Loads <dir>/portier.conf (written from <text>). */
static struct pt_cycle *load_main(const char *text, char *err, size_t errlen)
{
    char p[128];

    put_file("portier.conf", text);
    snprintf(p, sizeof(p), "%s/portier.conf", dir);
    return pt_cycle_load(p, dir, err, errlen);
}

/* Asserts that <err> starts with "<dir>/<file>:<line>: " and holds <message>. */
static void assert_error_in(const char *err, const char *file, int line, const char *message)
{
    char want[256];

    snprintf(want, sizeof(want), "%s/%s:%d: ", dir, file, line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"", err,
                  want);
    ck_assert_msg(strstr(err, message) != NULL, "\"%s\" does not say \"%s\"", err, message);
}

static int nservers(struct pt_cycle *c)
{
    struct pt_http_main_conf *mc = c->main_conf[pt_http_module.index];

    return mc->nservers;
}

#define SITE(name) "server = ( { listen = \"127.0.0.1:1\"; server_name = \"" name "\"; } );\n"

START_TEST(include_glob_adds_the_servers_of_every_file)
{
    char err[1024] = "";
    struct pt_cycle *c;

    make_dir();
    put_file("conf.d/a.conf", SITE("a.test"));
    put_file("conf.d/b.conf",
             SITE("b.test") "upstream = { app = { server = [\"127.0.0.1:2\"]; }; };\n");
    put_file("conf.d/b.conf.off", "this is not read");
    c = load_main(
        "http = {\n  access_log = \"off\";\n  include = \"conf.d/*.conf\";\n" SITE("main") "};\n",
        err, sizeof(err));
    remove_dir();
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(nservers(c), 3);
    pt_cycle_free(c);
}
END_TEST

START_TEST(include_error_names_the_included_file_and_line)
{
    char err[1024] = "";

    make_dir();
    put_file("conf.d/a.conf", "\n" SITE("a.test") "proxy_pas = \"http://x\";\n");
    ck_assert_ptr_null(
        load_main("http = {\n  include = \"conf.d/*.conf\";\n};\n", err, sizeof(err)));
    assert_error_in(err, "conf.d/a.conf", 3, "unknown directive \"proxy_pas\" in http");
    remove_dir();
}
END_TEST

START_TEST(include_syntax_error_names_the_included_file_and_line)
{
    char err[1024] = "";

    make_dir();
    put_file("conf.d/a.conf", "server = ( { listen = \"127.0.0.1:1\";\n  gzip = on; } );\n");
    ck_assert_ptr_null(
        load_main("http = {\n  include = \"conf.d/a.conf\";\n};\n", err, sizeof(err)));
    assert_error_in(err, "conf.d/a.conf", 2, "write gzip = true; (or \"on\")");
    remove_dir();
}
END_TEST

START_TEST(include_pattern_matching_nothing_is_no_error)
{
    char err[1024] = "";
    struct pt_cycle *c;

    make_dir();
    c = load_main("http = {\n  access_log = \"off\";\n  include = [ \"conf.d/*.conf\", "
                  "\"sites-enabled/*\" ];\n" SITE("main") "};\n",
                  err, sizeof(err));
    remove_dir();
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(nservers(c), 1);
    pt_cycle_free(c);
}
END_TEST

START_TEST(include_of_missing_file_is_an_error_at_its_line)
{
    char err[1024] = "", want[256];

    make_dir();
    ck_assert_ptr_null(load_main(
        "http = {\n  access_log = \"off\";\n  include = \"site.conf\";\n};\n", err, sizeof(err)));
    snprintf(want, sizeof(want), "cannot open include file \"%s/site.conf\": No such file", dir);
    assert_error_in(err, "portier.conf", 3, want);
    remove_dir();
}
END_TEST

START_TEST(include_of_a_directory_says_to_use_a_pattern)
{
    char err[1024] = "";

    make_dir();
    ck_assert_ptr_null(load_main("http = {\n  include = \"conf.d\";\n};\n", err, sizeof(err)));
    assert_error_in(err, "portier.conf", 2, "is a directory: include");
    remove_dir();
}
END_TEST

START_TEST(upstream_defined_in_two_files_is_an_error)
{
    char err[1024] = "";

    make_dir();
    put_file("conf.d/a.conf", "upstream = { app = { server = [\"127.0.0.1:2\"]; }; };\n");
    put_file("conf.d/b.conf", "\nupstream = {\n  app = { server = [\"127.0.0.1:3\"]; };\n};\n");
    ck_assert_ptr_null(
        load_main("http = {\n  include = \"conf.d/*.conf\";\n};\n", err, sizeof(err)));
    assert_error_in(err, "conf.d/b.conf", 3, "duplicate upstream \"app\"");
    remove_dir();
}
END_TEST

START_TEST(include_in_main_reads_main_settings)
{
    char err[1024] = "";
    struct pt_cycle *c;

    make_dir();
    put_file("conf.d/http.conf", "http = { access_log = \"off\";\n" SITE("x") "};\n");
    c = load_main("worker_processes = 3;\ninclude = \"conf.d/*.conf\";\n", err, sizeof(err));
    remove_dir();
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(pt_core_conf(c)->worker_processes, 3);
    ck_assert_int_eq(nservers(c), 1);
    pt_cycle_free(c);
}
END_TEST

START_TEST(include_of_itself_stops)
{
    char err[1024] = "";

    make_dir();
    put_file("conf.d/loop.conf", "include = \"conf.d/loop.conf\";\n");
    ck_assert_ptr_null(load_main("include = \"conf.d/loop.conf\";\n", err, sizeof(err)));
    assert_error_in(err, "conf.d/loop.conf", 1, "does a file include itself?");
    remove_dir();
}
END_TEST

START_TEST(at_include_error_names_the_included_file)
{
    char err[1024] = "";

    make_dir();
    put_file("conf.d/site.conf", SITE("a") "\nbogus = 1;\n");
    ck_assert_ptr_null(
        load_main("http = {\n  @include \"conf.d/site.conf\"\n};\n", err, sizeof(err)));
    assert_error_in(err, "conf.d/site.conf", 3, "unknown directive \"bogus\" in http");
    remove_dir();
}
END_TEST

START_TEST(at_include_of_missing_file_names_it)
{
    char err[1024] = "", want[256];

    make_dir();
    ck_assert_ptr_null(
        load_main("http = {\n  @include \"conf.d/nope.conf\"\n};\n", err, sizeof(err)));
    snprintf(want, sizeof(want), "cannot open include file \"%s/conf.d/nope.conf\"", dir);
    assert_error_in(err, "portier.conf", 2, want);
    remove_dir();
}
END_TEST

START_TEST(number_past_32_bits_in_an_included_file_is_refused)
{
    char err[1024] = "";

    make_dir();
    put_file("conf.d/a.conf", "# tuning\nkeepalive_requests = 4294967297;\n");
    ck_assert_ptr_null(load_main("worker_processes = 1;\nhttp = {\n  access_log = \"off\";\n"
                                 "  include = \"conf.d/a.conf\";\n};\n",
                                 err, sizeof(err)));
    assert_error_in(err, "conf.d/a.conf", 2, "not 4294967297");
    ck_assert_ptr_null(load_main("http = {\n  @include \"conf.d/a.conf\"\n};\n", err, sizeof(err)));
    assert_error_in(err, "conf.d/a.conf", 2, "not 4294967297");
    remove_dir();
}
END_TEST

Suite *pt_test_suite(void)
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

    t = tcase_create("nginx habits");
    tcase_add_test(t, bare_on_names_the_libconfig_spelling);
    tcase_add_test(t, bare_off_names_the_libconfig_spelling);
    tcase_add_test(t, other_bare_word_is_told_to_be_quoted);
    tcase_add_test(t, unquoted_words_are_told_to_be_quoted);
    tcase_add_test(t, flag_takes_on_off_strings_and_booleans);
    tcase_add_test(t, flag_refuses_other_words_naming_the_choices);
    tcase_add_test(t, server_tokens_refuses_unknown_value);
    tcase_add_test(t, resolver_is_accepted);
    tcase_add_test(t, access_log_in_missing_directory_names_its_line);
    tcase_add_test(t, error_log_in_missing_directory_names_its_line);
    tcase_add_test(t, default_access_log_in_missing_directory_names_the_http_block);
    tcase_add_test(t, pid_in_missing_directory_names_its_line);
    tcase_add_test(t, unknown_user_names_its_line);
    suite_add_tcase(s, t);

    t = tcase_create("numbers");
    tcase_add_test(t, number_past_32_bits_is_refused_as_written);
    tcase_add_test(t, count_past_int_is_refused_as_written);
    tcase_add_test(t, number_past_64_bits_is_refused_as_written);
    tcase_add_test(t, huge_number_in_a_string_is_refused);
    tcase_add_test(t, largest_values_are_taken);
    tcase_add_test(t, numbers_in_comments_and_strings_do_not_shift_values);
    tcase_add_test(t, wrapped_number_is_found_among_others_on_its_line);
    suite_add_tcase(s, t);

    t = tcase_create("include");
    tcase_add_test(t, include_glob_adds_the_servers_of_every_file);
    tcase_add_test(t, include_error_names_the_included_file_and_line);
    tcase_add_test(t, include_syntax_error_names_the_included_file_and_line);
    tcase_add_test(t, include_pattern_matching_nothing_is_no_error);
    tcase_add_test(t, include_of_missing_file_is_an_error_at_its_line);
    tcase_add_test(t, include_of_a_directory_says_to_use_a_pattern);
    tcase_add_test(t, upstream_defined_in_two_files_is_an_error);
    tcase_add_test(t, include_in_main_reads_main_settings);
    tcase_add_test(t, include_of_itself_stops);
    tcase_add_test(t, at_include_error_names_the_included_file);
    tcase_add_test(t, at_include_of_missing_file_names_it);
    tcase_add_test(t, number_past_32_bits_in_an_included_file_is_refused);
    suite_add_tcase(s, t);
    return s;
}
