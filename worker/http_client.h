/*
 * http_client.h: the helper's one outgoing HTTP exchange, for its periodic work (active
 * health checks, OCSP fetches): connect to an address, optionally over TLS, send the
 * caller's request bytes, read and parse the response into the caller's buffer, and call
 * the caller back once with how it went.  One exchange per connection (the request says
 * "Connection: close" or is HTTP/1.0): no keepalive, no redirects, no retries; those are
 * the callers' policies.
 *
 * Built on the stream of transport.h: the connection, its TLS and its readiness are the
 * stream's; this file only frames the exchange.  The whole exchange has one timeout.
 *
 * The body is framed as RFC 9112 6.3 says: no body after 1xx, 204 and 304; Content-Length
 * bytes; chunked, decoded in place so that the caller sees the data only; else up to the
 * server's close.  A body larger than the buffer is cut where the buffer ends (r->full):
 * a health check looks at the start of a body only, an OCSP fetch refuses it.
 */
#ifndef PT_HTTP_CLIENT_H
#define PT_HTTP_CLIENT_H

#include "worker/http_parse.h"
#include "worker/transport.h"

/* Where an exchange is, and so where it ended. */
enum pt_http_client_phase {
    PT_HC_CONNECT,
    PT_HC_HANDSHAKE, /* TLS only */
    PT_HC_SEND,
    PT_HC_RECV,
};

/* How an exchange ended. */
enum pt_http_client_end {
    PT_HC_RESPONSE, /* a response head came (without a request: the connection was made) */
    PT_HC_ERRNO,    /* a system call failed: r->err says why */
    PT_HC_TIMEOUT,  /* the exchange's timeout expired */
    PT_HC_TLS,      /* TLS could not start, or its handshake failed */
    PT_HC_CLOSED,   /* the server closed before a complete head */
    PT_HC_INVALID,  /* the head, or its chunked framing, is malformed */
};

struct pt_http_client_result {
    enum pt_http_client_end end;
    enum pt_http_client_phase phase; /* where it ended */
    int err;                         /* PT_HC_ERRNO: the errno; else 0 */
    /* In words, for a log or a status page: "200 OK", "connected", "TLS handshake done",
     * "connect refused", "connect: <strerror>", "send: ..", "recv: ..", "connect timeout",
     * "TLS handshake timeout", "timeout waiting for the response", "TLS handshake failed:
     * <OpenSSL's reason|connection closed>", "cannot start TLS", "closed before a complete
     * response", "invalid response".  Lives as long as the call of done. */
    const char *text;
    /* PT_HC_RESPONSE with a request: the head (in the caller's buffer), its status, and
     * the body read (decoded when chunked), up to the buffer's end.  NULL, 0 otherwise. */
    const struct pt_http_response *resp;
    int status;
    char *body;
    size_t body_len;
    unsigned complete : 1; /* the body ended where its framing says (r->body_len is all of it) */
    unsigned eof : 1;      /* the server closed the connection */
    unsigned full : 1;     /* the buffer filled up before the body's end */
};

/* One outgoing exchange at a time.  Embedded in its owner; the owner sets the first group
 * of fields (kept across exchanges), the rest is the client's. */
struct pt_http_client {
    const char *request; /* the whole request (NULL: connect, and handshake, only) */
    size_t request_len;
    char *buf; /* the response is read into <buf>/<size>, the owner's */
    size_t size;
    size_t head_max;        /* the head's limit (at most <size>) */
    uint64_t timeout_ms;    /* of the whole exchange, from pt_http_client_start() */
    struct ssl_ctx_st *tls; /* non-NULL: speak TLS with this context (PORTIER_WITH_SSL) */
    const char *sni;        /* the TLS server name (NULL or an address: none) */
    /* Optional: called with the head once it is parsed; PT_DONE when the head is enough
     * (done follows at once, with no body), PT_OK to read the body. */
    int (*head)(void *data, const struct pt_http_response *resp);
    /* Called once per started exchange, never from within pt_http_client_start(), with
     * the stream closed already.  It may arm a timer for the next exchange but must not
     * start one itself (the loop may still hold events of the closed socket). */
    void (*done)(void *data, const struct pt_http_client_result *r);
    void *data;

    struct pt_stream s;
    struct pt_http_response resp;
    struct pt_chunked ck;
    enum pt_http_client_phase phase;
    size_t sent;
    size_t len;     /* bytes in buf: the head, then the body (decoded when chunked) */
    size_t decoded; /* chunked: the end of the data decoded, where the framing read starts */
    int start_err;  /* errno of a connection that failed at once, reported by the timer */
    unsigned running : 1;
    unsigned parsed : 1; /* the head is parsed: what follows it is the body */
    unsigned eof : 1;
    char text[64];
};

/* Starts an exchange of <c> (set up as above, not running) with the server at <sa>/<len>,
 * and arms its timeout.  <c>->done is called once when it ends, from the event loop: even
 * a connection that fails at once (no socket left, say) is reported from there, as a
 * PT_HC_ERRNO of PT_HC_CONNECT. */
void pt_http_client_start(struct pt_http_client *c, const struct sockaddr *sa, socklen_t len);

/* Ends <c>'s running exchange, if any, without calling done: its socket is closed and its
 * timer disarmed.  For an owner that goes away. */
void pt_http_client_cancel(struct pt_http_client *c);

#endif
