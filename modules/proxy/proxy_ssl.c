/*
 * proxy_ssl.c: TLS to upstream servers, for proxy_pass https:// and the proxy_ssl_*
 * directives (nginx's names and meanings).
 *
 * Each distinct configuration (every directive, and the name used for SNI and
 * verification) gets one SSL_CTX, built in the master at configuration time so that a
 * client key readable by root only works once the workers run as nobody.  Its address
 * keys the keepalive pool: a connection made for one name, client certificate or set of
 * protocols never carries a request configured for another, nor a plain one.
 *
 * A connection speaks TLS through its stream's TLS transport (worker/transport_tls.c), so
 * that the proxy code reads and writes it as it does a plain socket; this file sets the
 * transport up on a new connection, runs the handshake and says why one failed.
 *
 * The last session each worker got from a server under a configuration (TLS 1.3 sends it
 * after the handshake, so it is taken from the new-session callback) is offered on the
 * next connection to that server, as proxy_ssl_session_reuse says.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "modules/proxy/proxy.h"

/* One upstream TLS configuration, shared by the locations that configure the same. */
struct proxy_ssl {
    struct proxy_ssl_conf conf; /* as merged, to recognise an identical configuration */
    char *name;                 /* SNI and verified name: proxy_ssl_name or the host */
    unsigned sni : 1;           /* proxy_ssl_server_name on, and the name is not an address */
    SSL_CTX *ctx;
    /* Per worker (filled after the fork): the last session of each server. */
    struct saved_session {
        const struct pt_peer *peer;
        SSL_SESSION *session;
    } * sessions;
    int nsessions;
    struct proxy_ssl *next; /* the cycle's list (struct proxy_main_conf) */
};

static const struct protocol_word {
    const char *name;
    int bit;
    int version;
} protocol_words[] = {
    {"TLSv1", PROXY_TLSv1, TLS1_VERSION},
    {"TLSv1.1", PROXY_TLSv1_1, TLS1_1_VERSION},
    {"TLSv1.2", PROXY_TLSv1_2, TLS1_2_VERSION},
    {"TLSv1.3", PROXY_TLSv1_3, TLS1_3_VERSION},
    {NULL, 0, 0},
};

/* The last OpenSSL error as text into <buf> (the queue is emptied). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "no reason given");
    ERR_clear_error();
    return buf;
}

/* --- configuration --- */

int pt_proxy_ssl_set_protocols(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    int *bits = (int *)((char *)conf + d->offset);
    char *words[8];
    int n = pt_conf_split(cf, cf->value, words, (int)pt_nelems(words));

    if (*bits != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    if (n <= 0)
        return pt_conf_error(cf, "\"%s\" takes TLS versions: TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
                             d->name);
    *bits = 0;
    for (int i = 0; i < n; i++) {
        const struct protocol_word *w = protocol_words;
        while (w->name && strcmp(w->name, words[i]) != 0)
            w++;
        if (w->name == NULL)
            return pt_conf_error(cf,
                                 "invalid value \"%s\" in \"%s\": use TLSv1 TLSv1.1 TLSv1.2 "
                                 "TLSv1.3",
                                 words[i], d->name);
        *bits |= w->bit;
    }
    return PT_OK;
}

/* Checked now, against OpenSSL itself, so that the error names the directive's line. */
int pt_proxy_ssl_set_ciphers(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    char **f = (char **)((char *)conf + d->offset);
    SSL_CTX *probe;
    int ok;
    char why[256];

    if (*f != NULL)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    probe = SSL_CTX_new(TLS_client_method());
    ok = probe && SSL_CTX_set_cipher_list(probe, cf->value) == 1;
    SSL_CTX_free(probe);
    if (!ok)
        return pt_conf_error(cf, "invalid \"%s\" \"%s\": %s", d->name, cf->value,
                             ssl_reason(why, sizeof(why)));
    *f = pt_pstrdup(cf->pool, cf->value);
    return PT_OK;
}

void pt_proxy_ssl_init_conf(struct proxy_ssl_conf *sc)
{
    sc->server_name = PT_CONF_UNSET;
    sc->verify = PT_CONF_UNSET;
    sc->verify_depth = PT_CONF_UNSET;
    sc->protocols = PT_CONF_UNSET;
    sc->session_reuse = PT_CONF_UNSET;
}

void pt_proxy_ssl_merge_conf(const struct proxy_ssl_conf *p, struct proxy_ssl_conf *c)
{
    pt_conf_merge_int(c->server_name, p->server_name, 0);
    pt_conf_merge_ptr(c->name, p->name, NULL);
    pt_conf_merge_int(c->verify, p->verify, 0);
    pt_conf_merge_int(c->verify_depth, p->verify_depth, 1);
    pt_conf_merge_ptr(c->trusted_certificate, p->trusted_certificate, NULL);
    /* Certificate and key go together: a level setting either takes neither from above. */
    if (c->certificate == NULL && c->certificate_key == NULL) {
        c->certificate = p->certificate;
        c->certificate_key = p->certificate_key;
    }
    pt_conf_merge_int(c->protocols, p->protocols, PROXY_TLSv1_2 | PROXY_TLSv1_3);
    pt_conf_merge_ptr(c->ciphers, p->ciphers, "DEFAULT");
    pt_conf_merge_int(c->session_reuse, p->session_reuse, 1);
}

static int is_address(const char *name)
{
    unsigned char a[16];

    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* The host part of proxy_pass' "<host>[:port]" or "[v6][:port]", in <cf>'s pool. */
static char *host_part(struct pt_conf *cf, const char *host)
{
    const char *end;

    if (host[0] == '[' && (end = strchr(host, ']')) != NULL)
        return pt_pstrndup(cf->pool, host + 1, (size_t)(end - host - 1));
    end = strrchr(host, ':');
    return pt_pstrndup(cf->pool, host, end ? (size_t)(end - host) : strlen(host));
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int same_conf(const struct proxy_ssl *ps, const struct proxy_ssl_conf *sc, const char *name)
{
    const struct proxy_ssl_conf *a = &ps->conf;

    return same_str(ps->name, name) && a->server_name == sc->server_name &&
           a->verify == sc->verify && a->verify_depth == sc->verify_depth &&
           same_str(a->trusted_certificate, sc->trusted_certificate) &&
           same_str(a->certificate, sc->certificate) &&
           same_str(a->certificate_key, sc->certificate_key) && a->protocols == sc->protocols &&
           same_str(a->ciphers, sc->ciphers) && a->session_reuse == sc->session_reuse;
}

/* Frees what <arg>, a struct proxy_ssl, holds outside the cycle's pool. */
static void free_ssl(void *arg)
{
    struct proxy_ssl *ps = arg;

    for (int i = 0; i < ps->nsessions; i++)
        SSL_SESSION_free(ps->sessions[i].session);
    free(ps->sessions);
    ps->sessions = NULL;
    ps->nsessions = 0;
    SSL_CTX_free(ps->ctx);
    ps->ctx = NULL;
}

static int new_session(SSL *ssl, SSL_SESSION *session);

/* Versions offered: from the lowest listed to the highest, without those left out between. */
static int set_protocols(SSL_CTX *ctx, int bits)
{
    static const uint64_t no[] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2,
                                  SSL_OP_NO_TLSv1_3};
    int min = 0, max = 0;

    for (int i = 0; protocol_words[i].name; i++) {
        if (!(bits & protocol_words[i].bit)) {
            SSL_CTX_set_options(ctx, no[i]);
            continue;
        }
        if (min == 0)
            min = protocol_words[i].version;
        max = protocol_words[i].version;
    }
    return SSL_CTX_set_min_proto_version(ctx, min) == 1 &&
           SSL_CTX_set_max_proto_version(ctx, max) == 1;
}

/* Makes <param> check the upstream's certificate against <name>, a host name or an IP
 * address.  1 on success. */
static int verify_name(X509_VERIFY_PARAM *param, const char *name)
{
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return is_address(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1
                            : X509_VERIFY_PARAM_set1_host(param, name, 0) == 1;
}

/* proxy_ssl_verify: the chain against the trusted CAs, the name against the certificate. */
static int set_verify(struct pt_conf *cf, struct proxy_ssl *ps, const char *pass)
{
    const struct proxy_ssl_conf *sc = &ps->conf;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ps->ctx);
    const char *file;
    char why[256];

    if (!sc->verify) {
        SSL_CTX_set_verify(ps->ctx, SSL_VERIFY_NONE, NULL);
        return PT_OK;
    }
    if (sc->trusted_certificate == NULL)
        return pt_conf_error(cf,
                             "\"proxy_ssl_verify\" needs \"proxy_ssl_trusted_certificate\" (the "
                             "CAs to check the upstream's certificate against) for proxy_pass "
                             "\"%s\"",
                             pass);
    file = pt_conf_path(cf, sc->trusted_certificate);
    if (file == NULL || SSL_CTX_load_verify_locations(ps->ctx, file, NULL) != 1)
        return pt_conf_error(cf, "cannot load proxy_ssl_trusted_certificate \"%s\": %s",
                             sc->trusted_certificate, ssl_reason(why, sizeof(why)));
    SSL_CTX_set_verify(ps->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ps->ctx, (int)sc->verify_depth);
    /* Without a name (proxy_pass with variables) each connection gets its host's. */
    if (ps->name && !verify_name(param, ps->name))
        return pt_conf_error(cf, "cannot verify the name \"%s\": %s", ps->name,
                             ssl_reason(why, sizeof(why)));
    return PT_OK;
}

/* proxy_ssl_certificate and its key, read now, by the master. */
static int set_certificate(struct pt_conf *cf, struct proxy_ssl *ps)
{
    const struct proxy_ssl_conf *sc = &ps->conf;
    const char *cert, *key;
    char why[256];

    if (sc->certificate == NULL && sc->certificate_key == NULL)
        return PT_OK;
    if (sc->certificate == NULL || sc->certificate_key == NULL)
        return pt_conf_error(
            cf, "\"%s\" is set without \"%s\"",
            sc->certificate ? "proxy_ssl_certificate" : "proxy_ssl_certificate_key",
            sc->certificate ? "proxy_ssl_certificate_key" : "proxy_ssl_certificate");
    cert = pt_conf_path(cf, sc->certificate);
    key = pt_conf_path(cf, sc->certificate_key);
    if (cert == NULL || SSL_CTX_use_certificate_chain_file(ps->ctx, cert) != 1)
        return pt_conf_error(cf, "cannot load proxy_ssl_certificate \"%s\": %s", sc->certificate,
                             ssl_reason(why, sizeof(why)));
    if (key == NULL || SSL_CTX_use_PrivateKey_file(ps->ctx, key, SSL_FILETYPE_PEM) != 1)
        return pt_conf_error(cf, "cannot load proxy_ssl_certificate_key \"%s\": %s",
                             sc->certificate_key, ssl_reason(why, sizeof(why)));
    if (SSL_CTX_check_private_key(ps->ctx) != 1)
        return pt_conf_error(cf, "proxy_ssl_certificate_key \"%s\" does not match \"%s\": %s",
                             sc->certificate_key, sc->certificate, ssl_reason(why, sizeof(why)));
    return PT_OK;
}

/* Builds the SSL_CTX of <ps> for the location whose proxy_pass is <pass>. */
static int build_ctx(struct pt_conf *cf, struct proxy_ssl *ps, const char *pass)
{
    char why[256];

    ps->ctx = SSL_CTX_new(TLS_client_method());
    if (ps->ctx == NULL)
        return pt_conf_error(cf, "SSL_CTX_new() failed: %s", ssl_reason(why, sizeof(why)));
    SSL_CTX_set_app_data(ps->ctx, ps);
    /* Partial writes and a moving buffer fit the proxy's buffers (a write takes what it
     * can, the rest is offered again from wherever it is then); idle pooled connections
     * give their buffers back. */
    SSL_CTX_set_mode(ps->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    /* A server that closes without close_notify ends its response as a plain one would
     * (nginx's behaviour); renegotiation is not offered to it. */
    SSL_CTX_set_options(ps->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_NO_COMPRESSION);
    if (!set_protocols(ps->ctx, ps->conf.protocols))
        return pt_conf_error(cf, "cannot set proxy_ssl_protocols: %s",
                             ssl_reason(why, sizeof(why)));
    if (SSL_CTX_set_cipher_list(ps->ctx, ps->conf.ciphers) != 1)
        return pt_conf_error(cf, "invalid proxy_ssl_ciphers \"%s\": %s", ps->conf.ciphers,
                             ssl_reason(why, sizeof(why)));
    if (set_verify(cf, ps, pass) != PT_OK || set_certificate(cf, ps) != PT_OK)
        return PT_ERROR;
    if (ps->conf.session_reuse) {
        /* Sessions are kept by the callback, per server, not in OpenSSL's cache. */
        SSL_CTX_set_session_cache_mode(ps->ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ps->ctx, new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ps->ctx, SSL_SESS_CACHE_OFF);
    }
    return PT_OK;
}

int pt_proxy_ssl_conf(struct pt_conf *cf, struct proxy_loc_conf *plc)
{
    struct proxy_main_conf *mc = cf->cycle->main_conf[pt_proxy_module.index];
    const struct proxy_ssl_conf *sc = &plc->ssl_conf;
    /* proxy_pass with variables: each request's host, unless proxy_ssl_name is set. */
    const char *name = sc->name ? sc->name : plc->pass_vars ? NULL : host_part(cf, plc->host);
    struct proxy_ssl *ps;

    if (plc->pass_vars == NULL && (name == NULL || name[0] == '\0'))
        return pt_conf_error(cf, "no name for TLS to the upstream of proxy_pass \"%s\"", plc->pass);
    for (ps = mc->ssl; ps; ps = ps->next) {
        if (same_conf(ps, sc, name)) {
            plc->ssl = ps;
            return PT_OK;
        }
    }
    ps = pt_palloc(cf->pool, sizeof(*ps));
    if (ps == NULL || pt_pool_cleanup(cf->pool, free_ssl, ps) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    ps->conf = *sc;
    ps->name = name ? pt_pstrdup(cf->pool, name) : NULL;
    /* RFC 6066 3: a literal address is never sent as a server name. */
    ps->sni = sc->server_name && name && !is_address(ps->name);
    if ((name && ps->name == NULL) || build_ctx(cf, ps, plc->pass) != PT_OK)
        return PT_ERROR;
    ps->next = mc->ssl;
    mc->ssl = ps;
    plc->ssl = ps;
    return PT_OK;
}

/* --- sessions --- */

/* The slot of <peer>'s session in <ps>, added when <add>; NULL when none (or no memory). */
static SSL_SESSION **session_slot(struct proxy_ssl *ps, const struct pt_peer *peer, int add)
{
    struct saved_session *grown;

    for (int i = 0; i < ps->nsessions; i++)
        if (ps->sessions[i].peer == peer)
            return &ps->sessions[i].session;
    if (!add)
        return NULL;
    grown = realloc(ps->sessions, (size_t)(ps->nsessions + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    ps->sessions = grown;
    grown[ps->nsessions] = (struct saved_session){peer, NULL};
    return &grown[ps->nsessions++].session;
}

/* OpenSSL's new-session callback: keeps <session> (returns 1: the reference is ours) as
 * the one to offer the same server next time, in place of the one before. */
static int new_session(SSL *ssl, SSL_SESSION *session)
{
    const struct pt_upstream_conn *uc = SSL_get_app_data(ssl);
    struct proxy_ssl *ps = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    SSL_SESSION **slot = uc ? session_slot(ps, uc->peer, 1) : NULL;

    if (slot == NULL)
        return 0;
    SSL_SESSION_free(*slot);
    *slot = session;
    return 1;
}

/* Drops <peer>'s session: after a failed handshake it may be the cause. */
static void forget_session(struct proxy_ssl *ps, const struct pt_peer *peer)
{
    SSL_SESSION **slot = session_slot(ps, peer, 0);

    if (slot) {
        SSL_SESSION_free(*slot);
        *slot = NULL;
    }
}

/* --- connections --- */

int pt_proxy_ssl_attach(struct proxy_ctx *ctx)
{
    const struct proxy_target *t = ctx->t;
    struct proxy_ssl *ps = t->ssl;
    struct pt_upstream_conn *uc = ctx->uc;
    /* A server made for one request (an address of proxy_pass with variables) keeps no
     * session: its peer is gone with the request. */
    int keep = ps->conf.session_reuse && !t->transient;
    SSL_SESSION **saved = keep ? session_slot(ps, uc->peer, 0) : NULL;
    const char *name = ps->name ? ps->name : t->tls_name;
    int sni = ps->name ? ps->sni : ps->conf.server_name && !is_address(name);
    char msg[300], why[256];

    /* The app data is the connection: the new-session callback files sessions by its peer
     * (none without it). */
    if (pt_tls_client(&uc->s, ps->ctx, sni ? name : NULL, saved ? *saved : NULL,
                      keep ? uc : NULL) == PT_OK &&
        (ps->name || !ps->conf.verify || verify_name(SSL_get0_param(uc->s.tls), name)))
        return PT_OK;
    snprintf(msg, sizeof(msg), "SSL setup failed (SSL: %s)", ssl_reason(why, sizeof(why)));
    ctx->tls_error = pt_pstrdup(ctx->r->pool, msg);
    return PT_ERROR;
}

/* Why the handshake of <uc> failed (errno as it left it in <sys_errno>), in nginx's words,
 * in the request's pool.  OpenSSL's error queue is emptied. */
static const char *handshake_error(struct proxy_ctx *ctx, const struct pt_upstream_conn *uc,
                                   int sys_errno)
{
    long v = SSL_get_verify_result(uc->s.tls);
    char buf[384];

    if (ctx->t->ssl->conf.verify && v != X509_V_OK) {
        snprintf(buf, sizeof(buf), "upstream SSL certificate verify error: (%ld:%s)", v,
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        pt_tls_error("SSL_do_handshake", sys_errno, buf, sizeof(buf));
    }
    return pt_pstrdup(ctx->r->pool, buf);
}

int pt_proxy_ssl_handshake(struct proxy_ctx *ctx)
{
    struct pt_upstream_conn *uc = ctx->uc;
    int rc = pt_stream_handshake(&uc->s);

    if (rc == PT_OK && SSL_session_reused(uc->s.tls))
        pt_log_debug("TLS session with upstream %s resumed", uc->peer->name);
    if (rc != PT_ERROR)
        return rc;
    ctx->tls_error = handshake_error(ctx, uc, errno);
    forget_session(ctx->t->ssl, uc->peer);
    return PT_ERROR;
}

void pt_proxy_ssl_log_failure(const struct pt_upstream_conn *uc, const char *op)
{
    int saved = errno;
    char why[256];

    if (uc->s.tls == NULL || saved != EPROTO)
        return;
    pt_log(PT_LOG_INFO, "%s() with upstream %s failed (SSL: %s)", op, uc->peer->name,
           ssl_reason(why, sizeof(why)));
    errno = saved;
}

int pt_proxy_ssl_clean(const struct pt_upstream_conn *uc)
{
    return !SSL_has_pending(uc->s.tls);
}
