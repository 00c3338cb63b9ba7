/*
 * http_client.c: the helper's outgoing HTTP exchange (see http_client.h): connect, TLS
 * handshake, send and receive, one after the other on a stream, driven by the stream's
 * events and bounded by its timer.
 */
#include "worker/http_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define REASON_MAX 40 /* of a reason phrase in the text: the text is a status page's field */

/* Closes <c>'s stream and tells its owner how the exchange ended, with <c>->text.
 * Returns PT_DONE: by then <c> is its owner's again. */
static int finish(struct pt_http_client *c, struct pt_http_client_result *r)
{
    r->phase = c->phase;
    r->text = c->text;
    r->eof = c->eof;
    pt_stream_close(&c->s);
    c->running = 0;
    c->done(c->data, r);
    return PT_DONE;
}

/* Ends the exchange as <how> says, <text> saying it in words. */
static int end(struct pt_http_client *c, enum pt_http_client_end how, const char *text)
{
    struct pt_http_client_result r = {.end = how};

    snprintf(c->text, sizeof(c->text), "%s", text);
    return finish(c, &r);
}

/* Ends the exchange on a failed system call of the current phase. */
static int end_errno(struct pt_http_client *c, int err)
{
    static const char *const what[] = {"connect", "TLS handshake", "send", "recv"};
    struct pt_http_client_result r = {.end = PT_HC_ERRNO, .err = err};

    if (err == ECONNREFUSED)
        snprintf(c->text, sizeof(c->text), "%s refused", what[c->phase]);
    else
        snprintf(c->text, sizeof(c->text), "%s: %s", what[c->phase], strerror(err));
    return finish(c, &r);
}

/* Ends the exchange with the response in <c>->buf: its head, and its body up to <c>->len.
 * <complete>: the body ended where its framing says. */
static int respond(struct pt_http_client *c, int complete)
{
    const struct pt_http_response *resp = &c->resp;
    struct pt_http_client_result r = {
        .end = PT_HC_RESPONSE,
        .resp = resp,
        .status = resp->status,
        .body = c->buf + resp->head_len,
        .body_len = c->len - resp->head_len,
        .complete = complete,
        .full = !complete && !c->eof && c->len == c->size,
    };

    /* What came after the announced length is not this response's. */
    if (resp->content_length >= 0 && r.body_len > (uint64_t)resp->content_length)
        r.body_len = (size_t)resp->content_length;
    snprintf(c->text, sizeof(c->text), "%d %.*s", resp->status,
             (int)pt_min(resp->reason.len, REASON_MAX), resp->reason.p);
    return finish(c, &r);
}

#if PORTIER_WITH_SSL
static int tls_begin(struct pt_http_client *c)
{
    int rc = pt_tls_client(&c->s, c->tls, c->sni, NULL, c);

    pt_tls_reason(); /* empties OpenSSL's error queue */
    return rc;
}

static const char *tls_reason(void)
{
    return pt_tls_reason();
}
#else
/* Built without the ssl module, whose configuration is the only one to ask for TLS. */
static int tls_begin(struct pt_http_client *c)
{
    return PT_ERROR;
}

static const char *tls_reason(void)
{
    return NULL;
}
#endif

/* The phases, each on <c>'s events: PT_OK when the next phase may run now, PT_AGAIN while
 * it waits for the socket, PT_DONE once the exchange ended. */

static int connected(struct pt_http_client *c, unsigned events)
{
    int rc = pt_stream_connect_done(&c->s, events);

    if (rc != PT_OK)
        return rc == PT_AGAIN ? PT_AGAIN : end_errno(c, errno);
    if (c->tls) {
        c->phase = PT_HC_HANDSHAKE;
        return tls_begin(c) == PT_OK ? PT_OK : end(c, PT_HC_TLS, "cannot start TLS");
    }
    if (c->request == NULL)
        return end(c, PT_HC_RESPONSE, "connected");
    c->phase = PT_HC_SEND;
    return PT_OK;
}

static int handshake(struct pt_http_client *c)
{
    int rc = pt_stream_handshake(&c->s);
    const char *why;

    if (rc == PT_AGAIN)
        return PT_AGAIN;
    if (rc != PT_OK) {
        why = tls_reason();
        snprintf(c->text, sizeof(c->text), "TLS handshake failed: %s",
                 why ? why : "connection closed");
        return finish(c, &(struct pt_http_client_result){.end = PT_HC_TLS});
    }
    if (c->request == NULL)
        return end(c, PT_HC_RESPONSE, "TLS handshake done");
    c->phase = PT_HC_SEND;
    return PT_OK;
}

static int send_request(struct pt_http_client *c)
{
    while (c->sent < c->request_len) {
        ssize_t n;
        if (!c->s.writable)
            return PT_AGAIN;
        n = pt_stream_send(&c->s, c->request + c->sent, c->request_len - c->sent);
        if (n == PT_AGAIN)
            return PT_AGAIN;
        if (n < 0)
            return end_errno(c, errno);
        c->sent += (size_t)n;
    }
    c->phase = PT_HC_RECV;
    return PT_OK;
}

/* Decodes the chunked body bytes after <c>->decoded, in place: data only ever moves
 * towards the start, so the buffer ends up holding the head and the body's data alone,
 * and the room freed by the framing is read into again.  PT_OK or PT_ERROR. */
static int dechunk(struct pt_http_client *c)
{
    size_t pos = c->decoded;

    while (pos < c->len && !c->ck.done) {
        struct pt_str d;
        ssize_t k = pt_chunked_parse(&c->ck, c->buf + pos, c->len - pos, &d);
        if (k < 0)
            return PT_ERROR;
        memmove(c->buf + c->decoded, d.p, d.len);
        c->decoded += d.len;
        pos += (size_t)k;
    }
    c->len = c->decoded; /* nothing follows the last chunk of a response to a closing request */
    return PT_OK;
}

/* Parses the head once it is whole: PT_OK to read the body, PT_AGAIN for more of the head,
 * PT_DONE once the exchange ended. */
static int parse_head(struct pt_http_client *c)
{
    int rc = pt_http_parse_response(c->buf, c->len, c->head_max, &c->resp);
    int status = c->resp.status;

    if (rc == PT_ERROR)
        return end(c, PT_HC_INVALID, "invalid response");
    if (rc == PT_AGAIN)
        return c->eof || c->len == c->size
                   ? end(c, PT_HC_CLOSED, "closed before a complete response")
                   : PT_AGAIN;
    c->parsed = 1;
    c->decoded = c->resp.head_len;
    /* No body after these, whatever the head says (RFC 9112 6.3, rule 1). */
    if ((status >= 100 && status < 200) || status == 204 || status == 304) {
        c->len = c->resp.head_len;
        return respond(c, 1);
    }
    if (c->head && c->head(c->data, &c->resp) == PT_DONE) {
        c->len = c->resp.head_len;
        return respond(c, 0);
    }
    return PT_OK;
}

/* Looks at what was read: PT_AGAIN to read on, PT_DONE once the exchange ended. */
static int judge(struct pt_http_client *c)
{
    const struct pt_http_response *resp = &c->resp;
    size_t got;
    int rc;

    if (!c->parsed && (rc = parse_head(c)) != PT_OK)
        return rc;
    if (resp->chunked && dechunk(c) != PT_OK)
        return end(c, PT_HC_INVALID, "invalid response");
    got = c->len - resp->head_len;
    if (resp->chunked ? c->ck.done
                      : resp->content_length >= 0 && got >= (uint64_t)resp->content_length)
        return respond(c, 1);
    /* Without a length, the body is all that comes before the close (RFC 9112 6.3 rule 8). */
    if (c->eof)
        return respond(c, !resp->chunked && resp->content_length < 0);
    return c->len == c->size ? respond(c, 0) : PT_AGAIN;
}

static int receive(struct pt_http_client *c)
{
    /* judge() ends the exchange when the buffer is full: there is always room here. */
    while (c->s.readable) {
        ssize_t n = c->s.t->recv(&c->s, c->buf + c->len, c->size - c->len);
        if (n == PT_AGAIN)
            return PT_AGAIN;
        if (n < 0)
            return end_errno(c, errno);
        c->eof = n == 0;
        c->len += (size_t)n;
        if (judge(c) == PT_DONE)
            return PT_DONE;
    }
    return PT_AGAIN;
}

static void on_event(struct pt_event *ev, unsigned events)
{
    struct pt_http_client *c = ev->data;
    int rc = PT_OK;

    pt_stream_ready(&c->s, events);
    /* Each phase runs on as far as the socket lets it; <c> is not touched after PT_DONE. */
    if (c->phase == PT_HC_CONNECT)
        rc = connected(c, events);
    if (rc == PT_OK && c->phase == PT_HC_HANDSHAKE)
        rc = handshake(c);
    if (rc == PT_OK && c->phase == PT_HC_SEND)
        rc = send_request(c);
    if (rc == PT_OK && c->phase == PT_HC_RECV)
        receive(c);
}

static void on_timer(struct pt_timer *t)
{
    static const char *const what[] = {"connect timeout", "TLS handshake timeout",
                                       "timeout waiting for the response",
                                       "timeout waiting for the response"};
    struct pt_http_client *c = t->data;

    if (c->s.ev.fd < 0) /* no connection: its failure is reported now, from the loop */
        end_errno(c, c->start_err);
    else
        end(c, PT_HC_TIMEOUT, what[c->phase]);
}

void pt_http_client_start(struct pt_http_client *c, const struct sockaddr *sa, socklen_t len)
{
    pt_stream_init(&c->s, -1, on_event, c);
    c->s.timer.handler = on_timer;
    c->s.timer.data = c;
    memset(&c->resp, 0, sizeof(c->resp));
    memset(&c->ck, 0, sizeof(c->ck));
    c->phase = PT_HC_CONNECT;
    c->sent = c->len = c->decoded = 0;
    c->running = 1;
    c->parsed = c->eof = 0;
    if (pt_stream_connect(&c->s, sa, len) != PT_OK) {
        c->start_err = errno;
        pt_timer_add(&c->s.timer, 0);
        return;
    }
    pt_timer_add(&c->s.timer, c->timeout_ms);
}

void pt_http_client_cancel(struct pt_http_client *c)
{
    if (!c->running)
        return;
    pt_timer_del(&c->s.timer); /* pt_stream_close() leaves it armed when there is no socket */
    pt_stream_close(&c->s);
    c->running = 0;
}
