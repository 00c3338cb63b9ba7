/*
 * transport_tls.c: the TLS transport of streams (see transport.h), client and server, over
 * OpenSSL.  The contexts (certificates, protocols, verification) are built by the modules
 * that own their directives (ssl, proxy); this file only speaks TLS over a socket.
 *
 * Under edge-triggered epoll two things matter.  OpenSSL may hold decrypted records after
 * a read, with no new edge to come: a read clears s->readable only when OpenSSL says it
 * wants more from the socket.  And a record layer may need the other direction (a write
 * waiting for a read, or the reverse): the wait is noted in the stream, and
 * pt_stream_ready() turns that event back into readiness.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "worker/transport.h"

#define COALESCE 16384 /* bytes gathered from an iovec into one TLS record */

/* SSL_get_error's <err> after a call on <s> that did not succeed: PT_AGAIN (readiness
 * cleared as the record layer asks) or PT_ERROR (errno set, the stream marked failed). */
static int tls_wait_or_fail(struct pt_stream *s, int err, int reading)
{
    switch (err) {
    case SSL_ERROR_WANT_READ:
        s->readable = 0;
        if (!reading)
            s->send_wants_read = 1, s->writable = 0;
        return PT_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        s->writable = 0;
        if (reading)
            s->recv_wants_write = 1, s->readable = 0;
        return PT_AGAIN;
    default:
        s->failed = 1;
        s->readable = 0;
        /* A TCP error, or the peer vanished (no alert and no errno): say so in errno. */
        if (err == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0)
            errno = errno ? errno : ECONNRESET;
        else
            errno = EPROTO;
        return PT_ERROR;
    }
}

static int tls_handshake(struct pt_stream *s)
{
    SSL *ssl = s->tls;
    int rc;

    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return PT_OK;
    rc = SSL_get_error(ssl, rc);
    if (rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE)
        return tls_wait_or_fail(s, rc, 1);
    /* errno and the error queue are left as the call left them, for the caller to say
     * why (pt_tls_error). */
    s->failed = 1;
    return PT_ERROR;
}

static ssize_t tls_recv(struct pt_stream *s, char *buf, size_t len)
{
    SSL *ssl = s->tls;
    size_t n = 0;
    int err;

    ERR_clear_error();
    errno = 0;
    /* Bytes: s->readable stays set, since OpenSSL may hold more records already read from
     * the socket; the next call finds out. */
    if (SSL_read_ex(ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    err = SSL_get_error(ssl, 0);
    /* close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a TCP FIN without it: the end. */
    if (err == SSL_ERROR_ZERO_RETURN) {
        s->readable = 0;
        return 0;
    }
    return tls_wait_or_fail(s, err, 1);
}

/* Sends what it can of <iov>: small pieces are gathered first so that a response head and
 * its first body bytes travel in one record, as writev() puts them in one segment. */
static ssize_t tls_send(struct pt_stream *s, const struct iovec *iov, int n)
{
    SSL *ssl = s->tls;
    char gather[COALESCE];
    ssize_t total = 0;
    int i = 0, rc;

    while (i < n) {
        const char *p;
        size_t len, done = 0;
        if (iov[i].iov_len >= COALESCE || i + 1 == n) {
            p = iov[i].iov_base;
            len = iov[i].iov_len;
            i++;
        } else {
            len = 0;
            while (i < n && len + iov[i].iov_len <= COALESCE) {
                memcpy(gather + len, iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
                i++;
            }
            p = gather;
        }
        /* With SSL_MODE_ENABLE_PARTIAL_WRITE (the ssl and proxy contexts) a write returns
         * after one record whether or not the socket is full: the rest goes on until
         * OpenSSL waits, since no EPOLLOUT edge would come for a socket never filled. */
        while (len) {
            ERR_clear_error();
            errno = 0;
            if (SSL_write_ex(ssl, p, len, &done) != 1)
                break;
            total += (ssize_t)done;
            p += done;
            len -= done;
        }
        if (len == 0)
            continue;
        rc = tls_wait_or_fail(s, SSL_get_error(ssl, 0), 0);
        if (total == 0)
            return rc; /* a TLS error's reason stays in the queue, as after tls_recv */
        ERR_clear_error();
        return total;
    }
    return total;
}

/* A file's bytes through the kernel's TLS record layer (kTLS, enabled as in nginx by
 * ssl_conf_command Options KTLS and taken by OpenSSL when the kernel offers the cipher);
 * without it, PT_DECLINED: the caller reads the file and encrypts it through tls_send. */
static ssize_t tls_sendfile(struct pt_stream *s, int fd, int64_t off, size_t len)
{
#ifndef OPENSSL_NO_KTLS
    SSL *ssl = s->tls;
    ossl_ssize_t w;

    if (!BIO_get_ktls_send(SSL_get_wbio(ssl)))
        return PT_DECLINED;
    if (len == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    w = SSL_sendfile(ssl, fd, (off_t)off, len, 0);
    if (w > 0)
        return w; /* a short count: the next call says why (see transport.h) */
    return tls_wait_or_fail(s, SSL_get_error(ssl, (int)w), 0);
#else
    (void)s, (void)fd, (void)off, (void)len;
    return PT_DECLINED;
#endif
}

/* An idle stream's socket turned readable: a session ticket or a key update is OpenSSL's
 * to take (it wants more then); data, close_notify or an error end it. */
static int tls_idle_check(struct pt_stream *s)
{
    char byte;
    size_t n;
    int ok;

    ERR_clear_error();
    ok = SSL_peek_ex(s->tls, &byte, 1, &n) != 1 && SSL_get_error(s->tls, 0) == SSL_ERROR_WANT_READ;
    ERR_clear_error();
    return ok ? PT_OK : PT_ERROR;
}

static void tls_shutdown(struct pt_stream *s)
{
    /* Best effort: one close_notify if the socket takes it, no waiting for the peer's,
     * never twice, and none after a fatal error (OpenSSL forbids it, and the session of a
     * connection that failed must not be resumed). */
    if (s->handshaken && !s->failed && !(SSL_get_shutdown(s->tls) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(s->tls);
    ERR_clear_error();
}

static void tls_close(struct pt_stream *s)
{
    tls_shutdown(s);
    SSL_free(s->tls);
    s->tls = NULL;
    s->t = &pt_transport_plain;
}

const struct pt_transport pt_transport_tls = {
    .handshake = tls_handshake,
    .recv = tls_recv,
    .send = tls_send,
    .sendfile = tls_sendfile,
    .idle_check = tls_idle_check,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* A new SSL on <s>'s socket with <ctx> and app data <app>, or NULL (the queue cleared). */
static SSL *tls_new(struct pt_stream *s, SSL_CTX *ctx, void *app)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL || SSL_set_fd(ssl, s->ev.fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_app_data(ssl, app);
    return ssl;
}

/* Whether <name> is an IP address, which SNI must not carry (RFC 6066 3). */
static int is_address(const char *name)
{
    unsigned char a[16];

    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1 || name[0] == '[';
}

int pt_tls_client(struct pt_stream *s, SSL_CTX *ctx, const char *sni, SSL_SESSION *session,
                  void *app)
{
    SSL *ssl;

    ERR_clear_error();
    ssl = tls_new(s, ctx, app);
    if (ssl == NULL)
        return PT_ERROR;
    if (sni && !is_address(sni) && SSL_set_tlsext_host_name(ssl, sni) != 1) {
        SSL_free(ssl);
        return PT_ERROR;
    }
    if (session)
        SSL_set_session(ssl, session);
    SSL_set_connect_state(ssl);
    s->tls = ssl;
    s->t = &pt_transport_tls;
    s->handshaken = s->failed = 0;
    return PT_OK;
}

int pt_tls_server(struct pt_stream *s, SSL_CTX *ctx, const struct pt_transport *t, void *app)
{
    SSL *ssl;

    ERR_clear_error();
    ssl = tls_new(s, ctx, app);
    if (ssl == NULL) {
        ERR_clear_error();
        return PT_ERROR;
    }
    SSL_set_accept_state(ssl);
    s->tls = ssl;
    s->t = t ? t : &pt_transport_tls;
    s->handshaken = s->failed = 0;
    return PT_OK;
}

const char *pt_tls_error(const char *op, int sys_errno, char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    char why[256];

    if (e) {
        ERR_error_string_n(e, why, sizeof(why));
        snprintf(buf, len, "%s() failed (SSL: %s)", op, why);
    } else if (sys_errno) {
        snprintf(buf, len, "%s() failed (%d: %s)", op, sys_errno, strerror(sys_errno));
    } else if (strcmp(op, "SSL_do_handshake") == 0) {
        snprintf(buf, len, "peer closed connection in SSL handshake");
    } else {
        snprintf(buf, len, "%s() failed (peer closed connection)", op);
    }
    ERR_clear_error();
    return buf;
}

const char *pt_tls_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return why;
}

SSL_CTX *pt_tls_client_ctx_noverify(void)
{
    static SSL_CTX *ctx;

    if (ctx)
        return ctx;
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return ctx;
}
