/*
 * ssl_session.c: TLS session resumption shared by every worker: the session cache in a
 * shared-memory zone (ssl_session_cache "shared:NAME:SIZE"), and session ticket keys that
 * every worker agrees on, read from files (ssl_session_ticket_key) or made by the master
 * in a zone and rotated by the helper process.
 *
 * Session cache.  One zone per NAME (servers naming the same NAME share it) holds the DER
 * of each session under its id, in a hash table and on a list in the order they were
 * stored.  Storing a session first drops two expired ones, then, while the zone is full,
 * the oldest.  Sessions over 4 KiB are not stored (as in nginx: client certificate chains).
 * The zone outlives reloads and binary upgrades, so clients resume across them.
 *
 * Session id context.  A server's is a SHA-256 over its certificate files, its CA files
 * and its ssl_verify_client: the same in every worker and across reloads of the same
 * files, different between servers with different certificates, so that OpenSSL does not
 * resume on one server a session made on another (from the cache or from a ticket).
 *
 * Ticket keys without ssl_session_ticket_key: the master puts one random key in the zone
 * "ssl_ticket_keys" when it creates it, and the helper rotates them:
 *   period: the longest ssl_session_timeout of the servers using them, within [1m, 1h];
 *   kept:   the current key (which encrypts) and the ceil(timeout / period) previous ones
 *           (at most TK_MAX in all), which decrypt,
 * so a ticket issued just before a rotation stays usable for its whole lifetime.  A ticket
 * decrypted with a previous key is renewed under the current one.  Keys change under the
 * zone's lock with a generation number bumped; a worker copies them, under the lock, only
 * when the generation moved, so a handshake normally takes no lock.  Keys from files are
 * not rotated: the first file encrypts, all decrypt.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "config/conf.h"
#include "core/cycle.h"
#include "worker/event.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/shm.h"
#include "core/slab.h"
#include "modules/ssl/ssl.h"
#include "core/times.h"

#define SESS_ZONE_PREFIX  "ssl_session_cache:"
#define SESS_ZONE_VERSION 1
#define SESS_ZONE_MIN     (32 * 1024) /* nginx's minimum: 8 pages */
#define SESS_DER_MAX      4096
#define SESS_ID_MAX       32 /* SSL_MAX_SSL_SESSION_ID_LENGTH */
#define SESS_EXPIRE_BATCH 2  /* expired sessions dropped per store */
#define TK_ZONE_NAME      "ssl_ticket_keys"
#define TK_ZONE_VERSION   1
#define TK_ZONE_SIZE      (32 * 1024)
#define TK_MAX            64 /* keys kept, or ticket key files per server */
#define TK_PERIOD_MIN     (60 * 1000)
#define TK_PERIOD_MAX     (3600 * 1000)
#define TK_NAME_LEN       16
#define TK_KEYFILE_SMALL  48 /* 16 name, 16 HMAC, 16 AES-128 */
#define TK_KEYFILE_LARGE  80 /* 16 name, 32 HMAC, 32 AES-256 */

enum { CACHE_NONE, CACHE_OFF, CACHE_SHARED };

/* A ticket key, in a file, in the zone or in a worker's copy. */
struct tk_key {
    unsigned char name[TK_NAME_LEN];
    unsigned char hmac[32];
    unsigned char aes[32];
    uint32_t len; /* 16 (AES-128-CBC, 16-byte HMAC key) or 32 (AES-256-CBC) */
};

/* A set of ticket keys, [0] encrypts.  Either a server's keys from files, or the cycle's generated
 * keys (the zone's ctx), then a copy of the zone's keys in this process. */
struct ticket_keys {
    struct pt_shm_zone *zone; /* NULL: from files */
    int64_t lifetime;         /* zone: longest session timeout of the servers using it */
    uint64_t gen;             /* zone: generation of the copy below (0: none yet) */
    uint32_t nkeys;
    struct tk_key keys[TK_MAX];
};

/* Root of the ticket key zone. */
struct tk_root {
    uint64_t gen;           /* bumped under the lock whenever keys[] or nkeys change */
    uint64_t next_rotation; /* monotonic ms */
    uint64_t period;        /* ms */
    uint32_t nkeep;         /* keys kept, the current one included */
    uint32_t nkeys;
    struct tk_key keys[TK_MAX];
};

/* A server's session settings, from pt_ssl_session_conf() to the callbacks (SSL_CTX ex data). */
struct ssl_session_cache {
    int mode;                    /* CACHE_* */
    struct pt_shm_zone *zone;    /* CACHE_SHARED: the sessions */
    struct ticket_keys *tickets; /* NULL: tickets off */
};

/* A stored session.  Links are zone offsets (0: none). */
struct sess_entry {
    uint64_t hnext;      /* next in its hash chain */
    uint64_t prev, next; /* on the list, oldest first */
    uint64_t expire;     /* monotonic ms */
    uint32_t hash;
    uint16_t der_len;
    uint8_t id_len;
    uint8_t id[SESS_ID_MAX];
    unsigned char der[];
};

/* Root of a session cache zone. */
struct sess_root {
    uint64_t head, tail; /* oldest, newest */
    uint32_t count;
    uint32_t nbuckets; /* a power of two */
    uint64_t buckets[];
};

static int ex_index = -1;        /* SSL_CTX ex data slot of struct ssl_session_cache */
static int sess_ex_index = -1;   /* SSL_SESSION ex data slot of the zone it is stored in */
static struct pt_timer rotation; /* in the helper */

/* --- errors and files --- */

/* Reports a configuration error of <sc> at its server's ssl_certificate (postconfig has no current
 * setting).  Returns PT_ERROR. */
static int sess_error(struct pt_conf *cf, const struct ssl_srv_conf *sc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sess_error(struct pt_conf *cf, const struct ssl_srv_conf *sc, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return pt_conf_error_at(cf, sc->cert_setting, "%s", msg);
}

/* Reads at most <cap> bytes of <path> into <buf>; *<len> gets how many.  PT_OK, or PT_ERROR with
 * errno set. */
static int read_small_file(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    int err;

    if (f == NULL)
        return PT_ERROR;
    *len = fread(buf, 1, cap, f);
    err = ferror(f) ? EIO : 0;
    fclose(f);
    errno = err;
    return err ? PT_ERROR : PT_OK;
}

/* Adds the contents of <path> to <md>.  PT_OK, or PT_ERROR with errno set. */
static int digest_file(EVP_MD_CTX *md, const char *path)
{
    unsigned char buf[8192];
    FILE *f = fopen(path, "rb");
    size_t n;
    int err = 0;

    if (f == NULL)
        return PT_ERROR;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    if (ferror(f))
        err = EIO;
    fclose(f);
    errno = err;
    return err ? PT_ERROR : PT_OK;
}

/* --- the session cache in shared memory --- */

static uint32_t sess_hash(const unsigned char *id, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h;
}

static struct sess_entry *entry_at(struct pt_shm_zone *z, uint64_t off)
{
    return pt_shm_ptr(z, off);
}

/* Forgets every session: after a process died holding the lock, the lists may be half updated.  The
 * walk is bounded, and the slab ignores what is not a live allocation, so a broken link costs at
 * worst a leaked entry. */
static void sess_reset(struct pt_shm_zone *z, struct sess_root *r)
{
    uint64_t off = r->head;
    size_t steps = z->size / sizeof(struct sess_entry) + 1;

    while (off != 0 && steps-- > 0) {
        struct sess_entry *e = entry_at(z, off);
        if (e == NULL)
            break;
        off = e->next;
        pt_slab_free_locked(z->pool, e);
    }
    memset(r->buckets, 0, r->nbuckets * sizeof(r->buckets[0]));
    r->head = r->tail = 0;
    r->count = 0;
}

/* Takes the lock of the cache in <z> and returns its root, or NULL (nothing held). */
static struct sess_root *sess_lock(struct pt_shm_zone *z)
{
    struct sess_root *r = pt_shm_root(z);
    int rc;

    if (r == NULL)
        return NULL;
    rc = pt_shmtx_lock(pt_slab_lock(z->pool));
    if (rc == PT_ERROR)
        return NULL;
    if (rc == PT_SHMTX_RECOVERED) {
        pt_log(PT_LOG_WARN,
               "ssl session cache \"%s\": a process died holding its lock, "
               "sessions dropped",
               z->name);
        sess_reset(z, r);
    }
    return r;
}

static void sess_unlock(struct pt_shm_zone *z)
{
    pt_shmtx_unlock(pt_slab_lock(z->pool));
}

/* Finds the session <id> in <r>; *<link> (if not NULL) receives the offset field that points to
 * it. */
static struct sess_entry *sess_find(struct pt_shm_zone *z, struct sess_root *r,
                                    const unsigned char *id, size_t len, uint64_t **link)
{
    uint32_t h = sess_hash(id, len);
    uint64_t *l = &r->buckets[h & (r->nbuckets - 1)];
    struct sess_entry *e;

    for (; (e = entry_at(z, *l)) != NULL; l = &e->hnext) {
        if (e->hash == h && e->id_len == len && memcmp(e->id, id, len) == 0) {
            if (link != NULL)
                *link = l;
            return e;
        }
    }
    return NULL;
}

/* Unlinks <e> from <r> and frees it; the caller holds the lock. */
static void sess_drop(struct pt_shm_zone *z, struct sess_root *r, struct sess_entry *e)
{
    uint64_t *link;
    struct sess_entry *prev = entry_at(z, e->prev), *next = entry_at(z, e->next);

    if (sess_find(z, r, e->id, e->id_len, &link) == e)
        *link = e->hnext;
    if (prev)
        prev->next = e->next;
    else
        r->head = e->next;
    if (next)
        next->prev = e->prev;
    else
        r->tail = e->prev;
    r->count--;
    pt_slab_free_locked(z->pool, e);
}

/* Drops up to <max> expired sessions from the old end of the list, where they are. */
static void sess_expire(struct pt_shm_zone *z, struct sess_root *r, uint64_t now, int max)
{
    struct sess_entry *e;

    while (max-- > 0 && (e = entry_at(z, r->head)) != NULL && e->expire <= now)
        sess_drop(z, r, e);
}

/* Allocates an entry of <size> bytes, dropping the oldest sessions while the zone is full. */
static struct sess_entry *sess_alloc(struct pt_shm_zone *z, struct sess_root *r, size_t size)
{
    struct sess_entry *e, *old;

    while ((e = pt_slab_alloc_locked(z->pool, size)) == NULL) {
        if ((old = entry_at(z, r->head)) == NULL)
            return NULL;
        sess_drop(z, r, old);
    }
    return e;
}

/* Stores session <id> (DER <der> of <len> bytes) in zone <z> until <expire>. */
static void sess_store(struct pt_shm_zone *z, const unsigned char *id, size_t id_len,
                       const unsigned char *der, size_t len, uint64_t expire)
{
    struct sess_root *r = sess_lock(z);
    struct sess_entry *e, *tail;

    if (r == NULL)
        return;
    sess_expire(z, r, pt_now_ms(), SESS_EXPIRE_BATCH);
    if ((e = sess_find(z, r, id, id_len, NULL)) != NULL)
        sess_drop(z, r, e);
    e = sess_alloc(z, r, sizeof(*e) + len);
    if (e == NULL) {
        sess_unlock(z);
        return;
    }
    e->hash = sess_hash(id, id_len);
    e->id_len = (uint8_t)id_len;
    memcpy(e->id, id, id_len);
    e->der_len = (uint16_t)len;
    memcpy(e->der, der, len);
    e->expire = expire;
    e->hnext = r->buckets[e->hash & (r->nbuckets - 1)];
    r->buckets[e->hash & (r->nbuckets - 1)] = pt_shm_off(z, e);
    e->prev = r->tail;
    e->next = 0;
    if ((tail = entry_at(z, r->tail)) != NULL)
        tail->next = pt_shm_off(z, e);
    else
        r->head = pt_shm_off(z, e);
    r->tail = pt_shm_off(z, e);
    r->count++;
    sess_unlock(z);
}

/* Copies the DER of session <id> from <z> into <der> (SESS_DER_MAX bytes); returns its length, 0
 * when absent or expired (an expired one is dropped). */
static size_t sess_fetch(struct pt_shm_zone *z, const unsigned char *id, size_t id_len,
                         unsigned char *der)
{
    struct sess_root *r = sess_lock(z);
    struct sess_entry *e;
    size_t len = 0;

    if (r == NULL)
        return 0;
    e = sess_find(z, r, id, id_len, NULL);
    if (e != NULL && e->expire <= pt_now_ms()) {
        sess_drop(z, r, e);
        e = NULL;
    }
    if (e != NULL && e->der_len <= SESS_DER_MAX) {
        len = e->der_len;
        memcpy(der, e->der, len);
    }
    sess_unlock(z);
    return len;
}

/* Removes session <id> from <z> if it is there. */
static void sess_remove(struct pt_shm_zone *z, const unsigned char *id, size_t id_len)
{
    struct sess_root *r = sess_lock(z);
    struct sess_entry *e;

    if (r == NULL)
        return;
    if ((e = sess_find(z, r, id, id_len, NULL)) != NULL)
        sess_drop(z, r, e);
    sess_unlock(z);
}

/* Zone init: a fresh zone gets an empty table sized for its memory; a reused one keeps its
 * sessions. */
static int sess_zone_init(struct pt_shm_zone *z, int reused)
{
    uint32_t nbuckets = 64;
    struct sess_root *r;

    if (reused && pt_shm_root(z) != NULL)
        return PT_OK;
    /* About one bucket per 1 KiB: chains stay short with sessions of a few hundred bytes. */
    while (nbuckets < (1u << 20) && nbuckets < z->size / 1024)
        nbuckets <<= 1;
    r = pt_slab_alloc(z->pool, sizeof(*r) + nbuckets * sizeof(r->buckets[0]));
    if (r == NULL)
        return PT_ERROR;
    r->nbuckets = nbuckets;
    pt_shm_set_root(z, r);
    return PT_OK;
}

/* --- OpenSSL's session cache callbacks --- */

static struct ssl_session_cache *cache_of(SSL_CTX *ctx)
{
    return ex_index < 0 ? NULL : SSL_CTX_get_ex_data(ctx, ex_index);
}

/* The zone of the server now handling <ssl> (after SNI chose it), or NULL. */
static struct pt_shm_zone *zone_of(SSL *ssl)
{
    struct ssl_session_cache *c = cache_of(SSL_get_SSL_CTX(ssl));

    return c != NULL && c->mode == CACHE_SHARED ? c->zone : NULL;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct pt_shm_zone *z = zone_of(ssl);
    unsigned char der[SESS_DER_MAX], *p = der;
    const unsigned char *id;
    unsigned id_len;
    int len;

    if (z == NULL)
        return 0;
    /* OpenSSL reports TLS 1.3 sessions that travel in stateless tickets too: nothing to store. */
    if (SSL_version(ssl) == TLS1_3_VERSION && (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0)
        return 0;
    len = i2d_SSL_SESSION(sess, NULL);
    if (len <= 0 || len > SESS_DER_MAX) {
        pt_log_debug("ssl session of %d bytes not cached", len);
        return 0;
    }
    i2d_SSL_SESSION(sess, &p);
    id = SSL_SESSION_get_id(sess, &id_len);
    if (id_len == 0 || id_len > SESS_ID_MAX)
        return 0;
    sess_store(z, id, id_len, der, (size_t)len,
               pt_now_ms() + (uint64_t)SSL_SESSION_get_timeout(sess) * 1000);
    SSL_SESSION_set_ex_data(sess, sess_ex_index, z);
    return 0; /* no reference kept: OpenSSL frees <sess> as usual */
}

static SSL_SESSION *get_session_cb(SSL *ssl, const unsigned char *id, int id_len, int *copy)
{
    struct pt_shm_zone *z = zone_of(ssl);
    unsigned char der[SESS_DER_MAX];
    const unsigned char *p = der;
    SSL_SESSION *sess;
    size_t len;

    *copy = 0; /* the session returned is new: OpenSSL takes our reference */
    if (z == NULL || id_len <= 0 || id_len > SESS_ID_MAX)
        return NULL;
    len = sess_fetch(z, id, (size_t)id_len, der);
    sess = len ? d2i_SSL_SESSION(NULL, &p, (long)len) : NULL;
    if (sess != NULL)
        SSL_SESSION_set_ex_data(sess, sess_ex_index, z);
    return sess;
}

/* OpenSSL names the port's first context <ctx>, not the one SNI chose: the zone is the one the
 * session was stored in or fetched from. */
static void remove_session_cb(SSL_CTX *ctx, SSL_SESSION *sess)
{
    struct pt_shm_zone *z = SSL_SESSION_get_ex_data(sess, sess_ex_index);
    const unsigned char *id;
    unsigned id_len;

    pt_unused(ctx);
    if (z == NULL)
        return;
    id = SSL_SESSION_get_id(sess, &id_len);
    sess_remove(z, id, id_len);
}

/* --- ticket keys --- */

/* Splits the <len> bytes of a key file at <b> into <k> the way nginx reads them. */
static void tk_from_file(struct tk_key *k, const unsigned char *b, size_t len)
{
    k->len = len == TK_KEYFILE_LARGE ? 32 : 16;
    memcpy(k->name, b, TK_NAME_LEN);
    memcpy(k->hmac, b + TK_NAME_LEN, k->len);
    memcpy(k->aes, b + TK_NAME_LEN + k->len, k->len);
}

static void tk_cleanse(void *tk)
{
    OPENSSL_cleanse(tk, sizeof(struct ticket_keys));
}

/* Reads ssl_session_ticket_key file <path> of <sc> into <k>.  PT_OK or PT_ERROR. */
static int tk_read_file(struct pt_conf *cf, struct ssl_srv_conf *sc, const char *path,
                        struct tk_key *k)
{
    unsigned char buf[TK_KEYFILE_LARGE + 1];
    size_t len = 0;
    int rc = read_small_file(path, buf, sizeof(buf), &len);

    if (rc != PT_OK)
        sess_error(cf, sc, "cannot read \"ssl_session_ticket_key\" file \"%s\": %s", path,
                   strerror(errno));
    else if (len != TK_KEYFILE_SMALL && len != TK_KEYFILE_LARGE)
        rc = sess_error(cf, sc, "\"ssl_session_ticket_key\" file \"%s\" must be 48 or 80 bytes",
                        path);
    else
        tk_from_file(k, buf, len);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

/* Reads <sc>'s ssl_session_ticket_key files into a new set.  NULL after an error. */
static struct ticket_keys *tk_read_files(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    struct ticket_keys *tk;

    if (sc->nticket_key_files > TK_MAX) {
        sess_error(cf, sc, "\"ssl_session_ticket_key\": at most %d files", TK_MAX);
        return NULL;
    }
    tk = pt_palloc(cf->pool, sizeof(*tk));
    if (tk == NULL || pt_pool_cleanup(cf->pool, tk_cleanse, tk) != PT_OK) {
        sess_error(cf, sc, "out of memory");
        return NULL;
    }
    for (int i = 0; i < sc->nticket_key_files; i++)
        if (tk_read_file(cf, sc, sc->ticket_key_files[i], &tk->keys[tk->nkeys++]) != PT_OK)
            return NULL;
    return tk;
}

/* A fresh random AES-256 key.  PT_OK or PT_ERROR. */
static int tk_generate(struct tk_key *k)
{
    k->len = 32;
    return RAND_bytes((unsigned char *)k, offsetof(struct tk_key, len)) == 1 ? PT_OK : PT_ERROR;
}

/* Rotation period and keys kept for sessions living <lifetime> ms (see the top comment). */
static void tk_policy(int64_t lifetime, uint64_t *period, uint32_t *nkeep)
{
    uint64_t life = lifetime > 0 ? (uint64_t)lifetime : 1;
    uint64_t p = pt_min(pt_max(life, (uint64_t)TK_PERIOD_MIN), (uint64_t)TK_PERIOD_MAX);
    uint64_t keep = 1 + (life + p - 1) / p;

    *period = p;
    *nkeep = (uint32_t)pt_min(keep, (uint64_t)TK_MAX);
}

/* Takes the key zone's lock; a lock recovered from a dead holder (keys maybe half written) makes
 * the next rotation due at once.  Returns the root, or NULL. */
static struct tk_root *tk_lock(struct pt_shm_zone *z)
{
    struct tk_root *r = pt_shm_root(z);
    int rc;

    if (r == NULL || (rc = pt_shmtx_lock(pt_slab_lock(z->pool))) == PT_ERROR)
        return NULL;
    if (rc == PT_SHMTX_RECOVERED)
        r->next_rotation = 0;
    return r;
}

/* Zone init (master): a fresh zone gets one random key; a reused one keeps its keys under the
 * policy of the new configuration. */
static int tk_zone_init(struct pt_shm_zone *z, int reused)
{
    struct ticket_keys *tk = z->ctx;
    struct tk_root *r = reused ? tk_lock(z) : NULL;
    uint64_t now = pt_now_ms();

    if (r == NULL) {
        r = pt_slab_alloc(z->pool, sizeof(*r));
        if (r == NULL || tk_generate(&r->keys[0]) != PT_OK)
            return PT_ERROR;
        r->nkeys = 1;
        tk_policy(tk->lifetime, &r->period, &r->nkeep);
        r->next_rotation = now + r->period;
        __atomic_store_n(&r->gen, 1, __ATOMIC_RELEASE);
        pt_shm_set_root(z, r);
        return PT_OK;
    }
    tk_policy(tk->lifetime, &r->period, &r->nkeep);
    r->nkeys = pt_min(r->nkeys, r->nkeep);
    r->next_rotation = pt_min(r->next_rotation, now + r->period);
    __atomic_store_n(&r->gen, r->gen + 1, __ATOMIC_RELEASE);
    pt_shmtx_unlock(pt_slab_lock(z->pool));
    return PT_OK;
}

/* Brings this process's copy of the zone's keys up to date.  PT_OK or PT_ERROR. */
static int tk_refresh(struct ticket_keys *tk)
{
    struct tk_root *r;

    if (tk->zone == NULL)
        return PT_OK;
    r = pt_shm_root(tk->zone);
    if (r == NULL)
        return PT_ERROR;
    if (__atomic_load_n(&r->gen, __ATOMIC_ACQUIRE) == tk->gen)
        return PT_OK;
    if ((r = tk_lock(tk->zone)) == NULL)
        return PT_ERROR;
    tk->nkeys = pt_min(r->nkeys, (uint32_t)TK_MAX);
    memcpy(tk->keys, r->keys, tk->nkeys * sizeof(tk->keys[0]));
    tk->gen = r->gen;
    pt_shmtx_unlock(pt_slab_lock(tk->zone->pool));
    return PT_OK;
}

/* The cycle's generated keys: declares the zone with the first server that needs it. */
static struct ticket_keys *tk_shared(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    struct pt_shm_zone *z = pt_shm_zone_find(cf->cycle->zones, TK_ZONE_NAME);
    struct ticket_keys *tk = z ? z->ctx : NULL;

    if (tk == NULL) {
        tk = pt_palloc(cf->pool, sizeof(*tk));
        if (tk == NULL || pt_pool_cleanup(cf->pool, tk_cleanse, tk) != PT_OK)
            return NULL;
        z = pt_cycle_add_zone(cf->cycle, TK_ZONE_NAME, TK_ZONE_SIZE, TK_ZONE_VERSION, tk_zone_init,
                              tk);
        if (z == NULL)
            return NULL;
        tk->zone = z;
        cf->cycle->need_helper = 1; /* it rotates the keys */
    }
    tk->lifetime = pt_max(tk->lifetime, sc->session_timeout);
    return tk;
}

/* Sets up <ectx> and <hctx> for ticket key <k>, with <iv> (16 bytes).  1 or -1. */
static int tk_init_ctx(const struct tk_key *k, const unsigned char *iv, EVP_CIPHER_CTX *ectx,
                       EVP_MAC_CTX *hctx, int enc)
{
    const EVP_CIPHER *cipher = k->len == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, k->len),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };

    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    if (EVP_CipherInit_ex(ectx, cipher, NULL, k->aes, iv, enc) != 1)
        return -1;
    return 1;
}

/* OpenSSL's ticket callback: encrypts with the current key (<enc>), decrypts with the key named
 * <name> (2: renew the ticket, it was not the current key; 0: unknown key, full handshake). */
static int ticket_key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                         EVP_MAC_CTX *hctx, int enc)
{
    struct ssl_session_cache *c = cache_of(SSL_get_SSL_CTX(ssl));
    struct ticket_keys *tk = c ? c->tickets : NULL;

    /* 0 when encrypting: no ticket this time, the handshake goes on. */
    if (tk == NULL || tk_refresh(tk) != PT_OK || tk->nkeys == 0)
        return 0;
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1)
            return -1;
        memcpy(name, tk->keys[0].name, TK_NAME_LEN);
        return tk_init_ctx(&tk->keys[0], iv, ectx, hctx, 1);
    }
    for (uint32_t i = 0; i < tk->nkeys; i++) {
        if (memcmp(name, tk->keys[i].name, TK_NAME_LEN) != 0)
            continue;
        if (tk_init_ctx(&tk->keys[i], iv, ectx, hctx, 0) != 1)
            return -1;
        return i == 0 ? 1 : 2;
    }
    return 0;
}

/* Helper: makes a new encryption key when one is due, then sleeps until the next. */
static void rotation_timer(struct pt_timer *t)
{
    struct ticket_keys *tk = t->data;
    struct tk_root *r = tk_lock(tk->zone);
    uint64_t now = pt_now_ms(), wait = 1000;
    int rotated = 0, failed = 0;
    uint32_t nkeys = 0;

    if (r == NULL) {
        pt_timer_add(t, wait);
        return;
    }
    if (now >= r->next_rotation) {
        struct tk_key fresh;
        failed = tk_generate(&fresh) != PT_OK;
        if (!failed) {
            r->nkeys = pt_min(r->nkeys + 1, r->nkeep);
            memmove(&r->keys[1], &r->keys[0], (r->nkeys - 1) * sizeof(r->keys[0]));
            r->keys[0] = fresh;
            OPENSSL_cleanse(&fresh, sizeof(fresh));
            __atomic_store_n(&r->gen, r->gen + 1, __ATOMIC_RELEASE);
            r->next_rotation = now + r->period;
            rotated = 1;
        }
    }
    if (r->next_rotation > now)
        wait = pt_max(r->next_rotation - now, (uint64_t)1000);
    nkeys = r->nkeys;
    pt_shmtx_unlock(pt_slab_lock(tk->zone->pool));
    if (failed)
        pt_log(PT_LOG_ERR, "ssl session ticket key rotation: no random bytes, retrying");
    if (rotated)
        pt_log(PT_LOG_INFO,
               "ssl session ticket keys rotated: %u kept (the newest encrypts), the next "
               "rotation in %llus",
               nkeys, (unsigned long long)(wait / 1000));
    pt_timer_add(t, wait);
}

/* --- configuration --- */

/* Parses "shared:NAME:SIZE" (<v>) and declares its zone into <c>.  PT_OK or PT_ERROR. */
static int conf_shared(struct pt_conf *cf, struct ssl_srv_conf *sc, struct ssl_session_cache *c,
                       const char *v)
{
    char zname[PT_SHM_NAME_MAX];
    const char *name = v + strlen("shared:"), *colon = strrchr(name, ':');
    int64_t size;
    struct pt_shm_zone *z;

    if (colon == NULL || colon == name || pt_parse_size(colon + 1, &size) != PT_OK)
        return sess_error(cf, sc,
                          "invalid \"ssl_session_cache\" \"%s\": expected "
                          "\"shared:NAME:SIZE\" (e.g. \"shared:SSL:10m\")",
                          v);
    if (size < SESS_ZONE_MIN)
        return sess_error(cf, sc, "\"ssl_session_cache\" \"%s\": the zone must be at least 32k", v);
    if ((size_t)snprintf(zname, sizeof(zname), SESS_ZONE_PREFIX "%.*s", (int)(colon - name),
                         name) >= sizeof(zname))
        return sess_error(cf, sc, "\"ssl_session_cache\" \"%s\": the name is too long", v);
    z = pt_shm_zone_find(cf->cycle->zones, zname);
    if (z != NULL && z->size != (size_t)size)
        return sess_error(cf, sc,
                          "\"ssl_session_cache\" \"%s\": zone \"%.*s\" is already declared "
                          "with another size (%zu bytes)",
                          v, (int)(colon - name), name, z->size);
    z = pt_cycle_add_zone(cf->cycle, zname, (size_t)size, SESS_ZONE_VERSION, sess_zone_init, NULL);
    if (z == NULL)
        return sess_error(cf, sc, "cannot declare the ssl session cache zone \"%s\"", zname);
    c->mode = CACHE_SHARED;
    c->zone = z;
    return PT_OK;
}

/* Reads ssl_session_cache into <c>.  PT_OK or PT_ERROR. */
static int conf_cache(struct pt_conf *cf, struct ssl_srv_conf *sc, struct ssl_session_cache *c)
{
    const char *v = sc->session_cache ? sc->session_cache : "none";

    if (strcmp(v, "none") == 0) {
        c->mode = CACHE_NONE;
        return PT_OK;
    }
    if (strcmp(v, "off") == 0) {
        c->mode = CACHE_OFF;
        return PT_OK;
    }
    if (strncmp(v, "builtin", 7) == 0 || strstr(v, " builtin") != NULL)
        return sess_error(cf, sc,
                          "\"ssl_session_cache\" \"%s\": builtin caches are not supported "
                          "(one per worker, so clients would rarely resume): use "
                          "\"shared:NAME:SIZE\", \"none\" or \"off\"",
                          v);
    if (strncmp(v, "shared:", 7) != 0 || strchr(v, ' ') != NULL)
        return sess_error(cf, sc,
                          "invalid \"ssl_session_cache\" \"%s\": expected \"shared:NAME:SIZE\", "
                          "\"none\" or \"off\"",
                          v);
    return conf_shared(cf, sc, c, v);
}

int pt_ssl_session_conf(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    struct ssl_session_cache *c = pt_palloc(cf->pool, sizeof(*c));

    if (c == NULL)
        return sess_error(cf, sc, "out of memory");
    if (sc->session_timeout < 1000)
        return sess_error(cf, sc, "\"ssl_session_timeout\" must be at least 1s");
    if (conf_cache(cf, sc, c) != PT_OK)
        return PT_ERROR;
    if (sc->session_tickets && sc->nticket_key_files > 0) {
        if ((c->tickets = tk_read_files(cf, sc)) == NULL)
            return PT_ERROR;
    } else if (sc->session_tickets) {
        if ((c->tickets = tk_shared(cf, sc)) == NULL)
            return sess_error(cf, sc, "cannot declare the ssl ticket key zone");
    }
    sc->cache = c;
    return PT_OK;
}

/* Sets <sc>'s session id context: a SHA-256 over what makes a session valid on it. */
static int set_sid_context(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const char *cas[] = {sc->client_certificate, sc->trusted_certificate}, *bad = NULL;
    int rc = 0;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return sess_error(cf, sc, "cannot compute the ssl session id context");
    }
    EVP_DigestUpdate(ctx, "portier http", 12);
    for (int i = 0; i < sc->ncerts && bad == NULL; i++)
        if (digest_file(ctx, sc->certs[i]) != PT_OK)
            bad = sc->certs[i];
    for (int i = 0; i < 2 && bad == NULL; i++)
        if (cas[i] != NULL && digest_file(ctx, cas[i]) != PT_OK)
            bad = cas[i];
    EVP_DigestUpdate(ctx, &sc->verify_client, sizeof(sc->verify_client));
    if (bad == NULL && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1)
        rc = SSL_CTX_set_session_id_context(sc->ctx, md, pt_min(mdlen, SSL_MAX_SID_CTX_LENGTH));
    EVP_MD_CTX_free(ctx);
    if (bad != NULL)
        return sess_error(cf, sc, "cannot read \"%s\": %s", bad, strerror(errno));
    return rc == 1 ? PT_OK : sess_error(cf, sc, "cannot set the ssl session id context");
}

/* Installs the session cache of <c> on <ctx>, nginx's way. */
static void setup_cache(SSL_CTX *ctx, const struct ssl_session_cache *c)
{
    switch (c->mode) {
    case CACHE_OFF: SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); break;
    case CACHE_NONE:
        /* Clients are told sessions are resumable but nothing is stored: some clients misbehave
         * with a server that refuses resumption outright (nginx's comment on Outlook Express). */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_cache_size(ctx, 1);
        break;
    case CACHE_SHARED:
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
        SSL_CTX_sess_set_get_cb(ctx, get_session_cb);
        SSL_CTX_sess_set_remove_cb(ctx, remove_session_cb);
        break;
    }
}

int pt_ssl_session_setup(struct pt_conf *cf, struct ssl_srv_conf *sc)
{
    struct ssl_session_cache *c = sc->cache;
    int64_t secs = (sc->session_timeout + 999) / 1000;

    if (c == NULL || sc->ctx == NULL)
        return sess_error(cf, sc, "ssl sessions set up before they were configured");
    if (ex_index < 0 && (ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
        return sess_error(cf, sc, "cannot allocate SSL_CTX ex data");
    if (sess_ex_index < 0 &&
        (sess_ex_index = SSL_SESSION_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
        return sess_error(cf, sc, "cannot allocate SSL_SESSION ex data");
    if (SSL_CTX_set_ex_data(sc->ctx, ex_index, c) != 1)
        return sess_error(cf, sc, "cannot set SSL_CTX ex data");
    if (set_sid_context(cf, sc) != PT_OK)
        return PT_ERROR;
    SSL_CTX_set_timeout(sc->ctx, (long)pt_min(secs, (int64_t)INT32_MAX));
    setup_cache(sc->ctx, c);
    if (c->tickets == NULL) {
        SSL_CTX_set_options(sc->ctx, SSL_OP_NO_TICKET);
        /* TLS 1.3 would still send tickets naming a session id; with nowhere to store it, they
         * could never be used. */
        if (c->mode != CACHE_SHARED)
            SSL_CTX_set_num_tickets(sc->ctx, 0);
        return PT_OK;
    }
    SSL_CTX_clear_options(sc->ctx, SSL_OP_NO_TICKET);
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(sc->ctx, ticket_key_cb) != 1)
        return sess_error(cf, sc, "cannot set the ssl session ticket callback");
    return PT_OK;
}

int pt_ssl_session_helper(struct pt_cycle *cycle)
{
    struct pt_shm_zone *z = pt_shm_zone_find(cycle->zones, TK_ZONE_NAME);
    struct ticket_keys *tk = z ? z->ctx : NULL;
    struct tk_root *r;
    uint64_t period;
    uint32_t nkeep;

    if (tk == NULL || (r = tk_lock(z)) == NULL)
        return PT_OK;
    period = r->period;
    nkeep = r->nkeep;
    pt_shmtx_unlock(pt_slab_lock(z->pool));
    pt_log(PT_LOG_INFO, "ssl session ticket keys: rotated every %llus, %u kept",
           (unsigned long long)(period / 1000), nkeep);
    rotation.handler = rotation_timer;
    rotation.data = tk;
    pt_timer_add(&rotation, 0);
    return PT_OK;
}
