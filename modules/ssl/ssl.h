/*
 * ssl.h: what the files of the ssl module share.
 *   ssl.c          the module: directives, one SSL_CTX per server built by the master
 *                  (keys read before privileges drop), SNI, ALPN, client certificates
 *   ssl_io.c       the client transport: the streams' TLS server, its handshake's failures
 *                  answered and logged
 *   ssl_var.c      $ssl_* variables
 *   ssl_session.c  the session cache in shared memory and the shared, rotated ticket keys
 *   ssl_ocsp.c     OCSP stapling: responses fetched by the helper, shared, stapled
 */
#ifndef PT_SSL_H
#define PT_SSL_H

#include <openssl/ssl.h>
#include <stdint.h>

#include "worker/http.h"

/* ssl_verify_client */
enum pt_ssl_verify {
    PT_SSL_VERIFY_OFF,
    PT_SSL_VERIFY_ON,
    PT_SSL_VERIFY_OPTIONAL,
    PT_SSL_VERIFY_OPTIONAL_NO_CA
};

struct ssl_session_cache; /* ssl_session.c */
struct ssl_stapling;      /* ssl_ocsp.c */

/* A server's (or the http level's) TLS configuration. */
struct ssl_srv_conf {
    char **certs, **keys; /* ssl_certificate / ssl_certificate_key, paired in order */
    int ncerts, nkeys;
    char *protocols; /* ssl_protocols as written */
    char *ciphers;
    int prefer_server_ciphers;
    char **conf_commands; /* ssl_conf_command "NAME VALUE" */
    int nconf_commands;
    /* sessions (ssl_session.c) */
    char *session_cache; /* "shared:NAME:SIZE", "off", "none" */
    int64_t session_timeout;
    int session_tickets;
    char **ticket_key_files;
    int nticket_key_files;
    struct ssl_session_cache *cache; /* ssl_session.c's, set by pt_ssl_session_conf */
    /* client certificates */
    int verify_client; /* enum pt_ssl_verify */
    int64_t verify_depth;
    char *client_certificate;
    char *trusted_certificate;
    /* OCSP stapling (ssl_ocsp.c) */
    int stapling;
    int stapling_verify;
    char *stapling_file;
    char *stapling_responder;
    struct ssl_stapling *staple; /* NULL: none */

    SSL_CTX *ctx; /* built in postconfig for a server with certificates */
    /* where directives were written, for messages (config time only) */
    const struct pt_conf_setting *cert_setting, *protocols_setting, *conf_setting;
};

extern struct pt_module pt_ssl_module;

/* The ssl configuration of server <s>. */
static inline struct ssl_srv_conf *pt_ssl_srv_conf(struct pt_http_server *s)
{
    return s->srv_conf[pt_ssl_module.index];
}

/* ssl_io.c: makes <c>, accepted on a `listen ... ssl` address, a TLS server stream with
 * its address's default server's SSL_CTX (SNI may switch it); pt_http_tls_start points
 * here.  PT_OK, or PT_ERROR (logged when the configuration is at fault). */
int pt_ssl_conn_start(struct pt_http_conn *c);

/* ssl_io.c: the SSL of a client connection, or NULL for a plain one. */
static inline SSL *pt_ssl_of(const struct pt_http_conn *c)
{
    return c->s.tls;
}

/* ssl_var.c: registers the $ssl_* variables.  PT_OK or PT_ERROR. */
int pt_ssl_vars_register(void);

/*
 * ssl_session.c.  pt_ssl_session_conf() checks <sc>'s session directives and declares the
 * shared zones they need in <cf>'s cycle (from postconfig, before SSL_CTXs exist);
 * pt_ssl_session_setup() installs the session-cache and ticket-key callbacks on <sc>->ctx.
 * Both return PT_OK or PT_ERROR after pt_conf_error.  pt_ssl_session_helper() is the
 * helper's part (ticket key rotation), PT_OK or PT_ERROR.
 */
int pt_ssl_session_conf(struct pt_conf *cf, struct ssl_srv_conf *sc);
int pt_ssl_session_setup(struct pt_conf *cf, struct ssl_srv_conf *sc);
int pt_ssl_session_helper(struct pt_cycle *cycle);

/*
 * ssl_ocsp.c.  pt_ssl_stapling_conf() checks <sc>'s stapling directives once its SSL_CTX
 * exists (certificates loaded), declares what it shares and installs the status callback
 * on <sc>->ctx; PT_OK or PT_ERROR after pt_conf_error.  pt_ssl_stapling_helper() starts the
 * helper's fetching of responses; PT_OK or PT_ERROR.
 */
int pt_ssl_stapling_conf(struct pt_conf *cf, struct ssl_srv_conf *sc);
int pt_ssl_stapling_helper(struct pt_cycle *cycle);

#endif
