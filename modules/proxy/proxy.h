/*
 * proxy.h: what the files of the proxy module share: its location configuration, the
 * state of one proxied exchange, and the steps each file offers the others.
 *   proxy.c           the module, its directives, and the exchange's control: choosing
 *                     and connecting a peer, failures, retries, timeouts, events
 *   proxy_target.c    proxy_pass: where a request goes (group, TLS, URI part), fixed at
 *                     configuration time or, with variables, evaluated per request
 *   proxy_request.c   the request sent upstream: its head, then the body, re-framed
 *   proxy_response.c  the response: its head, the body to the client, tunnels
 *   proxy_rewrite.c   proxy_redirect, proxy_cookie_domain, proxy_cookie_path: rewriting
 *                     Location, Refresh and Set-Cookie of the response as nginx does
 *   proxy_ssl.c       TLS to upstream servers (proxy_pass https://, proxy_ssl_*): one
 *                     SSL_CTX per distinct configuration, the TLS transport set up on a
 *                     connection and its handshake, sessions kept for resumption
 */
#ifndef PT_PROXY_H
#define PT_PROXY_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/http.h"
#include "core/log.h"
#include "core/pool.h"
#include "modules/upstream/upstream.h"
#include "worker/var.h"

struct proxy_header {
    struct pt_str name;
    struct pt_template *value;
};

/* proxy_ssl_protocols' words. */
#define PROXY_TLSv1   0x1
#define PROXY_TLSv1_1 0x2
#define PROXY_TLSv1_2 0x4
#define PROXY_TLSv1_3 0x8

/* The proxy_ssl_* directives as read, then merged (unset: PT_CONF_UNSET or NULL). */
struct proxy_ssl_conf {
    int server_name; /* flag: send SNI */
    char *name;      /* proxy_ssl_name; NULL: the host of proxy_pass */
    int verify;      /* flag */
    int64_t verify_depth;
    char *trusted_certificate;
    char *certificate, *certificate_key;
    int protocols; /* PROXY_TLSv1* bits */
    char *ciphers;
    int session_reuse; /* flag */
};

struct proxy_ssl; /* proxy_ssl.c: a built upstream TLS configuration */

/* The module's per-cycle state. */
struct proxy_main_conf {
    struct proxy_ssl *ssl; /* every TLS configuration built, to share identical ones */
};

/*
 * Where a request goes: what proxy_pass names.  A proxy_pass without variables has one,
 * made at configuration time (plc->target); with variables each request evaluates its own
 * (pt_proxy_target()), in the request pool.
 */
struct proxy_target {
    struct pt_upstream *upstream;
    struct proxy_ssl *ssl; /* the TLS configuration of https; NULL: plain http */
    /* The host without port or brackets: the TLS name when proxy_ssl_name is not set. */
    const char *tls_name;
    /* $proxy_host (the host, with the port unless it is the scheme's default: the Host
     * sent by default, as nginx's) and $proxy_port (the port, "80" or "443" by default). */
    struct pt_str proxy_host, proxy_port;
    struct pt_str uri; /* URI part of proxy_pass */
    unsigned has_uri : 1;
    unsigned https : 1;
    /* An address of a proxy_pass with variables, made a group of one server for this
     * request alone: no TLS session is kept for it. */
    unsigned transient : 1;
};

struct proxy_rewrite; /* proxy_rewrite.c: one rule of proxy_redirect or proxy_cookie_* */

struct proxy_loc_conf {
    char *pass; /* "http://app/v1/" as written */
    const struct pt_conf_setting *pass_setting;
    struct pt_template *pass_vars; /* proxy_pass with variables; NULL: a fixed target */
    /* A fixed target: the part after http:// or https:// and before the URI, and the
     * target, bound in postconfig. */
    char *host;
    struct proxy_target target;
    struct proxy_ssl_conf ssl_conf;
    struct proxy_ssl *ssl; /* built in postconfig for https; NULL: plain http */
    struct pt_str prefix;  /* the location prefix the URI part replaces */
    /* proxy_redirect: <redirect> 0 after "off"; the rules, first match wins (<= 0: none). */
    int redirect;
    struct proxy_rewrite **redirects;
    int nredirects;
    /* proxy_cookie_domain and proxy_cookie_path: PT_CONF_UNSET, 0 after "off", or rules. */
    struct proxy_rewrite **cookie_domains, **cookie_paths;
    int ncookie_domains, ncookie_paths;
    int64_t connect_timeout, read_timeout, send_timeout;
    struct proxy_header *set;
    int nset;
    unsigned own_set; /* PROXY_OWN_* bits: the fields of portier's that proxy_set_header replaces */
    int http_version; /* proxy_http_version: 10 or 11 */
    int buffering;    /* proxy_buffering (flag) */
    int intercept_errors; /* proxy_intercept_errors (flag) */
    int64_t buffer_size;  /* proxy_buffer_size: the largest response head */
    char **hide;
    int nhide;
    int next_upstream;             /* PROXY_FT_* bits: the failures passed to the next server */
    int64_t next_upstream_tries;   /* tries in all, the first included; 0: no limit */
    int64_t next_upstream_timeout; /* ms after the first try began; 0: no limit */
};

/* The request fields portier sets itself; a proxy_set_header of the same name replaces
 * portier's value (an empty value removes the field), and each is replaced on its own. */
#define PROXY_OWN_HOST       0x01u
#define PROXY_OWN_CONNECTION 0x02u
#define PROXY_OWN_UPGRADE    0x04u
#define PROXY_OWN_XFF        0x08u /* X-Forwarded-For */
#define PROXY_OWN_XFP        0x10u /* X-Forwarded-Proto */
#define PROXY_OWN_XFH        0x20u /* X-Forwarded-Host */

/* proxy_next_upstream's words: the kinds of failure of a try. */
#define PROXY_FT_ERROR          0x0001u /* connect, send or read error; closed before the head */
#define PROXY_FT_TIMEOUT        0x0002u /* connect, send or read timeout before the head */
#define PROXY_FT_INVALID_HEADER 0x0004u /* an invalid response head */
#define PROXY_FT_HTTP_500       0x0008u
#define PROXY_FT_HTTP_502       0x0010u
#define PROXY_FT_HTTP_503       0x0020u
#define PROXY_FT_HTTP_504       0x0040u
#define PROXY_FT_HTTP_403       0x0080u
#define PROXY_FT_HTTP_404       0x0100u
#define PROXY_FT_HTTP_429       0x0200u
#define PROXY_FT_NON_IDEMPOTENT 0x0400u /* POST, PATCH, LOCK may go on after bytes went up */
#define PROXY_FT_OFF            0x0800u

/* The most of a request body kept to send it again to another server. */
#define PROXY_REPLAY_MAX (64 * 1024)

enum proxy_err {
    ERR_CONNECT,
    ERR_CONNECT_TIMEOUT,
    ERR_HANDSHAKE, /* TLS: ctx->tls_error says why */
    ERR_HANDSHAKE_TIMEOUT,
    ERR_WRITE,
    ERR_SEND_TIMEOUT,
    ERR_READ,
    ERR_READ_TIMEOUT,
    ERR_INVALID,
    ERR_TOO_BIG /* a response head larger than proxy_buffer_size */
};

struct proxy_ctx {
    struct pt_request *r;
    struct proxy_loc_conf *plc;
    /* Where this request goes: &plc->target, or evaluated for it (proxy_pass with
     * variables); NULL until pt_proxy_target().  <target_of> is the configuration it was
     * made for, <target_status> what a failure to make it answers (500, 502). */
    const struct proxy_target *t;
    const struct proxy_loc_conf *target_of;
    int target_status;
    struct pt_upstream_conn *uc;
    struct pt_peer *peer;
    struct pt_str head; /* the request head sent upstream (kept for a retry) */
    size_t head_copied;
    /* The body bytes that went upstream so far, framed as sent, to send them again on
     * another try: malloc'ed, at most PROXY_REPLAY_MAX, freed by pt_proxy_cleanup(). */
    char *replay;
    size_t replay_len, replay_cap;
    size_t replay_pos;  /* how much of it this try has put out again */
    struct pt_buf *out; /* bytes on their way upstream */
    struct pt_buf *in;  /* bytes from upstream */
    struct pt_http_response resp;
    uint64_t tried;        /* peers tried: bit i for peer i (% 64) */
    int tries;             /* tries counted (a stale pooled connection's retry is not one) */
    int status;            /* what the current try counts as for $upstream_status; 0: none yet */
    int err_no;            /* errno of a connect failure, for the log */
    const char *tls_error; /* why the TLS handshake failed, for the log; NULL: it did not */
    int log_index;         /* this try's entry in r->up */
    int64_t resp_left;
    struct pt_chunked chunk;
    uint64_t start_ms;     /* when the first try began (proxy_next_upstream_timeout) */
    uint64_t try_start_ms; /* when the current try began ($upstream_response_time) */
    /* This try's $upstream_connect_time and $upstream_header_time in ms after it began,
     * -1 until the connection is made (TLS included) and the response head is in. */
    int64_t connect_ms, header_ms;
    uint64_t sent, received;   /* this try's bytes to and from the upstream */
    unsigned req_chunked : 1;  /* the body goes upstream chunked */
    unsigned body_started : 1; /* client body bytes were consumed: replay or no retry */
    unsigned body_done : 1;    /* the whole body, framed, was taken from the client */
    unsigned replay_ok : 1;    /* replay holds every body byte consumed so far */
    unsigned replay_lost : 1;  /* the body is too large to keep: no try after it started */
    unsigned body_sent : 1;    /* this try has put out the whole body */
    unsigned sent_any : 1;     /* some request byte was written on this connection */
    unsigned req_sent : 1;
    unsigned got_bytes : 1; /* the upstream sent something on this connection */
    unsigned resp_head : 1;
    unsigned resp_until_close : 1;
    unsigned resp_chunked : 1;
    unsigned resp_done : 1;
    unsigned stale_retried : 1;
    unsigned connect_noted : 1; /* the metrics were told this try connected */
    /* The connection is not pooled after this exchange: the request asked the upstream to
     * close, or carried an unexpected body (r->unexpected_body). */
    unsigned no_pool : 1;
};

extern struct pt_module pt_proxy_module;

/* Makes <ctx>'s response ready for the next head: zeroed but its header slots, which the
 * parser fills before anything reads them (only the fields it counted are read). */
static inline void pt_proxy_resp_clear(struct proxy_ctx *ctx)
{
    pt_zero_except(&ctx->resp, sizeof(ctx->resp), ctx->resp.headers, sizeof(ctx->resp.headers));
}

/* proxy_request.c: builds the request head for <ctx> into the request pool (PT_OK or
 * PT_ERROR), and sends what can be sent of head and body (PT_OK: sent or waiting for a
 * socket; PT_DONE: the request ended or went on to another try).  A new try sends the head
 * again, then the replay copy of the body, then the rest of the body. */
int pt_proxy_build_head(struct proxy_ctx *ctx);
int pt_proxy_send_request(struct proxy_ctx *ctx);

/* proxy_response.c: reads and passes on the response (PT_OK: waiting; PT_DONE: the
 * request ended or went on to another server), and moves tunnel bytes from the client to
 * the upstream. */
int pt_proxy_read_response(struct proxy_ctx *ctx);
int pt_proxy_tunnel_client(struct proxy_ctx *ctx);

/* The request's tap answers instead of the upstream (its head() or failed() said so): the
 * proxy's state for the request is released, then the tap's answer() runs, and the request
 * is finalized unless the answer goes on by itself. */
void pt_proxy_tap_answer(struct proxy_ctx *ctx);

/*
 * proxy_target.c.
 * pt_proxy_set_pass() is proxy_pass's setter.  pt_proxy_bind_target() binds the location
 * <plc> (merged) to its group or address and its TLS configuration in postconfig, once
 * every upstream block is known: PT_OK, or PT_ERROR after pt_conf_error.
 */
int pt_proxy_set_pass(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_proxy_bind_target(struct pt_conf *cf, struct proxy_loc_conf *plc);

/* The proxy state of <r>, a request of a proxy_pass location, made (zeroed) on first use:
 * the $proxy_* variables may need it before the content handler runs (a cache key).
 * NULL when out of memory. */
struct proxy_ctx *pt_proxy_ctx(struct pt_request *r);

/* Where <ctx>'s request goes (ctx->t), evaluated on first use for a proxy_pass with
 * variables: the host names an upstream group, else it is an IP address (a group of one
 * server for this request).  NULL when it cannot go anywhere, logged once, with
 * ctx->target_status the answer: 500 for a URL that is not one (no scheme, no host, a bad
 * port), 502 for a host that is neither a group nor an address (names are not resolved at
 * run time, as nginx resolves none without a resolver). */
const struct proxy_target *pt_proxy_target(struct proxy_ctx *ctx);

/*
 * proxy_rewrite.c.
 * The setters of proxy_redirect, proxy_cookie_domain and proxy_cookie_path, one rule (or
 * "off", or "default") per value; pt_proxy_merge_rewrites() merges them as nginx does and
 * makes proxy_redirect's default of a location with proxy_pass (PT_OK, or PT_ERROR after
 * pt_conf_error_at the rule's line).
 */
int pt_proxy_set_redirect(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_proxy_set_cookie_domain(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_proxy_set_cookie_path(struct pt_conf *cf, const struct pt_directive *d, void *conf);
void pt_proxy_init_rewrites(struct proxy_loc_conf *plc);
int pt_proxy_merge_rewrites(struct pt_conf *cf, struct proxy_loc_conf *p, struct proxy_loc_conf *c);

/* The upstream's response field <name> with value *<value>, on its way to the client of
 * <ctx>: Location and Refresh rewritten by proxy_redirect, Set-Cookie by
 * proxy_cookie_domain and proxy_cookie_path, as nginx rewrites them (*<value> is then a new
 * string in the request pool).  PT_OK (rewritten or not) or PT_ERROR. */
int pt_proxy_rewrite_field(struct proxy_ctx *ctx, struct pt_str name, struct pt_str *value);

/* True when the field name <name> is a token of the Connection value <conn>. */
int pt_proxy_named_in(struct pt_str conn, struct pt_str name);

/* The PROXY_OWN_* bit of the field name <name>, 0 when portier does not set it. */
unsigned pt_proxy_own_field(struct pt_str name);

/* Registers $proxy_host, $proxy_port and $proxy_add_x_forwarded_for.  PT_OK or PT_ERROR. */
int pt_proxy_vars_register(void);

#if PORTIER_WITH_SSL
/*
 * proxy_ssl.c.
 * pt_proxy_ssl_set_protocols() and pt_proxy_ssl_set_ciphers() are the setters of
 * proxy_ssl_protocols and proxy_ssl_ciphers (checked when read).  pt_proxy_ssl_init_conf()
 * marks <sc> unset; pt_proxy_ssl_merge_conf() fills <c> from its parent <p> and the
 * defaults.
 */
int pt_proxy_ssl_set_protocols(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_proxy_ssl_set_ciphers(struct pt_conf *cf, const struct pt_directive *d, void *conf);
void pt_proxy_ssl_init_conf(struct proxy_ssl_conf *sc);
void pt_proxy_ssl_merge_conf(const struct proxy_ssl_conf *p, struct proxy_ssl_conf *c);

/* For the https location <plc> (merged, its upstream bound), or one whose proxy_pass has
 * variables: sets plc->ssl to the TLS configuration its proxy_ssl_* directives make, built
 * now (in the master, before privileges drop: keys readable by root only are fine) or
 * shared with an identical one of the cycle.  Its name is proxy_ssl_name, else the host of
 * a fixed proxy_pass, else none: each connection then gets its request's host (SNI and
 * the name verified).  PT_OK, or PT_ERROR after pt_conf_error. */
int pt_proxy_ssl_conf(struct pt_conf *cf, struct proxy_loc_conf *plc);

/* Makes ctx->uc, a new connection of an https location, a TLS client connection (the
 * handshake is still to do): SNI, verification, a saved session to resume.  PT_OK, or
 * PT_ERROR with ctx->tls_error set. */
int pt_proxy_ssl_attach(struct proxy_ctx *ctx);

/* Runs the handshake of ctx->uc as far as it goes: PT_OK once done (uc->s.handshaken set),
 * PT_AGAIN waiting for the socket, PT_ERROR with ctx->tls_error set (the saved session of
 * that server is forgotten). */
int pt_proxy_ssl_handshake(struct proxy_ctx *ctx);

/* After a read or a write (<op>: "SSL_read", "SSL_write") of <uc> returned PT_ERROR: when
 * its TLS transport met a TLS error (errno EPROTO), logs why at info from OpenSSL's error
 * queue (emptied), errno kept.  Nothing for a plain connection or a socket error. */
void pt_proxy_ssl_log_failure(const struct pt_upstream_conn *uc, const char *op);

/* True when the TLS connection <uc> holds no bytes nobody read: it may go to the pool. */
int pt_proxy_ssl_clean(const struct pt_upstream_conn *uc);
#else
/* Built without the ssl module (PORTIER_WITH_SSL=OFF): no proxy_ssl.c, no proxy_ssl_*
 * directives, and proxy_pass refuses https://, so no location is ever https and none of
 * these is reached. */
static inline void pt_proxy_ssl_init_conf(struct proxy_ssl_conf *sc)
{
}
static inline void pt_proxy_ssl_merge_conf(const struct proxy_ssl_conf *p, struct proxy_ssl_conf *c)
{
}
static inline int pt_proxy_ssl_conf(struct pt_conf *cf, struct proxy_loc_conf *plc)
{
    return PT_ERROR;
}
static inline int pt_proxy_ssl_attach(struct proxy_ctx *ctx)
{
    return PT_ERROR;
}
static inline int pt_proxy_ssl_handshake(struct proxy_ctx *ctx)
{
    return PT_ERROR;
}
static inline int pt_proxy_ssl_clean(const struct pt_upstream_conn *uc)
{
    return 0;
}
static inline void pt_proxy_ssl_log_failure(const struct pt_upstream_conn *uc, const char *op)
{
}
#endif

/* proxy.c: the exchange's control, used by the other two files. */

/* Ends the current try of <ctx> after failure <err>: passes the request to the next server
 * when proxy_next_upstream and the limits allow it, else answers 502 (504 after a timeout)
 * or, when the response had started, cuts the client off.  <ctx> may be reused by a new try
 * or the request may have ended: the caller returns without touching the old connection. */
void pt_proxy_failed(struct proxy_ctx *ctx, enum proxy_err err);

/* The upstream answered ctx->resp.status: when proxy_next_upstream lists it and another try
 * is possible, discards that response, closes its connection and passes the request on
 * (PT_DONE); else PT_DECLINED: the response is the client's. */
int pt_proxy_retry_status(struct proxy_ctx *ctx);

/* Reads up to <len> bytes of the response from the upstream connection of <ctx> into
 * <buf>, or writes up to <len> (> 0) bytes of <buf> to it, through its stream's transport
 * and with its results (see worker/transport.h: bytes, 0 at the end for a read, PT_AGAIN
 * with the stream's readiness cleared, PT_ERROR with errno set).  A TLS error is logged. */
ssize_t pt_proxy_recv(struct proxy_ctx *ctx, char *buf, size_t len);
ssize_t pt_proxy_send(struct proxy_ctx *ctx, const char *buf, size_t len);

/* Gives the upstream connection of <ctx> back to the pool when <keep>, else closes it. */
void pt_proxy_release(struct proxy_ctx *ctx, int keep);

/* Frees what the exchange of <r> holds (connection, buffers, replay copy). */
void pt_proxy_cleanup(struct pt_request *r);

/* Records the current try for the log after the tries before it: $upstream_addr,
 * $upstream_status (<status>, or the try's status so far when 0), the times
 * ($upstream_response_time up to now, $upstream_connect_time, $upstream_header_time) and
 * the bytes ($upstream_bytes_sent, $upstream_bytes_received) so far. */
void pt_proxy_note_upstream(struct proxy_ctx *ctx, int status);

#endif
