/*
 * ssl_io.c: the TLS transport of client connections: the streams' TLS server transport
 * (worker/transport_tls.c) with the handshake's failures answered and logged the way a
 * TLS server owes its clients.  Every connection accepted on a `listen ... ssl` address
 * starts with the default server's SSL_CTX; the SNI callback in ssl.c may switch it.  Reads
 * and writes keep the meaning of read() and writev(), so the HTTP code above does not know
 * TLS is there.
 */
#include <errno.h>
#include <openssl/err.h>
#include <string.h>
#include <sys/socket.h>

#include "worker/listen.h"
#include "core/log.h"
#include "modules/ssl/ssl.h"

/* pt_transport_tls with its handshake wrapped by tls_handshake(); filled in on first use,
 * as a copy of another object is no constant initializer. */
static struct pt_transport server_transport;

/* Logs why the handshake with <c> failed: at info, as clients abandon handshakes all the
 * time (scanners, wrong protocols, plain HTTP on a TLS port).  <err> is SSL_get_error's. */
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

/* A plain HTTP request on a TLS port gets nginx's answer, in plain HTTP. */
static void plain_http_refused(struct pt_http_conn *c)
{
    char page[256];
    int len = snprintf(page, sizeof(page),
                       "HTTP/1.1 400 Bad Request\r\nServer: %s\r\n"
                       "Content-Type: text/plain\r\nContent-Length: 50\r\n"
                       "Connection: close\r\n\r\n"
                       "400 The plain HTTP request was sent to HTTPS port\n",
                       pt_http_conn_server_string(c));
    ssize_t n = send(c->s.ev.fd, page, (size_t)len, MSG_NOSIGNAL);

    pt_unused(n); /* best effort: the connection closes either way */
}

/* What the metrics call a handshake that failed with OpenSSL's <reason> (0: none queued,
 * the client went away). */
static enum pt_tls_outcome failure_of(int reason)
{
    switch (reason) {
    case 0: return PT_TLS_FAIL_CLOSED;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST: return PT_TLS_FAIL_HTTP;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: return PT_TLS_FAIL_PROTOCOL;
    case SSL_R_NO_SHARED_CIPHER: return PT_TLS_FAIL_CIPHER;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA: return PT_TLS_FAIL_CERTIFICATE;
    default: return PT_TLS_FAIL_OTHER;
    }
}

/* The TLS transport's handshake; when it fails, answers a plain HTTP request and says why
 * in the log, leaving OpenSSL's error queue empty. */
static int tls_handshake(struct pt_stream *s)
{
    struct pt_http_conn *c = SSL_get_app_data(s->tls);
    int rc = pt_transport_tls.handshake(s), err, reason;

    if (rc == PT_OK && pt_http_observers.tls_handshake)
        pt_http_observers.tls_handshake(SSL_session_reused(s->tls) ? PT_TLS_RESUMED : PT_TLS_FULL);
    if (rc != PT_ERROR)
        return rc;
    /* The failed call left the SSL, errno and the error queue as they were: asked again,
     * SSL_get_error says what it said to the transport. */
    err = SSL_get_error(s->tls, -1);
    reason = ERR_GET_REASON(ERR_peek_last_error());
    if (pt_http_observers.tls_handshake)
        pt_http_observers.tls_handshake(failure_of(reason));
    if (reason == SSL_R_HTTP_REQUEST)
        plain_http_refused(c);
    handshake_failed(c, err);
    return PT_ERROR;
}

int pt_ssl_conn_start(struct pt_http_conn *c)
{
    struct ssl_srv_conf *sc = pt_ssl_srv_conf(pt_http_conn_addr(c)->default_server);

    if (sc->ctx == NULL) {
        /* The configuration check makes sure this does not happen: say so if it does. */
        pt_log(PT_LOG_ERR, "no certificate for the default server of %s", c->ls->text);
        return PT_ERROR;
    }
    if (server_transport.handshake == NULL) {
        server_transport = pt_transport_tls;
        server_transport.handshake = tls_handshake;
    }
    return pt_tls_server(&c->s, sc->ctx, &server_transport, c);
}
