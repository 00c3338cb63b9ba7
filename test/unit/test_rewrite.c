/*
 * test_rewrite.c: the rewrite module's script engine on requests built by hand: each flag,
 * the query rule, captures (the rewrite's, an if's, a regex location's), if's conditions,
 * set, break, and the loop limit.  A configuration is loaded for real; the phases the module
 * registered run as the request engine runs them, the location searched again when a
 * handler asks for it.
 *
 * needs modules: rewrite access_log
 */
#include <check.h>
#include <string.h>

#include "check_main.h"
#include "core/pool.h"
#include "worker/http.h"
#include "worker/http_phase.h"
#include "worker/listen.h"
#include "worker/router.h"
#include "worker/var.h"

static struct pt_cycle *cycle;
static struct pt_pool *pool;
static struct pt_http_conn conn;
static struct pt_listen ls;
static char err[1024], path[64];

/* Locations under test; the server level rewrites /old/X to /a/X. */
static const char conf[] =
    "http = { access_log = \"off\";\n"
    "  server = ( { listen = [ \"127.0.0.1:1\" ];\n"
    "    rewrite = [ \"^/old/(.*)$ /a/$1\" ];\n"
    "    location = (\n"
    "      { path = \"/a/\"; },\n"
    "      { path = \"/none/\"; rewrite = [ \"^/none/(.*)$ /a/$1\" ]; },\n"
    "      { path = \"/last/\"; rewrite_script = ( \"rewrite ^/last/(.*)$ /a/$1 last\", "
    "\"return 403\" ); },\n"
    "      { path = \"/brk/\"; rewrite = [ \"^/brk/(.*)$ /elsewhere/$1 break\" ]; },\n"
    "      { path = \"/redir/\"; rewrite = [ \"^/redir/(.*)$ /moved/$1 redirect\" ]; },\n"
    "      { path = \"/perm/\"; rewrite = [ \"^ http://other.example/x permanent\" ]; },\n"
    "      { path = \"/q/\"; rewrite = [ \"^/q/(.*)$ /a/$1?b=2 break\" ]; },\n"
    "      { path = \"/noq/\"; rewrite = [ \"^/noq/(.*)$ /a/$1? break\" ]; },\n"
    "      { path = \"/set/\"; rewrite_script = ( \"set $who world\", "
    "\"rewrite ^ /a/$who break\" ); },\n"
    "      { path = \"/if/\"; if = ( { condition = \"$arg_x = 1\"; return = \"418\"; },\n"
    "          { condition = \"$http_x_v ~* ^v(\\\\d)$\"; then = ( \"set $n $1\", "
    "\"rewrite ^ /a/v$n break\" ); },\n"
    "          { condition = \"$arg_y\"; return = \"410\"; } ); },\n"
    "      { path = \"~ ^/re/(\\\\w+)/(\\\\w+)$\"; rewrite_script = ( \"set $p $2-$1\", "
    "\"rewrite ^ /a/$p break\" ); },\n"
    "      { path = \"/stop/\"; rewrite_script = ( \"rewrite ^ /a/stopped\", \"break\", "
    "\"return 403\" ); },\n"
    "      { path = \"/loop/\"; rewrite = [ \"^/loop/(.*)$ /loop/x$1 last\" ]; },\n"
    "      { path = \"/lit/\"; rewrite = [ \"^/lit/no|/lit/alt$ /a/alt break\",\n"
    "          \"^/lit/ab?c$ /a/opt break\", \"^/lit/x*y$ /a/star break\",\n"
    "          \"^/lit/p+q$ /a/plus break\", \"^/lit/f{0}g$ /a/count break\",\n"
    "          \"^/lit/d\\\\.e$ /a/esc break\", \"^/lit/(?i)CASE$ /a/case break\" ]; }\n"
    "    ); } );\n"
    "};\n";

static void setup(void)
{
    pool = pt_pool_create(4096);
    ck_assert_ptr_nonnull(pool);
    cycle = pt_test_load_conf(conf, path, err, sizeof(err));
    ck_assert_msg(cycle != NULL, "%s", err);
    snprintf(ls.text, sizeof(ls.text), "127.0.0.1:1");
    conn = (struct pt_http_conn){.ls = &ls};
    snprintf(conn.peer_text, sizeof(conn.peer_text), "10.0.0.1");
}

static void teardown(void)
{
    pt_cycle_free(cycle);
    pt_pool_destroy(pool);
}

/* A request for <head> ("GET /x HTTP/1.1\r\n...\r\n\r\n") to the configuration's server. */
static struct pt_request *request(const char *head)
{
    struct pt_http_main_conf *mc = pt_http_main_conf_of(cycle, pt_http_module);
    struct pt_request *r = pt_palloc(pool, sizeof(*r));
    char *copy = pt_pstrdup(pool, head);

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(pt_http_parse_request(copy, strlen(copy), NULL, &r->h), PT_OK);
    r->pool = pool;
    r->c = &conn;
    r->server = mc->servers[0];
    r->main_conf = cycle->main_conf;
    r->srv_conf = r->server->srv_conf;
    r->loc_conf = r->server->loc_conf;
    r->hooks = &mc->hooks;
    r->ctx = pt_palloc(pool, (size_t)(pt_modules_count() + 1) * sizeof(void *));
    r->uri = r->h.path;
    r->args = r->h.query;
    r->out_length = -1;
    return r;
}

/* Runs the handlers of phase <ph>: the first that does not decline decides. */
static int run_phase(struct pt_request *r, enum pt_phase ph)
{
    for (int i = 0; i < r->hooks->nphase[ph]; i++) {
        int rc = r->hooks->phases[ph][i](r);
        if (rc != PT_DECLINED)
            return rc;
    }
    return PT_OK;
}

/* Picks the location for r->uri, as the request engine does. */
static void find_location(struct pt_request *r)
{
    struct pt_http_srv_conf *sc = r->server->srv_conf[pt_http_module.index];
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = 0;
    struct pt_http_loc_conf *lc =
        pt_locations_find(sc->locations, r->uri.p, r->uri.len, caps, &ncaps);

    r->loc_conf = lc ? lc->loc_conf : r->server->loc_conf;
    r->ncaptures = 0;
    if (lc && ncaps > 0) {
        r->captures = pt_palloc(pool, (size_t)ncaps * 2 * sizeof(size_t));
        memcpy(r->captures, caps, (size_t)ncaps * 2 * sizeof(size_t));
        r->ncaptures = ncaps;
    }
}

/* Runs the rewrite phases for <head>: the status a handler answered with (0: none), the
 * URI and query the request ends with in <uri>. */
static int rewrite(const char *head, struct pt_request **out)
{
    struct pt_request *r = request(head);
    int rc = run_phase(r, PT_PHASE_SERVER_REWRITE);

    *out = r;
    if (rc != PT_OK)
        return rc;
    for (;;) {
        find_location(r);
        r->phase = PT_PHASE_REWRITE;
        rc = run_phase(r, PT_PHASE_REWRITE);
        if (rc != PT_OK)
            return rc;
        if (r->phase != PT_PHASE_FIND_CONFIG - 1)
            return 0;
    }
}

static void assert_uri(struct pt_request *r, const char *uri, const char *args)
{
    ck_assert_msg(pt_str_eq(r->uri, uri), "uri \"%.*s\", not \"%s\"", (int)r->uri.len, r->uri.p,
                  uri);
    ck_assert_msg(pt_str_eq(r->args, args), "args \"%.*s\", not \"%s\"", (int)r->args.len,
                  r->args.p ? r->args.p : "", args);
}

static const char *location_of(struct pt_request *r)
{
    struct pt_header *h = pt_header_find(&r->out, "Location");

    return h ? pt_pstrndup(pool, h->value.p, h->value.len) : NULL;
}

#define GET(target) "GET " target " HTTP/1.1\r\nHost: h\r\n"
#define END         "\r\n"

START_TEST(server_level_rule_runs_before_the_location_is_chosen)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/old/x?k=v") END, &r), 0);
    assert_uri(r, "/a/x", "k=v");
}
END_TEST

START_TEST(no_flag_searches_the_location_again)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/none/x") END, &r), 0);
    assert_uri(r, "/a/x", "");
    ck_assert_ptr_eq(
        r->loc_conf[pt_http_module.index],
        pt_locations_find(
            ((struct pt_http_srv_conf *)r->server->srv_conf[pt_http_module.index])->locations,
            "/a/x", 4, NULL, NULL));
}
END_TEST

START_TEST(last_stops_the_rules_and_searches_again)
{
    struct pt_request *r;

    /* The "return 403" after it never runs. */
    ck_assert_int_eq(rewrite(GET("/last/y") END, &r), 0);
    assert_uri(r, "/a/y", "");
}
END_TEST

START_TEST(break_keeps_the_location_with_the_new_uri)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/brk/z") END, &r), 0);
    assert_uri(r, "/elsewhere/z", "");
    ck_assert(r->uri_whole);
}
END_TEST

START_TEST(redirect_answers_302_with_the_query)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/redir/d?q=1") END, &r), 302);
    ck_assert_str_eq(location_of(r), "http://h:1/moved/d?q=1");
}
END_TEST

START_TEST(permanent_to_a_url_answers_301)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/perm/") END, &r), 301);
    ck_assert_str_eq(location_of(r), "http://other.example/x");
}
END_TEST

START_TEST(replacement_query_comes_before_the_request_s)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/q/x?a=1") END, &r), 0);
    assert_uri(r, "/a/x", "b=2&a=1");
}
END_TEST

START_TEST(trailing_question_mark_drops_the_request_s_query)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/noq/x?a=1") END, &r), 0);
    assert_uri(r, "/a/x", "");
    ck_assert(!r->h.has_query);
}
END_TEST

START_TEST(set_variable_is_used_by_a_later_rewrite)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/set/") END, &r), 0);
    assert_uri(r, "/a/world", "");
}
END_TEST

START_TEST(if_equal_returns)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/if/?x=1") END, &r), 418);
}
END_TEST

START_TEST(if_regex_captures_are_used_inside_the_block)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/if/") "X-V: V7\r\n" END, &r), 0);
    assert_uri(r, "/a/v7", "");
}
END_TEST

START_TEST(if_variable_is_false_when_empty_or_zero)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/if/?y=0") END, &r), 0);
    ck_assert_int_eq(rewrite(GET("/if/?y=") END, &r), 0);
    ck_assert_int_eq(rewrite(GET("/if/?y=yes") END, &r), 410);
}
END_TEST

START_TEST(regex_location_captures_reach_set)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/re/one/two") END, &r), 0);
    assert_uri(r, "/a/two-one", "");
}
END_TEST

START_TEST(break_directive_stops_the_rules)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/stop/") END, &r), 0);
    assert_uri(r, "/a/stopped", "");
}
END_TEST

START_TEST(eleventh_uri_change_is_a_500)
{
    struct pt_request *r;

    ck_assert_int_eq(rewrite(GET("/loop/z") END, &r), 500);
    /* Ten searches again went through: the URI grew by ten x's before the refusal. */
    assert_uri(r, "/loop/xxxxxxxxxxxz", "");
}
END_TEST

/* A rewrite's regex is tried only on URIs with its literal start: what that start is must
 * leave out what is optional, counted or in another branch. */
START_TEST(literal_start_leaves_out_what_may_not_be_there)
{
    static const char *const cases[][2] = {
        {"/lit/alt", "/a/alt"}, {"/lit/ac", "/a/opt"},    {"/lit/abc", "/a/opt"},
        {"/lit/y", "/a/star"},  {"/lit/ppq", "/a/plus"},  {"/lit/g", "/a/count"},
        {"/lit/d.e", "/a/esc"}, {"/lit/dxe", "/lit/dxe"}, {"/lit/case", "/a/case"},
        {"/lit/no", "/a/alt"},  {"/lit/q", "/lit/q"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pt_request *r;
        char head[128];
        snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i][0]);
        ck_assert_int_eq(rewrite(head, &r), 0);
        assert_uri(r, cases[i][1], "");
    }
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("rewrite");
    TCase *t = tcase_create("engine");

    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, server_level_rule_runs_before_the_location_is_chosen);
    tcase_add_test(t, no_flag_searches_the_location_again);
    tcase_add_test(t, last_stops_the_rules_and_searches_again);
    tcase_add_test(t, break_keeps_the_location_with_the_new_uri);
    tcase_add_test(t, redirect_answers_302_with_the_query);
    tcase_add_test(t, permanent_to_a_url_answers_301);
    tcase_add_test(t, replacement_query_comes_before_the_request_s);
    tcase_add_test(t, trailing_question_mark_drops_the_request_s_query);
    tcase_add_test(t, set_variable_is_used_by_a_later_rewrite);
    tcase_add_test(t, if_equal_returns);
    tcase_add_test(t, if_regex_captures_are_used_inside_the_block);
    tcase_add_test(t, if_variable_is_false_when_empty_or_zero);
    tcase_add_test(t, regex_location_captures_reach_set);
    tcase_add_test(t, break_directive_stops_the_rules);
    tcase_add_test(t, eleventh_uri_change_is_a_500);
    tcase_add_test(t, literal_start_leaves_out_what_may_not_be_there);
    suite_add_tcase(s, t);
    return s;
}
