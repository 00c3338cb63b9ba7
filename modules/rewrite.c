/*
 * rewrite.c: the rewrite module.  For now it offers `return CODE [TEXT|URL]` and
 * `return URL`, in server (checked before a location is chosen) and location context.
 */
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"
#include "core/log.h"
#include "core/pool.h"
#include "worker/var.h"

struct rewrite_return {
    int status;
    struct pt_template *text; /* body, or the Location for redirects; NULL: generated page */
};

struct rewrite_conf {
    struct rewrite_return *ret;
};

static int set_return(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive rewrite_directives[] = {
    {"return", PT_CTX_SRV | PT_CTX_LOC, 0, PT_LOC_CONF, set_return, 0, NULL,
     "\"CODE [TEXT]\", \"CODE URL\" (301, 302, 303, 307, 308) or \"URL\": answer at once"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_rewrite_module;

static void *create_loc_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct rewrite_conf));
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static int set_return(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct rewrite_conf *rc = conf;
    struct rewrite_return *ret;
    const char *v = cf->value, *sp = strchr(v, ' ');
    char *end;
    long code;

    if (rc->ret)
        return pt_conf_error(cf, "\"return\" is duplicate");
    ret = pt_palloc(cf->pool, sizeof(*ret));
    if (ret == NULL)
        return pt_conf_error(cf, "out of memory");
    if (strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0 || v[0] == '$') {
        ret->status = 302;
        ret->text = pt_template_compile(cf, v, PT_ESCAPE_NONE);
        if (ret->text == NULL)
            return PT_ERROR;
        rc->ret = ret;
        return PT_OK;
    }
    code = strtol(v, &end, 10);
    if (end == v || (*end != '\0' && *end != ' ') || code < 100 || code > 999)
        return pt_conf_error(cf, "invalid return code \"%s\" (use \"CODE [TEXT]\" or \"URL\")", v);
    ret->status = (int)code;
    if (sp) {
        while (*sp == ' ')
            sp++;
        ret->text = pt_template_compile(cf, sp, PT_ESCAPE_NONE);
        if (ret->text == NULL)
            return PT_ERROR;
    }
    rc->ret = ret;
    return PT_OK;
}

static int do_return(struct pt_request *r, const struct rewrite_return *ret)
{
    struct pt_str text;

    if (ret->text == NULL)
        return ret->status;
    if (pt_template_eval(r, ret->text, &text) != PT_OK)
        return PT_ERROR;
    if (is_redirect(ret->status)) {
        /* "return 301 /new" goes out absolute, as nginx's (absolute_redirect). */
        text = pt_http_redirect_location(r, text);
        r->status = ret->status;
        if (text.p == NULL || pt_header_add(r, &r->out, PT_STR("Location"), text) != PT_OK)
            return PT_ERROR;
        return ret->status;
    }
    r->status = ret->status;
    r->out_length = (int64_t)text.len;
    if (pt_header_add(r, &r->out, PT_STR("Content-Type"), PT_STR("text/plain")) != PT_OK ||
        pt_http_send_header(r) != PT_OK || pt_http_send_body(r, text.p, text.len, 1) != PT_OK)
        return PT_ERROR;
    /* The answer is complete: no later phase (and no proxy_pass) may see this request. */
    pt_http_finalize(r, PT_OK);
    return PT_DONE;
}

/* Server-level return: before any location is chosen. */
static int server_rewrite(struct pt_request *r)
{
    struct rewrite_conf *rc = r->server->loc_conf[pt_rewrite_module.index];

    return rc->ret ? do_return(r, rc->ret) : PT_DECLINED;
}

static int location_rewrite(struct pt_request *r)
{
    struct rewrite_conf *rc = pt_http_loc_conf(r, pt_rewrite_module);

    /* The server level already ran; a location without its own return has none. */
    if (r->loc_conf == r->server->loc_conf || rc->ret == NULL)
        return PT_DECLINED;
    return do_return(r, rc->ret);
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_phase_add(cf->cycle, PT_PHASE_SERVER_REWRITE, server_rewrite) != PT_OK ||
        pt_phase_add(cf->cycle, PT_PHASE_REWRITE, location_rewrite) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return PT_OK;
}

struct pt_module pt_rewrite_module = {
    .name = "rewrite",
    .directives = rewrite_directives,
    .create_loc_conf = create_loc_conf,
    .postconfig = postconfig,
};
