/*
 * policy.c: the cache's decisions over parsed header fields (see policy.h for the contract
 * and for where nginx and RFC 9111 part ways).  Nothing here reads a clock or allocates.
 */
#include "modules/cache/policy.h"

#include "modules/cache/fields.h"

#define DAY 86400

/* ---------------------------------------------------------------------------------------
 * Cache-Control (RFC 9111 5.2).
 */

#define CC_ARG_OPTIONAL 1 /* max-stale: a bare directive means any staleness */

static const struct {
    const char *name;
    unsigned flag;    /* PT_CC_*, or 0 for a delta-seconds directive */
    size_t off;       /* offset of its int64_t in struct pt_cc */
    unsigned options; /* CC_ARG_OPTIONAL */
} cc_table[] = {
    {"no-store", PT_CC_NO_STORE, 0, 0},
    {"no-cache", PT_CC_NO_CACHE, 0, 0},
    {"private", PT_CC_PRIVATE, 0, 0},
    {"public", PT_CC_PUBLIC, 0, 0},
    {"must-revalidate", PT_CC_MUST_REVALIDATE, 0, 0},
    {"proxy-revalidate", PT_CC_PROXY_REVALIDATE, 0, 0},
    {"must-understand", PT_CC_MUST_UNDERSTAND, 0, 0},
    {"only-if-cached", PT_CC_ONLY_IF_CACHED, 0, 0},
    {"no-transform", PT_CC_NO_TRANSFORM, 0, 0},
    {"max-age", 0, offsetof(struct pt_cc, max_age), 0},
    {"s-maxage", 0, offsetof(struct pt_cc, s_maxage), 0},
    {"stale-while-revalidate", 0, offsetof(struct pt_cc, stale_while_revalidate), 0},
    {"stale-if-error", 0, offsetof(struct pt_cc, stale_if_error), 0},
    {"min-fresh", 0, offsetof(struct pt_cc, min_fresh), 0},
    {"max-stale", 0, offsetof(struct pt_cc, max_stale), CC_ARG_OPTIONAL},
};

/* One member of a Cache-Control list. */
struct directive {
    struct pt_str name, arg;
    unsigned has_arg : 1;
    unsigned bad : 1; /* malformed: unterminated quote, or junk after the member */
};

/* Reads the argument at <p> into <d>: a quoted-string (its inside, escapes left as they are:
 * no argument we read may hold one) or a token.  Returns where it ends. */
static const char *scan_arg(const char *p, const char *end, struct directive *d)
{
    d->has_arg = 1;
    if (p < end && *p == '"') {
        d->arg.p = ++p;
        while (p < end && *p != '"')
            p += (*p == '\\' && p + 1 < end) ? 2 : 1;
        d->arg.len = (size_t)(p - d->arg.p);
        if (p == end)
            d->bad = 1;
        return p < end ? p + 1 : p;
    }
    d->arg.p = p;
    while (p < end && pt_http_has_class(*p, PT_HTTP_C_TCHAR))
        p++;
    d->arg.len = (size_t)(p - d->arg.p);
    return p;
}

/*
 * Splits the next member of the Cache-Control list <*s> into <d> and consumes it; returns 0
 * at the end.  cache-directive = token [ "=" ( token / quoted-string ) ]; whitespace around
 * "=" is tolerated, as senders write "max-age = 60" and no other reading of it exists.
 */
static int next_directive(struct pt_str *s, struct directive *d)
{
    const char *p = s->p, *end = s->p + s->len;

    memset(d, 0, sizeof(*d));
    while (p < end && (*p == ',' || pt_http_is_ows(*p)))
        p++;
    if (p == end) {
        *s = (struct pt_str){p, 0};
        return 0;
    }
    d->name.p = p;
    while (p < end && pt_http_has_class(*p, PT_HTTP_C_TCHAR))
        p++;
    d->name.len = (size_t)(p - d->name.p);
    while (p < end && pt_http_is_ows(*p))
        p++;
    if (p < end && *p == '=') {
        for (p++; p < end && pt_http_is_ows(*p);)
            p++;
        p = scan_arg(p, end, d);
    }
    while (p < end && pt_http_is_ows(*p))
        p++;
    if (p < end && *p != ',') {
        d->bad = 1;
        p = skip_member(p, end);
    }
    *s = (struct pt_str){p, (size_t)(end - p)};
    return 1;
}

/* Applies directive <d> to <cc>.  A delta-seconds directive keeps its first occurrence
 * (RFC 9111 4.2.1); a flag is set by any occurrence, whatever its argument: no-cache="f"
 * and private="f" count as the bare directives for a cache that does not strip "f". */
static void cc_apply(struct pt_cc *cc, const struct directive *d)
{
    for (size_t i = 0; i < pt_nelems(cc_table); i++) {
        int64_t *v, secs;

        if (!pt_str_ieq(d->name, cc_table[i].name))
            continue;
        if (cc_table[i].flag) {
            cc->flags |= cc_table[i].flag;
            return;
        }
        v = (int64_t *)((char *)cc + cc_table[i].off);
        if (*v != PT_CC_UNSET)
            return;
        if (!d->has_arg)
            *v = (cc_table[i].options & CC_ARG_OPTIONAL) ? PT_CC_ANY : PT_CC_INVALID;
        else if (d->bad || (secs = parse_digits(d->arg, PT_CC_DELTA_MAX)) < 0)
            *v = PT_CC_INVALID;
        else
            *v = secs;
        return;
    }
}

static void cc_init(struct pt_cc *cc)
{
    cc->flags = 0;
    cc->max_age = cc->s_maxage = PT_CC_UNSET;
    cc->stale_while_revalidate = cc->stale_if_error = PT_CC_UNSET;
    cc->min_fresh = cc->max_stale = PT_CC_UNSET;
}

void pt_cc_parse(const struct pt_http_header *h, size_t n, struct pt_cc *cc)
{
    const struct pt_http_header *f;
    struct directive d;
    size_t i = 0;

    cc_init(cc);
    while ((f = next_field(h, n, &i, "Cache-Control"))) {
        struct pt_str rest = f->value;

        cc->flags |= PT_CC_PRESENT;
        while (next_directive(&rest, &d))
            cc_apply(cc, &d);
    }
}

void pt_cc_parse_request(const struct pt_http_header *h, size_t n, struct pt_cc *cc)
{
    const struct pt_http_header *f;
    size_t i = 0;

    pt_cc_parse(h, n, cc);
    if (cc->flags & PT_CC_PRESENT)
        return; /* RFC 9111 5.4: Pragma is ignored when Cache-Control is present */
    while ((f = next_field(h, n, &i, "Pragma")))
        if (pt_http_has_token(f->value, "no-cache"))
            cc->flags |= PT_CC_NO_CACHE;
}

/* The directives of the response <resp> as <conf> lets them count: none when Cache-Control
 * is in proxy_ignore_headers. */
static void response_cc(const struct pt_cache_conf *conf, const struct pt_cache_resp *resp,
                        struct pt_cc *cc)
{
    if (conf->ignore & PT_CACHE_IGN_CACHE_CONTROL)
        cc_init(cc);
    else
        pt_cc_parse(resp->h, resp->n, cc);
}

/* The directives of the request <req>: none unless PT_CACHE_REQUEST_CC (nginx reads none). */
static void request_cc(const struct pt_cache_conf *conf, const struct pt_cache_req *req,
                       struct pt_cc *cc)
{
    if (conf->flags & PT_CACHE_REQUEST_CC)
        pt_cc_parse_request(req->h, req->n, cc);
    else
        cc_init(cc);
}

/* ---------------------------------------------------------------------------------------
 * Storing (RFC 9111 3).
 */

/* The status codes whose caching rules this cache knows: those RFC 9110 defines
 * (must-understand, RFC 9111 5.2.2.3). */
static int status_understood(int status)
{
    return (status >= 200 && status <= 206) || (status >= 300 && status <= 308 && status != 306) ||
           (status >= 400 && status <= 417) || status == 421 || status == 422 || status == 426 ||
           (status >= 500 && status <= 505);
}

/* Heuristically cacheable status codes (RFC 9110 15.1). */
static int status_heuristic(int status)
{
    static const int codes[] = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};

    for (size_t i = 0; i < pt_nelems(codes); i++)
        if (codes[i] == status)
            return 1;
    return 0;
}

int pt_cache_upstream_method(const struct pt_cache_conf *conf, int method)
{
    if (method == PT_HTTP_HEAD && !(conf->flags & PT_CACHE_NO_CONVERT_HEAD))
        return PT_HTTP_GET;
    return method;
}

static int method_cached(const struct pt_cache_conf *conf, int method)
{
    unsigned mask = conf->methods | PT_CACHE_METHOD(PT_HTTP_GET) | PT_CACHE_METHOD(PT_HTTP_HEAD);

    method = pt_cache_upstream_method(conf, method);
    return method >= 0 && method < 32 && (mask & PT_CACHE_METHOD(method));
}

/* Returns 1 if a Vary field of <resp> has a "*" member (RFC 9111 4.1: no request matches). */
static int vary_star(const struct pt_cache_resp *resp)
{
    const struct pt_http_header *f;
    struct pt_str rest, m;
    size_t i = 0;

    while ((f = next_field(resp->h, resp->n, &i, "Vary")))
        for (rest = f->value; next_member(&rest, &m);)
            if (pt_str_eq(m, "*"))
                return 1;
    return 0;
}

enum xae { XAE_NONE, XAE_ZERO, XAE_SET };

/*
 * Reads X-Accel-Expires as nginx does: seconds from now, "@" and an epoch time, 0 for "do
 * not cache"; any other value is skipped, and only the first field counts (nginx 1.23
 * ignores duplicates).  On XAE_SET, <*secs> is the time left from the receipt of <resp>.
 */
static enum xae x_accel_expires(const struct pt_cache_conf *conf, const struct pt_cache_resp *resp,
                                int64_t *secs)
{
    const struct pt_http_header *f = pt_http_find_header(resp->h, resp->n, "X-Accel-Expires");
    struct pt_str v;
    int64_t t;

    if (!f || (conf->ignore & PT_CACHE_IGN_X_ACCEL_EXPIRES))
        return XAE_NONE;
    v = f->value;
    if (v.len && v.p[0] == '@') {
        if ((t = parse_digits((struct pt_str){v.p + 1, v.len - 1}, INT64_MAX / 2)) < 0)
            return XAE_NONE;
        *secs = elapsed(resp->response_time, (time_t)t);
        return XAE_SET;
    }
    if ((t = parse_digits(v, PT_CC_DELTA_MAX)) < 0)
        return XAE_NONE;
    *secs = t;
    return t ? XAE_SET : XAE_ZERO;
}

/* Checks of the response's own Cache-Control (must-understand, no-store, private) and of
 * Authorization (RFC 9111 3.5), once <cc> is as <conf> lets it count. */
static enum pt_cache_store check_directives(const struct pt_cache_req *req,
                                            const struct pt_cache_resp *resp,
                                            const struct pt_cc *cc, int xae)
{
    int understood = status_understood(resp->status);

    if ((cc->flags & PT_CC_MUST_UNDERSTAND) && !understood)
        return PT_CACHE_NO_MUST_UNDERSTAND;
    /* X-Accel-Expires overrides no-store and private in nginx: the backend tells browsers
     * what they must not do ("private") and nginx what it may.  must-understand with a status
     * understood lifts no-store (RFC 9111 5.2.2.3). */
    if (!xae && (cc->flags & PT_CC_NO_STORE) && !(cc->flags & PT_CC_MUST_UNDERSTAND))
        return PT_CACHE_NO_NO_STORE;
    if (!xae && (cc->flags & PT_CC_PRIVATE))
        return PT_CACHE_NO_PRIVATE;
    if (pt_http_find_header(req->h, req->n, "Authorization") &&
        !(cc->flags & (PT_CC_PUBLIC | PT_CC_MUST_REVALIDATE)) && cc->s_maxage == PT_CC_UNSET)
        return PT_CACHE_NO_AUTHORIZATION;
    return PT_CACHE_STORABLE;
}

enum pt_cache_store pt_cache_storable(const struct pt_cache_conf *conf,
                                      const struct pt_cache_req *req,
                                      const struct pt_cache_resp *resp)
{
    struct pt_cc cc;
    int64_t secs;

    if (!method_cached(conf, req->method))
        return PT_CACHE_NO_METHOD;
    /* 206 would need the parts combined (RFC 9111 3.3), 304 updates a stored response
     * (4.3.4): neither is stored on its own */
    if (resp->status < 200 || resp->status == 206 || resp->status == 304)
        return PT_CACHE_NO_STATUS;
    request_cc(conf, req, &cc);
    if (cc.flags & PT_CC_NO_STORE)
        return PT_CACHE_NO_REQUEST_NO_STORE; /* RFC 9111 5.2.1.5 */
    if (!(conf->ignore & PT_CACHE_IGN_VARY) && vary_star(resp))
        return PT_CACHE_NO_VARY_STAR;
    if (!(conf->ignore & PT_CACHE_IGN_SET_COOKIE) &&
        pt_http_find_header(resp->h, resp->n, "Set-Cookie"))
        return PT_CACHE_NO_SET_COOKIE; /* nginx; RFC 9111 7.3 would allow it */
    response_cc(conf, resp, &cc);
    return check_directives(req, resp, &cc, x_accel_expires(conf, resp, &secs) == XAE_SET);
}

const char *pt_cache_store_text(enum pt_cache_store why)
{
    static const char *const text[] = {
        [PT_CACHE_STORABLE] = "storable",
        [PT_CACHE_NO_METHOD] = "request method not in proxy_cache_methods",
        [PT_CACHE_NO_STATUS] = "status not stored (1xx, 206 or 304)",
        [PT_CACHE_NO_REQUEST_NO_STORE] = "request Cache-Control: no-store",
        [PT_CACHE_NO_VARY_STAR] = "response Vary: *",
        [PT_CACHE_NO_SET_COOKIE] = "response has Set-Cookie",
        [PT_CACHE_NO_NO_STORE] = "response Cache-Control: no-store",
        [PT_CACHE_NO_PRIVATE] = "response Cache-Control: private",
        [PT_CACHE_NO_MUST_UNDERSTAND] = "must-understand with a status code not understood",
        [PT_CACHE_NO_AUTHORIZATION] =
            "request has Authorization, response has no public, s-maxage or must-revalidate",
    };

    return (unsigned)why < pt_nelems(text) ? text[why] : "?";
}

int pt_cache_invalidates(int method, int status)
{
    switch (method) {
    case PT_HTTP_GET:
    case PT_HTTP_HEAD:
    case PT_HTTP_OPTIONS:
    case PT_HTTP_TRACE: return 0; /* safe methods (RFC 9110 9.2.1) */
    default: return status >= 200 && status <= 399;
    }
}

/* ---------------------------------------------------------------------------------------
 * Freshness and age (RFC 9111 4.2).
 */

int64_t pt_cache_current_age(int64_t age_value, time_t date_value, time_t request_time,
                             time_t response_time, time_t now)
{
    int64_t apparent = date_value >= 0 ? elapsed(date_value, response_time) : 0;
    int64_t corrected =
        pt_min(pt_max(age_value, 0), PT_CC_DELTA_MAX) + elapsed(request_time, response_time);
    int64_t age = pt_max(apparent, corrected) + elapsed(response_time, now);

    return pt_min(age, PT_CC_DELTA_MAX);
}

/* The Age field of <resp>: its first one; an invalid one counts as absent. */
static int64_t age_value(const struct pt_cache_resp *resp)
{
    const struct pt_http_header *f = pt_http_find_header(resp->h, resp->n, "Age");
    int64_t v = f ? parse_digits(f->value, PT_CC_DELTA_MAX) : 0;

    return v < 0 ? 0 : v;
}

int64_t pt_cache_age(const struct pt_cache_resp *resp, time_t now)
{
    time_t date = date_field(resp->h, resp->n, "Date", resp->response_time);

    return pt_cache_current_age(age_value(resp), date, resp->request_time, resp->response_time,
                                now);
}

/* The date of <resp> for the freshness rules: its Date, else its receipt (RFC 9110 6.6.1). */
static time_t date_value(const struct pt_cache_resp *resp)
{
    time_t date = date_field(resp->h, resp->n, "Date", resp->response_time);

    return date >= 0 ? date : resp->response_time;
}

/* The lifetime <secs>, counted from the response's generation (RFC 9111). */
static struct pt_cache_lifetime lifetime(const struct pt_cache_resp *resp, int64_t initial_age,
                                         int64_t secs, enum pt_cache_rule rule)
{
    return (struct pt_cache_lifetime){secs, resp->response_time - initial_age + secs, rule};
}

/* <secs> counted from the receipt, as nginx counts its own rules. */
static struct pt_cache_lifetime from_receipt(const struct pt_cache_resp *resp, int64_t initial_age,
                                             int64_t secs, enum pt_cache_rule rule)
{
    return lifetime(resp, initial_age, secs + initial_age, rule);
}

static struct pt_cache_lifetime not_cacheable(enum pt_cache_rule rule)
{
    return (struct pt_cache_lifetime){PT_CACHE_NOT_CACHEABLE, 0, rule};
}

/* Expires minus Date (RFC 9111 4.2.1); an invalid Expires, "0" say, is in the past (5.3). */
static int64_t expires_lifetime(const struct pt_cache_resp *resp, struct pt_str expires)
{
    time_t t = pt_http_parse_date(expires, resp->response_time);

    return t < 0 ? 0 : elapsed(date_value(resp), t);
}

/* A tenth of the time since Last-Modified, at most a day (RFC 9111 4.2.2); -1 when there is
 * no Last-Modified or it is later than Date (RFC 9110 8.8.2.1 forbids that). */
static int64_t heuristic_lifetime(const struct pt_cache_resp *resp)
{
    time_t lm = date_field(resp->h, resp->n, "Last-Modified", resp->response_time);
    time_t date = date_value(resp);

    if (lm < 0 || lm > date)
        return -1;
    return pt_min(elapsed(lm, date) / 10, DAY);
}

/* The Cache-Control rules: no-cache, s-maxage (a shared cache's), max-age; an invalid value
 * is stale (RFC 9111 4.2.1).  Returns 0 when none applies. */
static int cc_lifetime(const struct pt_cc *cc, int64_t *secs, enum pt_cache_rule *rule)
{
    if (cc->flags & PT_CC_NO_CACHE) { /* the most restrictive wins (RFC 9111 4.2.1) */
        *secs = 0;
        *rule = PT_CACHE_RULE_NO_CACHE;
    } else if (cc->s_maxage != PT_CC_UNSET) {
        *secs = pt_max(cc->s_maxage, 0);
        *rule = PT_CACHE_RULE_S_MAXAGE;
    } else if (cc->max_age != PT_CC_UNSET) {
        *secs = pt_max(cc->max_age, 0);
        *rule = PT_CACHE_RULE_MAX_AGE;
    } else {
        return 0;
    }
    return 1;
}

static struct pt_cache_lifetime freshness(const struct pt_cache_conf *conf,
                                          const struct pt_cache_resp *resp, int64_t valid)
{
    int64_t initial_age = pt_cache_age(resp, resp->response_time), secs;
    const struct pt_http_header *expires = pt_http_find_header(resp->h, resp->n, "Expires");
    enum xae xae = x_accel_expires(conf, resp, &secs);
    enum pt_cache_rule rule;
    struct pt_cc cc;

    if (xae == XAE_ZERO)
        return not_cacheable(PT_CACHE_RULE_X_ACCEL_EXPIRES);
    if (xae == XAE_SET)
        return from_receipt(resp, initial_age, secs, PT_CACHE_RULE_X_ACCEL_EXPIRES);
    response_cc(conf, resp, &cc);
    if (cc_lifetime(&cc, &secs, &rule))
        return lifetime(resp, initial_age, secs, rule);
    if (expires && !(conf->ignore & PT_CACHE_IGN_EXPIRES))
        return lifetime(resp, initial_age, expires_lifetime(resp, expires->value),
                        PT_CACHE_RULE_EXPIRES);
    if (valid == 0) /* "proxy_cache_valid 0": nginx does not cache */
        return not_cacheable(PT_CACHE_RULE_VALID);
    if (valid > 0)
        return from_receipt(resp, initial_age, pt_min(valid, PT_CC_DELTA_MAX), PT_CACHE_RULE_VALID);
    if ((conf->flags & PT_CACHE_HEURISTIC) &&
        (status_heuristic(resp->status) || (cc.flags & PT_CC_PUBLIC)) &&
        (secs = heuristic_lifetime(resp)) >= 0)
        return lifetime(resp, initial_age, secs, PT_CACHE_RULE_HEURISTIC);
    return not_cacheable(PT_CACHE_RULE_NONE);
}

void pt_cache_freshness(const struct pt_cache_conf *conf, const struct pt_cache_resp *resp,
                        int64_t valid, struct pt_cache_lifetime *out)
{
    *out = freshness(conf, resp, valid);
}

const char *pt_cache_rule_text(enum pt_cache_rule rule)
{
    static const char *const text[] = {
        [PT_CACHE_RULE_NONE] = "no freshness information",
        [PT_CACHE_RULE_X_ACCEL_EXPIRES] = "X-Accel-Expires",
        [PT_CACHE_RULE_NO_CACHE] = "Cache-Control: no-cache",
        [PT_CACHE_RULE_S_MAXAGE] = "Cache-Control: s-maxage",
        [PT_CACHE_RULE_MAX_AGE] = "Cache-Control: max-age",
        [PT_CACHE_RULE_EXPIRES] = "Expires",
        [PT_CACHE_RULE_VALID] = "proxy_cache_valid",
        [PT_CACHE_RULE_HEURISTIC] = "heuristic (Last-Modified)",
    };

    return (unsigned)rule < pt_nelems(text) ? text[rule] : "?";
}

/* ---------------------------------------------------------------------------------------
 * Serving a stored response (RFC 9111 4, 4.2.4; RFC 5861).
 */

/* Returns 1 if the stored response's own directives forbid serving it stale (RFC 9111
 * 4.2.4).  no-cache does not when X-Accel-Expires overrode it, as in nginx. */
static int stale_forbidden(const struct pt_cc *cc, const struct pt_cache_lifetime *lt)
{
    return (cc->flags & (PT_CC_MUST_REVALIDATE | PT_CC_PROXY_REVALIDATE)) ||
           ((cc->flags & PT_CC_NO_CACHE) && lt->rule != PT_CACHE_RULE_X_ACCEL_EXPIRES);
}

/* Returns 1 if the request's directives <rq> refuse a response of <age> and <lifetime>. */
static int request_refuses(const struct pt_cc *rq, int64_t lifetime, int64_t age)
{
    if (rq->flags & PT_CC_NO_CACHE) /* Pragma: no-cache included (RFC 9111 5.4) */
        return 1;
    /* max-age=0 is how clients ask for validation (a reload), and an age in whole seconds
     * of 0 may still be most of a second: it always revalidates */
    if (rq->max_age == 0 || (rq->max_age > 0 && age > rq->max_age))
        return 1;
    return rq->min_fresh >= 0 && lifetime - age < rq->min_fresh;
}

static enum pt_cache_use decide_use(const struct pt_cache_conf *conf, const struct pt_cc *rq,
                                    const struct pt_cc *cc, const struct pt_cache_lifetime *lt,
                                    int64_t age)
{
    int64_t stale = age - lt->lifetime;

    if (request_refuses(rq, lt->lifetime, age))
        return PT_CACHE_USE_REVALIDATE;
    if (pt_cache_fresh(lt->lifetime, age))
        return PT_CACHE_USE_FRESH;
    /* s-maxage implies proxy-revalidate (RFC 9111 5.2.2.10): no client may take it stale */
    if (rq->max_stale >= 0 && stale <= rq->max_stale && !stale_forbidden(cc, lt) &&
        lt->rule != PT_CACHE_RULE_S_MAXAGE)
        return PT_CACHE_USE_STALE;
    if (conf->flags & PT_CACHE_STALE_UPDATING)
        return PT_CACHE_USE_UPDATING;
    if (cc->stale_while_revalidate >= 0 && stale <= cc->stale_while_revalidate &&
        !stale_forbidden(cc, lt))
        return PT_CACHE_USE_UPDATING;
    return PT_CACHE_USE_REVALIDATE;
}

enum pt_cache_use pt_cache_use(const struct pt_cache_conf *conf, const struct pt_cache_req *req,
                               const struct pt_cache_resp *stored,
                               const struct pt_cache_lifetime *lt, time_t now)
{
    struct pt_cc rq, cc;
    enum pt_cache_use use;

    request_cc(conf, req, &rq);
    response_cc(conf, stored, &cc);
    use = decide_use(conf, &rq, &cc, lt, pt_cache_age(stored, now));
    if (use == PT_CACHE_USE_REVALIDATE && (rq.flags & PT_CC_ONLY_IF_CACHED))
        return PT_CACHE_USE_504; /* RFC 9111 5.2.1.7 */
    return use;
}

int pt_cache_stale_on_error(const struct pt_cache_conf *conf, const struct pt_cache_req *req,
                            const struct pt_cache_resp *stored, const struct pt_cache_lifetime *lt,
                            time_t now, int configured)
{
    struct pt_cc rq, cc;
    int64_t stale;

    if (configured) /* proxy_cache_use_stale: the operator's word, as in nginx */
        return 1;
    response_cc(conf, stored, &cc);
    if (stale_forbidden(&cc, lt))
        return 0;
    stale = pt_cache_age(stored, now) - lt->lifetime;
    if (cc.stale_if_error >= 0 && stale <= cc.stale_if_error)
        return 1;
    request_cc(conf, req, &rq);
    return rq.stale_if_error >= 0 && stale <= rq.stale_if_error;
}

/* ---------------------------------------------------------------------------------------
 * Variants (RFC 9111 4.1).
 */

/* An output buffer that counts what did not fit. */
struct out {
    char *buf;
    size_t cap, len;
    unsigned overflow : 1;
};

static void put_char(struct out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len++] = c;
    else
        o->overflow = 1;
}

static void put(struct out *o, struct pt_str s, int lower)
{
    for (size_t i = 0; i < s.len; i++)
        put_char(o, lower ? pt_lower(s.p[i]) : s.p[i]);
}

/* The request fields read as lists of case-insensitive tokens, whose spacing and case do
 * not change what they ask for. */
static int accept_list(struct pt_str name)
{
    return pt_str_ieq(name, "Accept-Encoding") || pt_str_ieq(name, "Accept-Language") ||
           pt_str_ieq(name, "Accept-Charset");
}

/* Appends the members of <value>, lowercased and without OWS, each after a "," but the
 * first of the field (*<members> counts them over its lines). */
static void put_normalized(struct out *o, struct pt_str value, unsigned *members)
{
    struct pt_str rest = value, m;

    while (next_member(&rest, &m)) {
        if ((*members)++)
            put_char(o, ',');
        for (size_t i = 0; i < m.len; i++)
            if (!pt_http_is_ows(m.p[i]))
                put_char(o, pt_lower(m.p[i]));
    }
}

/* Appends ":" and the value of the request's fields <name>, or nothing without one. */
static void put_request_value(struct out *o, const struct pt_cache_req *req, struct pt_str name)
{
    unsigned lines = 0, members = 0;
    int normalize = accept_list(name);

    for (size_t i = 0; i < req->n; i++) {
        const struct pt_http_header *f = &req->h[i];

        if (f->name.len != name.len || strncasecmp(f->name.p, name.p, name.len) != 0)
            continue;
        if (lines++ == 0) {
            put_char(o, ':');
        } else if (!normalize) { /* a normalized list joins its lines with its own "," */
            put_char(o, ',');
            put_char(o, ' ');
        }
        if (normalize)
            put_normalized(o, f->value, &members);
        else
            put(o, trim(f->value), 0);
    }
}

int pt_cache_vary_key(const struct pt_cache_conf *conf, const struct pt_cache_resp *resp,
                      const struct pt_cache_req *req, char *buf, size_t cap, size_t *len)
{
    struct out o = {buf, cap, 0, 0};
    const struct pt_http_header *f;
    struct pt_str rest, name;
    size_t i = 0;

    *len = 0;
    if (conf->ignore & PT_CACHE_IGN_VARY)
        return PT_OK;
    while ((f = next_field(resp->h, resp->n, &i, "Vary"))) {
        for (rest = f->value; next_member(&rest, &name);) {
            if (pt_str_eq(name, "*"))
                return PT_DECLINED;
            put(&o, name, 1);
            put_request_value(&o, req, name);
            put_char(&o, '\n');
        }
    }
    if (o.overflow)
        return PT_ERROR;
    *len = o.len;
    return PT_OK;
}
