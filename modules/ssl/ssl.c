/*
 * ssl.c: the ssl module: TLS termination.  Each server with certificates gets its own
 * SSL_CTX, built by the master while it reads the configuration, so private keys are read
 * before privileges drop and may be readable by root only; workers inherit the contexts.
 * A connection starts with its address's default server's context and SNI moves it to the
 * named server's; ALPN says http/1.1.  A certificate or key that does not load, or a key
 * that does not match its certificate, fails `portier -t`, and a reload keeps the old ones.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/module.h"
#include "core/pool.h"
#include "worker/router.h"
#include "modules/ssl/ssl.h"

/* Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3's are
 * OpenSSL's defaults, changed with ssl_conf_command Ciphersuites). */
#define DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Added to the default list when ssl_protocols names TLS 1.0 or 1.1, which have no AEAD
 * suites: without them such a handshake could never succeed. */
#define LEGACY_CIPHERS \
    ":ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"

static const char default_ciphers[] = DEFAULT_CIPHERS;

static int set_list(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_protocols_str(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_verify(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_path(struct pt_conf *cf, const struct pt_directive *d, void *conf);

#define SSC(f) offsetof(struct ssl_srv_conf, f)
#define HS     (PT_CTX_HTTP | PT_CTX_SRV)

/* set_list's rows name the count that goes with the array. */
static const size_t n_certs = SSC(ncerts), n_keys = SSC(nkeys), n_conf = SSC(nconf_commands),
                    n_tickets = SSC(nticket_key_files);

static const struct pt_directive ssl_directives[] = {
    {"ssl_certificate", HS, PT_DIR_MULTI, PT_SRV_CONF, set_list, SSC(certs), &n_certs,
     "PEM file: the certificate, then its chain; several (RSA and ECDSA) are served by what "
     "the client supports"},
    {"ssl_certificate_key", HS, PT_DIR_MULTI, PT_SRV_CONF, set_list, SSC(keys), &n_keys,
     "PEM private key of each ssl_certificate, in the same order; read by the master before "
     "it drops privileges, so the file may be readable by root only"},
    {"ssl_protocols", HS, 0, PT_SRV_CONF, set_protocols_str, SSC(protocols), NULL,
     "the versions enabled, of \"TLSv1 TLSv1.1 TLSv1.2 TLSv1.3\" (default \"TLSv1.2 TLSv1.3\")"},
    {"ssl_ciphers", HS, 0, PT_SRV_CONF, pt_conf_set_str, SSC(ciphers), NULL,
     "OpenSSL cipher list for TLS 1.2 and below (default: ECDHE with AES-GCM or ChaCha20)"},
    {"ssl_prefer_server_ciphers", HS, 0, PT_SRV_CONF, pt_conf_set_flag, SSC(prefer_server_ciphers),
     NULL,
     "choose the cipher by the server's order rather than the client's (default on, "
     "unlike nginx: every default suite is strong, and scanners ask for a server order)"},
    {"ssl_conf_command", HS, PT_DIR_MULTI, PT_SRV_CONF, set_list, SSC(conf_commands), &n_conf,
     "\"NAME VALUE\" passed to OpenSSL's SSL_CONF_cmd, e.g. \"Ciphersuites "
     "TLS_AES_256_GCM_SHA384\" or \"Options PrioritizeChaCha\""},
    {"ssl_session_cache", HS, 0, PT_SRV_CONF, pt_conf_set_str, SSC(session_cache), NULL,
     "\"shared:NAME:SIZE\" (sessions in shared memory: a client resumes on any worker), "
     "\"none\" (default) or \"off\""},
    {"ssl_session_timeout", HS, 0, PT_SRV_CONF, pt_conf_set_msec, SSC(session_timeout), NULL,
     "how long a session may be resumed (default 5m)"},
    {"ssl_session_tickets", HS, 0, PT_SRV_CONF, pt_conf_set_flag, SSC(session_tickets), NULL,
     "resumption by tickets (default on); their keys are made by the master, shared by all "
     "workers and rotated by the helper, unless ssl_session_ticket_key names files"},
    {"ssl_session_ticket_key", HS, PT_DIR_MULTI, PT_SRV_CONF, set_list, SSC(ticket_key_files),
     &n_tickets, "file of 80 or 48 random bytes: the first encrypts tickets, all decrypt"},
    {"ssl_verify_client", HS, 0, PT_SRV_CONF, set_verify, SSC(verify_client), NULL,
     "\"on\" (400 without a valid client certificate), \"optional\", \"optional_no_ca\" or "
     "\"off\" (default)"},
    {"ssl_verify_depth", HS, 0, PT_SRV_CONF, pt_conf_set_num, SSC(verify_depth), NULL,
     "longest client certificate chain accepted (default 1)"},
    {"ssl_client_certificate", HS, 0, PT_SRV_CONF, set_path, SSC(client_certificate), NULL,
     "PEM file of the CAs that client certificates are verified against (and named to clients)"},
    {"ssl_trusted_certificate", HS, 0, PT_SRV_CONF, set_path, SSC(trusted_certificate), NULL,
     "PEM file of CAs trusted for client certificates and OCSP responses, not named to "
     "clients"},
    {"ssl_stapling", HS, 0, PT_SRV_CONF, pt_conf_set_flag, SSC(stapling), NULL,
     "staple OCSP responses, fetched by the helper process and shared (default off)"},
    {"ssl_stapling_verify", HS, 0, PT_SRV_CONF, pt_conf_set_flag, SSC(stapling_verify), NULL,
     "verify OCSP responses (signature, status good) against ssl_trusted_certificate, or the "
     "system's CAs without it, before stapling them (default off)"},
    {"ssl_stapling_file", HS, 0, PT_SRV_CONF, set_path, SSC(stapling_file), NULL,
     "DER OCSP response to staple instead of fetching one"},
    {"ssl_stapling_responder", HS, 0, PT_SRV_CONF, pt_conf_set_str, SSC(stapling_responder), NULL,
     "\"http://HOST[:PORT][/PATH]\" asked instead of the certificate's OCSP responder"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

/* The $ssl_* variables exist before any directive is read, so that log formats and headers
 * can name them. */
static void *create_main_conf(struct pt_conf *cf)
{
    if (pt_ssl_vars_register() != PT_OK)
        return NULL;
    return pt_palloc(cf->pool, 1);
}

static void *create_srv_conf(struct pt_conf *cf)
{
    struct ssl_srv_conf *sc = pt_palloc(cf->pool, sizeof(*sc));

    if (sc == NULL)
        return NULL;
    sc->prefer_server_ciphers = PT_CONF_UNSET;
    sc->session_timeout = PT_CONF_UNSET;
    sc->session_tickets = PT_CONF_UNSET;
    sc->verify_client = PT_CONF_UNSET;
    sc->verify_depth = PT_CONF_UNSET;
    sc->stapling = PT_CONF_UNSET;
    sc->stapling_verify = PT_CONF_UNSET;
    sc->ncerts = sc->nkeys = sc->nconf_commands = sc->nticket_key_files = PT_CONF_UNSET;
    return sc;
}

#define merge_str(c, p, def) ((c) = (c) ? (c) : (p) ? (p) : (def))

static int merge_srv_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct ssl_srv_conf *p = parent, *c = child;

    /* Certificates and keys go together: a server naming either takes neither from above. */
    if (c->ncerts == PT_CONF_UNSET && c->nkeys == PT_CONF_UNSET) {
        pt_conf_merge_list(c->certs, c->ncerts, p->certs, p->ncerts);
        pt_conf_merge_list(c->keys, c->nkeys, p->keys, p->nkeys);
        if (c->cert_setting == NULL)
            c->cert_setting = p->cert_setting;
    }
    c->ncerts = c->ncerts == PT_CONF_UNSET ? 0 : c->ncerts;
    c->nkeys = c->nkeys == PT_CONF_UNSET ? 0 : c->nkeys;
    pt_conf_merge_list(c->conf_commands, c->nconf_commands, p->conf_commands, p->nconf_commands);
    pt_conf_merge_list(c->ticket_key_files, c->nticket_key_files, p->ticket_key_files,
                       p->nticket_key_files);
    c->nconf_commands = c->nconf_commands == PT_CONF_UNSET ? 0 : c->nconf_commands;
    c->nticket_key_files = c->nticket_key_files == PT_CONF_UNSET ? 0 : c->nticket_key_files;
    merge_str(c->protocols, p->protocols, "TLSv1.2 TLSv1.3");
    merge_str(c->ciphers, p->ciphers, (char *)default_ciphers);
    merge_str(c->session_cache, p->session_cache, "none");
    merge_str(c->client_certificate, p->client_certificate, NULL);
    merge_str(c->trusted_certificate, p->trusted_certificate, NULL);
    merge_str(c->stapling_file, p->stapling_file, NULL);
    merge_str(c->stapling_responder, p->stapling_responder, NULL);
    pt_conf_merge_int(c->prefer_server_ciphers, p->prefer_server_ciphers, 1);
    if (c->protocols_setting == NULL)
        c->protocols_setting = p->protocols_setting;
    if (c->conf_setting == NULL)
        c->conf_setting = p->conf_setting;
    pt_conf_merge_int(c->session_timeout, p->session_timeout, 300000);
    pt_conf_merge_int(c->session_tickets, p->session_tickets, 1);
    pt_conf_merge_int(c->verify_client, p->verify_client, PT_SSL_VERIFY_OFF);
    pt_conf_merge_int(c->verify_depth, p->verify_depth, 1);
    pt_conf_merge_int(c->stapling, p->stapling, 0);
    pt_conf_merge_int(c->stapling_verify, p->stapling_verify, 0);
    return PT_OK;
}

/* Appends the value to the char ** list at the row's offset; its count is at *d->post. */
static int set_list(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    char ***list = (char ***)((char *)conf + d->offset);
    int *n = (int *)((char *)conf + *(const size_t *)d->post);
    /* Files are relative to the prefix, as nginx's are; commands are taken as they are. */
    char *v = d->offset == SSC(conf_commands) ? pt_pstrdup(cf->pool, cf->value)
                                              : (char *)pt_conf_path(cf, cf->value);

    if (strcmp(d->name, "ssl_certificate") == 0)
        ((struct ssl_srv_conf *)conf)->cert_setting = cf->setting;
    if (d->offset == SSC(conf_commands))
        ((struct ssl_srv_conf *)conf)->conf_setting = cf->setting;
    return pt_conf_list_add(cf, list, n, v);
}

static int set_protocols_str(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    ((struct ssl_srv_conf *)conf)->protocols_setting = cf->setting;
    return pt_conf_set_str(cf, d, conf);
}

/* A file name, resolved against the prefix. */
static int set_path(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    char **f = (char **)((char *)conf + d->offset);

    if (*f != NULL)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    *f = (char *)pt_conf_path(cf, cf->value);
    return *f ? PT_OK : pt_conf_error(cf, "out of memory");
}

static int set_verify(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    static const char *const names[] = {"off", "on", "optional", "optional_no_ca"};
    int *f = (int *)((char *)conf + d->offset);

    if (*f != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    for (int i = 0; i < (int)pt_nelems(names); i++) {
        if (strcmp(cf->value, names[i]) == 0) {
            *f = i;
            return PT_OK;
        }
    }
    return pt_conf_error(cf,
                         "invalid value \"%s\" for \"ssl_verify_client\": use on, optional, "
                         "optional_no_ca or off",
                         cf->value);
}

/* --- building a server's context --- */

/* Reports OpenSSL's last error about <what> at <s> (file:line).  Returns PT_ERROR. */
static int ssl_error(struct pt_conf *cf, const struct pt_conf_setting *s, const char *what)
{
    char buf[256] = "";
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return pt_conf_error_at(cf, s, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static int version_of(const char *name)
{
    static const struct {
        const char *name;
        int version;
    } v[] = {{"TLSv1", TLS1_VERSION},
             {"TLSv1.1", TLS1_1_VERSION},
             {"TLSv1.2", TLS1_2_VERSION},
             {"TLSv1.3", TLS1_3_VERSION}};

    for (size_t i = 0; i < pt_nelems(v); i++)
        if (strcmp(name, v[i].name) == 0)
            return v[i].version;
    return 0;
}

/* ssl_protocols: exactly the versions listed (OpenSSL takes a range; the versions inside it
 * that are not listed are switched off one by one). */
static int set_protocols(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    static const struct {
        int version;
        uint64_t off;
    } all[] = {{TLS1_VERSION, SSL_OP_NO_TLSv1},
               {TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
               {TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
               {TLS1_3_VERSION, SSL_OP_NO_TLSv1_3}};
    char *w[8];
    int n = pt_conf_split(cf, sc->protocols, w, 8), lo = 0, hi = 0;
    unsigned listed = 0;

    for (int i = 0; i < n; i++) {
        int v = version_of(w[i]);
        if (v == 0)
            return pt_conf_error_at(cf, sc->protocols_setting,
                                    "invalid protocol \"%s\" in \"ssl_protocols\": use TLSv1, "
                                    "TLSv1.1, TLSv1.2 or TLSv1.3",
                                    w[i]);
        lo = lo == 0 || v < lo ? v : lo;
        hi = v > hi ? v : hi;
        for (size_t k = 0; k < pt_nelems(all); k++)
            listed |= all[k].version == v ? 1u << k : 0;
    }
    if (n <= 0)
        return pt_conf_error_at(cf, sc->protocols_setting, "\"ssl_protocols\" names no protocol");
    for (size_t k = 0; k < pt_nelems(all); k++)
        if (all[k].version > lo && all[k].version < hi && !(listed & (1u << k)))
            SSL_CTX_set_options(sc->ctx, all[k].off);
    /* TLS 1.0 and 1.1 need SHA-1 signatures that OpenSSL 3's default level refuses, and
     * CBC suites that the default list leaves out. */
    if (lo < TLS1_2_VERSION) {
        SSL_CTX_set_security_level(sc->ctx, 0);
        if (sc->ciphers == default_ciphers &&
            SSL_CTX_set_cipher_list(sc->ctx, DEFAULT_CIPHERS LEGACY_CIPHERS) != 1)
            return ssl_error(cf, sc->protocols_setting, "cannot set the TLS 1.0/1.1 ciphers");
    }
    SSL_CTX_set_min_proto_version(sc->ctx, lo);
    SSL_CTX_set_max_proto_version(sc->ctx, hi);
    return PT_OK;
}

/* A file OpenSSL cannot open says only "system lib": say which file and why. */
static int readable(struct pt_conf *cf, struct ssl_srv_conf *sc, const char *path)
{
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return pt_conf_error_at(cf, sc->cert_setting, "cannot read \"%s\": %s", path,
                                strerror(errno));
    fclose(f);
    return PT_OK;
}

static int load_certificates(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    if (sc->nkeys != sc->ncerts)
        return pt_conf_error_at(cf, sc->cert_setting,
                                "%d ssl_certificate but %d ssl_certificate_key: give one key per "
                                "certificate, in the same order",
                                sc->ncerts, sc->nkeys);
    for (int i = 0; i < sc->ncerts; i++) {
        char what[600];
        if (readable(cf, sc, sc->certs[i]) != PT_OK || readable(cf, sc, sc->keys[i]) != PT_OK)
            return PT_ERROR;
        snprintf(what, sizeof(what), "cannot load certificate \"%s\"", sc->certs[i]);
        if (SSL_CTX_use_certificate_chain_file(sc->ctx, sc->certs[i]) != 1)
            return ssl_error(cf, sc->cert_setting, what);
        snprintf(what, sizeof(what),
                 "ssl_certificate_key \"%s\" does not match ssl_certificate \"%s\"", sc->keys[i],
                 sc->certs[i]);
        if (SSL_CTX_use_PrivateKey_file(sc->ctx, sc->keys[i], SSL_FILETYPE_PEM) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
                snprintf(what, sizeof(what), "cannot load certificate key \"%s\"", sc->keys[i]);
            return ssl_error(cf, sc->cert_setting, what);
        }
        if (SSL_CTX_check_private_key(sc->ctx) != 1)
            return ssl_error(cf, sc->cert_setting, what);
    }
    return PT_OK;
}

/* SSL_CONF_cmd for each "NAME VALUE" of ssl_conf_command. */
static int conf_commands(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    SSL_CONF_CTX *cctx = SSL_CONF_CTX_new();
    int rc = PT_OK;

    if (cctx == NULL)
        return ssl_error(cf, sc->cert_setting, "SSL_CONF_CTX_new() failed");
    SSL_CONF_CTX_set_flags(cctx, SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_SERVER |
                                     SSL_CONF_FLAG_CERTIFICATE | SSL_CONF_FLAG_SHOW_ERRORS);
    SSL_CONF_CTX_set_ssl_ctx(cctx, sc->ctx);
    for (int i = 0; i < sc->nconf_commands && rc == PT_OK; i++) {
        char *name = pt_pstrdup(cf->pool, sc->conf_commands[i]), *value = strchr(name, ' ');
        char what[600];
        if (value)
            *value++ = '\0';
        snprintf(what, sizeof(what), "ssl_conf_command \"%s\" refused by OpenSSL",
                 sc->conf_commands[i]);
        if (value == NULL || SSL_CONF_cmd(cctx, name, value) <= 0)
            rc = ssl_error(cf, sc->conf_setting, what);
    }
    if (rc == PT_OK && SSL_CONF_CTX_finish(cctx) != 1)
        rc = ssl_error(cf, sc->conf_setting, "ssl_conf_command failed");
    SSL_CONF_CTX_free(cctx);
    return rc;
}

/* Client certificates are judged after the handshake, per request (see verify_request), as
 * nginx does: the client then gets a 400 page saying why, not a bare TLS alert. */
static int accept_any(int ok, X509_STORE_CTX *x)
{
    pt_unused(ok);
    pt_unused(x);
    return 1;
}

static int client_verification(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    const char *files[] = {sc->client_certificate, sc->trusted_certificate};

    if (sc->verify_client == PT_SSL_VERIFY_OFF)
        return PT_OK;
    if (sc->client_certificate == NULL && sc->trusted_certificate == NULL &&
        sc->verify_client != PT_SSL_VERIFY_OPTIONAL_NO_CA)
        return pt_conf_error_at(cf, sc->cert_setting,
                                "ssl_verify_client needs ssl_client_certificate or "
                                "ssl_trusted_certificate");
    for (size_t i = 0; i < pt_nelems(files); i++) {
        char what[600];
        snprintf(what, sizeof(what), "cannot load CA file \"%s\"", files[i] ? files[i] : "");
        if (files[i] && SSL_CTX_load_verify_locations(sc->ctx, files[i], NULL) != 1)
            return ssl_error(cf, sc->cert_setting, what);
    }
    if (sc->client_certificate) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(sc->client_certificate);
        if (names == NULL)
            return ssl_error(cf, sc->cert_setting, "no CA names in ssl_client_certificate");
        SSL_CTX_set_client_CA_list(sc->ctx, names);
    }
    SSL_CTX_set_verify(sc->ctx, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_verify_depth(sc->ctx, (int)sc->verify_depth);
    return PT_OK;
}

static int client_hello(SSL *ssl, int *alert, void *arg);
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg);

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

static int build_ctx(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    long opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION;

    sc->ctx = SSL_CTX_new(TLS_server_method());
    if (sc->ctx == NULL || pt_pool_cleanup(cf->pool, free_ctx, sc->ctx) != PT_OK)
        return ssl_error(cf, sc->cert_setting, "SSL_CTX_new() failed");
    SSL_CTX_set_app_data(sc->ctx, sc);
    if (sc->prefer_server_ciphers)
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(sc->ctx, (uint64_t)opts);
    /* Partial writes and moving buffers fit the writer's queue; an idle connection keeps
     * no TLS buffers. */
    SSL_CTX_set_mode(sc->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(sc->ctx, sc->ciphers) != 1)
        return ssl_error(cf, sc->cert_setting, "invalid ssl_ciphers");
    if (set_protocols(cf, sc) != PT_OK || load_certificates(cf, sc) != PT_OK ||
        conf_commands(cf, sc) != PT_OK || client_verification(cf, sc) != PT_OK)
        return PT_ERROR;
    SSL_CTX_set_client_hello_cb(sc->ctx, client_hello, NULL);
    SSL_CTX_set_alpn_select_cb(sc->ctx, alpn_select, NULL);
    if (pt_ssl_session_conf(cf, sc) != PT_OK || pt_ssl_session_setup(cf, sc) != PT_OK)
        return PT_ERROR;
    return pt_ssl_stapling_conf(cf, sc);
}

/* --- handshake callbacks --- */

/* The host name of the ClientHello's server_name extension of <ssl> (RFC 6066 3), not
 * NUL-terminated: *<len> bytes.  NULL when there is none. */
static const char *sni_of(SSL *ssl, size_t *len)
{
    const unsigned char *p;
    size_t n;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) || n < 5 ||
        (size_t)(p[0] << 8 | p[1]) + 2 != n || p[2] != TLSEXT_NAMETYPE_host_name)
        return NULL;
    *len = (size_t)(p[3] << 8 | p[4]);
    return *len + 5 <= n ? (const char *)p + 5 : NULL;
}

/* SNI: the named server's certificate and settings, or the default server's when no server
 * has the name (or it has no certificate of its own).  Done from the ClientHello callback,
 * before OpenSSL looks for a session to resume (the servername callback comes after): the
 * session id context, cache and ticket keys must be the named server's, or a session of
 * the default server would resume on another. */
static int client_hello(SSL *ssl, int *alert, void *arg)
{
    struct pt_http_conn *c = SSL_get_app_data(ssl);
    size_t len = 0;
    const char *name = sni_of(ssl, &len);
    struct pt_http_server *s;
    struct ssl_srv_conf *sc;

    pt_unused(alert);
    pt_unused(arg);
    if (c == NULL || name == NULL)
        return SSL_CLIENT_HELLO_SUCCESS;
    s = pt_names_find(pt_http_conn_addr(c)->names, name, len);
    sc = s ? pt_ssl_srv_conf(s) : NULL;
    if (sc == NULL || sc->ctx == NULL || sc->ctx == SSL_get_SSL_CTX(ssl))
        return SSL_CLIENT_HELLO_SUCCESS;
    SSL_set_SSL_CTX(ssl, sc->ctx);
    /* SSL_set_SSL_CTX moves the certificates; the rest of the server's settings follow. */
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(sc->ctx), SSL_CTX_get_verify_callback(sc->ctx));
    SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(sc->ctx));
    SSL_clear_options(ssl, SSL_get_options(ssl) ^ SSL_CTX_get_options(sc->ctx));
    SSL_set_options(ssl, SSL_CTX_get_options(sc->ctx));
    SSL_set_client_CA_list(ssl, SSL_dup_CA_list(SSL_CTX_get_client_CA_list(sc->ctx)));
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* ALPN: http/1.1 when the client offers it; without a common protocol the handshake goes on
 * without ALPN, and the client decides. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;

    pt_unused(ssl);
    pt_unused(arg);
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* --- requests --- */

/* Answers <r> with nginx's 400 page <page> after logging <fmt> (the client, and the verify
 * error of <result> when not 0).  Returns PT_DONE. */
static int refuse(struct pt_request *r, const char *fmt, const char *page, long result)
{
    pt_log(PT_LOG_INFO, fmt, r->c->peer_text, result ? X509_verify_cert_error_string(result) : "");
    r->keepalive = 0;
    pt_http_send_special(r, 400, pt_str_c(page));
    pt_http_finalize(r, PT_OK);
    return PT_DONE;
}

/* ssl_verify_client: judged by the server the request is for (its Host), as nginx does.  A
 * request for a server that verifies clients, on a connection whose handshake was made for
 * another name, gets 421: that handshake asked for no certificate, or for another CA's.
 * Without a certificate the server requires, nginx's 400 pages. */
static int verify_request(struct pt_request *r)
{
    SSL *ssl = pt_ssl_of(r->c);
    struct ssl_srv_conf *sc = ssl ? pt_ssl_srv_conf(r->server) : NULL;
    X509 *cert;
    long result;

    if (sc == NULL || sc->verify_client == PT_SSL_VERIFY_OFF)
        return PT_DECLINED;
    if (sc != SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) &&
        SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
        pt_log(PT_LOG_INFO, "client %s asked for a host other than its SNI name \"%s\"",
               r->c->peer_text, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
        r->keepalive = 0;
        return 421;
    }
    cert = SSL_get1_peer_certificate(ssl);
    result = SSL_get_verify_result(ssl);
    X509_free(cert);
    if (cert == NULL && sc->verify_client == PT_SSL_VERIFY_ON)
        return refuse(r, "client %s sent no required SSL certificate",
                      "400 No required SSL certificate was sent\n", 0);
    if (cert && result != X509_V_OK && sc->verify_client != PT_SSL_VERIFY_OPTIONAL_NO_CA)
        return refuse(r, "client %s SSL certificate verify error: %s",
                      "400 The SSL certificate error\n", result);
    return PT_DECLINED;
}

/* --- the module --- */

static int build_server(struct pt_conf *cf, struct pt_http_server *s)
{
    struct ssl_srv_conf *sc = pt_ssl_srv_conf(s);
    const char *listen;

    if (sc->ncerts == 0 && sc->nkeys == 0) {
        if (pt_http_server_ssl(s, &listen))
            return pt_conf_error_at(cf, s->setting,
                                    "no \"ssl_certificate\" for the server listening on \"%s "
                                    "ssl\"",
                                    listen);
        return PT_OK;
    }
    return build_ctx(cf, sc);
}

static int postconfig(struct pt_conf *cf)
{
    struct pt_http_main_conf *mc = cf->cycle->main_conf[pt_http_module.index];
    int any = 0;

    for (int i = 0; mc && i < mc->nservers; i++) {
        if (build_server(cf, mc->servers[i]) != PT_OK)
            return PT_ERROR;
        any |= pt_ssl_srv_conf(mc->servers[i])->ctx != NULL;
    }
    pt_http_tls_start = pt_ssl_conn_start;
    if (any && pt_phase_add(cf->cycle, PT_PHASE_POST_READ, verify_request) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return PT_OK;
}

static int init_helper(struct pt_cycle *cycle)
{
    if (pt_ssl_session_helper(cycle) != PT_OK)
        return PT_ERROR;
    return pt_ssl_stapling_helper(cycle);
}

struct pt_module pt_ssl_module = {
    .name = "ssl",
    .directives = ssl_directives,
    .create_main_conf = create_main_conf,
    .create_srv_conf = create_srv_conf,
    .merge_srv_conf = merge_srv_conf,
    .postconfig = postconfig,
    .init_helper = init_helper,
};
