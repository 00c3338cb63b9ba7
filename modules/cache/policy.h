/*
 * policy.h: the decisions of the cache (nginx's proxy_cache family; an RFC 9111 shared
 * cache), as pure functions over parsed header fields: what Cache-Control says, whether a
 * response may be stored, for how long it is fresh, how old it is, whether a stored one may
 * be served, which variant a request selects, and what a stored response answers to the
 * client's own conditionals and Range.  No I/O, no clock, no shared memory, no allocation:
 * the caller passes the times and owns every buffer.
 *
 * Where nginx and RFC 9111 differ, these functions follow nginx for what the user configured
 * with a directive nginx defines (proxy_cache_valid, proxy_ignore_headers,
 * proxy_cache_use_stale, proxy_cache_methods, proxy_cache_convert_head, if_modified_since)
 * and for X-Accel-Expires, nginx's own field; they follow RFC 9111 for what the upstream's
 * standard fields say.  Each such choice is noted at the function that makes it; in short:
 *  - X-Accel-Expires (valid, not 0) overrides Cache-Control's no-cache, no-store, private,
 *    max-age and s-maxage, whatever the order of the fields (nginx 1.23 made it
 *    order-independent; 1.22 did so when X-Accel-Expires came first).  Its stale-* windows
 *    still count, as in nginx.
 *  - Response no-cache, max-age=0, an invalid max-age or s-maxage, an invalid or past
 *    Expires: nginx does not cache; here the response is stored as stale (lifetime 0), to be
 *    revalidated before each use (RFC 9111 4.2.1, 5.2.2.4, 5.3).  The caller may decline to
 *    store a lifetime-0 response that has no validator.
 *  - max-age and Expires are counted per RFC 9111 (Age, and Expires minus Date); nginx
 *    counts from the moment of receipt, which is kept for X-Accel-Expires and
 *    proxy_cache_valid.
 *  - Cache-Control is parsed as a list (RFC 9111 5.2), not searched for substrings as nginx
 *    does, so "x-no-cache-hint" is not no-cache.
 *  - The request's Authorization, must-understand, Vary members other than a whole "*",
 *    and the request's directives (behind PT_CACHE_REQUEST_CC) are RFC 9111 rules nginx
 *    does not have.
 */
#ifndef PT_CACHE_POLICY_H
#define PT_CACHE_POLICY_H

#include <stdint.h>
#include <time.h>

#include "core/http_date.h"
#include "core/pt.h"
#include "worker/http_parse.h"

/* ---------------------------------------------------------------------------------------
 * Cache-Control (RFC 9111 5.2).
 */

#define PT_CC_UNSET     (-1)               /* the directive is absent */
#define PT_CC_INVALID   (-2)               /* present, its argument missing or not delta-seconds */
#define PT_CC_DELTA_MAX ((int64_t)1 << 31) /* larger delta-seconds are this (RFC 9111 1.2.2) */
#define PT_CC_ANY       INT64_MAX          /* max-stale without a value: any staleness */

/* Flags of struct pt_cc. */
#define PT_CC_PRESENT          0x001 /* at least one Cache-Control field line */
#define PT_CC_NO_STORE         0x002
#define PT_CC_NO_CACHE         0x004 /* bare, or no-cache="field" */
#define PT_CC_PRIVATE          0x008 /* bare, or private="field" */
#define PT_CC_PUBLIC           0x010
#define PT_CC_MUST_REVALIDATE  0x020
#define PT_CC_PROXY_REVALIDATE 0x040
#define PT_CC_MUST_UNDERSTAND  0x080
#define PT_CC_ONLY_IF_CACHED   0x100
#define PT_CC_NO_TRANSFORM     0x200

/*
 * The directives of the Cache-Control fields of one message.  A delta-seconds member is
 * PT_CC_UNSET, PT_CC_INVALID or 0..PT_CC_DELTA_MAX; when a directive appears more than once
 * the first occurrence counts (RFC 9111 4.2.1 allows it).  The field-name forms
 * no-cache="..." and private="..." set PT_CC_NO_CACHE and PT_CC_PRIVATE: a shared cache that
 * does not strip the named fields must treat them as the bare directives (RFC 9111 5.2.2.4,
 * 5.2.2.7).  Request and response directives are all kept; each function reads its side's.
 */
struct pt_cc {
    unsigned flags; /* PT_CC_* */
    int64_t max_age, s_maxage;
    int64_t stale_while_revalidate, stale_if_error; /* RFC 5861 */
    int64_t min_fresh, max_stale;                   /* requests; max_stale may be PT_CC_ANY */
};

/*
 * Fills <cc> from every Cache-Control field among the <n> fields <h>: comma lists,
 * case-insensitive names, token or quoted-string arguments (RFC 9111 5.2: both forms
 * accepted for every directive), unknown directives ignored (5.2.3).  Never fails: a
 * malformed member sets what it names, with PT_CC_INVALID for a bad argument.
 */
void pt_cc_parse(const struct pt_http_header *h, size_t n, struct pt_cc *cc);

/*
 * As pt_cc_parse(), for a request: when there is no Cache-Control field at all, a Pragma
 * field with the no-cache token sets PT_CC_NO_CACHE (RFC 9111 5.4).
 */
void pt_cc_parse_request(const struct pt_http_header *h, size_t n, struct pt_cc *cc);

/* ---------------------------------------------------------------------------------------
 * Dates.
 */

/* ---------------------------------------------------------------------------------------
 * The configuration the decisions depend on, as the caller resolved it for a location.
 * A zeroed struct is nginx's defaults.
 */

/* proxy_cache_methods: a bit per enum pt_http_method.  GET and HEAD always count. */
#define PT_CACHE_METHOD(m) (1u << (m))

/* proxy_ignore_headers: the values that change caching decisions. */
#define PT_CACHE_IGN_X_ACCEL_EXPIRES 0x01
#define PT_CACHE_IGN_EXPIRES         0x02
#define PT_CACHE_IGN_CACHE_CONTROL   0x04
#define PT_CACHE_IGN_SET_COOKIE      0x08
#define PT_CACHE_IGN_VARY            0x10

/* Flags. */
#define PT_CACHE_NO_CONVERT_HEAD 0x01 /* proxy_cache_convert_head off */
#define PT_CACHE_HEURISTIC       0x02 /* heuristic freshness (RFC 9111 4.2.2); nginx has none */
#define PT_CACHE_REQUEST_CC                                                                  \
    0x04                             /* honour the request's Cache-Control and Pragma (nginx \
                                        ignores them: browsers' reloads would bypass it) */
#define PT_CACHE_STALE_UPDATING 0x08 /* proxy_cache_use_stale updating */

struct pt_cache_conf {
    unsigned methods; /* OR of PT_CACHE_METHOD() */
    unsigned ignore;  /* OR of PT_CACHE_IGN_* */
    unsigned flags;   /* OR of the flags above */
};

/* A request as the decisions see it. */
struct pt_cache_req {
    int method; /* enum pt_http_method */
    const struct pt_http_header *h;
    size_t n;
};

/* A response: one just received from upstream, or a stored one with the times it was
 * fetched at (RFC 9111 4.2.3). */
struct pt_cache_resp {
    int status;
    const struct pt_http_header *h;
    size_t n;
    time_t request_time;  /* when the request that brought it was sent upstream */
    time_t response_time; /* when the response was received */
};

/* ---------------------------------------------------------------------------------------
 * Storing.
 */

/* Why a response is or is not stored (pt_cache_storable()). */
enum pt_cache_store {
    PT_CACHE_STORABLE = 0,
    PT_CACHE_NO_METHOD,           /* request method not in proxy_cache_methods */
    PT_CACHE_NO_STATUS,           /* 1xx, 206 or 304 */
    PT_CACHE_NO_REQUEST_NO_STORE, /* request Cache-Control: no-store (PT_CACHE_REQUEST_CC) */
    PT_CACHE_NO_VARY_STAR,        /* Vary: * */
    PT_CACHE_NO_SET_COOKIE,       /* Set-Cookie, not ignored */
    PT_CACHE_NO_NO_STORE,         /* response Cache-Control: no-store */
    PT_CACHE_NO_PRIVATE,          /* response Cache-Control: private */
    PT_CACHE_NO_MUST_UNDERSTAND,  /* must-understand with a status code not understood */
    PT_CACHE_NO_AUTHORIZATION,    /* request with Authorization, response not allowing it */
};

/* The method the upstream request is sent with for a client's <method>: GET for HEAD,
 * unless <conf> has PT_CACHE_NO_CONVERT_HEAD (proxy_cache_convert_head). */
int pt_cache_upstream_method(const struct pt_cache_conf *conf, int method);

/*
 * Decides whether the response <resp> to the request <req> may be stored by a shared cache
 * configured by <conf> (RFC 9111 3, 3.5), apart from its lifetime, which
 * pt_cache_freshness() gives: store only when this returns PT_CACHE_STORABLE and that
 * returns a lifetime.  Checks, in order: the method (<req>->method; HEAD is GET unless
 * PT_CACHE_NO_CONVERT_HEAD, and with it a HEAD response is stored as nginx does: the key
 * must then hold the method), the status, the request's no-store (with PT_CACHE_REQUEST_CC
 * only), Vary: * and Set-Cookie (unless ignored; Set-Cookie as in nginx, where RFC 9111 7.3
 * would allow storing), then, unless Cache-Control is ignored: must-understand with a
 * status code RFC 9110 does not define, the response's no-store (lifted by must-understand,
 * RFC 9111 5.2.2.3) and private (both lifted by X-Accel-Expires, as in nginx), and last
 * Authorization (RFC 9111 3.5: only with public, s-maxage or must-revalidate; with
 * Cache-Control ignored these are not read, so such a response is not stored).
 * Returns the first reason found.
 */
enum pt_cache_store pt_cache_storable(const struct pt_cache_conf *conf,
                                      const struct pt_cache_req *req,
                                      const struct pt_cache_resp *resp);

/* Text for <why>, for a debug log: "response Cache-Control: private". */
const char *pt_cache_store_text(enum pt_cache_store why);

/*
 * Returns 1 when the response with <status> to a request with <method> invalidates the
 * stored responses of the target URI (RFC 9111 4.4: a non-error status to an unsafe
 * method), else 0.  nginx does not invalidate: the caller decides whether to.
 */
int pt_cache_invalidates(int method, int status);

/* ---------------------------------------------------------------------------------------
 * Freshness and age.
 */

#define PT_CACHE_NOT_CACHEABLE (-1) /* lifetime: do not store */
#define PT_CACHE_VALID_NONE    (-1) /* proxy_cache_valid has no time for the status */

/* The rule that gave a lifetime. */
enum pt_cache_rule {
    PT_CACHE_RULE_NONE,            /* none applies: not cacheable */
    PT_CACHE_RULE_X_ACCEL_EXPIRES, /* seconds, "@" epoch time, or 0: not cacheable */
    PT_CACHE_RULE_NO_CACHE,        /* response no-cache: stored, revalidated at each use */
    PT_CACHE_RULE_S_MAXAGE,
    PT_CACHE_RULE_MAX_AGE,
    PT_CACHE_RULE_EXPIRES,   /* Expires minus Date */
    PT_CACHE_RULE_VALID,     /* proxy_cache_valid; 0 there is not cacheable */
    PT_CACHE_RULE_HEURISTIC, /* 10% of Date minus Last-Modified, at most a day */
};

struct pt_cache_lifetime {
    /* The freshness lifetime, to compare with the current age (RFC 9111 4.2): fresh while
     * lifetime > age.  For the rules nginx counts from the moment of receipt
     * (X-Accel-Expires, proxy_cache_valid) it includes the response's corrected initial
     * age, so that an Age from upstream does not shorten them.  0 to PT_CC_DELTA_MAX plus
     * that age, or PT_CACHE_NOT_CACHEABLE. */
    int64_t lifetime;
    time_t expires; /* when it goes stale (nginx's valid_sec); 0 when not cacheable */
    enum pt_cache_rule rule;
};

/*
 * Computes into <out> the freshness lifetime of the response <resp> for a cache configured
 * by <conf>, where <valid> is proxy_cache_valid's time for resp->status (seconds, or
 * PT_CACHE_VALID_NONE).  The first rule that applies wins: X-Accel-Expires (a value that is
 * not a number is skipped, as in nginx); Cache-Control no-cache (0), s-maxage, max-age (an
 * invalid value is 0: stale, RFC 9111 4.2.1); Expires minus Date, or the receipt time
 * without a valid Date (0 when invalid or not later: RFC 9111 5.3); <valid>; and with
 * PT_CACHE_HEURISTIC, for a heuristically cacheable status (RFC 9110 15.1) or a public
 * response, a tenth of Date minus Last-Modified, capped at a day (RFC 9111 4.2.2).
 * The fields of an ignored header (conf->ignore) are not read.
 */
void pt_cache_freshness(const struct pt_cache_conf *conf, const struct pt_cache_resp *resp,
                        int64_t valid, struct pt_cache_lifetime *out);

/* Text for <rule>, for a debug log. */
const char *pt_cache_rule_text(enum pt_cache_rule rule);

/*
 * The current age of a response (RFC 9111 4.2.3) from the number <age_value> of its Age
 * field (0 when absent), <date_value> of its Date field (-1 when absent or invalid), the
 * <request_time> and <response_time> of its fetch, and <now>.  Clock steps backwards count
 * as no time elapsed.  Returns seconds, at most PT_CC_DELTA_MAX.
 */
int64_t pt_cache_current_age(int64_t age_value, time_t date_value, time_t request_time,
                             time_t response_time, time_t now);

/* The current age of <resp> at <now>, reading its Age (an invalid one counts as absent)
 * and Date fields. */
int64_t pt_cache_age(const struct pt_cache_resp *resp, time_t now);

/* ---------------------------------------------------------------------------------------
 * Serving a stored response.
 */

/* Returns 1 when a response of freshness lifetime <lifetime> is fresh at current age <age>. */
static inline int pt_cache_fresh(int64_t lifetime, int64_t age)
{
    return lifetime > age;
}

enum pt_cache_use {
    PT_CACHE_USE_FRESH,      /* fresh: serve it */
    PT_CACHE_USE_STALE,      /* stale, and the request's max-stale accepts it: serve it */
    PT_CACHE_USE_UPDATING,   /* stale: serve it if it is being updated (or start a
                                background update), else as _REVALIDATE */
    PT_CACHE_USE_REVALIDATE, /* validate it upstream (or fetch anew) before any use */
    PT_CACHE_USE_504,        /* the request's only-if-cached cannot be met: answer 504 */
};

/*
 * Decides how the stored response <stored>, whose lifetime was <lt> (pt_cache_freshness()
 * when it was stored), may answer the request <req> at <now>.  A fresh response is served
 * unless the request's no-cache, max-age (max-age=0 always: a reload) or min-fresh refuse
 * it (PT_CACHE_REQUEST_CC only; Pragma: no-cache counts without Cache-Control; invalid
 * values are ignored).  A stale one is served under the
 * request's max-stale, or while updating within its stale-while-revalidate window or with
 * PT_CACHE_STALE_UPDATING; must-revalidate, proxy-revalidate and no-cache forbid the first
 * two (RFC 9111 4.2.4), s-maxage the first (it implies proxy-revalidate, 5.2.2.10; an
 * explicit stale-while-revalidate in the same response is taken as the origin's permission
 * to serve while updating).  PT_CACHE_STALE_UPDATING is the operator's choice and wins, as
 * in nginx.  With only-if-cached a response that would need upstream is PT_CACHE_USE_504.
 */
enum pt_cache_use pt_cache_use(const struct pt_cache_conf *conf, const struct pt_cache_req *req,
                               const struct pt_cache_resp *stored,
                               const struct pt_cache_lifetime *lt, time_t now);

/*
 * Returns 1 when <stored> (lifetime <lt>) may answer <req> at <now> because updating it
 * failed: <configured> is 1 when proxy_cache_use_stale lists the failure (error, timeout,
 * http_500 ...), which wins as in nginx; else the response's stale-if-error window (RFC
 * 5861 4), or the request's (with PT_CACHE_REQUEST_CC), must cover its staleness, and
 * must-revalidate, proxy-revalidate or no-cache must not forbid it (RFC 9111 4.2.4).
 * Returns 0 otherwise.
 */
int pt_cache_stale_on_error(const struct pt_cache_conf *conf, const struct pt_cache_req *req,
                            const struct pt_cache_resp *stored, const struct pt_cache_lifetime *lt,
                            time_t now, int configured);

/* ---------------------------------------------------------------------------------------
 * Variants (Vary, RFC 9111 4.1).
 */

/*
 * Writes to <buf> (<cap> bytes, not NUL-terminated) and <*len> the variant key of request
 * <req> for the response <resp>: for each member of resp's Vary fields, in their order, the
 * name lowercased, then ":" and the request's value when it has the field (its field lines
 * trimmed and joined with ", "), then "\n".  A field the request lacks has no ":", so it
 * matches only another request without it.  Accept-Charset, Accept-Encoding and
 * Accept-Language are normalized as lists of case-insensitive tokens (lowercased, OWS
 * removed, empty members dropped, joined with ","), as nginx does for the first two
 * spellings; no other value is rewritten.  The caller hashes the key with the main key.
 * Returns PT_OK (<*len> 0 without Vary or with Vary ignored), PT_DECLINED for a Vary with
 * a "*" member (no request matches: not to be stored), or PT_ERROR when <cap> is too small.
 */
int pt_cache_vary_key(const struct pt_cache_conf *conf, const struct pt_cache_resp *resp,
                      const struct pt_cache_req *req, char *buf, size_t cap, size_t *len);

/* ---------------------------------------------------------------------------------------
 * Answering the client's conditionals and ranges from a stored response.
 */

/* if_modified_since (nginx; exact is its default). */
enum pt_cache_ims {
    PT_CACHE_IMS_EXACT,  /* 304 when Last-Modified equals the date */
    PT_CACHE_IMS_BEFORE, /* 304 when Last-Modified is at or before it (RFC 9110 13.1.3) */
    PT_CACHE_IMS_OFF,    /* If-Modified-Since is not evaluated */
};

/*
 * Evaluates the conditionals of <req> against the stored response <stored> (its ETag and
 * Last-Modified) in the order of RFC 9110 13.2.2: If-Match (strong comparison, "*" true),
 * else If-Unmodified-Since (false without Last-Modified, ignored when not one valid date),
 * false giving 412; then If-None-Match (weak comparison, "*" true) giving 304 for GET and
 * HEAD, 412 otherwise; else, for GET and HEAD only, If-Modified-Since per <ims> giving 304.
 * Preconditions apply only to a stored 2xx (RFC 9110 13.2.1).  Returns 0 when the full
 * response is due, 304 or 412.
 */
int pt_cache_conditional(const struct pt_cache_req *req, const struct pt_cache_resp *stored,
                         enum pt_cache_ims ims);

/* An inclusive byte range. */
struct pt_cache_range {
    int64_t first, last;
};

enum pt_cache_ranges {
    PT_CACHE_RANGE_NONE,          /* no range applies: send the whole 200 */
    PT_CACHE_RANGE_SINGLE,        /* one satisfiable range, in *out: 206 */
    PT_CACHE_RANGE_MULTIPLE,      /* several: the whole 200 (what portier does) or the first,
                                     in *out, as a 206 */
    PT_CACHE_RANGE_UNSATISFIABLE, /* 416, Content-Range: bytes * / length */
};

/*
 * Evaluates the Range field of <req> (GET only, RFC 9110 14.2) against the stored 200
 * <stored> of <length> bytes (-1: unknown, no range applies).  One "bytes" ranges-specifier
 * (unit case-insensitive) of first-last, first- and -suffix specs; a suffix longer than the
 * body is the whole body.  A syntactically invalid specifier is ignored (RFC 9110 14.2
 * allows it; nginx answers 416), as is a Range whose If-Range does not match: an
 * entity-tag strongly, or a date exactly equal to a Last-Modified at least 60 s before the
 * stored Date (a strong validator, RFC 9110 8.8.2.2, 13.1.5).  Unsatisfiable specs are
 * dropped; when none is left it is 416, except that a body of length 0 is sent whole to a
 * suffix range.  Returns one of enum pt_cache_ranges, with the (first) range in <*out>.
 */
enum pt_cache_ranges pt_cache_range(const struct pt_cache_req *req,
                                    const struct pt_cache_resp *stored, int64_t length,
                                    struct pt_cache_range *out);

#endif
