/*
 * ssl_var.c: the $ssl_* variables, with nginx's names and values, so that they can be
 * logged and passed upstream (proxy_set_header X-Client-DN $ssl_client_s_dn).  On a plain
 * connection they have no value.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "core/pool.h"
#include "modules/ssl/ssl.h"
#include "worker/var.h"

#define GETTER(name)                                                                 \
    static int name(struct pt_request *r, struct pt_str arg __attribute__((unused)), \
                    struct pt_str *out)

static int copy(struct pt_request *r, const char *s, size_t n, struct pt_str *out)
{
    if (s == NULL || n == 0)
        return PT_DECLINED;
    out->p = pt_pstrndup(r->pool, s, n);
    out->len = n;
    return out->p ? PT_OK : PT_ERROR;
}

static int copy_c(struct pt_request *r, const char *s, struct pt_str *out)
{
    return copy(r, s, s ? strlen(s) : 0, out);
}

static int hex(struct pt_request *r, const unsigned char *b, size_t n, struct pt_str *out)
{
    char *p = n ? pt_palloc(r->pool, 2 * n + 1) : NULL;

    if (p == NULL)
        return n ? PT_ERROR : PT_DECLINED;
    for (size_t i = 0; i < n; i++)
        snprintf(p + 2 * i, 3, "%02x", b[i]);
    *out = (struct pt_str){p, 2 * n};
    return PT_OK;
}

GETTER(var_protocol)
{
    SSL *ssl = pt_ssl_of(r->c);

    return ssl ? copy_c(r, SSL_get_version(ssl), out) : PT_DECLINED;
}

GETTER(var_cipher)
{
    SSL *ssl = pt_ssl_of(r->c);

    return ssl ? copy_c(r, SSL_get_cipher_name(ssl), out) : PT_DECLINED;
}

GETTER(var_server_name)
{
    SSL *ssl = pt_ssl_of(r->c);

    return ssl ? copy_c(r, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), out) : PT_DECLINED;
}

GETTER(var_session_reused)
{
    SSL *ssl = pt_ssl_of(r->c);

    if (ssl == NULL)
        return PT_DECLINED;
    *out = SSL_session_reused(ssl) ? PT_STR("r") : PT_STR(".");
    return PT_OK;
}

GETTER(var_session_id)
{
    SSL *ssl = pt_ssl_of(r->c);
    SSL_SESSION *sess = ssl ? SSL_get_session(ssl) : NULL;
    unsigned int n = 0;
    const unsigned char *id = sess ? SSL_SESSION_get_id(sess, &n) : NULL;

    return id ? hex(r, id, n, out) : PT_DECLINED;
}

GETTER(var_alpn_protocol)
{
    SSL *ssl = pt_ssl_of(r->c);
    const unsigned char *p = NULL;
    unsigned int n = 0;

    if (ssl)
        SSL_get0_alpn_selected(ssl, &p, &n);
    return copy(r, (const char *)p, n, out);
}

/* nginx's $ssl_client_verify: NONE, SUCCESS or FAILED:reason. */
GETTER(var_client_verify)
{
    SSL *ssl = pt_ssl_of(r->c);
    X509 *cert;
    long rc;
    char buf[160];

    if (ssl == NULL)
        return PT_DECLINED;
    cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) {
        *out = PT_STR("NONE");
        return PT_OK;
    }
    X509_free(cert);
    rc = SSL_get_verify_result(ssl);
    if (rc == X509_V_OK) {
        *out = PT_STR("SUCCESS");
        return PT_OK;
    }
    snprintf(buf, sizeof(buf), "FAILED:%s", X509_verify_cert_error_string(rc));
    return copy_c(r, buf, out);
}

/* A DN of the client's certificate in RFC 2253 form (nginx's current one). */
static int client_dn(struct pt_request *r, int issuer, struct pt_str *out)
{
    SSL *ssl = pt_ssl_of(r->c);
    X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    BIO *bio;
    char *p;
    long n;
    int rc;

    if (cert == NULL)
        return PT_DECLINED;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL ||
        X509_NAME_print_ex(bio, issuer ? X509_get_issuer_name(cert) : X509_get_subject_name(cert),
                           0, XN_FLAG_RFC2253) < 0) {
        BIO_free(bio);
        X509_free(cert);
        return PT_ERROR;
    }
    n = BIO_get_mem_data(bio, &p);
    rc = copy(r, p, n > 0 ? (size_t)n : 0, out);
    BIO_free(bio);
    X509_free(cert);
    return rc;
}

GETTER(var_client_s_dn)
{
    return client_dn(r, 0, out);
}

GETTER(var_client_i_dn)
{
    return client_dn(r, 1, out);
}

/* SHA-1 of the DER certificate, in hex, as nginx's $ssl_client_fingerprint. */
GETTER(var_client_fingerprint)
{
    SSL *ssl = pt_ssl_of(r->c);
    X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok;

    if (cert == NULL)
        return PT_DECLINED;
    ok = X509_digest(cert, EVP_sha1(), md, &n);
    X509_free(cert);
    return ok ? hex(r, md, n, out) : PT_ERROR;
}

GETTER(var_client_serial)
{
    SSL *ssl = pt_ssl_of(r->c);
    X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    BIGNUM *bn;
    char *s;
    int rc;

    if (cert == NULL)
        return PT_DECLINED;
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    s = bn ? BN_bn2hex(bn) : NULL;
    rc = s ? copy_c(r, s, out) : PT_ERROR;
    OPENSSL_free(s);
    BN_free(bn);
    X509_free(cert);
    return rc;
}

static const struct {
    const char *name;
    pt_var_get get;
} ssl_vars[] = {
    {"ssl_protocol", var_protocol},           {"ssl_cipher", var_cipher},
    {"ssl_server_name", var_server_name},     {"ssl_session_reused", var_session_reused},
    {"ssl_session_id", var_session_id},       {"ssl_alpn_protocol", var_alpn_protocol},
    {"ssl_client_verify", var_client_verify}, {"ssl_client_s_dn", var_client_s_dn},
    {"ssl_client_i_dn", var_client_i_dn},     {"ssl_client_fingerprint", var_client_fingerprint},
    {"ssl_client_serial", var_client_serial},
};

int pt_ssl_vars_register(void)
{
    for (size_t i = 0; i < pt_nelems(ssl_vars); i++)
        if (pt_var_register(ssl_vars[i].name, 0, ssl_vars[i].get) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}
