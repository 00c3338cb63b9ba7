/*
 * transport.h: the one byte stream every connection of a worker or of the helper is made
 * of: a socket, the event and the timer that watch it, and the transport that speaks over
 * it (the plain socket, or TLS: transport_tls.c).  A client connection, an upstream
 * connection, a health check and the helper's HTTP client each embed one struct
 * pt_stream and read and write it through its transport, so none of them branches on
 * "TLS or not"; outgoing streams are opened by pt_stream_connect(), the one place that
 * creates a socket and connects it without blocking.
 *
 * Readiness under edge-triggered epoll: s->readable and s->writable say that an edge came
 * and the socket has not reported EAGAIN since.  pt_stream_ready() sets them from the
 * loop's events; the transport's recv and send clear them when they wait.  A TLS record
 * layer may wait for the other direction (a write that must first read, a read that must
 * first flush): the transport notes it (send_wants_read, recv_wants_write) and
 * pt_stream_ready() turns that event back into the readiness the caller waited for.
 */
#ifndef PT_TRANSPORT_H
#define PT_TRANSPORT_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "worker/event.h"

struct pt_stream;

/* What speaks over a stream's socket.  Each call has the meaning of the system call it
 * replaces, with PT_AGAIN for EAGAIN. */
struct pt_transport {
    /* Runs the handshake as far as it can go: PT_OK when done (at once for the plain
     * socket), PT_AGAIN while it waits for the socket, PT_ERROR when it failed (for TLS,
     * OpenSSL's error queue still holds why: pt_tls_error() formats it). */
    int (*handshake)(struct pt_stream *s);
    /* As read(): bytes (> 0), 0 at the peer's end, PT_AGAIN, or PT_ERROR (errno says why:
     * EPROTO for a TLS error, whose reason OpenSSL's error queue still holds).  Clears
     * s->readable when it waited, or when a plain short read emptied the socket (not after
     * the peer's FIN, which no edge follows). */
    ssize_t (*recv)(struct pt_stream *s, char *buf, size_t len);
    /* As writev(): bytes taken (>= 0, possibly fewer than offered), PT_AGAIN, or PT_ERROR
     * (errno, as for recv).  Clears s->writable when the socket took less than offered. */
    ssize_t (*send)(struct pt_stream *s, const struct iovec *iov, int n);
    /* As sendfile(): up to <len> bytes of the file <fd> from <off>, sent without copying
     * them through user space.  Bytes taken (> 0; fewer than <len> when the socket filled
     * or the file ended: s->writable is left as it was, and the next call says which), 0
     * when the file ends at <off>, PT_AGAIN,
     * PT_ERROR (errno), or PT_DECLINED when this stream cannot send a file so (TLS without
     * the kernel's record layer): the caller reads the file and uses send.  With <len> 0
     * it only says whether it can (0, or PT_DECLINED), without a system call. */
    ssize_t (*sendfile)(struct pt_stream *s, int fd, int64_t off, size_t len);
    /* An idle stream (nothing asked of the peer) turned readable: PT_OK when what came is
     * the transport's own business (a TLS session ticket) or nothing at all, PT_ERROR when
     * data, the end or an error came: the stream cannot carry another exchange. */
    int (*idle_check)(struct pt_stream *s);
    /* Says goodbye at the transport's level (TLS close_notify, best effort, no waiting);
     * the caller's shutdown(SHUT_WR) or close() follows. */
    void (*shutdown)(struct pt_stream *s);
    /* Frees the transport's state and makes <s> plain again; the socket stays open. */
    void (*close)(struct pt_stream *s);
};

struct pt_stream {
    struct pt_event ev;           /* ev.fd: the socket (-1: none) */
    struct pt_timer timer;        /* the owner's: timeouts of whatever the stream waits for */
    const struct pt_transport *t; /* never NULL */
    void *tls;                    /* the TLS transport's state (an SSL *) */
    unsigned readable : 1;        /* an edge came that was not read up to EAGAIN yet */
    unsigned writable : 1;
    unsigned rdhup : 1;            /* the peer's FIN was seen: read on to the EOF */
    unsigned connected : 1;        /* an outgoing stream's connect() finished */
    unsigned handshaken : 1;       /* the transport's handshake is done */
    unsigned send_wants_read : 1;  /* the last send waited for the socket to be readable */
    unsigned recv_wants_write : 1; /* the last recv waited for it to be writable */
    unsigned failed : 1;           /* the transport met a fatal error: no goodbye is sent */
    /* More follows the next send at once (a file after its header): the transport may hold
     * a short write back to join it (MSG_MORE). */
    unsigned more : 1;
};

extern const struct pt_transport pt_transport_plain;

/* Makes <s> a plain stream over <fd> with <handler>(ev, events) and <data> on its event;
 * the timer's handler is the owner's to set.  Registers nothing. */
void pt_stream_init(struct pt_stream *s, int fd, pt_event_handler handler, void *data);

/* Records the loop's <events> (PT_EV_*) in <s>'s readiness, turning an event a transport
 * waited on for the other direction back into the readiness its caller waits for. */
void pt_stream_ready(struct pt_stream *s, unsigned events);

/* Opens a non-blocking TCP connection to <sa>/<len> for <s> (set up by pt_stream_init with
 * fd -1): creates the socket (TCP_NODELAY), starts connect() and registers s->ev with the
 * loop.  s->connected and s->writable are set when the connection was made at once;
 * otherwise the loop reports PT_EV_WRITE (or an error) when it is, and
 * pt_stream_connect_done() says how it went.  Returns PT_OK, or PT_ERROR with errno set
 * (no socket is left open).  Counts nothing against worker_connections: a caller that
 * must, takes its slot first (pt_conn_slot_take). */
int pt_stream_connect(struct pt_stream *s, const struct sockaddr *sa, socklen_t len);

/* For an outgoing stream not connected yet, on the loop's <events>: PT_OK once connected
 * (s->connected set), PT_AGAIN when these events did not finish it, PT_ERROR with errno
 * set to why it failed (ECONNREFUSED, ETIMEDOUT ...). */
int pt_stream_connect_done(struct pt_stream *s, unsigned events);

/* Runs the handshake of <s>'s transport as far as it goes and sets s->handshaken when it
 * is done: as the transport's handshake. */
int pt_stream_handshake(struct pt_stream *s);

/* Sends all of <buf>/<len> that the socket takes now, as the transport's send with one
 * buffer. */
ssize_t pt_stream_send(struct pt_stream *s, const char *buf, size_t len);

/* Disarms the timer, stops watching, frees the transport and closes the socket
 * (s->ev.fd becomes -1).  Does nothing for a stream with no socket. */
void pt_stream_close(struct pt_stream *s);

/* --- TLS (transport_tls.c; built with the ssl module) --- */

struct ssl_ctx_st;     /* OpenSSL's SSL_CTX */
struct ssl_session_st; /* OpenSSL's SSL_SESSION */

extern const struct pt_transport pt_transport_tls;

/* Makes <s> a TLS client over its socket with <ctx>, offering <sni> as the server name
 * (NULL or an address: none, RFC 6066 3) and <session> for resumption (NULL: none).  The
 * SSL's app data is <app>.  The handshake runs from the first pt_stream_handshake().
 * PT_OK, or PT_ERROR (pt_tls_error() says why). */
int pt_tls_client(struct pt_stream *s, struct ssl_ctx_st *ctx, const char *sni,
                  struct ssl_session_st *session, void *app);

/* Makes <s>, an accepted socket, a TLS server with <ctx> and the transport <t> (NULL:
 * pt_transport_tls; a module may wrap its handshake).  The SSL's app data is <app>.
 * PT_OK or PT_ERROR. */
int pt_tls_server(struct pt_stream *s, struct ssl_ctx_st *ctx, const struct pt_transport *t,
                  void *app);

/* Why the last TLS call of <s> failed, in nginx's words ("SSL_do_handshake() failed (SSL:
 * ...)", "peer closed connection in SSL handshake"), formatted into <buf>/<len> after
 * <op> (the OpenSSL call's name); OpenSSL's error queue is emptied.  <sys_errno>: errno as
 * the failed call left it.  Returns <buf>. */
const char *pt_tls_error(const char *op, int sys_errno, char *buf, size_t len);

/* Why the last TLS call failed, in OpenSSL's words alone ("wrong version number"), short
 * enough for a status page's field where pt_tls_error()'s whole line would not fit; NULL
 * when OpenSSL gave none (the peer closed).  OpenSSL's error queue is emptied. */
const char *pt_tls_reason(void);

/* A TLS client context that does not verify the server (health checks): shared, built on
 * first use, never freed.  NULL when OpenSSL cannot make one. */
struct ssl_ctx_st *pt_tls_client_ctx_noverify(void);

#endif
