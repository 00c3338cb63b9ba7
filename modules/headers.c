/*
 * headers.c: the headers module: add_header and expires, nginx's meaning.  A header filter
 * sets Expires and Cache-Control, then adds the configured headers, to responses with a
 * success or redirect status (any status with "always" for add_header).  As in nginx, a
 * level that has any add_header does not inherit its parent's.
 *
 * Values are templates, compiled in postconfig once every module has registered its
 * variables.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "worker/http.h"
#include "config/conf.h"
#include "core/http_date.h"
#include "core/pool.h"
#include "core/times.h"
#include "worker/var.h"
#include "worker/var_http.h"

struct add_header {
    struct pt_str name;
    const char *src;
    struct pt_template *value;
    unsigned always : 1;
    const struct pt_conf_setting *setting; /* for errors found when compiling in postconfig */
    struct add_header *next_all;           /* every add_header of the cycle */
};

/* The add_header lines of one level; shared by the levels that inherit it. */
struct header_list {
    struct add_header **h;
    int n;
};

struct headers_main_conf {
    struct add_header *all;
};

/* What expires sets. */
enum expires {
    EXPIRES_OFF,
    EXPIRES_EPOCH,
    EXPIRES_MAX,
    EXPIRES_ACCESS,
    EXPIRES_MODIFIED,
    EXPIRES_DAILY /* "@TIME": at the next such time of day */
};

struct headers_loc_conf {
    struct header_list *list; /* NULL: not set here, inherit */
    int expires;              /* enum expires; PT_CONF_UNSET: not set here */
    int64_t expires_secs;     /* the offset of ACCESS and MODIFIED, DAILY's time of day */
};

static int set_add_header(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_expires(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive headers_directives[] = {
    {"add_header", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, PT_DIR_MULTI, PT_LOC_CONF, set_add_header,
     0, NULL,
     "\"NAME VALUE [always]\": adds a response header (VALUE may use variables) to 2xx/3xx "
     "responses, or to all with always; a level with add_header does not inherit its parent's"},
    {"expires", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, 0, PT_LOC_CONF, set_expires, 0, NULL,
     "\"[modified] TIME\", \"@TIME\", \"epoch\", \"max\" or \"off\" (default): Expires and "
     "Cache-Control on 2xx/3xx answers, as nginx: TIME from now (or from Last-Modified with "
     "modified), in nginx's units (\"30d\", \"1h 30m\", \"-1\"); max-age=SECONDS when it is "
     "ahead, no-cache when not; @TIME: at the next such time of day, local time (\"@15h30m\", "
     "at most 24h); epoch: 1 Jan 1970 and no-cache; max: 31 Dec 2037 and ten years"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_headers_module;

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct headers_main_conf));
}

static void *create_loc_conf(struct pt_conf *cf)
{
    struct headers_loc_conf *hlc = pt_palloc(cf->pool, sizeof(*hlc));

    if (hlc)
        hlc->expires = PT_CONF_UNSET;
    return hlc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct headers_loc_conf *p = parent, *c = child;

    pt_unused(cf);
    if (c->list == NULL)
        c->list = p->list;
    if (c->expires == PT_CONF_UNSET) {
        c->expires = p->expires;
        c->expires_secs = p->expires_secs;
    }
    if (c->expires == PT_CONF_UNSET)
        c->expires = EXPIRES_OFF;
    return PT_OK;
}

static int set_add_header(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct headers_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_headers_module);
    struct headers_loc_conf *hlc = conf;
    struct header_list *l = hlc->list;
    struct add_header *h = pt_palloc(cf->pool, sizeof(*h)), **a;
    char *src;
    int always = 0;

    pt_unused(d);
    if (l == NULL && (l = hlc->list = pt_palloc(cf->pool, sizeof(*l))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (h == NULL || (a = pt_palloc(cf->pool, (size_t)(l->n + 1) * sizeof(*a))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (pt_http_header_directive(cf, cf->value, &h->name, &src, &always) != PT_OK)
        return pt_conf_error(cf,
                             "invalid add_header \"%s\" (use \"NAME VALUE [always]\", NAME "
                             "a token, VALUE without CR or LF)",
                             cf->value);
    h->src = src;
    h->always = always != 0;
    h->setting = cf->setting;
    h->next_all = mc->all;
    mc->all = h;
    if (l->n)
        memcpy(a, l->h, (size_t)l->n * sizeof(*a));
    a[l->n++] = h;
    l->h = a;
    return PT_OK;
}

/* nginx's ngx_parse_time in seconds: "30d", "1h 30m", "90": units y M w d h m s, each once
 * and in that order, a bare number being seconds.  -1 when <s> is not one. */
static int64_t parse_seconds(const char *s)
{
    static const char units[] = "yMwdhms";
    static const int64_t secs[] = {31536000, 2592000, 604800, 86400, 3600, 60, 1};
    int64_t total = 0;
    int next = 0;

    if (*s == '\0')
        return -1;
    while (*s) {
        int64_t v = 0;
        const char *u;
        if (*s < '0' || *s > '9')
            return -1;
        while (*s >= '0' && *s <= '9') {
            if (v > (INT64_MAX / 31536000 - 9) / 10)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        if (*s == '\0' || *s == ' ')
            u = units + 6; /* seconds */
        else if ((u = strchr(units + next, *s)) == NULL || *s == '\0')
            return -1;
        else
            s++;
        next = (int)(u - units) + 1;
        total += v * secs[u - units];
        while (*s == ' ')
            s++;
        if (next > 6 && *s)
            return -1;
    }
    return total;
}

static int set_expires(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct headers_loc_conf *hlc = conf;
    const char *v = cf->value;
    int neg = 0;

    pt_unused(d);
    if (hlc->expires != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"expires\" is duplicate");
    if (strcmp(v, "off") == 0 || strcmp(v, "epoch") == 0 || strcmp(v, "max") == 0) {
        hlc->expires = v[0] == 'o' ? EXPIRES_OFF : v[0] == 'e' ? EXPIRES_EPOCH : EXPIRES_MAX;
        return PT_OK;
    }
    hlc->expires = EXPIRES_ACCESS;
    if (strncmp(v, "modified ", 9) == 0) {
        hlc->expires = EXPIRES_MODIFIED;
        v += 9 + strspn(v + 9, " ");
    }
    if (*v == '@') {
        if (hlc->expires == EXPIRES_MODIFIED)
            return pt_conf_error(cf,
                                 "invalid \"expires\" value \"%s\": a time of day (@TIME) "
                                 "cannot be used with \"modified\"",
                                 cf->value);
        hlc->expires = EXPIRES_DAILY;
        v++;
    } else if (*v == '+' || *v == '-') {
        neg = *v++ == '-';
    }
    if ((hlc->expires_secs = parse_seconds(v)) < 0)
        return pt_conf_error(cf,
                             "invalid \"expires\" value \"%s\": use [modified] TIME (30d, "
                             "1h 30m, -1), @TIME (a time of day: @15h30m), epoch, max or off",
                             cf->value);
    /* nginx's bound: 24h itself is accepted, and is the next midnight. */
    if (hlc->expires == EXPIRES_DAILY && hlc->expires_secs > 24 * 3600)
        return pt_conf_error(cf,
                             "invalid \"expires\" value \"%s\": a time of day must be at "
                             "most 24 hours (\"@15h30m\")",
                             cf->value);
    if (neg)
        hlc->expires_secs = -hlc->expires_secs;
    return PT_OK;
}

/* nginx's ngx_next_time: the first moment after <now> whose local time of day is <secs>
 * seconds past midnight, today's or else tomorrow's (mktime settles the date and daylight
 * saving time); -1 when mktime cannot. */
static time_t next_time_of_day(time_t now, int64_t secs)
{
    struct tm tm;
    time_t next;

    localtime_r(&now, &tm);
    tm.tm_hour = (int)(secs / 3600);
    tm.tm_min = (int)(secs % 3600 / 60);
    tm.tm_sec = (int)(secs % 60);
    next = mktime(&tm);
    if (next == -1 || next > now)
        return next;
    tm.tm_mday++;
    return mktime(&tm);
}

/* nginx's ngx_http_set_expires: Expires and one Cache-Control, replacing the answer's. */
static int add_expires(struct pt_request *r, const struct headers_loc_conf *hlc)
{
    char date[PT_HTTP_DATE_LEN], cc[40], *e, *c;
    time_t now = pt_time_sec(), when = now + hlc->expires_secs;
    struct pt_header *lm = pt_header_find(&r->out, "Last-Modified");
    const char *exp = NULL, *ccv = NULL;
    size_t n;

    if (hlc->expires == EXPIRES_EPOCH)
        exp = "Thu, 01 Jan 1970 00:00:01 GMT", ccv = "no-cache";
    else if (hlc->expires == EXPIRES_MAX)
        exp = "Thu, 31 Dec 2037 23:55:55 GMT", ccv = "max-age=315360000";
    if (hlc->expires == EXPIRES_DAILY)
        when = next_time_of_day(now, hlc->expires_secs);
    if (hlc->expires == EXPIRES_MODIFIED && lm) {
        time_t t = pt_http_parse_date(lm->value, now);
        if (t >= 0)
            when = t + hlc->expires_secs;
    }
    if (exp == NULL) {
        n = pt_http_format_date(when, date);
        exp = date;
        if (hlc->expires_secs < 0 || when < now)
            ccv = "no-cache";
        else
            snprintf(cc, sizeof(cc), "max-age=%lld", (long long)(when - now)), ccv = cc;
    }
    n = strlen(exp);
    if ((e = pt_pstrndup(r->pool, exp, n)) == NULL ||
        (c = pt_pstrndup(r->pool, ccv, strlen(ccv))) == NULL)
        return PT_ERROR;
    pt_header_remove(&r->out, "Expires");
    pt_header_remove(&r->out, "Cache-Control");
    if (pt_header_add(r, &r->out, PT_STR("Expires"), (struct pt_str){e, n}) != PT_OK ||
        pt_header_add(r, &r->out, PT_STR("Cache-Control"), pt_str_c(c)) != PT_OK)
        return PT_ERROR;
    return PT_OK;
}

/* nginx adds headers without "always" to these statuses only. */
static int status_allowed(int status)
{
    switch (status) {
    case 200:
    case 201:
    case 204:
    case 206:
    case 301:
    case 302:
    case 303:
    case 304:
    case 307:
    case 308: return 1;
    }
    return 0;
}

static int headers_filter(struct pt_request *r)
{
    struct headers_loc_conf *hlc = r->loc_conf ? pt_http_loc_conf(r, pt_headers_module) : NULL;
    struct header_list *l = hlc ? hlc->list : NULL;
    int allowed = status_allowed(r->status);

    if (hlc && hlc->expires > EXPIRES_OFF && allowed && add_expires(r, hlc) != PT_OK)
        return PT_ERROR;
    for (int i = 0; l && i < l->n; i++) {
        struct add_header *h = l->h[i];
        struct pt_str v;
        if (!allowed && !h->always)
            continue;
        if (pt_template_eval(r, h->value, &v) != PT_OK)
            return PT_ERROR;
        /* Empty adds nothing (nginx); CR/LF/NUL from a variable would split the header. */
        if (v.len == 0 || memchr(v.p, '\r', v.len) || memchr(v.p, '\n', v.len) ||
            memchr(v.p, '\0', v.len))
            continue;
        if (pt_header_add(r, &r->out, h->name, v) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    struct headers_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_headers_module);

    /* Idempotent; makes sure the core variables exist whatever the http core did. */
    if (pt_http_vars_register() != PT_OK)
        return pt_conf_error(cf, "cannot register the HTTP variables");
    for (struct add_header *h = mc->all; h; h = h->next_all) {
        cf->setting = h->setting;
        if ((h->value = pt_template_compile(cf, h->src, PT_ESCAPE_NONE)) == NULL)
            return PT_ERROR;
    }
    cf->setting = NULL;
    if (pt_header_filter_add(cf->cycle, headers_filter) != PT_OK)
        return pt_conf_error(cf, "too many header filters");
    return PT_OK;
}

struct pt_module pt_headers_module = {
    .name = "headers",
    .directives = headers_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
