/*
 * waf_request.c: one libmodsecurity transaction per request, through ModSecurity's phases.
 *
 * Phase 1 (connection, URI, request fields) and phase 2 (the body) run in ACCESS, before
 * anything goes upstream: the body is read ahead (pt_http_body_read_ahead) into the
 * transaction and kept, so a request the rules refuse sends the upstream nothing, and one
 * they let through is streamed from what was kept.  With SecRequestBodyLimitAction
 * ProcessPartial the rules see the body up to SecRequestBodyLimit, and what follows is not
 * read ahead: it streams behind.  Phase 3 (response fields) runs in a header filter, where
 * a refusal still replaces the response with portier's error page; phase 4 (the response
 * body, when SecResponseBodyAccess is on) in a body filter, where the fields are gone
 * already: a refusal there cuts the response short, as ModSecurity-nginx does.  Phase 5
 * (the audit log) runs in LOG, and the transaction is freed with the request's pool.
 *
 * A refusal ("intervention") logs libmodsecurity's message at error and answers its status
 * (403 for deny) with an error page carrying the request id, which is the transaction's
 * unique_id by default; each matched rule's message goes to the error log at warn.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/pool.h"
#include "modules/waf/waf.h"
#include "worker/var_http.h"

struct waf_ctx {
    Transaction *t;
    struct pt_str page;     /* the error page replacing a response refused in phase 3 */
    unsigned body_seen : 1; /* phase 2 ran */
    unsigned blocked : 1;   /* the rules refused the request: its answer is portier's */
    unsigned replaced : 1;  /* the upstream's response is dropped for <page> */
};

void pt_waf_log_rule(void *data, const void *msg)
{
    if (data && msg)
        pt_http_log(data, PT_LOG_WARN, "%s", (const char *)msg);
}

/* The request's transaction: r->waf_ctx, not r->ctx, which an error_page's pass clears. */
static struct waf_ctx *ctx_of(struct pt_request *r)
{
    return r->waf_ctx;
}

/* The group of the rule behind the intervention message <log>, for the metrics: the name of
 * its file ([file "/path/REQUEST-942-APPLICATION-ATTACK-SQLI.conf"]) without directory nor
 * ".conf", into <group> (<size> bytes); "" when the message names none. */
static void rule_group(const char *log, char *group, size_t size)
{
    const char *f = log ? strstr(log, "[file \"") : NULL, *end, *base;
    size_t n;

    group[0] = '\0';
    if (f == NULL || (end = strchr(f + 7, '"')) == NULL)
        return;
    for (base = end; base > f + 7 && base[-1] != '/';)
        base--;
    n = (size_t)(end - base);
    if (n > 5 && memcmp(end - 5, ".conf", 5) == 0)
        n -= 5;
    snprintf(group, size, "%.*s", (int)pt_min(n, size - 1), base);
}

/*
 * Asks the transaction of <r> whether the rules intervene.  Returns 0 when they do not,
 * else the status to answer with (a redirect's Location added to the response), after
 * logging libmodsecurity's message at error.
 */
static int intervention(struct pt_request *r, struct waf_ctx *ctx)
{
    ModSecurityIntervention it = {200, 0, NULL, NULL, 0};
    char group[64];
    int status;

    if (msc_intervention(ctx->t, &it) == 0)
        return 0;
    pt_http_log(r, PT_LOG_ERR, "%s",
                it.log ? it.log : "ModSecurity: intervention without a message");
    rule_group(it.log, group, sizeof(group));
    free(it.log);
    status = it.status;
    if (it.url) {
        struct pt_str url = {pt_pstrdup(r->pool, it.url), strlen(it.url)};
        free(it.url);
        if (url.p == NULL || pt_header_add(r, &r->out, PT_STR("Location"), url) != PT_OK)
            return 500;
        if (status < 300 || status > 399)
            status = 302;
    } else if (status == 200) {
        return 0; /* a message, no refusal */
    }
    ctx->blocked = 1;
    if (pt_http_observers.waf_blocked)
        pt_http_observers.waf_blocked(group);
    r->page_request_id = 1;
    msc_update_status_code(ctx->t, status);
    return status;
}

static void free_transaction(void *t)
{
    msc_transaction_cleanup(t);
}

/* Makes the transaction of <r> under the rules of <lc>.  NULL when out of memory. */
static struct waf_ctx *start(struct pt_request *r, const struct waf_loc_conf *lc)
{
    struct waf_ctx *ctx = pt_palloc(r->pool, sizeof(*ctx));
    struct pt_str id = pt_str_c(pt_request_id(r));
    char *idz;

    if (ctx == NULL || (lc->id && pt_template_eval(r, lc->id, &id) != PT_OK) ||
        (idz = pt_pstrndup(r->pool, id.p, id.len)) == NULL)
        return NULL;
    if ((ctx->t = msc_new_transaction_with_id(pt_waf_msc, lc->rules, idz, r)) == NULL)
        return NULL;
    if (pt_pool_cleanup(r->pool, free_transaction, ctx->t) != PT_OK) {
        msc_transaction_cleanup(ctx->t);
        return NULL;
    }
    r->waf_ctx = ctx;
    return ctx;
}

/* A variable's value as a C string in r's pool ("" without one). */
static char *var_z(struct pt_request *r, const char *name)
{
    struct pt_str v = PT_STR("");

    pt_var_value(r, name, &v);
    return pt_pstrndup(r->pool, v.p ? v.p : "", v.len);
}

/* Phase 1: the connection, the request line and fields.  0, or the status refusing. */
static int request_head(struct pt_request *r, struct waf_ctx *ctx)
{
    char *server = var_z(r, "server_addr"), *port = var_z(r, "server_port");
    char *uri = pt_pstrndup(r->pool, r->h.target.p, r->h.target.len);
    char *method = pt_pstrndup(r->pool, r->h.method.p, r->h.method.len);
    int rc;

    if (server == NULL || port == NULL || uri == NULL || method == NULL)
        return 500;
    msc_process_connection(ctx->t, r->c->peer_text, r->c->peer_port, server, atoi(port));
    if ((rc = intervention(r, ctx)) != 0)
        return rc;
    msc_process_uri(ctx->t, uri, method, r->h.version == 10 ? "1.0" : "1.1");
    if ((rc = intervention(r, ctx)) != 0)
        return rc;
    for (size_t i = 0; i < r->h.nheaders; i++) {
        const struct pt_http_header *h = &r->h.headers[i];
        msc_add_n_request_header(ctx->t, (const unsigned char *)h->name.p, h->name.len,
                                 (const unsigned char *)h->value.p, h->value.len);
    }
    msc_process_request_headers(ctx->t);
    return intervention(r, ctx);
}

/* Each piece of the body read ahead: to the rules, until they have seen all they will. */
static int body_sink(struct pt_request *r, const char *data, size_t len, int last)
{
    struct waf_ctx *ctx = ctx_of(r);
    int more = msc_append_request_body(ctx->t, (const unsigned char *)data, len), rc;

    pt_unused(last);
    /* SecRequestBodyLimitAction Reject refuses here; ProcessPartial says "no more". */
    if ((rc = intervention(r, ctx)) != 0)
        return rc;
    return more ? PT_OK : PT_DONE;
}

int pt_waf_access(struct pt_request *r)
{
    struct waf_loc_conf *lc = pt_http_loc_conf(r, pt_waf_module);
    struct waf_ctx *ctx = ctx_of(r);
    int rc;

    if (ctx == NULL) {
        if (!lc->enable || lc->rules == NULL)
            return PT_DECLINED;
        if ((ctx = start(r, lc)) == NULL)
            return PT_ERROR;
        if ((rc = request_head(r, ctx)) != 0)
            return rc;
    }
    /* Judged already: this is the error_page's pass of a refused request, or the body is in. */
    if (ctx->body_seen || ctx->blocked)
        return PT_DECLINED;
    /* Run again by the phase engine as the body comes in, until the rules have it. */
    rc = pt_http_body_read_ahead(r, body_sink);
    if (rc != PT_OK)
        return rc;
    ctx->body_seen = 1;
    msc_process_request_body(ctx->t);
    return (rc = intervention(r, ctx)) != 0 ? rc : PT_DECLINED;
}

/* Replaces the response of <r> by the error page for <status> (a refused Location kept). */
static void replace_response(struct pt_request *r, struct waf_ctx *ctx, int status)
{
    struct pt_header *loc = pt_header_find(&r->out, "Location");
    struct pt_str where = loc ? loc->value : PT_NULL_STR;

    r->status = status;
    r->status_line = PT_NULL_STR;
    r->out.n = 0;
    if (where.p && status >= 300 && status <= 399)
        pt_header_add(r, &r->out, PT_STR("Location"), where);
    pt_header_add(r, &r->out, PT_STR("Content-Type"), PT_STR("text/html"));
    ctx->page = pt_http_error_page(r, status);
    r->out_length = (int64_t)ctx->page.len;
    ctx->replaced = 1;
}

int pt_waf_header_filter(struct pt_request *r)
{
    struct waf_ctx *ctx = ctx_of(r);
    char len[24];
    int status;

    if (ctx == NULL || ctx->blocked)
        return PT_OK;
    r->body_filtered = 1; /* phase 4 reads the body */
    for (int i = 0; i < r->out.n; i++)
        msc_add_n_response_header(ctx->t, (const unsigned char *)r->out.h[i].name.p,
                                  r->out.h[i].name.len, (const unsigned char *)r->out.h[i].value.p,
                                  r->out.h[i].value.len);
    if (r->out_length >= 0) {
        int n = snprintf(len, sizeof(len), "%lld", (long long)r->out_length);
        msc_add_n_response_header(ctx->t, (const unsigned char *)"Content-Length", 14,
                                  (const unsigned char *)len, (size_t)n);
    }
    msc_process_response_headers(ctx->t, r->status, "HTTP 1.1");
    if ((status = intervention(r, ctx)) == 0)
        return PT_OK;
    /* A switched protocol cannot be taken back: the connection ends instead. */
    if (r->tunnel)
        return PT_ERROR;
    replace_response(r, ctx, status);
    return PT_OK;
}

int pt_waf_body_filter(struct pt_request *r, int self, const char *data, size_t len, int last)
{
    struct waf_ctx *ctx = ctx_of(r);

    if (ctx && ctx->replaced) /* the upstream's body gives way to the page */
        return last ? pt_body_filter_next(r, self, ctx->page.p, ctx->page.len, 1) : PT_OK;
    if (ctx == NULL || ctx->blocked || r->header_only)
        return pt_body_filter_next(r, self, data, len, last);
    if (len)
        msc_append_response_body(ctx->t, (const unsigned char *)data, len);
    if (last)
        msc_process_response_body(ctx->t);
    /* The fields went out already: a refusal now can only cut the response short. */
    if (intervention(r, ctx) != 0) {
        r->keepalive = 0;
        return PT_ERROR;
    }
    return pt_body_filter_next(r, self, data, len, last);
}

int pt_waf_log(struct pt_request *r)
{
    struct waf_ctx *ctx = ctx_of(r);

    if (ctx == NULL)
        return PT_OK;
    msc_update_status_code(ctx->t, r->status);
    msc_process_logging(ctx->t);
    return PT_OK;
}
