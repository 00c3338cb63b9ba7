/*
 * proxy_response.c: the response from upstream: its head passed on with hop-by-hop fields
 * removed, the body forwarded as the client keeps up, and tunnels after a 101.
 */
#include "modules/proxy/proxy.h"

/* --- response from upstream --- */

/* Response fields not passed to the client: hop-by-hop ones, those named in the upstream's
 * Connection field <conn> (may be NULL), those portier sets itself, proxy_hide_header. */
static int hide_response_header(struct proxy_ctx *ctx, struct pt_str name,
                                const struct pt_http_header *conn)
{
    static const char *const hop[] = {
        "connection", "keep-alive",     "proxy-connection", "te",   "trailer", "transfer-encoding",
        "upgrade",    "content-length", "server",           "date", NULL};

    for (int i = 0; hop[i]; i++)
        if (pt_str_ieq(name, hop[i]))
            return !(ctx->r->tunnel && pt_str_ieq(name, "upgrade"));
    /* nginx's X-Accel-* fields are orders to the proxy, not news for the client. */
    if (name.len > 8 && strncasecmp(name.p, "x-accel-", 8) == 0)
        return 1;
    for (int i = 0; i < ctx->plc->nhide; i++)
        if (pt_str_ieq(name, ctx->plc->hide[i]))
            return 1;
    return conn && pt_proxy_named_in(conn->value, name);
}

/* Whether this response goes out unbuffered: proxy_buffering, unless the upstream's
 * X-Accel-Buffering says yes or no (nginx's rule). */
static int unbuffered(struct proxy_ctx *ctx)
{
    const struct pt_http_header *h =
        pt_http_find_header(ctx->resp.headers, ctx->resp.nheaders, "x-accel-buffering");

    if (h && pt_str_ieq(h->value, "no"))
        return 1;
    if (h && pt_str_ieq(h->value, "yes"))
        return 0;
    return !ctx->plc->buffering;
}

/* Copies the upstream's head into the client response (the pool keeps the bytes alive
 * for the log after ctx->in is reused). */
static int copy_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_http_response *resp = &ctx->resp;
    char *copy = pt_pstrndup(r->pool, ctx->in->pos, resp->head_len);
    const struct pt_http_header *conn =
        pt_http_find_header(resp->headers, resp->nheaders, "connection");

    if (copy == NULL)
        return PT_ERROR;
#define MOVE(s) ((struct pt_str){copy + ((s).p - ctx->in->pos), (s).len})
    r->status = resp->status;
    r->status_line = MOVE(resp->reason);
    r->stream_out = unbuffered(ctx);
    for (size_t i = 0; i < resp->nheaders; i++) {
        struct pt_http_header *h = &resp->headers[i];
        struct pt_str value = MOVE(h->value);
        if (hide_response_header(ctx, h->name, conn))
            continue;
        /* proxy_redirect and proxy_cookie_*: Location, Refresh, Set-Cookie. */
        if (pt_proxy_rewrite_field(ctx, h->name, &value) != PT_OK ||
            pt_header_add(r, &r->out, MOVE(h->name), value) != PT_OK)
            return PT_ERROR;
    }
#undef MOVE
    return PT_OK;
}

/* RFC 9112 6.3: which responses have a body and how it is framed.  A HEAD that a tap sent
 * up as GET gets a body, read (and dropped on the way to the client). */
static void frame_body(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_http_response *resp = &ctx->resp;
    int head = r->h.method_id == PT_HTTP_HEAD && !(r->tap && r->tap->head_as_get);

    if (head || resp->status == 204 || resp->status == 304 || r->tunnel) {
        ctx->resp_left = 0;
        r->out_length = resp->content_length >= 0 && head ? resp->content_length : -1;
        if (resp->status == 204 || resp->status == 304)
            r->out_length = -1;
    } else if (resp->chunked) {
        ctx->resp_chunked = 1;
        r->out_length = -1;
    } else if (resp->content_length >= 0) {
        ctx->resp_left = resp->content_length;
        r->out_length = resp->content_length;
    } else {
        ctx->resp_until_close = 1;
        r->out_length = -1;
    }
}

/* The tap took the answer over (a cache's revalidated or stale entry): the upstream's
 * connection is let go (kept when nothing of the response is left on it), then the tap
 * answers.  Returns PT_DONE. */
static int tap_answers(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int keep = ctx->resp.keep_alive && !ctx->no_pool && ctx->req_sent && !r->tunnel &&
               !ctx->resp_chunked && !ctx->resp_until_close && ctx->resp_left == 0 &&
               pt_buf_len(ctx->in) == 0;

    pt_peer_succeeded(ctx->peer);
    pt_upstream_note(ctx->peer, PT_UPSTREAM_DONE, 0, pt_now_ms() - ctx->try_start_ms);
    pt_proxy_note_upstream(ctx, 0);
    pt_proxy_release(ctx, keep);
    pt_proxy_tap_answer(ctx);
    return PT_DONE;
}

/* proxy_intercept_errors: the upstream's error answer gives way to error_page's (its body
 * is not read: the connection is not kept).  Returns PT_DONE. */
static int intercept(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int status = ctx->resp.status;

    pt_peer_succeeded(ctx->peer);
    pt_upstream_note(ctx->peer, PT_UPSTREAM_DONE, 0, pt_now_ms() - ctx->try_start_ms);
    pt_proxy_note_upstream(ctx, 0);
    pt_proxy_release(ctx, 0);
    r->cleanup = NULL;
    pt_proxy_cleanup(r);
    r->read_handler = r->write_handler = NULL;
    pt_http_finalize(r, status);
    return PT_DONE;
}

/* Passes the upstream's head on to the client, unless a tap answers instead.  PT_OK,
 * PT_DONE (the tap answered), or PT_ERROR. */
static int pass_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    if (copy_head(ctx) != PT_OK)
        return PT_ERROR;
    pt_proxy_note_upstream(ctx, ctx->resp.status);
    frame_body(ctx);
    if (ctx->plc->intercept_errors && ctx->resp.status >= 300 &&
        pt_http_error_page_for(r, ctx->resp.status))
        return intercept(ctx);
    if (r->tap && r->tap->head && !r->tunnel) {
        int rc = r->tap->head(r, &ctx->resp);
        if (rc == PT_DONE) {
            ctx->in->pos += ctx->resp.head_len;
            ctx->resp_head = 1;
            return tap_answers(ctx);
        }
        if (rc != PT_DECLINED)
            return PT_ERROR;
    }
    ctx->in->pos += ctx->resp.head_len;
    ctx->resp_head = 1;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    if (!ctx->resp_chunked && !ctx->resp_until_close && ctx->resp_left == 0 && !r->tunnel) {
        ctx->resp_done = 1;
        return pt_http_send_body(r, NULL, 0, 1);
    }
    return PT_OK;
}

/* True when the head in <in> is refused only for being longer than <max>: no blank line
 * ends it within those bytes. */
static int too_big(const struct pt_buf *in, size_t max)
{
    return pt_buf_len(in) >= max && memmem(in->pos, max, "\r\n\r\n", 4) == NULL;
}

/* Parses the head in ctx->in.  PT_OK (passed on), PT_AGAIN (need more), PT_ERROR (bad),
 * PT_DECLINED (larger than proxy_buffer_size), PT_DONE (a status listed in
 * proxy_next_upstream: the request went on to another try). */
static int parse_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    for (;;) {
        size_t max = (size_t)ctx->plc->buffer_size;
        int rc = pt_http_parse_response(ctx->in->pos, pt_buf_len(ctx->in), max, &ctx->resp);
        if (rc == PT_ERROR && too_big(ctx->in, max))
            return PT_DECLINED;
        if (rc != PT_OK)
            return rc == PT_AGAIN ? PT_AGAIN : PT_ERROR;
        /* nginx's $upstream_header_time: the final head (or a 101) is in, whether it goes
         * to the client or sends the request on to another server. */
        if (ctx->resp.status >= 200 || ctx->resp.status == 101) {
            ctx->header_ms = (int64_t)(pt_now_ms() - ctx->try_start_ms);
            pt_upstream_note(ctx->peer, PT_UPSTREAM_HEADER, ctx->resp.status,
                             (uint64_t)ctx->header_ms);
        }
        if (ctx->resp.status == 101) {
            if (!r->h.upgrade)
                return PT_ERROR;
            r->tunnel = 1;
            r->keepalive = 0;
            return pass_head(ctx);
        }
        if (ctx->resp.status >= 200)
            return pt_proxy_retry_status(ctx) == PT_DONE ? PT_DONE : pass_head(ctx);
        /* An interim response (100 Continue, 103): portier answered Expect itself. */
        ctx->in->pos += ctx->resp.head_len;
        pt_proxy_resp_clear(ctx);
    }
}

/* Finishes the exchange once the whole response is out of the upstream. */
static void response_complete(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int keep = ctx->resp.keep_alive && !ctx->no_pool && !ctx->resp_until_close && ctx->req_sent &&
               pt_buf_len(ctx->in) == 0;

    pt_peer_succeeded(ctx->peer);
    pt_upstream_note(ctx->peer, PT_UPSTREAM_DONE, 0, pt_now_ms() - ctx->try_start_ms);
    pt_proxy_note_upstream(ctx, 0);
    pt_proxy_release(ctx, keep);
    r->cleanup = NULL;
    pt_proxy_cleanup(r);
    pt_http_finalize(r, PT_OK);
}

/* Passes buffered body bytes on to the client while it keeps up.  PT_OK, PT_DONE (the
 * response is complete) or PT_ERROR (bad framing or the client is gone). */
static int forward_body(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_buf *in = ctx->in;

    while (pt_buf_len(in) && !pt_http_output_blocked(r)) {
        struct pt_str d = PT_NULL_STR;
        size_t used;
        int last = 0;
        if (ctx->resp_until_close) {
            d = (struct pt_str){in->pos, pt_buf_len(in)};
            used = d.len;
        } else if (!ctx->resp_chunked) {
            used = (size_t)pt_min((int64_t)pt_buf_len(in), ctx->resp_left);
            d = (struct pt_str){in->pos, used};
            ctx->resp_left -= (int64_t)used;
            last = ctx->resp_left == 0;
        } else {
            ssize_t n = pt_chunked_parse(&ctx->chunk, in->pos, pt_buf_len(in), &d);
            if (n < 0)
                return PT_ERROR;
            used = (size_t)n;
            last = ctx->chunk.done;
            if (n == 0 && !last)
                break;
        }
        in->pos += used;
        if (pt_http_send_body(r, d.p, d.len, last) != PT_OK)
            return PT_ERROR;
        if (last) {
            ctx->resp_done = 1;
            return PT_DONE;
        }
        if (!ctx->resp_chunked && !ctx->resp_until_close && ctx->resp_left == 0)
            break;
    }
    if (pt_buf_len(in) == 0)
        in->pos = in->last = in->start;
    return ctx->resp_done ? PT_DONE : PT_OK;
}

/* What the buffered bytes mean now.  PT_OK: wait for more; PT_DONE: the request is over. */
static int process_input(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int rc;

    if (!ctx->resp_head) {
        rc = parse_head(ctx);
        if (rc == PT_AGAIN)
            return PT_OK;
        if (rc == PT_DONE)
            return PT_DONE;
        if (rc != PT_OK) {
            pt_proxy_failed(ctx, rc == PT_DECLINED ? ERR_TOO_BIG : ERR_INVALID);
            return PT_DONE;
        }
        if (ctx->resp_done) {
            response_complete(ctx);
            return PT_DONE;
        }
    }
    if (r->tunnel) {
        if (pt_buf_len(ctx->in) && !pt_http_output_blocked(r)) {
            if (pt_http_write_raw(r->c, ctx->in->pos, pt_buf_len(ctx->in)) != PT_OK) {
                pt_http_abort(r);
                return PT_DONE;
            }
            ctx->in->pos = ctx->in->last = ctx->in->start;
        }
        return pt_proxy_tunnel_client(ctx);
    }
    rc = forward_body(ctx);
    if (rc == PT_ERROR) {
        if (r->c->error)
            pt_http_abort(r);
        else
            pt_proxy_failed(ctx, ERR_INVALID);
        return PT_DONE;
    }
    if (rc == PT_DONE) {
        response_complete(ctx);
        return PT_DONE;
    }
    /* The head arrived without body bytes: the client gets it now, not with the body. */
    if (pt_http_flush(r->c) == PT_ERROR) {
        pt_http_abort(r);
        return PT_DONE;
    }
    return PT_OK;
}

/* The upstream closed its side: the end of a close-delimited body, or a failure. */
static void upstream_eof(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    if (ctx->resp_head && (ctx->resp_until_close || r->tunnel)) {
        if (!r->tunnel && pt_http_send_body(r, NULL, 0, 1) != PT_OK) {
            pt_http_abort(r);
            return;
        }
        r->response_done = 1;
        pt_proxy_release(ctx, 0);
        r->cleanup = NULL;
        pt_proxy_cleanup(r);
        pt_http_finalize(r, PT_OK);
        return;
    }
    if (ctx->resp_head) {
        pt_log(PT_LOG_ERR,
               "upstream %s closed the connection before the end of the response "
               "(client %s)",
               ctx->peer->name, r->c->peer_text);
        pt_http_abort(r);
        return;
    }
    pt_proxy_failed(ctx, ERR_READ);
}

/*
 * Which side's timer runs while the response streams: only the side portier waits on.
 * While the client does not take what it was sent, the upstream is not read, so its
 * proxy_read_timeout stops (a slow reader must not be logged as "upstream timed out"
 * against a healthy server, nor cut off for it) and the client's send_timeout runs instead,
 * from the moment the wait began: upstream events meanwhile do not move it, only the
 * client's progress does (pt_http_request_event).
 */
static void wait_client(struct proxy_ctx *ctx)
{
    struct pt_http_loc_conf *lc = ctx->r->loc_conf[pt_http_module.index];

    pt_timer_del(&ctx->uc->s.timer);
    if (!pt_timer_armed(&ctx->r->c->s.timer))
        pt_timer_add(&ctx->r->c->s.timer, (uint64_t)lc->send_timeout);
}

/* Waiting for response bytes again: proxy_read_timeout runs, from now if it was stopped
 * (before the whole request went up, proxy_send_timeout or the client's body timer rules). */
static void wait_upstream_read(struct proxy_ctx *ctx)
{
    if (ctx->req_sent && !pt_timer_armed(&ctx->uc->s.timer))
        pt_timer_add(&ctx->uc->s.timer, (uint64_t)ctx->plc->read_timeout);
}

int pt_proxy_read_response(struct proxy_ctx *ctx)
{
    struct pt_upstream_conn *uc = ctx->uc;

    /* The buffer holds the whole response head: proxy_buffer_size. */
    if (ctx->in == NULL && (ctx->in = pt_buf_get((size_t)ctx->plc->buffer_size)) == NULL) {
        pt_http_finalize(ctx->r, PT_ERROR);
        return PT_DONE;
    }
    for (;;) {
        ssize_t n;
        size_t room;

        if (pt_buf_len(ctx->in) && process_input(ctx) == PT_DONE)
            return PT_DONE;
        /* Backpressure: nothing more is read while the client has not taken the last. */
        if (pt_http_output_blocked(ctx->r)) {
            wait_client(ctx);
            return PT_OK;
        }
        if (!uc->s.readable) {
            wait_upstream_read(ctx);
            return PT_OK;
        }
        if (pt_buf_room(ctx->in) == 0)
            pt_buf_compact(ctx->in);
        room = pt_buf_room(ctx->in);
        if (room == 0) {
            pt_proxy_failed(ctx, ERR_TOO_BIG); /* a head larger than the buffer */
            return PT_DONE;
        }
        /* Reads on while uc->s.readable: a short read clears it for a plain socket, while
         * TLS may still hold records that no new edge would announce. */
        n = pt_proxy_recv(ctx, ctx->in->last, room);
        if (n > 0) {
            ctx->in->last += n;
            ctx->got_bytes = 1;
            pt_timer_add(&uc->s.timer, (uint64_t)ctx->plc->read_timeout);
            continue;
        }
        if (n == PT_AGAIN) {
            wait_upstream_read(ctx);
            return PT_OK;
        }
        if (n < 0 && !ctx->resp_head && errno != ECONNRESET && errno != EPIPE)
            pt_log(PT_LOG_ERR, "read from upstream %s failed: %m", ctx->peer->name);
        upstream_eof(ctx);
        return PT_DONE;
    }
}

/* --- tunnel (after 101) --- */

int pt_proxy_tunnel_client(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_http_conn *c = r->c;

    for (;;) {
        ssize_t n;
        if (pt_buf_len(c->in)) {
            n = pt_proxy_send(ctx, c->in->pos, pt_buf_len(c->in));
            if (n == PT_AGAIN)
                return PT_OK;
            if (n < 0) {
                upstream_eof(ctx);
                return PT_DONE;
            }
            c->in->pos += n;
            pt_timer_add(&ctx->uc->s.timer, (uint64_t)ctx->plc->read_timeout);
            if (pt_buf_len(c->in) && ctx->uc->s.writable)
                continue; /* TLS took one record: the socket may take the next */
            if (pt_buf_len(c->in))
                return PT_OK;
        }
        c->in->pos = c->in->last = r->body_start;
        if (!c->s.readable)
            return PT_OK;
        n = pt_http_conn_read(c);
        if (n == 0 || n == PT_ERROR) {
            r->response_done = 1;
            pt_proxy_release(ctx, 0);
            r->cleanup = NULL;
            pt_proxy_cleanup(r);
            pt_http_finalize(r, PT_OK);
            return PT_DONE;
        }
        if (n == PT_AGAIN)
            return PT_OK;
    }
}
