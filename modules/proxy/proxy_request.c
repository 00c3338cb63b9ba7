/*
 * proxy_request.c: the request portier sends upstream: its head (re-framed, hop-by-hop
 * fields removed, X-Forwarded-* set) and its body with portier's own framing.
 */
#include "modules/proxy/proxy.h"

#include "worker/listen.h"
#include "worker/var_http.h"

/* --- building the upstream request --- */

struct builder {
    struct pt_pool *pool;
    char *p;
    size_t len, cap;
    int failed;
};

static void put(struct builder *b, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        char *p = pt_palloc(b->pool, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* put() of a string literal, its length counted by the compiler. */
#define put_lit(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_str(struct builder *b, struct pt_str s)
{
    put(b, s.p, s.len);
}

/* True when the field name <name> is a token of the Connection value <conn>. */
int pt_proxy_named_in(struct pt_str conn, struct pt_str name)
{
    char lower[64];

    if (name.len >= sizeof(lower))
        return 0;
    for (size_t i = 0; i < name.len; i++)
        lower[i] = pt_lower(name.p[i]);
    lower[name.len] = '\0';
    return pt_http_has_token(conn, lower);
}

static void put_header(struct builder *b, struct pt_str name, struct pt_str value)
{
    put_str(b, name);
    put_lit(b, ": ");
    put_str(b, value);
    put_lit(b, "\r\n");
}

/* The fields portier sets itself, each with its PROXY_OWN_* bit.  Names are slices: every
 * client field is compared with each of these tables, mostly ending at the length. */
static const struct own_field {
    struct pt_str name; /* lower-case */
    unsigned bit;
} own_fields[] = {
    {PT_STR("host"), PROXY_OWN_HOST},
    {PT_STR("connection"), PROXY_OWN_CONNECTION},
    {PT_STR("upgrade"), PROXY_OWN_UPGRADE},
    {PT_STR("x-forwarded-for"), PROXY_OWN_XFF},
    {PT_STR("x-forwarded-proto"), PROXY_OWN_XFP},
    {PT_STR("x-forwarded-host"), PROXY_OWN_XFH},
};

unsigned pt_proxy_own_field(struct pt_str name)
{
    for (size_t i = 0; i < pt_nelems(own_fields); i++)
        if (pt_str_ieq_str(name, own_fields[i].name))
            return own_fields[i].bit;
    return 0;
}

/* Whether <name> is one of the <n> names <names>, in any case. */
static int one_of(struct pt_str name, const struct pt_str *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pt_str_ieq_str(name, names[i]))
            return 1;
    return 0;
}

/* Client fields not passed on as they came: hop-by-hop ones (RFC 9110 7.6.1) and those
 * named in the client's Connection field <conn> (may be NULL), the framing portier redoes,
 * and the fields portier sets itself, except a trusted peer's X-Forwarded-Proto/-Host. */
static int skip_request_header(struct pt_str name, const struct pt_http_header *conn, int trusted)
{
    static const struct pt_str hop[] = {
        PT_STR("keep-alive"),        PT_STR("proxy-connection"), PT_STR("te"),    PT_STR("trailer"),
        PT_STR("transfer-encoding"), PT_STR("content-length"),   PT_STR("expect")};
    unsigned own = pt_proxy_own_field(name);

    if (one_of(name, hop, pt_nelems(hop)))
        return 1;
    if (own && !(trusted && (own & (PROXY_OWN_XFP | PROXY_OWN_XFH))))
        return 1;
    return conn && pt_proxy_named_in(conn->value, name);
}

/* The client's conditional and range fields: a tap that fills a cache asks its own (a
 * revalidation's), as nginx's proxy_cache does, so the upstream answers the whole entry. */
static int conditional_field(struct pt_str name)
{
    static const struct pt_str names[] = {PT_STR("if-modified-since"),
                                          PT_STR("if-unmodified-since"),
                                          PT_STR("if-none-match"),
                                          PT_STR("if-match"),
                                          PT_STR("range"),
                                          PT_STR("if-range")};

    return one_of(name, names, pt_nelems(names));
}

/* True when proxy_set_header names the field <name>. */
static int overridden(struct proxy_loc_conf *plc, struct pt_str name)
{
    for (int i = 0; i < plc->nset; i++)
        if (pt_str_ieq_str(plc->set[i].name, name))
            return 1;
    return 0;
}

/* <uri> as it goes on a request line: percent-escaped where a byte is not one a path
 * carries as it is (nginx's NGX_ESCAPE_URI set: controls, space, '"', '#', '?', '<', '>',
 * '\\', '^', '`', '{', '|', '}' and bytes past ASCII).  A '%' stays: r->uri keeps the
 * client's escapes (the normalizer decodes none that would change the path's meaning). */
static void put_escaped_uri(struct builder *b, struct pt_str uri)
{
    static const char hexd[] = "0123456789ABCDEF";
    static unsigned char escaped[256]; /* 1 for the bytes above, filled on first use */
    size_t from = 0;

    if (!escaped[0]) {
        for (int c = 0; c < 256; c++)
            escaped[c] = c <= 0x20 || c >= 0x7f || strchr("\"#?<>\\^`{|}", c);
    }
    /* Runs of bytes that go as they are are put at once. */
    for (size_t i = 0; i < uri.len; i++) {
        unsigned char c = (unsigned char)uri.p[i];
        char esc[3] = {'%', hexd[c >> 4], hexd[c & 15]};
        if (!escaped[c])
            continue;
        put(b, uri.p + from, i - from);
        put(b, esc, 3);
        from = i + 1;
    }
    put(b, uri.p + from, uri.len - from);
}

static void put_target(struct builder *b, struct pt_request *r, const struct proxy_ctx *ctx)
{
    const struct proxy_target *t = ctx->t;
    struct pt_str rest, prefix = ctx->plc->prefix;

    /* A rewrite changed the URI: nginx passes the whole changed URI, escaped, with the
     * query the rewrite left, when proxy_pass has no URI part or a rewrite with break made
     * it in this location; after a new search the URI part replaces the prefix as usual.
     * The URI part of a proxy_pass with variables is the whole URI whatever happened. */
    if (r->uri_rewritten && (!t->has_uri || (r->uri_whole && !ctx->plc->pass_vars))) {
        put_escaped_uri(b, r->uri);
        if (r->h.has_query) {
            put_lit(b, "?");
            put_str(b, r->args);
        }
        return;
    }
    if (!t->has_uri) {
        /* Without a URI part the request URI goes up unchanged (for an absolute-form
         * target, its path and query). */
        put_str(b, r->h.path.len ? r->h.path : PT_STR("/"));
        if (r->h.has_query) {
            put_lit(b, "?");
            put_str(b, r->h.query);
        }
        return;
    }
    if (ctx->plc->pass_vars) {
        /* nginx's rule for proxy_pass with variables: the URI part is the whole URI. */
        put_str(b, t->uri);
        return;
    }
    rest = r->uri;
    if (rest.len >= prefix.len && memcmp(rest.p, prefix.p, prefix.len) == 0) {
        rest.p += prefix.len;
        rest.len -= prefix.len;
    }
    put_str(b, t->uri);
    put_str(b, rest);
    if (r->h.has_query) {
        put_lit(b, "?");
        put_str(b, r->args);
    }
}

/* Every X-Forwarded-For line of the client's, joined into one list (PT_NULL_STR: none). */
static struct pt_str client_xff(struct pt_request *r)
{
    struct builder b = {r->pool, NULL, 0, 0, 0};

    for (size_t i = 0; i < r->h.nheaders; i++) {
        if (!pt_str_ieq(r->h.headers[i].name, "x-forwarded-for"))
            continue;
        if (b.len)
            put_lit(&b, ", ");
        put_str(&b, r->h.headers[i].value);
    }
    return b.failed || b.len == 0 ? PT_NULL_STR : (struct pt_str){b.p, b.len};
}

/* The X-Forwarded-* fields portier sets by default, each unless proxy_set_header replaces
 * it: the client's X-Forwarded-For is kept (with the peer appended) and its -Proto and
 * -Host passed on only when the peer is a trusted proxy (set_real_ip_from). */
static void put_forwarded(struct builder *b, struct pt_request *r, unsigned own_set, int trusted)
{
    if (!(own_set & PROXY_OWN_XFF)) {
        struct pt_str xff = trusted ? client_xff(r) : PT_NULL_STR;
        put_lit(b, "X-Forwarded-For: ");
        if (xff.len) {
            put_str(b, xff);
            put_lit(b, ", ");
        }
        put_str(b, pt_str_c(r->c->peer_text));
        put_lit(b, "\r\n");
    }
    if (!(own_set & PROXY_OWN_XFP) &&
        (!trusted || !pt_http_find_header(r->h.headers, r->h.nheaders, "x-forwarded-proto")))
        put_str(b, r->c->ls->ssl ? PT_STR("X-Forwarded-Proto: https\r\n")
                                 : PT_STR("X-Forwarded-Proto: http\r\n"));
    if (!(own_set & PROXY_OWN_XFH) && r->h.host.len &&
        (!trusted || !pt_http_find_header(r->h.headers, r->h.nheaders, "x-forwarded-host")))
        put_header(b, PT_STR("X-Forwarded-Host"), r->h.host);
}

/* Connection and Upgrade, unless proxy_set_header replaces them: an upgrade asked by the
 * client goes up with its Upgrade field (HTTP/1.1 only), and a request whose connection
 * may not be kept says close. */
static void put_connection(struct builder *b, struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct proxy_loc_conf *plc = ctx->plc;
    int upgrade = r->h.upgrade && plc->http_version == 11;

    if (upgrade && !(plc->own_set & PROXY_OWN_UPGRADE))
        put_header(b, PT_STR("Upgrade"),
                   pt_http_find_header(r->h.headers, r->h.nheaders, "upgrade")->value);
    if (plc->own_set & PROXY_OWN_CONNECTION)
        return;
    if (upgrade)
        put_lit(b, "Connection: upgrade\r\n");
    else if (ctx->t->upstream->keepalive == 0 || plc->http_version == 10) {
        put_lit(b, "Connection: close\r\n");
        ctx->no_pool = 1;
    }
}

/* The proxy_set_header fields with their values for <r>; an empty value sends nothing.  A
 * Connection value asking to close keeps the connection out of the pool. */
static int put_set_headers(struct builder *b, struct proxy_ctx *ctx)
{
    struct proxy_loc_conf *plc = ctx->plc;

    for (int i = 0; i < plc->nset; i++) {
        struct pt_str v;
        if (pt_template_eval(ctx->r, plc->set[i].value, &v) != PT_OK)
            return PT_ERROR;
        if (v.len == 0)
            continue;
        if (pt_str_ieq(plc->set[i].name, "connection") && pt_http_has_token(v, "close"))
            ctx->no_pool = 1;
        put_header(b, plc->set[i].name, v);
    }
    return PT_OK;
}

int pt_proxy_build_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct proxy_loc_conf *plc = ctx->plc;
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    const struct pt_upstream_tap *tap = r->tap;
    /* Sized for the client's head plus what portier adds: one allocation in most cases. */
    struct builder b = {r->pool, pt_palloc(r->pool, r->h.head_len + 512), 0, r->h.head_len + 512,
                        0};
    int trusted = pt_http_peer_trusted(r);
    struct pt_str rid =
        overridden(plc, lc->request_id_header) ? PT_NULL_STR : lc->request_id_header;
    const struct pt_http_header *conn;

    if (tap && tap->head_as_get && r->h.method_id == PT_HTTP_HEAD)
        put_lit(&b, "GET");
    else
        put_str(&b, r->h.method);
    put_lit(&b, " ");
    put_target(&b, r, ctx);
    if (plc->http_version == 10)
        put_lit(&b, " HTTP/1.0\r\n");
    else
        put_lit(&b, " HTTP/1.1\r\n");
    /* As nginx: $proxy_host unless proxy_set_header Host says otherwise. */
    if (!(plc->own_set & PROXY_OWN_HOST))
        put_header(&b, PT_STR("Host"), ctx->t->proxy_host);
    conn = pt_http_find_header(r->h.headers, r->h.nheaders, "connection");
    for (size_t i = 0; i < r->h.nheaders; i++) {
        struct pt_str name = r->h.headers[i].name;
        if (skip_request_header(name, conn, trusted) || overridden(plc, name) ||
            (rid.len && pt_str_ieq_str(name, rid)) ||
            (tap && tap->strip_conditionals && conditional_field(name)))
            continue;
        put_header(&b, name, r->h.headers[i].value);
    }
    if (put_set_headers(&b, ctx) != PT_OK)
        return PT_ERROR;
    if (tap && tap->extra.len)
        put_str(&b, tap->extra);
    put_forwarded(&b, r, plc->own_set, trusted);
    /* request_id_header: $request_id goes up in place of whatever the client sent (a
     * trusted proxy's sane id is $request_id already). */
    if (rid.len)
        put_header(&b, rid, pt_str_c(pt_request_id(r)));
    put_connection(&b, ctx);
    if (r->unexpected_body)
        ctx->no_pool = 1;
    if (r->h.chunked) {
        /* Only the chunked layer is portier's to decode and redo: codings applied before
         * it (gzip, chunked) travel on untouched. */
        char te[PT_HTTP_TE_CODINGS_BUFSZ];
        size_t n = pt_http_te_codings_format(&r->h, te, sizeof(te));
        ctx->req_chunked = 1;
        put_lit(&b, "Transfer-Encoding: ");
        put(&b, te, n);
        put_lit(&b, "chunked\r\n");
    } else if (r->has_body) {
        char cl[40];
        int n =
            snprintf(cl, sizeof(cl), "Content-Length: %lld\r\n", (long long)r->h.content_length);
        put(&b, cl, (size_t)n);
    } else if (r->h.method_id == PT_HTTP_POST || r->h.method_id == PT_HTTP_PUT) {
        put_lit(&b, "Content-Length: 0\r\n");
    }
    put_lit(&b, "\r\n");
    if (b.failed)
        return PT_ERROR;
    ctx->head = (struct pt_str){b.p, b.len};
    return PT_OK;
}

/* --- variables --- */

/* The target of <r>'s proxy_pass, NULL when its location has none (or it goes nowhere).
 * With variables it is evaluated here if the content handler has not run yet: a cache key
 * is made before. */
static const struct proxy_target *var_target(struct pt_request *r)
{
    struct proxy_loc_conf *plc = r->loc_conf ? pt_http_loc_conf(r, pt_proxy_module) : NULL;
    struct proxy_ctx *ctx;

    if (plc == NULL || plc->pass == NULL)
        return NULL;
    if (plc->pass_vars == NULL)
        return &plc->target;
    ctx = pt_proxy_ctx(r);
    return ctx ? pt_proxy_target(ctx) : NULL;
}

static int var_proxy_host(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    const struct proxy_target *t = var_target(r);

    pt_unused(arg);
    if (t == NULL)
        return PT_DECLINED;
    *out = t->proxy_host;
    return PT_OK;
}

static int var_proxy_port(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    const struct proxy_target *t = var_target(r);

    pt_unused(arg);
    if (t == NULL)
        return PT_DECLINED;
    *out = t->proxy_port;
    return PT_OK;
}

/* nginx's $proxy_add_x_forwarded_for: the client's X-Forwarded-For, whoever the client is,
 * with $remote_addr appended. */
static int var_add_xff(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    struct pt_str xff = client_xff(r), peer = pt_str_c(r->c->peer_text);
    struct builder b = {r->pool, NULL, 0, 0, 0};

    pt_unused(arg);
    if (xff.len == 0) {
        *out = peer;
        return PT_OK;
    }
    put_str(&b, xff);
    put_lit(&b, ", ");
    put_str(&b, peer);
    if (b.failed)
        return PT_ERROR;
    *out = (struct pt_str){b.p, b.len};
    return PT_OK;
}

int pt_proxy_vars_register(void)
{
    if (pt_var_register("proxy_host", 0, var_proxy_host) != PT_OK ||
        pt_var_register("proxy_port", 0, var_proxy_port) != PT_OK ||
        pt_var_register("proxy_add_x_forwarded_for", 0, var_add_xff) != PT_OK)
        return PT_ERROR;
    return PT_OK;
}

/* --- request to upstream --- */

static void replay_drop(struct proxy_ctx *ctx)
{
    free(ctx->replay);
    ctx->replay = NULL;
    ctx->replay_len = ctx->replay_cap = 0;
    ctx->replay_ok = 0;
    ctx->replay_lost = 1;
}

/* Keeps the <n> body bytes at <p>, framed as they go upstream, so that another try can
 * send exactly them again.  A body that outgrows PROXY_REPLAY_MAX loses its copy, and with
 * it the chance of another try once it has started going up. */
static void keep_for_replay(struct proxy_ctx *ctx, const char *p, size_t n)
{
    size_t need = ctx->replay_len + n;

    if (!ctx->replay_ok || n == 0)
        return;
    if (need > PROXY_REPLAY_MAX) {
        replay_drop(ctx);
        return;
    }
    if (need > ctx->replay_cap) {
        size_t cap = ctx->replay_cap ? ctx->replay_cap : 4096;
        char *grown;
        while (cap < need)
            cap *= 2;
        cap = pt_min(cap, (size_t)PROXY_REPLAY_MAX);
        grown = realloc(ctx->replay, cap);
        if (grown == NULL) {
            replay_drop(ctx);
            return;
        }
        ctx->replay = grown;
        ctx->replay_cap = cap;
    }
    memcpy(ctx->replay + ctx->replay_len, p, n);
    ctx->replay_len = need;
}

/* Moves the next body bytes from the client into <out>, re-framed when the body goes up
 * chunked.  PT_OK, PT_AGAIN (nothing buffered yet) or an HTTP status (a bad body). */
static int fill_body(struct proxy_ctx *ctx, struct pt_buf *out)
{
    struct pt_request *r = ctx->r;
    char *mark = out->last;
    struct pt_str data;
    int last = 0, rc;
    size_t n;

    rc = pt_http_body_peek(r, &data, &last);
    if (rc != PT_OK)
        return rc;
    if (ctx->req_chunked) {
        char head[24];
        size_t room = pt_buf_room(out);
        if (room < 32)
            return PT_OK;
        n = pt_min(data.len, room - 32);
        if (n) {
            size_t h = pt_format_uint(head, n, 16);
            head[h++] = '\r';
            head[h++] = '\n';
            pt_buf_append(out, head, h);
            pt_buf_append(out, data.p, n);
            pt_buf_append(out, "\r\n", 2);
        }
        if (last && n == data.len)
            pt_buf_append(out, "0\r\n\r\n", 5);
    } else {
        n = pt_min(data.len, pt_buf_room(out));
        pt_buf_append(out, data.p, n);
    }
    pt_http_body_consumed(r, n);
    if (last && n == data.len)
        ctx->body_done = 1;
    ctx->body_started = 1;
    keep_for_replay(ctx, mark, (size_t)(out->last - mark));
    /* What this try streams is in the copy already sent: only another try resends it. */
    ctx->replay_pos = ctx->replay_len;
    return PT_OK;
}

/* Moves request bytes into ctx->out: the head first, then what an earlier try sent of the
 * body (the replay copy), then the rest of the body.  PT_DONE once all is out. */
static int fill_out(struct proxy_ctx *ctx)
{
    struct pt_buf *out = ctx->out;

    if (ctx->head_copied < ctx->head.len) {
        size_t n = pt_min(pt_buf_room(out), ctx->head.len - ctx->head_copied);
        pt_buf_append(out, ctx->head.p + ctx->head_copied, n);
        ctx->head_copied += n;
        return PT_OK;
    }
    if (ctx->replay_pos < ctx->replay_len) {
        size_t n = pt_min(pt_buf_room(out), ctx->replay_len - ctx->replay_pos);
        pt_buf_append(out, ctx->replay + ctx->replay_pos, n);
        ctx->replay_pos += n;
        return PT_OK;
    }
    if (ctx->body_done || !ctx->r->has_body) {
        ctx->body_sent = 1;
        return PT_DONE;
    }
    return fill_body(ctx, out);
}

/* Portier waits for the upstream of <ctx> to take request bytes: proxy_send_timeout
 * watches the upstream, and the client, whose body waits behind those bytes, is not timed
 * meanwhile (client_body_timeout would blame it for the upstream's backpressure). */
static void wait_upstream_send(struct proxy_ctx *ctx)
{
    pt_timer_add(&ctx->uc->s.timer, (uint64_t)ctx->plc->send_timeout);
    pt_timer_del(&ctx->r->c->s.timer);
}

int pt_proxy_send_request(struct proxy_ctx *ctx)
{
    struct pt_upstream_conn *uc = ctx->uc;

    if (ctx->out == NULL && (ctx->out = pt_buf_get(PT_BUF_SIZE)) == NULL) {
        pt_http_finalize(ctx->r, PT_ERROR);
        return PT_DONE;
    }
    for (;;) {
        struct pt_buf *out = ctx->out;
        if (pt_buf_len(out)) {
            ssize_t n = pt_proxy_send(ctx, out->pos, pt_buf_len(out));
            if (n == PT_AGAIN) {
                wait_upstream_send(ctx);
                return PT_OK;
            }
            if (n < 0) {
                pt_proxy_failed(ctx, ERR_WRITE);
                return PT_DONE;
            }
            out->pos += n;
            ctx->sent_any = 1;
            if (pt_buf_len(out)) {
                /* Short: the socket is full, or TLS took one record and wants more. */
                if (uc->s.writable)
                    continue;
                wait_upstream_send(ctx);
                return PT_OK;
            }
        }
        out->pos = out->last = out->start;
        if (ctx->body_sent) {
            ctx->req_sent = 1;
            pt_timer_add(&uc->s.timer, (uint64_t)ctx->plc->read_timeout);
            return PT_OK;
        }
        {
            int rc = fill_out(ctx);
            if (rc == PT_AGAIN && pt_buf_len(out) == 0) {
                /* Waiting for the client's body: client_body_timeout watches the client,
                 * and the upstream, which waits too, is not blamed for it. */
                pt_timer_del(&uc->s.timer);
                return PT_OK; /* client_readable resumes */
            }
            if (rc > 0) {
                /* A bad body (400) or one over client_max_body_size (413). */
                pt_proxy_release(ctx, 0);
                pt_http_finalize(ctx->r, rc);
                return PT_DONE;
            }
        }
    }
}
