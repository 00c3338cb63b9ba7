/*
 * gzip.c: the gzip module: response compression with nginx's directives, and brotli and
 * zstd where the build has them.  A header filter decides, for each response, whether and
 * how to compress (the client's Accept-Encoding, the type, the length, what the response
 * says of itself); a body filter compresses as the body passes, so memory stays bounded
 * and a server-sent event leaves as soon as it arrives.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "modules/gzip/gzip.h"
#include "worker/http.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/regex.h"

/* gzip_proxied: what makes a response to a proxied request (one with Via) compressible. */
#define PROXIED_OFF      0
#define PROXIED_EXPIRED  0x01
#define PROXIED_NO_CACHE 0x02
#define PROXIED_NO_STORE 0x04
#define PROXIED_PRIVATE  0x08
#define PROXIED_NO_LM    0x10
#define PROXIED_NO_ETAG  0x20
#define PROXIED_AUTH     0x40
#define PROXIED_ANY      0x80

struct gzip_loc_conf {
    int gzip, brotli, zstd, vary;
    int64_t min_length, gzip_level, brotli_level, zstd_level;
    char **types; /* lower-case MIME types; "*" matches all */
    int ntypes;
    int proxied;              /* PROXIED_* bits; PT_CONF_UNSET until merged */
    struct disable **disable; /* gzip_disable */
    int ndisable;
};

/* One gzip_disable regex. */
struct disable {
    pcre2_code *code;
    pcre2_match_data *md;
};

/* One response being compressed. */
struct gzip_ctx {
    struct pt_encoder *enc;
    int self;       /* this filter's place in the chain, for passing output on */
    unsigned flush; /* text/event-stream: every piece leaves at once */
    struct pt_request *r;
    enum pt_coding coding;
    uint64_t in, out; /* body bytes through the encoder, for the metrics */
};

static const char *const default_types[] = {
    "text/html",
    "text/plain",
    "text/css",
    "text/xml",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/xhtml+xml",
    "application/manifest+json",
    "application/ld+json",
    "image/svg+xml",
    "text/event-stream",
};

static int set_types(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_proxied(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_disable(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_coding(struct pt_conf *cf, const struct pt_directive *d, void *conf);

#define GLC(f) offsetof(struct gzip_loc_conf, f)
#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

static const int64_t gzip_levels[] = {1, 9}, brotli_levels[] = {0, 11}, zstd_levels[] = {1, 19};

static const struct pt_directive gzip_directives[] = {
    {"gzip", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, GLC(gzip), NULL,
     "compress responses for clients that accept it (default off)"},
    {"gzip_types", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_types, 0, NULL,
     "MIME types compressed, or \"*\" (default: text/html, text/plain, text/css, text/xml, "
     "JavaScript, JSON, XML, RSS, Atom, SVG, text/event-stream)"},
    {"gzip_min_length", HSL, 0, PT_LOC_CONF, pt_conf_set_size, GLC(min_length), NULL,
     "responses whose Content-Length is below this are sent as they are (default 20)"},
    {"gzip_comp_level", HSL, 0, PT_LOC_CONF, pt_conf_set_num, GLC(gzip_level), gzip_levels,
     "gzip level, 1 (fast) to 9 (small) (default 1)"},
    {"gzip_proxied", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_proxied, 0, NULL,
     "for requests that came through a proxy (Via): off (default), any, or expired, no-cache, "
     "no-store, private, no_last_modified, no_etag, auth"},
    {"gzip_vary", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, GLC(vary), NULL,
     "Vary: Accept-Encoding also on responses that could have been compressed but were not "
     "(compressed ones always carry it) (default off)"},
    {"gzip_disable", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_disable, 0, NULL,
     "regex (case-insensitive) on User-Agent of clients never sent compressed responses; "
     "\"msie6\" stands for old Internet Explorers"},
    {"brotli", HSL, 0, PT_LOC_CONF, set_coding, GLC(brotli), NULL,
     "also offer br (when built with libbrotli) where gzip is on (default off)"},
    {"brotli_comp_level", HSL, 0, PT_LOC_CONF, pt_conf_set_num, GLC(brotli_level), brotli_levels,
     "brotli quality, 0 to 11 (default 4)"},
    {"zstd", HSL, 0, PT_LOC_CONF, set_coding, GLC(zstd), NULL,
     "also offer zstd (when built with libzstd) where gzip is on (default off)"},
    {"zstd_comp_level", HSL, 0, PT_LOC_CONF, pt_conf_set_num, GLC(zstd_level), zstd_levels,
     "zstd level, 1 to 19 (default 3)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_gzip_module;

static void *create_loc_conf(struct pt_conf *cf)
{
    struct gzip_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc == NULL)
        return NULL;
    lc->gzip = lc->brotli = lc->zstd = lc->vary = PT_CONF_UNSET;
    lc->min_length = lc->gzip_level = lc->brotli_level = lc->zstd_level = PT_CONF_UNSET;
    lc->ntypes = lc->proxied = lc->ndisable = PT_CONF_UNSET;
    return lc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct gzip_loc_conf *p = parent, *c = child;

    pt_conf_merge_int(c->gzip, p->gzip, 0);
    pt_conf_merge_int(c->brotli, p->brotli, 0);
    pt_conf_merge_int(c->zstd, p->zstd, 0);
    pt_conf_merge_int(c->vary, p->vary, 0);
    pt_conf_merge_int(c->min_length, p->min_length, 20);
    pt_conf_merge_int(c->gzip_level, p->gzip_level, 1);
    pt_conf_merge_int(c->brotli_level, p->brotli_level, 4);
    pt_conf_merge_int(c->zstd_level, p->zstd_level, 3);
    pt_conf_merge_int(c->proxied, p->proxied, PROXIED_OFF);
    /* Neither level lists types: the defaults (the outermost level has no parent to take
     * them from). */
    if (c->ntypes == PT_CONF_UNSET && p->ntypes == PT_CONF_UNSET) {
        c->types = (char **)default_types;
        c->ntypes = (int)pt_nelems(default_types);
    }
    pt_conf_merge_list(c->types, c->ntypes, p->types, p->ntypes);
    pt_conf_merge_list(c->disable, c->ndisable, p->disable, p->ndisable);
    pt_unused(cf);
    return PT_OK;
}

/* brotli and zstd: flags that only a build with the library may turn on. */
static int set_coding(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    enum pt_coding c = strcmp(d->name, "brotli") == 0 ? PT_CODING_BR : PT_CODING_ZSTD;

    if (pt_conf_set_flag(cf, d, conf) != PT_OK)
        return PT_ERROR;
    if (*(int *)((char *)conf + d->offset) && !(pt_encoder_available() & (1u << c)))
        return pt_conf_error(cf, "\"%s\" is not available: portier was built without %s", d->name,
                             c == PT_CODING_BR ? "libbrotli" : "libzstd");
    return PT_OK;
}

static int set_types(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct gzip_loc_conf *lc = conf;
    char *type = pt_pstrdup(cf->pool, cf->value);

    pt_unused(d);
    for (char *p = type; p && *p; p++)
        *p = pt_lower(*p);
    return pt_conf_list_add(cf, &lc->types, &lc->ntypes, type);
}

static int set_proxied(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    static const struct {
        const char *name;
        int bit;
    } words[] = {{"off", PROXIED_OFF},
                 {"any", PROXIED_ANY},
                 {"expired", PROXIED_EXPIRED},
                 {"no-cache", PROXIED_NO_CACHE},
                 {"no-store", PROXIED_NO_STORE},
                 {"private", PROXIED_PRIVATE},
                 {"no_last_modified", PROXIED_NO_LM},
                 {"no_etag", PROXIED_NO_ETAG},
                 {"auth", PROXIED_AUTH}};
    struct gzip_loc_conf *lc = conf;

    pt_unused(d);
    for (size_t i = 0; i < pt_nelems(words); i++) {
        if (strcmp(cf->value, words[i].name) == 0) {
            lc->proxied = (lc->proxied == PT_CONF_UNSET ? 0 : lc->proxied) | words[i].bit;
            return PT_OK;
        }
    }
    return pt_conf_error(cf, "invalid value \"%s\" for \"gzip_proxied\"", cf->value);
}

static void free_regex(void *code)
{
    pcre2_code_free(code);
}

static void free_md(void *md)
{
    pcre2_match_data_free(md);
}

/* gzip_disable: one regex per element; a client matching any gets no compression. */
static int set_disable(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct gzip_loc_conf *lc = conf;
    /* nginx's "msie6": MSIE 4 to 6, but not the SV1 builds of 6 that handle gzip. */
    const char *rx = strcmp(cf->value, "msie6") == 0 ? "MSIE [4-6]\\.(?!.*SV1)" : cf->value;
    int n = lc->ndisable == PT_CONF_UNSET ? 0 : lc->ndisable, rc;
    struct disable **a = pt_palloc(cf->pool, (size_t)(n + 1) * sizeof(*a));
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;

    pt_unused(d);
    if (a == NULL || (a[n] = pt_palloc(cf->pool, sizeof(*a[n]))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n)
        memcpy(a, lc->disable, (size_t)n * sizeof(*a));
    a[n]->code =
        pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &rc, &off, NULL);
    if (a[n]->code == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return pt_conf_error(cf, "invalid regex \"%s\" in \"gzip_disable\": %s at offset %zu",
                             cf->value, (const char *)msg, (size_t)off);
    }
    if (pt_pool_cleanup(cf->pool, free_regex, a[n]->code) != PT_OK ||
        (a[n]->md = pcre2_match_data_create_from_pattern(a[n]->code, NULL)) == NULL ||
        pt_pool_cleanup(cf->pool, free_md, a[n]->md) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    lc->disable = a;
    lc->ndisable = n + 1;
    return PT_OK;
}

static int disabled_for(const struct gzip_loc_conf *lc, struct pt_str ua)
{
    for (int i = 0; ua.p && i < lc->ndisable; i++)
        if (pt_regex_exec(lc->disable[i]->code, ua.p, ua.len, lc->disable[i]->md) >= 0)
            return 1;
    return 0;
}

/* --- deciding --- */

static struct pt_str request_header(struct pt_request *r, const char *name)
{
    const struct pt_http_header *h = pt_http_find_header(r->h.headers, r->h.nheaders, name);

    return h ? h->value : PT_NULL_STR;
}

/* Every line of the request's list field <name> joined into one list (RFC 9110 5.3), in
 * the request pool; PT_NULL_STR when there is none. */
static struct pt_str request_list(struct pt_request *r, const char *name)
{
    struct pt_str all = PT_NULL_STR;

    for (size_t i = 0; i < r->h.nheaders; i++) {
        struct pt_str v = r->h.headers[i].value;
        char *p;
        if (!pt_str_ieq(r->h.headers[i].name, name))
            continue;
        if (all.p == NULL) {
            all = v.p ? v : PT_STR("");
            continue;
        }
        p = pt_palloc(r->pool, all.len + 2 + v.len);
        if (p == NULL)
            return all;
        memcpy(p, all.p, all.len);
        memcpy(p + all.len, ", ", 2);
        memcpy(p + all.len + 2, v.p, v.len);
        all = (struct pt_str){p, all.len + 2 + v.len};
    }
    return all;
}

static struct pt_str response_header(struct pt_request *r, const char *name)
{
    struct pt_header *h = pt_header_find(&r->out, name);

    return h ? h->value : PT_NULL_STR;
}

/* True when a line of the response's list field <name> has <token>. */
static int response_has(struct pt_request *r, const char *name, const char *token)
{
    for (int i = 0; i < r->out.n; i++)
        if (pt_str_ieq(r->out.h[i].name, name) && pt_http_has_token(r->out.h[i].value, token))
            return 1;
    return 0;
}

/* The media type of the response, without parameters. */
static struct pt_str media_type(struct pt_request *r)
{
    struct pt_str t = response_header(r, "Content-Type");
    const char *semi = t.p ? memchr(t.p, ';', t.len) : NULL;

    if (semi)
        t.len = (size_t)(semi - t.p);
    while (t.len && (t.p[t.len - 1] == ' ' || t.p[t.len - 1] == '\t'))
        t.len--;
    return t;
}

static int type_listed(const struct gzip_loc_conf *lc, struct pt_str type)
{
    /* As in nginx, text/html is always one of them. */
    if (type.p && pt_str_ieq(type, "text/html"))
        return 1;
    for (int i = 0; i < lc->ntypes; i++)
        if (strcmp(lc->types[i], "*") == 0 || (type.p && pt_str_ieq(type, lc->types[i])))
            return 1;
    return 0;
}

/* nginx's gzip_proxied: may a response to a request that came through a proxy be
 * compressed?  (The proxy in between may cache it for clients that cannot decode it.) */
static int proxied_ok(struct pt_request *r, int proxied)
{
    if (request_header(r, "via").p == NULL || (proxied & PROXIED_ANY))
        return 1;
    if ((proxied & PROXIED_EXPIRED) && response_header(r, "Expires").p)
        return 1;
    if ((proxied & PROXIED_NO_CACHE) && response_has(r, "Cache-Control", "no-cache"))
        return 1;
    if ((proxied & PROXIED_NO_STORE) && response_has(r, "Cache-Control", "no-store"))
        return 1;
    if ((proxied & PROXIED_PRIVATE) && response_has(r, "Cache-Control", "private"))
        return 1;
    if ((proxied & PROXIED_NO_LM) && response_header(r, "Last-Modified").p == NULL)
        return 1;
    if ((proxied & PROXIED_NO_ETAG) && response_header(r, "ETag").p == NULL)
        return 1;
    return (proxied & PROXIED_AUTH) && request_header(r, "authorization").p;
}

/* Whether this response is one that compression applies to at all (before asking the
 * client): nginx's rules, plus Cache-Control: no-transform (RFC 9111 5.2.2.6).  Unlike
 * nginx, a response to HEAD is judged as the GET's would be, so that it carries the same
 * fields (RFC 9110 9.3.2). */
static int eligible(struct pt_request *r, const struct gzip_loc_conf *lc)
{
    struct pt_str ce = response_header(r, "Content-Encoding");

    if (!lc->gzip || r->tunnel)
        return 0;
    if (r->status != 200 && r->status != 403 && r->status != 404)
        return 0; /* 206 (a range of the identity body), 204, 304, errors from upstream */
    if ((ce.p && !pt_str_ieq(ce, "identity")) || !type_listed(lc, media_type(r)))
        return 0;
    if (r->out_length >= 0 && r->out_length < lc->min_length)
        return 0;
    if (response_has(r, "Cache-Control", "no-transform"))
        return 0;
    if (r->h.version < 11 || !proxied_ok(r, lc->proxied))
        return 0;
    return !disabled_for(lc, request_header(r, "user-agent"));
}

static unsigned offered(const struct gzip_loc_conf *lc)
{
    unsigned m = 1u << PT_CODING_GZIP;

    if (lc->brotli == 1)
        m |= 1u << PT_CODING_BR;
    if (lc->zstd == 1)
        m |= 1u << PT_CODING_ZSTD;
    return m & pt_encoder_available();
}

/* Adds "Accept-Encoding" to Vary unless it is there (or Vary is "*"). */
static int add_vary(struct pt_request *r)
{
    if (response_has(r, "Vary", "accept-encoding") || response_has(r, "Vary", "*"))
        return PT_OK;
    return pt_header_add(r, &r->out, PT_STR("Vary"), PT_STR("Accept-Encoding"));
}

/* A compressed body is not byte-for-byte the resource: a strong validator becomes weak. */
static void weaken_etag(struct pt_request *r)
{
    struct pt_header *h = pt_header_find(&r->out, "ETag");
    char *w;

    if (h == NULL || h->value.len == 0 || h->value.p[0] != '"')
        return;
    w = pt_palloc(r->pool, h->value.len + 3);
    if (w == NULL)
        return;
    memcpy(w, "W/", 2);
    memcpy(w + 2, h->value.p, h->value.len);
    h->value = (struct pt_str){w, h->value.len + 2};
}

static void free_ctx(void *p)
{
    struct gzip_ctx *ctx = p;

    pt_encoder_free(ctx->enc);
    ctx->enc = NULL;
}

static int level_of(const struct gzip_loc_conf *lc, enum pt_coding c)
{
    return (int)(c == PT_CODING_BR     ? lc->brotli_level
                 : c == PT_CODING_ZSTD ? lc->zstd_level
                                       : lc->gzip_level);
}

static int header_filter(struct pt_request *r)
{
    struct gzip_loc_conf *lc = r->loc_conf ? pt_http_loc_conf(r, pt_gzip_module) : NULL;
    struct gzip_ctx *ctx;
    enum pt_coding coding;

    r->ctx[pt_gzip_module.index] = NULL;
    if (lc == NULL || !eligible(r, lc))
        return PT_OK;
    coding = pt_coding_negotiate(request_list(r, "accept-encoding"), offered(lc));
    if (coding == PT_CODING_NONE)
        return lc->vary ? add_vary(r) : PT_OK;
    if (r->h.method_id != PT_HTTP_HEAD) {
        ctx = pt_palloc(r->pool, sizeof(*ctx));
        if (ctx == NULL || pt_pool_cleanup(r->pool, free_ctx, ctx) != PT_OK)
            return PT_ERROR;
        ctx->enc = pt_encoder_new(coding, level_of(lc, coding));
        if (ctx->enc == NULL)
            return PT_ERROR;
        ctx->r = r;
        ctx->coding = coding;
        /* An event stream, or an unbuffered response (proxy_buffering off): each piece is
         * flushed out of the compressor as it comes. */
        ctx->flush = r->stream_out || pt_str_ieq(media_type(r), "text/event-stream");
        r->ctx[pt_gzip_module.index] = ctx;
        r->body_filtered = 1;
    }
    /* The length is unknown until the end: chunked to the client. */
    r->out_length = -1;
    pt_header_remove(&r->out, "Content-Length");
    pt_header_remove(&r->out, "Accept-Ranges");
    pt_header_remove(&r->out, "Content-Encoding"); /* an "identity" one */
    weaken_etag(r);
    if (pt_header_add(r, &r->out, PT_STR("Content-Encoding"), pt_str_c(pt_coding_name(coding))) !=
        PT_OK)
        return PT_ERROR;
    return add_vary(r);
}

/* --- compressing --- */

static int emit(void *arg, const char *out, size_t n)
{
    struct gzip_ctx *ctx = arg;

    ctx->out += n;
    return pt_body_filter_next(ctx->r, ctx->self, out, n, 0);
}

static int body_filter(struct pt_request *r, int self, const char *data, size_t len, int last)
{
    struct gzip_ctx *ctx = r->ctx[pt_gzip_module.index];
    enum pt_enc_mode mode;

    if (ctx == NULL || ctx->enc == NULL)
        return pt_body_filter_next(r, self, data, len, last);
    if (len == 0 && !last)
        return PT_OK;
    ctx->self = self;
    ctx->in += len;
    mode = last ? PT_ENC_END : ctx->flush ? PT_ENC_FLUSH : PT_ENC_MORE;
    if (pt_encoder_write(ctx->enc, data, len, mode, emit, ctx) != PT_OK)
        return PT_ERROR;
    if (!last)
        return PT_OK;
    pt_encoder_done(ctx->enc);
    ctx->enc = NULL;
    if (pt_http_observers.compressed)
        pt_http_observers.compressed(ctx->coding, ctx->in, ctx->out);
    return pt_body_filter_next(r, self, NULL, 0, 1);
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_header_filter_add(cf->cycle, header_filter) != PT_OK ||
        pt_body_filter_add(cf->cycle, body_filter) != PT_OK)
        return pt_conf_error(cf, "too many filters");
    return PT_OK;
}

struct pt_module pt_gzip_module = {
    .name = "gzip",
    .directives = gzip_directives,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
