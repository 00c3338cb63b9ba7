/*
 * ssl_io.c: the TLS transport of client connections (struct pt_conn_io over OpenSSL).
 * Every connection accepted on a `listen ... ssl` address starts with the default server's
 * SSL_CTX; the SNI callback in ssl.c may switch it.  Reads and writes keep the meaning of
 * read() and writev(), so the HTTP code above does not know TLS is there.
 */
#include <errno.h>
#include <openssl/err.h>
#include <string.h>
#include <sys/socket.h>

#include "worker/listen.h"
#include "core/log.h"
#include "modules/ssl/ssl.h"

#define COALESCE 16384 /* bytes gathered from an iovec into one TLS record */

/* Logs why the handshake with <c> failed: at info, as clients abandon handshakes all the
 * time (scanners, wrong protocols, plain HTTP on a TLS port). */
static void handshake_failed(struct pt_http_conn *c, int err)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%s",
                 err == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "connection closed");
    pt_log(PT_LOG_INFO, "SSL handshake failed with client %s: %s", c->peer_text, buf);
    ERR_clear_error();
}

static int handshake(struct pt_http_conn *c)
{
    SSL *ssl = c->tls;
    int rc, err;

    ERR_clear_error();
    rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return PT_OK;
    err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return PT_AGAIN;
    /* A plain HTTP request on a TLS port gets nginx's answer, in plain HTTP. */
    if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_HTTP_REQUEST) {
        char page[256];
        int len = snprintf(page, sizeof(page),
                           "HTTP/1.1 400 Bad Request\r\nServer: %s\r\n"
                           "Content-Type: text/plain\r\nContent-Length: 50\r\n"
                           "Connection: close\r\n\r\n"
                           "400 The plain HTTP request was sent to HTTPS port\n",
                           pt_http_conn_server_string(c));
        ssize_t n = send(c->ev.fd, page, (size_t)len, MSG_NOSIGNAL);
        pt_unused(n); /* best effort: the connection closes either way */
    }
    handshake_failed(c, err);
    return PT_ERROR;
}

static ssize_t tls_recv(struct pt_http_conn *c, char *buf, size_t len)
{
    SSL *ssl = c->tls;
    size_t n = 0;
    int err;

    ERR_clear_error();
    if (SSL_read_ex(ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    err = SSL_get_error(ssl, 0);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return PT_AGAIN;
    /* close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a TCP FIN without it: the end. */
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    ERR_clear_error();
    return PT_ERROR;
}

/* Sends what it can of <iov>: small pieces are gathered first so that a response head and
 * its first body bytes travel in one record, as writev() puts them in one segment. */
static ssize_t tls_send(struct pt_http_conn *c, const struct iovec *iov, int n)
{
    SSL *ssl = c->tls;
    char gather[COALESCE];
    ssize_t total = 0;
    int i = 0;

    while (i < n) {
        const char *p;
        size_t len, done = 0;
        int err;
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
        ERR_clear_error();
        if (SSL_write_ex(ssl, p, len, &done) == 1) {
            total += (ssize_t)done;
            if (done < len)
                return total;
            continue;
        }
        err = SSL_get_error(ssl, 0);
        ERR_clear_error();
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
            return total ? total : PT_AGAIN;
        return total ? total : PT_ERROR;
    }
    return total;
}

static void tls_shutdown(struct pt_http_conn *c)
{
    /* Best effort: one close_notify if the socket takes it, no waiting for the client's. */
    if (!c->handshaking && !c->error)
        SSL_shutdown(c->tls);
    ERR_clear_error();
}

static void tls_close(struct pt_http_conn *c)
{
    tls_shutdown(c);
    SSL_free(c->tls);
    c->tls = NULL;
    c->io = NULL;
}

static const struct pt_conn_io tls_io = {
    .handshake = handshake,
    .recv = tls_recv,
    .send = tls_send,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

int pt_ssl_conn_start(struct pt_http_conn *c)
{
    struct ssl_srv_conf *sc = pt_ssl_srv_conf(c->addr->default_server);
    SSL *ssl;

    if (sc->ctx == NULL) {
        /* The configuration check makes sure this does not happen: say so if it does. */
        pt_log(PT_LOG_ERR, "no certificate for the default server of %s", c->ls->text);
        return PT_ERROR;
    }
    ssl = SSL_new(sc->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, c->ev.fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return PT_ERROR;
    }
    SSL_set_accept_state(ssl);
    SSL_set_app_data(ssl, c);
    c->tls = ssl;
    c->io = &tls_io;
    return PT_OK;
}
