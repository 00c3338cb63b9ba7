/*
 * ssl_ocsp.c: OCSP stapling (nginx's ssl_stapling, ssl_stapling_verify, ssl_stapling_file,
 * ssl_stapling_responder).
 *
 * At configuration time, in the master, each certificate of a server with ssl_stapling on
 * gets a struct staple: its issuer (the chain in the certificate file, else
 * ssl_trusted_certificate), its responder (ssl_stapling_responder, else the certificate's
 * authorityInfoAccess OCSP URL) and the whole HTTP request that asks for its status, built
 * once.  The helper process sends these requests (HTTP/1.0 POST, with the HTTP client of
 * worker/http_client.h on its event loop, FETCH_TIMEOUT_MS per try; only the responder's
 * name is resolved synchronously), checks the answers and publishes them in the
 * "ssl_stapling" shared-memory zone.  A worker's status callback copies the response of the
 * certificate it serves from there when the client asks (status_request), so one fetch
 * serves every worker.
 *
 * The zone's entries are found by a key (a hash of the certificate and of the settings the
 * response is fetched with), not by position: after a reload the new workers staple at
 * once what the previous helper fetched, and the new helper does not ask again before the
 * response is due.
 *
 * Timing, nginx's: a response is fetched again 5 minutes before its nextUpdate, but at the
 * latest after an hour and at the earliest after 5 minutes.  A failed fetch is retried after
 * 5 s, then 10 s, 20 s ... up to 5 minutes.  A response is stapled until its nextUpdate
 * (forever without one), including while fetching its successor fails.
 *
 * What is checked before a fetched response is stapled: that it is a successful OCSP
 * response about this certificate, within its thisUpdate/nextUpdate window (5 minutes of
 * clock skew allowed).  With ssl_stapling_verify also its signature (against
 * ssl_trusted_certificate, or the system's CAs without it, with the server's chain as
 * intermediates) and a "good" status; without it a "revoked" response is stapled too: the
 * client decides.
 *
 * ssl_stapling_file is the offline alternative: the DER file is read by the master and
 * stapled as is, for every certificate of the server, never fetched again.
 */
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/shm.h"
#include "core/shmtx.h"
#include "core/slab.h"
#include "modules/ssl/ssl.h"
#include "core/times.h"
#include "worker/http_client.h"

#define ZONE_NAME        "ssl_stapling"
#define ZONE_SIZE        (1u << 20) /* room for a few hundred responses of 2 to 4 KiB */
#define ZONE_VERSION     1
#define ENTRIES_MAX      256
#define KEY_LEN          32 /* SHA-256 */
#define CERTS_MAX        9  /* OpenSSL's SSL_PKEY_NUM: one certificate per key type */
#define FETCH_TIMEOUT_MS 10000
#define HEAD_MAX         8192  /* of the responder's HTTP head */
#define RESPONSE_MAX     65536 /* of its body */
#define REFRESH_MAX_S    3600
#define REFRESH_MIN_S    300 /* also how long before nextUpdate a response is renewed */
#define RETRY_FIRST_S    5
#define RETRY_MAX_S      300
#define SKEW_S           300 /* clock skew tolerated on thisUpdate and nextUpdate */
#define VALID_FOREVER    INT64_MAX

/* A certificate's response in the zone.  Changed under the zone's lock only. */
struct zone_entry {
    unsigned char key[KEY_LEN];
    uint32_t bound;   /* root->binds when a configuration last named it */
    uint32_t der_len; /* 0: no response yet */
    uint64_t der_off;
    int64_t valid;   /* wall-clock seconds: stapled until then */
    int64_t refresh; /* wall-clock seconds: when the helper should fetch it again */
};

struct zone_root {
    uint32_t nentries;
    uint32_t binds; /* configurations bound to the zone so far */
    struct zone_entry entries[ENTRIES_MAX];
};

/* One certificate's stapling, built by the master; read-only afterwards. */
struct staple {
    const char *name; /* the certificate's file, for messages */
    /* ssl_stapling_file: the response itself */
    unsigned char *der;
    size_t der_len;
    /* fetched: the zone entry and how to fill it */
    unsigned char key[KEY_LEN];
    struct pt_shm_zone *zone;
    struct zone_entry *entry; /* bound when the zone is mapped; NULL: the table is full */
    OCSP_CERTID *id;
    STACK_OF(X509) * chain; /* the server's (its SSL_CTX owns it) */
    X509_STORE *store;      /* NULL: no verification */
    const char *url, *host, *port;
    char *request; /* the whole HTTP request, head and DER body */
    size_t request_len;
    struct staple *next; /* in the registry */
};

/* A server's stapling: its certificates (owned by its SSL_CTX) and their staples. */
struct ssl_stapling {
    int n;
    X509 *certs[CERTS_MAX];
    struct staple *staples[CERTS_MAX];
};

/* Every fetched staple of a configuration, deduplicated by key: the zone's context. */
struct registry {
    struct staple *list;
};

/* The helper's fetching of one staple. */
struct fetch {
    struct pt_timer timer; /* the next fetch */
    struct staple *st;
    struct pt_http_client http; /* the running fetch (its own timer is the timeout) */
    char *buf;                  /* the response being read */
    unsigned retry_s;           /* wait after the next failure */
};

/* Formats OpenSSL's last error (or <fallback>) into <buf>, and clears the queue. */
static const char *ssl_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "%s", fallback);
    ERR_clear_error();
    return buf;
}

/* --- the zone --- */

/* The entry of <key> in <root>, claimed for this configuration: an existing one, a new one,
 * or failing those one that no configuration has named since the previous one (its workers
 * may still read it, but they check the key first).  Called under the zone's lock. */
static struct zone_entry *bind_entry(struct pt_shm_zone *z, struct zone_root *root,
                                     const unsigned char *key)
{
    struct zone_entry *e, *stale = NULL;

    for (uint32_t i = 0; i < root->nentries; i++) {
        e = &root->entries[i];
        if (memcmp(e->key, key, KEY_LEN) == 0) {
            e->bound = root->binds;
            return e;
        }
        if (e->bound != root->binds && (stale == NULL || e->bound < stale->bound))
            stale = e;
    }
    if (root->nentries < ENTRIES_MAX)
        e = &root->entries[root->nentries++];
    else if ((e = stale) != NULL)
        pt_slab_free_locked(z->pool, pt_shm_ptr(z, e->der_off));
    else
        return NULL;
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, KEY_LEN);
    e->bound = root->binds;
    return e;
}

/* Runs in the master once the zone is mapped: points every staple at its entry. */
static int zone_init(struct pt_shm_zone *zone, int reused)
{
    struct registry *reg = zone->ctx;
    struct pt_shmtx *mtx = pt_slab_lock(zone->pool);
    struct zone_root *root = reused ? pt_shm_root(zone) : NULL;

    /* Locked: the workers of the previous configuration may be reading. */
    if (pt_shmtx_lock(mtx) == PT_ERROR)
        return PT_ERROR;
    if (root == NULL && (root = pt_slab_alloc_locked(zone->pool, sizeof(*root))) != NULL)
        pt_shm_set_root(zone, root);
    if (root == NULL) {
        pt_shmtx_unlock(mtx);
        return PT_ERROR;
    }
    root->binds++;
    for (struct staple *st = reg->list; st; st = st->next) {
        st->entry = bind_entry(zone, root, st->key);
        if (st->entry == NULL)
            pt_log(PT_LOG_WARN,
                   "ssl_stapling: more than %d certificates to staple, certificate \"%s\" "
                   "is not stapled",
                   ENTRIES_MAX, st->name);
    }
    pt_shmtx_unlock(mtx);
    return PT_OK;
}

/* In a worker: a copy of <st>'s current response, allocated with OPENSSL_malloc (the SSL
 * takes it), or NULL when there is none to staple. */
static unsigned char *copy_response(const struct staple *st, size_t *len)
{
    struct pt_shmtx *mtx;
    const struct zone_entry *e = st->entry;
    unsigned char *out = NULL;

    if (st->der) {
        *len = st->der_len;
        return OPENSSL_memdup(st->der, st->der_len);
    }
    if (e == NULL)
        return NULL;
    mtx = pt_slab_lock(st->zone->pool);
    if (pt_shmtx_lock(mtx) == PT_ERROR)
        return NULL;
    /* The key is checked because a newer configuration may have taken the entry over. */
    if (memcmp(e->key, st->key, KEY_LEN) == 0 && e->der_len && e->valid >= pt_time_sec()) {
        const void *src = pt_shm_ptr(st->zone, e->der_off);
        if (src && (out = OPENSSL_malloc(e->der_len)) != NULL) {
            memcpy(out, src, e->der_len);
            *len = e->der_len;
        }
    }
    pt_shmtx_unlock(mtx);
    return out;
}

/* In the helper: replaces <st>'s response with <der>/<len>.  NULL, or why it failed. */
static const char *publish(const struct staple *st, const unsigned char *der, size_t len,
                           int64_t valid, int64_t refresh)
{
    struct pt_shmtx *mtx = pt_slab_lock(st->zone->pool);
    struct zone_entry *e = st->entry;
    const char *err = NULL;
    void *p;

    if (pt_shmtx_lock(mtx) == PT_ERROR)
        return "cannot lock the ssl_stapling zone";
    if (memcmp(e->key, st->key, KEY_LEN) != 0)
        err = "its entry was taken over by a newer configuration";
    else if ((p = pt_slab_alloc_locked(st->zone->pool, len)) == NULL)
        err = "the ssl_stapling shared memory zone is full";
    else {
        memcpy(p, der, len);
        pt_slab_free_locked(st->zone->pool, pt_shm_ptr(st->zone, e->der_off));
        e->der_off = pt_shm_off(st->zone, p);
        e->der_len = (uint32_t)len;
        e->valid = valid;
        e->refresh = refresh;
    }
    pt_shmtx_unlock(mtx);
    return err;
}

/* In the helper: seconds until <st>'s response is due (0: now, e.g. none yet). */
static int64_t due_in(const struct staple *st)
{
    struct pt_shmtx *mtx = pt_slab_lock(st->zone->pool);
    int64_t due = 0;

    if (pt_shmtx_lock(mtx) == PT_ERROR)
        return 0;
    if (memcmp(st->entry->key, st->key, KEY_LEN) == 0 && st->entry->der_len)
        due = st->entry->refresh - pt_time_sec();
    pt_shmtx_unlock(mtx);
    return due > 0 ? due : 0;
}

/* --- the worker's side --- */

/* OpenSSL's status callback, called once the certificate is chosen, only when the client
 * asked for a status: staples the response of that certificate, if there is one. */
static int status_cb(SSL *ssl, void *arg)
{
    const struct ssl_stapling *sp = arg;
    X509 *cert = SSL_get_certificate(ssl);
    unsigned char *der;
    size_t len = 0;

    for (int i = 0; i < sp->n; i++) {
        if (sp->certs[i] != cert)
            continue;
        der = copy_response(sp->staples[i], &len);
        if (der == NULL)
            return SSL_TLSEXT_ERR_NOACK;
        if (SSL_set_tlsext_status_ocsp_resp(ssl, der, (long)len) != 1) {
            OPENSSL_free(der);
            return SSL_TLSEXT_ERR_NOACK;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* --- checking a response --- */

static int64_t asn1_time_s(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return VALID_FOREVER;
    return (int64_t)timegm(&tm);
}

/* Checks the OCSP response in <basic> for <st>'s certificate (see the top of the file).
 * Returns NULL and sets *<valid>, or why it is refused (written into <why>). */
static const char *check_basic(const struct staple *st, OCSP_BASICRESP *basic, int64_t *valid,
                               char *why, size_t whylen)
{
    ASN1_GENERALIZEDTIME *this_upd = NULL, *next_upd = NULL;
    int status = -1, reason = -1;
    char ossl[256];

    if (st->store && OCSP_basic_verify(basic, st->chain, st->store, 0) != 1) {
        snprintf(why, whylen, "the response does not verify (%s)",
                 ssl_reason(ossl, sizeof(ossl), "no reason given"));
        return why;
    }
    if (OCSP_resp_find_status(basic, st->id, &status, &reason, NULL, &this_upd, &next_upd) != 1)
        return "the response has no status for this certificate";
    if (st->store && status != V_OCSP_CERTSTATUS_GOOD) {
        snprintf(why, whylen, "certificate status \"%s\" in the response",
                 OCSP_cert_status_str(status));
        return why;
    }
    if (OCSP_check_validity(this_upd, next_upd, SKEW_S, -1) != 1) {
        ERR_clear_error();
        return "the response is outdated (thisUpdate or nextUpdate)";
    }
    *valid = asn1_time_s(next_upd);
    return NULL;
}

/* Checks the DER OCSP response <der>/<len> for <st>'s certificate.  Returns NULL and sets
 * *<valid> (until when it may be stapled), or why it is refused. */
static const char *check_response(const struct staple *st, const unsigned char *der, size_t len,
                                  int64_t *valid, char *why, size_t whylen)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *basic = NULL;
    const char *err = NULL;
    int status;

    if (resp == NULL)
        err = "not a DER OCSP response";
    else if ((status = OCSP_response_status(resp)) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(why, whylen, "responder status \"%s\"", OCSP_response_status_str(status));
        err = why;
    } else if ((basic = OCSP_response_get1_basic(resp)) == NULL)
        err = "not a basic OCSP response";
    else
        err = check_basic(st, basic, valid, why, whylen);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return err;
}

/* --- the helper: fetching --- */

static void fetch_start(struct fetch *f);

static void fetch_close(struct fetch *f)
{
    free(f->buf);
    f->buf = NULL;
}

static void fetch_failed(struct fetch *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Ends the fetch with a warning and schedules the next try, backing off. */
static void fetch_failed(struct fetch *f, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    fetch_close(f);
    pt_log(PT_LOG_WARN,
           "cannot get the OCSP response of certificate \"%s\" from %s: %s; next try in %us",
           f->st->name, f->st->url, why, f->retry_s);
    pt_timer_add(&f->timer, (uint64_t)f->retry_s * 1000);
    f->retry_s = pt_min(f->retry_s * 2, RETRY_MAX_S);
}

/* Checks and publishes the response body <der>/<len>, then schedules the next fetch. */
static void fetch_done(struct fetch *f, const unsigned char *der, size_t len)
{
    int64_t now = pt_time_sec(), valid = VALID_FOREVER, refresh;
    const char *err;
    char why[400];

    err = check_response(f->st, der, len, &valid, why, sizeof(why));
    /* Renew before it expires, but not more often than every 5 minutes, and hourly
     * whatever nextUpdate says (a revocation shows sooner). */
    refresh = valid == VALID_FOREVER ? REFRESH_MAX_S : valid - REFRESH_MIN_S - now;
    refresh = pt_max(pt_min(refresh, REFRESH_MAX_S), REFRESH_MIN_S);
    if (err == NULL)
        err = publish(f->st, der, len, valid, now + refresh);
    if (err) {
        fetch_failed(f, "%s", err);
        return;
    }
    fetch_close(f);
    f->retry_s = RETRY_FIRST_S;
    pt_log(PT_LOG_INFO, "OCSP response of certificate \"%s\" from %s stapled, next fetch in %llds",
           f->st->name, f->st->url, (long long)refresh);
    pt_timer_add(&f->timer, (uint64_t)refresh * 1000);
}

/* The Content-Type of <resp>, or an empty slice. */
static struct pt_str content_type(const struct pt_http_response *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (pt_str_ieq(resp->headers[i].name, "content-type"))
            return resp->headers[i].value;
    return PT_NULL_STR;
}

/* An exchange that brought no response: says why, in the fetcher's words. */
static void fetch_no_response(struct fetch *f, const struct pt_http_client_result *r)
{
    static const char *const what[] = {"connect", "TLS handshake", "send", "recv"};

    if (r->end == PT_HC_TIMEOUT)
        fetch_failed(f, "no complete response within %ds", FETCH_TIMEOUT_MS / 1000);
    else if (r->end == PT_HC_ERRNO)
        fetch_failed(f, "%s: %s", what[r->phase], strerror(r->err));
    else if (r->end == PT_HC_CLOSED)
        fetch_failed(f, "closed before a complete response");
    else
        fetch_failed(f, "invalid HTTP response");
}

/* The exchange ended: judges the responder's answer, whole or as far as it came. */
static void fetch_judge(void *data, const struct pt_http_client_result *r)
{
    struct fetch *f = data;
    const struct pt_http_response *resp = r->resp;
    struct pt_str type;

    if (r->end != PT_HC_RESPONSE) {
        fetch_no_response(f, r);
        return;
    }
    type = content_type(resp);
    if (r->status != 200)
        fetch_failed(f, "HTTP status %d", r->status);
    else if (type.len < 25 || strncasecmp(type.p, "application/ocsp-response", 25) != 0)
        fetch_failed(f, "Content-Type \"%.*s\" is not application/ocsp-response",
                     (int)pt_min(type.len, 64), type.p ? type.p : "");
    else if (resp->chunked)
        fetch_failed(f, "chunked response to an HTTP/1.0 request");
    else if (resp->content_length >= 0 && !r->complete)
        fetch_failed(f, "%s after %zu of %lld bytes", r->full ? "response too large" : "truncated",
                     r->body_len, (long long)resp->content_length);
    else if (r->full)
        fetch_failed(f, "response larger than %d bytes", RESPONSE_MAX);
    else
        fetch_done(f, (const unsigned char *)r->body, r->body_len);
}

static void fetch_timer(struct pt_timer *t)
{
    fetch_start(t->data);
}

/* Resolves the responder (synchronously: the helper serves no client) and starts the
 * exchange; fetch_judge() does the rest. */
static void fetch_start(struct fetch *f)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(f->st->host, f->st->port, &hints, &ai);

    if (rc != 0) {
        fetch_failed(f, "cannot resolve \"%s\": %s", f->st->host, gai_strerror(rc));
        return;
    }
    f->buf = malloc(HEAD_MAX + RESPONSE_MAX);
    if (f->buf == NULL) {
        freeaddrinfo(ai);
        fetch_failed(f, "%s", strerror(ENOMEM));
        return;
    }
    f->http = (struct pt_http_client){
        .request = f->st->request,
        .request_len = f->st->request_len,
        .buf = f->buf,
        .size = HEAD_MAX + RESPONSE_MAX,
        .head_max = HEAD_MAX,
        .timeout_ms = FETCH_TIMEOUT_MS,
        .done = fetch_judge,
        .data = f,
    };
    pt_http_client_start(&f->http, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
}

int pt_ssl_stapling_helper(struct pt_cycle *cycle)
{
    struct pt_shm_zone *z = pt_shm_zone_find(cycle->zones, ZONE_NAME);
    struct registry *reg = z ? z->ctx : NULL;
    int64_t due;

    for (struct staple *st = reg ? reg->list : NULL; st; st = st->next) {
        struct fetch *f;
        if (st->entry == NULL)
            continue;
        f = calloc(1, sizeof(*f));
        if (f == NULL)
            return PT_ERROR;
        f->st = st;
        f->timer.handler = fetch_timer;
        f->timer.data = f;
        f->retry_s = RETRY_FIRST_S;
        /* A response fetched by the previous configuration's helper is still good. */
        due = due_in(st);
        if (due)
            pt_log(PT_LOG_INFO,
                   "OCSP response of certificate \"%s\" kept from the previous helper, next "
                   "fetch in %llds",
                   st->name, (long long)due);
        pt_timer_add(&f->timer, (uint64_t)due * 1000 + 1);
    }
    return PT_OK;
}

/* --- configuration --- */

static void free_certid(void *id)
{
    OCSP_CERTID_free(id);
}

static void free_store(void *store)
{
    X509_STORE_free(store);
}

/* The ssl_certificate file whose first certificate is <cert>, for messages. */
static const char *cert_name(struct ssl_srv_conf *sc, X509 *cert)
{
    for (int i = 0; i < sc->ncerts; i++) {
        BIO *b = BIO_new_file(sc->certs[i], "r");
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        int same = x && X509_cmp(x, cert) == 0;
        X509_free(x);
        BIO_free(b);
        if (same)
            return sc->certs[i];
    }
    ERR_clear_error();
    return "?";
}

/* ssl_stapling_file: the response every certificate of <sc> staples. */
static int file_staple(struct pt_conf *cf, struct ssl_srv_conf *sc, struct staple **out)
{
    BIO *b = BIO_new_file(sc->stapling_file, "rb");
    OCSP_RESPONSE *resp = b ? d2i_OCSP_RESPONSE_bio(b, NULL) : NULL;
    struct staple *st = pt_palloc(cf->pool, sizeof(*st));
    int len = resp ? i2d_OCSP_RESPONSE(resp, NULL) : 0;
    unsigned char *p;
    char ossl[256];

    BIO_free(b);
    if (resp == NULL || len <= 0) {
        OCSP_RESPONSE_free(resp);
        return pt_conf_error_at(cf, sc->cert_setting,
                                "cannot read ssl_stapling_file \"%s\" (%s): it must hold a DER "
                                "OCSP response",
                                sc->stapling_file, ssl_reason(ossl, sizeof(ossl), "empty"));
    }
    if (st == NULL || (st->der = p = pt_palloc(cf->pool, (size_t)len)) == NULL) {
        OCSP_RESPONSE_free(resp);
        return pt_conf_error_at(cf, sc->cert_setting, "out of memory");
    }
    st->der_len = (size_t)i2d_OCSP_RESPONSE(resp, &p);
    st->name = sc->stapling_file;
    OCSP_RESPONSE_free(resp);
    *out = st;
    return PT_OK;
}

/* The store that verifies responses and finds issuers missing from the chain:
 * ssl_trusted_certificate, else the system's CAs.  Built once per server, on demand. */
static X509_STORE *trust_store(struct pt_conf *cf, struct ssl_srv_conf *sc, X509_STORE **store)
{
    char ossl[256];
    int ok;

    if (*store)
        return *store;
    *store = X509_STORE_new();
    if (*store == NULL || pt_pool_cleanup(cf->pool, free_store, *store) != PT_OK) {
        X509_STORE_free(*store);
        *store = NULL;
        pt_conf_error_at(cf, sc->cert_setting, "out of memory");
        return NULL;
    }
    ok = sc->trusted_certificate ? X509_STORE_load_file(*store, sc->trusted_certificate)
                                 : X509_STORE_set_default_paths(*store);
    if (ok != 1) {
        pt_conf_error_at(cf, sc->cert_setting, "cannot load %s \"%s\": %s",
                         sc->trusted_certificate ? "ssl_trusted_certificate" : "the system's CAs",
                         sc->trusted_certificate ? sc->trusted_certificate : "",
                         ssl_reason(ossl, sizeof(ossl), "no certificate"));
        return NULL;
    }
    return *store;
}

/* <cert>'s issuer: in <chain>, else in <store>.  NULL when not found; the caller frees it. */
static X509 *find_issuer(X509 *cert, STACK_OF(X509) * chain, X509_STORE *store)
{
    X509_STORE_CTX *xs;
    X509 *issuer = NULL;

    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        if (X509_check_issued(c, cert) == X509_V_OK && X509_up_ref(c) == 1)
            return c;
    }
    if (store == NULL || (xs = X509_STORE_CTX_new()) == NULL)
        return NULL;
    if (X509_STORE_CTX_init(xs, store, NULL, NULL) != 1 ||
        X509_STORE_CTX_get1_issuer(&issuer, xs, cert) != 1)
        issuer = NULL;
    X509_STORE_CTX_free(xs);
    ERR_clear_error();
    return issuer;
}

/* A responder's URL, "http://HOST[:PORT][/PATH]", in parts. */
struct url {
    const char *text;
    const char *host, *port, *path; /* host without the brackets of an IPv6 address */
    struct pt_str authority;        /* HOST[:PORT] as written, for the Host header */
};

static int valid_port(const char *port)
{
    size_t n = strlen(port);

    return n >= 1 && n <= 5 && strspn(port, "0123456789") == n && atoi(port) >= 1 &&
           atoi(port) <= 65535;
}

/* Splits <text> into <u> (copies in <cf>'s pool).  PT_OK, or PT_ERROR (nothing reported)
 * when it is not of that form: https:// is not supported, as in nginx. */
static int parse_url(struct pt_conf *cf, const char *text, struct url *u)
{
    const char *auth = text + 7, *end, *colon;
    size_t alen;

    for (const char *c = text; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) /* it goes into the request head */
            return PT_ERROR;
    if (strncasecmp(text, "http://", 7) != 0 || (alen = strcspn(auth, "/")) == 0)
        return PT_ERROR;
    end = auth + alen;
    u->text = text;
    u->authority = (struct pt_str){auth, alen};
    u->path = *end ? end : "/";
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL || (close + 1 < end && close[1] != ':'))
            return PT_ERROR;
        u->host = pt_pstrndup(cf->pool, auth + 1, (size_t)(close - auth - 1));
        colon = close + 1 < end ? close + 1 : NULL;
    } else {
        colon = memchr(auth, ':', alen);
        u->host = pt_pstrndup(cf->pool, auth, (size_t)((colon ? colon : end) - auth));
    }
    u->port = colon ? pt_pstrndup(cf->pool, colon + 1, (size_t)(end - colon - 1)) : "80";
    return u->host && u->host[0] && u->port && valid_port(u->port) ? PT_OK : PT_ERROR;
}

/* Sets <st>'s request to responder <u>, for its certificate id.  No nonce: as in nginx,
 * one response serves every client until it is renewed.  HTTP/1.0: the responder closes
 * the connection after its answer, which comes without chunks.  PT_OK or PT_ERROR
 * (reported). */
static int build_request(struct pt_conf *cf, struct ssl_srv_conf *sc, struct staple *st,
                         const struct url *u)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_CERTID_dup(st->id);
    size_t cap = strlen(u->path) + u->authority.len + 128;
    int len = 0, head = 0;
    unsigned char *p;

    if (req && id && OCSP_request_add0_id(req, id) != NULL) {
        id = NULL; /* the request owns it */
        len = i2d_OCSP_REQUEST(req, NULL);
    }
    OCSP_CERTID_free(id);
    if (len > 0 && (st->request = pt_palloc(cf->pool, cap + (size_t)len)) != NULL)
        head = snprintf(st->request, cap,
                        "POST %s HTTP/1.0\r\nHost: %.*s\r\n"
                        "Content-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n",
                        u->path, (int)u->authority.len, u->authority.p, len);
    if (head <= 0 || head >= (int)cap) {
        OCSP_REQUEST_free(req);
        ERR_clear_error();
        return pt_conf_error_at(cf, sc->cert_setting, "cannot build the OCSP request of \"%s\"",
                                st->name);
    }
    p = (unsigned char *)st->request + head;
    st->request_len = (size_t)head + (size_t)i2d_OCSP_REQUEST(req, &p);
    OCSP_REQUEST_free(req);
    st->url = u->text;
    st->host = u->host;
    st->port = u->port;
    return PT_OK;
}

/* Sets <u> to the responder to ask about <cert>: ssl_stapling_responder, else the first
 * OCSP URL of its authorityInfoAccess.  PT_OK; PT_DECLINED after a warning when the
 * certificate names none that portier can use; PT_ERROR (reported) when the directive is
 * invalid. */
static int responder_url(struct pt_conf *cf, struct ssl_srv_conf *sc, X509 *cert, const char *name,
                         struct url *u)
{
    STACK_OF(OPENSSL_STRING) * aia;
    const char *text = NULL;

    if (sc->stapling_responder && parse_url(cf, sc->stapling_responder, u) != PT_OK)
        return pt_conf_error_at(cf, sc->cert_setting,
                                "invalid OCSP responder \"%s\" in \"ssl_stapling_responder\": "
                                "use http://HOST[:PORT][/PATH]",
                                sc->stapling_responder);
    if (sc->stapling_responder)
        return PT_OK;
    aia = X509_get1_ocsp(cert);
    if (sk_OPENSSL_STRING_num(aia) > 0)
        text = pt_pstrdup(cf->pool, sk_OPENSSL_STRING_value(aia, 0));
    X509_email_free(aia);
    if (text == NULL)
        pt_log(PT_LOG_WARN,
               "\"ssl_stapling\" ignored for certificate \"%s\": no OCSP responder URL in the "
               "certificate (set ssl_stapling_responder)",
               name);
    else if (parse_url(cf, text, u) != PT_OK)
        pt_log(PT_LOG_WARN,
               "\"ssl_stapling\" ignored for certificate \"%s\": its OCSP responder \"%s\" is "
               "not http://HOST[:PORT][/PATH] (set ssl_stapling_responder)",
               name, text);
    else
        return PT_OK;
    return PT_DECLINED;
}

/* The key of <cert>'s response: what it was fetched with (certificate, responder,
 * verification and its CAs), so that an entry is reused only for the same thing. */
static int staple_key(X509 *cert, const char *url, const char *trusted, int verify,
                      unsigned char *key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    unsigned char v = (unsigned char)verify;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && X509_digest(cert, EVP_sha256(), md, &n) == 1 &&
             EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(m, md, n) == 1 &&
             EVP_DigestUpdate(m, url, strlen(url) + 1) == 1 &&
             EVP_DigestUpdate(m, trusted ? trusted : "", strlen(trusted ? trusted : "") + 1) == 1 &&
             EVP_DigestUpdate(m, &v, 1) == 1 && EVP_DigestFinal_ex(m, key, NULL) == 1;

    EVP_MD_CTX_free(m);
    return ok ? PT_OK : PT_ERROR;
}

/* The registry of <cf>'s cycle, declaring the zone on first use. */
static struct pt_shm_zone *stapling_zone(struct pt_conf *cf)
{
    struct pt_shm_zone *z = pt_shm_zone_find(cf->cycle->zones, ZONE_NAME);
    struct registry *reg;

    if (z)
        return z;
    reg = pt_palloc(cf->pool, sizeof(*reg));
    if (reg == NULL)
        return NULL;
    cf->cycle->need_helper = 1;
    return pt_cycle_add_zone(cf->cycle, ZONE_NAME, ZONE_SIZE, ZONE_VERSION, zone_init, reg);
}

/* <cert>'s issuer, for its certificate id: in <chain>, else in the trust store.  PT_OK
 * with *<issuer> set (the caller frees it), PT_DECLINED after a warning, or PT_ERROR
 * (reported). */
static int cert_issuer(struct pt_conf *cf, struct ssl_srv_conf *sc, X509 *cert,
                       STACK_OF(X509) * chain, X509_STORE **store, X509 **issuer)
{
    /* The chain first: the trust store may have to be loaded for it. */
    if ((*issuer = find_issuer(cert, chain, NULL)) != NULL)
        return PT_OK;
    if (trust_store(cf, sc, store) == NULL)
        return PT_ERROR;
    if ((*issuer = find_issuer(cert, chain, *store)) != NULL)
        return PT_OK;
    pt_log(PT_LOG_WARN,
           "\"ssl_stapling\" ignored for certificate \"%s\": its issuer is neither in the file "
           "nor in %s",
           cert_name(sc, cert),
           sc->trusted_certificate ? "ssl_trusted_certificate" : "the system's CAs");
    return PT_DECLINED;
}

/* Adds to <reg> a copy of <proto> completed with the id of <cert> (issued by <issuer>)
 * and its request to <u>.  PT_OK or PT_ERROR (reported). */
static int add_staple(struct pt_conf *cf, struct ssl_srv_conf *sc, struct registry *reg,
                      const struct staple *proto, X509 *cert, X509 *issuer, const struct url *u)
{
    struct staple *st = pt_palloc(cf->pool, sizeof(*st));

    if (st == NULL)
        return pt_conf_error_at(cf, sc->cert_setting, "out of memory");
    *st = *proto;
    st->id = OCSP_cert_to_id(NULL, cert, issuer);
    if (st->id == NULL || pt_pool_cleanup(cf->pool, free_certid, st->id) != PT_OK) {
        OCSP_CERTID_free(st->id);
        ERR_clear_error();
        return pt_conf_error_at(cf, sc->cert_setting, "cannot make the OCSP id of \"%s\"",
                                st->name);
    }
    if (build_request(cf, sc, st, u) != PT_OK)
        return PT_ERROR;
    st->next = reg->list;
    reg->list = st;
    return PT_OK;
}

/* Fetched stapling for <cert>, the current certificate of <sc>->ctx: *<out> is its
 * staple (shared with any other server that has the same certificate and settings), or
 * NULL after a warning when it cannot be stapled.  PT_OK or PT_ERROR (reported). */
static int fetched_staple(struct pt_conf *cf, struct ssl_srv_conf *sc, X509 *cert,
                          X509_STORE **store, struct staple **out)
{
    struct staple proto = {.name = cert_name(sc, cert)};
    struct registry *reg;
    X509 *issuer = NULL;
    struct url u;
    int rc;

    *out = NULL;
    /* The current certificate's chain (or the context's extra certificates). */
    SSL_CTX_get_extra_chain_certs(sc->ctx, &proto.chain);
    rc = responder_url(cf, sc, cert, proto.name, &u);
    if (rc == PT_OK)
        rc = cert_issuer(cf, sc, cert, proto.chain, store, &issuer);
    if (rc != PT_OK)
        return rc == PT_DECLINED ? PT_OK : PT_ERROR;
    proto.zone = stapling_zone(cf);
    proto.store = sc->stapling_verify ? *store : NULL;
    reg = proto.zone ? proto.zone->ctx : NULL;
    if (reg == NULL || staple_key(cert, u.text, sc->trusted_certificate, sc->stapling_verify,
                                  proto.key) != PT_OK) {
        X509_free(issuer);
        return pt_conf_error_at(cf, sc->cert_setting, "cannot set up ssl_stapling");
    }
    for (*out = reg->list; *out && memcmp((*out)->key, proto.key, KEY_LEN) != 0;)
        *out = (*out)->next;
    if (*out == NULL && (rc = add_staple(cf, sc, reg, &proto, cert, issuer, &u)) == PT_OK)
        *out = reg->list;
    X509_free(issuer);
    return rc;
}

int pt_ssl_stapling_conf(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    struct ssl_stapling *sp;
    struct staple *file = NULL, *st;
    X509_STORE *store = NULL;

    if (!sc->stapling || sc->ctx == NULL)
        return PT_OK;
    if (sc->stapling_file && file_staple(cf, sc, &file) != PT_OK)
        return PT_ERROR;
    /* Loaded now, so that a wrong ssl_trusted_certificate fails the configuration. */
    if (file == NULL && (sc->stapling_verify || sc->trusted_certificate) &&
        trust_store(cf, sc, &store) == NULL)
        return PT_ERROR;
    sp = pt_palloc(cf->pool, sizeof(*sp));
    if (sp == NULL)
        return pt_conf_error_at(cf, sc->cert_setting, "out of memory");
    /* Every certificate (RSA, ECDSA ...): the callback staples the one OpenSSL chose. */
    for (int more = SSL_CTX_set_current_cert(sc->ctx, SSL_CERT_SET_FIRST);
         more && sp->n < CERTS_MAX; more = SSL_CTX_set_current_cert(sc->ctx, SSL_CERT_SET_NEXT)) {
        X509 *cert = SSL_CTX_get0_certificate(sc->ctx);
        st = file;
        if (st == NULL && fetched_staple(cf, sc, cert, &store, &st) != PT_OK)
            return PT_ERROR;
        if (st) {
            sp->certs[sp->n] = cert;
            sp->staples[sp->n++] = st;
        }
    }
    SSL_CTX_set_current_cert(sc->ctx, SSL_CERT_SET_FIRST);
    sc->staple = sp;
    if (sp->n) {
        SSL_CTX_set_tlsext_status_cb(sc->ctx, status_cb);
        SSL_CTX_set_tlsext_status_arg(sc->ctx, sp);
    }
    return PT_OK;
}
