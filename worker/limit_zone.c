/*
 * limit_zone.c: the zones of limit_req_zone and limit_conn_zone: their declaration, the
 * names limits use, the key of a request, and the table of keys in shared memory.
 */
#include "worker/limit_zone.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/shm.h"
#include "core/slab.h"
#include "core/times.h"
#include "worker/var.h"

#define ZONE_PREFIX   "limit:"                /* one namespace for both directives' NAMEs */
#define ZONE_MIN      (8 * PT_SLAB_PAGE_SIZE) /* nginx's smallest zone */
#define ZONE_MAGIC    0x4c4d5a31u             /* "LMZ1" */
#define BUCKET_BYTES  256 /* a hash bucket per this much of the zone: short chains when full */
#define MIN_BUCKETS   64
#define WORDS_MAX     8
#define KEY_SHOWN_MAX 256 /* of a key too long, what the log line quotes */

/* The zone's root. */
struct limit_root {
    uint32_t magic;
    uint32_t nbuckets;   /* a power of two */
    uint64_t key_source; /* FNV-1a of the KEY as written: another KEY starts the zone empty */
    uint64_t sip[2];     /* the hash's key, drawn when the zone was made */
    uint64_t buckets;    /* offset of nbuckets offsets */
    uint64_t head, tail; /* most and least recently used */
    uint64_t nodes;
    uint32_t epoch; /* bumped when the table is emptied */
    uint32_t spare;
};

/* --- hashing --- */

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) \
    do {                         \
        v0 += v1;                \
        v1 = ROTL(v1, 13);       \
        v1 ^= v0;                \
        v0 = ROTL(v0, 32);       \
        v2 += v3;                \
        v3 = ROTL(v3, 16);       \
        v3 ^= v2;                \
        v0 += v3;                \
        v3 = ROTL(v3, 21);       \
        v3 ^= v0;                \
        v2 += v1;                \
        v1 = ROTL(v1, 17);       \
        v1 ^= v2;                \
        v2 = ROTL(v2, 32);       \
    } while (0)

/* SipHash-1-3 of <p>/<len> under <k>: keys come from clients, and a keyed hash keeps them
 * from piling up in one chain that every lookup would walk under the zone's lock. */
static uint64_t siphash13(const uint64_t k[2], const unsigned char *p, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k[0], v1 = 0x646f72616e646f6dull ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ k[0], v3 = 0x7465646279746573ull ^ k[1];
    uint64_t m, last = (uint64_t)len << 56;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | p[i + (size_t)j];
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (int j = 0; i + (size_t)j < len; j++)
        last |= (uint64_t)p[i + (size_t)j] << (8 * j);
    v3 ^= last;
    SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* --- the zone in memory --- */

static struct limit_root *root_of(const struct pt_limit_zone *lz)
{
    struct limit_root *rt;

    if (lz->shm == NULL || lz->shm->addr == NULL)
        return NULL;
    rt = pt_shm_root(lz->shm);
    return rt && rt->magic == ZONE_MAGIC ? rt : NULL;
}

static void draw_key(uint64_t k[2])
{
    if (getrandom(k, 2 * sizeof(k[0]), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(k[0])))
        return;
    /* No entropy yet (early boot): the clocks and the pid, which a client cannot read. */
    k[0] = (uint64_t)pt_time_wall_ms() ^ ((uint64_t)getpid() << 32);
    k[1] = pt_now_ms() * 0x9e3779b97f4a7c15ull;
}

static int zone_init(struct pt_shm_zone *z, int reused)
{
    struct pt_limit_zone *lz = z->ctx;
    struct limit_root *rt = reused ? root_of(lz) : NULL;
    uint64_t source = fnv1a64(lz->key_src), *b;
    uint32_t nb = MIN_BUCKETS;

    if (rt && rt->key_source == source)
        return PT_OK;
    if (rt) {
        /* nginx refuses such a reload; a fresh zone keeps both generations right (the old
         * workers keep the old one). */
        pt_log(PT_LOG_NOTICE, "%s \"%s\" now uses the key \"%s\": it starts empty",
               lz->kind->directive, lz->name, lz->key_src);
        return PT_ERROR;
    }
    while ((size_t)nb * 2 * BUCKET_BYTES <= z->size && nb < (1u << 24))
        nb *= 2;
    rt = pt_slab_alloc(z->pool, sizeof(*rt));
    b = pt_slab_alloc(z->pool, (size_t)nb * sizeof(*b));
    if (rt == NULL || b == NULL)
        return PT_ERROR;
    rt->nbuckets = nb;
    rt->buckets = pt_shm_off(z, b);
    rt->key_source = source;
    draw_key(rt->sip);
    rt->magic = ZONE_MAGIC;
    pt_shm_set_root(z, rt);
    return PT_OK;
}

static struct pt_limit_node *node_at(struct pt_limit_zone *lz, uint64_t off)
{
    return pt_shm_ptr(lz->shm, off);
}

static uint64_t *bucket_of(struct pt_limit_zone *lz, struct limit_root *rt, uint32_t hash)
{
    uint64_t *b = pt_shm_ptr(lz->shm, rt->buckets);

    return &b[hash & (rt->nbuckets - 1)];
}

static const char *node_key(const struct pt_limit_zone *lz, const struct pt_limit_node *n)
{
    return (const char *)n->state + lz->kind->state_size;
}

static void list_unlink(struct pt_limit_zone *lz, struct limit_root *rt, struct pt_limit_node *n)
{
    struct pt_limit_node *prev = node_at(lz, n->prev), *next = node_at(lz, n->next);

    if (prev)
        prev->next = n->next;
    else
        rt->head = n->next;
    if (next)
        next->prev = n->prev;
    else
        rt->tail = n->prev;
    n->prev = n->next = 0;
}

static void list_push(struct pt_limit_zone *lz, struct limit_root *rt, struct pt_limit_node *n)
{
    struct pt_limit_node *head = node_at(lz, rt->head);
    uint64_t off = pt_shm_off(lz->shm, n);

    n->prev = 0;
    n->next = rt->head;
    if (head)
        head->prev = off;
    else
        rt->tail = off;
    rt->head = off;
}

/* Empties the table after a process died holding the lock: the lists may be half updated.
 * The walk is bounded and the slab ignores what is not a live allocation, so a broken link
 * costs at worst memory left allocated. */
static void reset(struct pt_limit_zone *lz, struct limit_root *rt)
{
    size_t steps = lz->shm->size / sizeof(struct pt_limit_node) + 1;
    uint64_t off = rt->head;

    while (off != 0 && steps-- > 0) {
        struct pt_limit_node *n = node_at(lz, off);
        if (n == NULL)
            break;
        off = n->next;
        if (lz->kind->drop)
            lz->kind->drop(lz, n->state);
        pt_slab_free_locked(lz->shm->pool, n);
    }
    memset(pt_shm_ptr(lz->shm, rt->buckets), 0, (size_t)rt->nbuckets * sizeof(uint64_t));
    rt->head = rt->tail = 0;
    rt->nodes = 0;
    rt->epoch++;
}

int pt_limit_lock(struct pt_limit_zone *lz)
{
    struct limit_root *rt = root_of(lz);
    int rc;

    if (rt == NULL) {
        pt_log(PT_LOG_CRIT, "%s \"%s\" is not set up", lz->kind->directive, lz->name);
        return PT_ERROR;
    }
    rc = pt_shmtx_lock(pt_slab_lock(lz->shm->pool));
    if (rc == PT_ERROR) {
        pt_log(PT_LOG_CRIT, "%s \"%s\": cannot take its lock: %m", lz->kind->directive, lz->name);
        return PT_ERROR;
    }
    if (rc == PT_SHMTX_RECOVERED) {
        pt_log(PT_LOG_WARN, "%s \"%s\": a process died holding its lock, the zone starts empty",
               lz->kind->directive, lz->name);
        reset(lz, rt);
    }
    return PT_OK;
}

void pt_limit_unlock(struct pt_limit_zone *lz)
{
    pt_shmtx_unlock(pt_slab_lock(lz->shm->pool));
}

uint32_t pt_limit_hash(struct pt_limit_zone *lz, struct pt_str key)
{
    struct limit_root *rt = root_of(lz);

    return rt ? (uint32_t)siphash13(rt->sip, (const unsigned char *)key.p, key.len) : 0;
}

uint32_t pt_limit_epoch(struct pt_limit_zone *lz)
{
    return root_of(lz)->epoch;
}

struct pt_limit_node *pt_limit_find(struct pt_limit_zone *lz, struct pt_str key, uint32_t hash)
{
    struct limit_root *rt = root_of(lz);
    struct pt_limit_node *n;

    for (n = node_at(lz, *bucket_of(lz, rt, hash)); n; n = node_at(lz, n->hnext))
        if (n->hash == hash && n->key_len == key.len &&
            memcmp(node_key(lz, n), key.p, key.len) == 0)
            return n;
    return NULL;
}

struct pt_limit_node *pt_limit_insert(struct pt_limit_zone *lz, struct pt_str key, uint32_t hash)
{
    struct limit_root *rt = root_of(lz);
    struct pt_limit_node *n;
    uint64_t *b;

    if (key.len > UINT16_MAX)
        return NULL;
    n = pt_slab_alloc_locked(lz->shm->pool, sizeof(*n) + lz->kind->state_size + key.len);
    if (n == NULL)
        return NULL;
    n->hash = hash;
    n->key_len = (uint16_t)key.len;
    memcpy((char *)n->state + lz->kind->state_size, key.p, key.len);
    b = bucket_of(lz, rt, hash);
    n->hnext = *b;
    *b = pt_shm_off(lz->shm, n);
    list_push(lz, rt, n);
    rt->nodes++;
    return n;
}

void pt_limit_touch(struct pt_limit_zone *lz, struct pt_limit_node *n)
{
    struct limit_root *rt = root_of(lz);

    if (rt->head == pt_shm_off(lz->shm, n))
        return;
    list_unlink(lz, rt, n);
    list_push(lz, rt, n);
}

void pt_limit_remove(struct pt_limit_zone *lz, struct pt_limit_node *n)
{
    struct limit_root *rt = root_of(lz);
    uint64_t *link = bucket_of(lz, rt, n->hash), off = pt_shm_off(lz->shm, n);

    while (*link != 0 && *link != off)
        link = &node_at(lz, *link)->hnext;
    if (*link == off)
        *link = n->hnext;
    list_unlink(lz, rt, n);
    rt->nodes--;
    pt_slab_free_locked(lz->shm->pool, n);
}

struct pt_limit_node *pt_limit_oldest(struct pt_limit_zone *lz)
{
    return node_at(lz, root_of(lz)->tail);
}

struct pt_limit_node *pt_limit_newer(struct pt_limit_zone *lz, struct pt_limit_node *n)
{
    return node_at(lz, n->prev);
}

void *pt_limit_alloc(struct pt_limit_zone *lz, size_t size)
{
    return pt_slab_alloc_locked(lz->shm->pool, size);
}

void pt_limit_free(struct pt_limit_zone *lz, void *p)
{
    pt_slab_free_locked(lz->shm->pool, p);
}

uint64_t pt_limit_off(struct pt_limit_zone *lz, const void *p)
{
    return pt_shm_off(lz->shm, p);
}

void *pt_limit_ptr(struct pt_limit_zone *lz, uint64_t off)
{
    return pt_shm_ptr(lz->shm, off);
}

/* --- configuration --- */

/* Reads "zone=NAME:SIZE" <w> into *<name> and *<size>.  PT_OK or PT_ERROR (reported). */
static int parse_zone(struct pt_conf *cf, char *w, char **name, int64_t *size)
{
    char *colon = strchr(w + 5, ':');

    if (colon == NULL || pt_parse_size(colon + 1, size) != PT_OK)
        return pt_conf_error(cf, "invalid zone size \"%s\": use zone=NAME:SIZE, like zone=one:10m",
                             w);
    if (*size < ZONE_MIN)
        return pt_conf_error(cf, "zone \"%s\" is too small: at least %dk", w, ZONE_MIN / 1024);
    *colon = '\0';
    *name = w + 5;
    if (strlen(*name) >= PT_SHM_NAME_MAX - sizeof(ZONE_PREFIX) + 1)
        return pt_conf_error(cf, "zone name \"%s\" is too long: at most %zu bytes", *name,
                             PT_SHM_NAME_MAX - sizeof(ZONE_PREFIX));
    return PT_OK;
}

/* The zone named <name> that <c> declares, or NULL. */
static struct pt_limit_zone *zone_named(struct pt_cycle *c, const char *name)
{
    char full[PT_SHM_NAME_MAX];
    struct pt_shm_zone *z;

    snprintf(full, sizeof(full), "%s%s", ZONE_PREFIX, name);
    z = pt_shm_zone_find(c->zones, full);
    return z ? z->ctx : NULL;
}

/* Declares the shared memory of <lz>, named <name>, of <size> bytes.  PT_OK or PT_ERROR. */
static int add_zone(struct pt_conf *cf, struct pt_limit_zone *lz, const char *name, int64_t size)
{
    struct pt_limit_zone *other = zone_named(cf->cycle, name);
    char full[PT_SHM_NAME_MAX];

    if (other && other->kind == lz->kind)
        return pt_conf_error(cf, "%s \"%s\" is already bound to key \"%s\"", lz->kind->directive,
                             name, other->key_src);
    if (other)
        return pt_conf_error(cf,
                             "the shared memory zone \"%s\" is already declared for a different "
                             "use (by %s)",
                             name, other->kind->directive);
    lz->name = pt_pstrdup(cf->pool, name);
    snprintf(full, sizeof(full), "%s%s", ZONE_PREFIX, name);
    lz->shm = pt_cycle_add_zone(cf->cycle, full, (size_t)size, lz->kind->version, zone_init, lz);
    if (lz->name == NULL || lz->shm == NULL)
        return pt_conf_error(cf, "cannot declare the shared memory zone \"%s\"", name);
    return PT_OK;
}

int pt_limit_zone_declare(struct pt_conf *cf, const struct pt_limit_kind *kind)
{
    struct pt_limit_zone *lz = pt_palloc(cf->pool, sizeof(*lz));
    char *w[WORDS_MAX], *name = NULL;
    int64_t size = 0;
    int n = pt_conf_words(cf, cf->value, w, WORDS_MAX);

    if (lz == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n < 0)
        return PT_ERROR;
    for (int i = 1; i < n && i < WORDS_MAX; i++)
        if (strcmp(w[i], "sync") == 0)
            return pt_conf_error(cf,
                                 "\"sync\" in \"%s\" (nginx Plus's zone synchronization) is "
                                 "not supported",
                                 kind->directive);
    if (n != kind->nargs)
        return pt_conf_error(cf, "invalid number of arguments in \"%s\": use \"%s\"",
                             kind->directive, kind->usage);
    lz->kind = kind;
    lz->key_src = w[0];
    lz->rate = 1000; /* without rate=, nginx's 1r/s */
    if ((lz->key = pt_template_compile(cf, w[0], PT_ESCAPE_NONE)) == NULL)
        return PT_ERROR;
    for (int i = 1; i < n; i++) {
        int rc;
        if (strncmp(w[i], "zone=", 5) == 0) {
            if (parse_zone(cf, w[i], &name, &size) != PT_OK)
                return PT_ERROR;
            continue;
        }
        rc = kind->param ? kind->param(cf, lz, w[i]) : PT_DECLINED;
        if (rc == PT_DECLINED)
            return pt_conf_error(cf, "invalid parameter \"%s\" in \"%s\": use \"%s\"", w[i],
                                 kind->directive, kind->usage);
        if (rc != PT_OK)
            return PT_ERROR;
    }
    if (name == NULL || *name == '\0')
        return pt_conf_error(cf, "\"%s\" must have \"zone\" parameter: use \"%s\"", kind->directive,
                             kind->usage);
    return add_zone(cf, lz, name, size);
}

struct zone_ref {
    const struct pt_limit_kind *kind;
    char *name;
    struct pt_limit_zone **slot;
};

static int resolve_ref(struct pt_conf *cf, void *arg)
{
    struct zone_ref *ref = arg;
    struct pt_limit_zone *lz = zone_named(cf->cycle, ref->name);

    if (lz == NULL)
        return pt_conf_error(cf, "unknown %s zone \"%s\": declare it with %s in http",
                             ref->kind->user, ref->name, ref->kind->directive);
    if (lz->kind != ref->kind)
        return pt_conf_error(cf, "zone \"%s\" is declared by %s, not by %s", ref->name,
                             lz->kind->directive, ref->kind->directive);
    *ref->slot = lz;
    return PT_OK;
}

/* Makes *<slot> the zone of <kind> named <name> once the whole file is read. */
static int zone_ref(struct pt_conf *cf, const struct pt_limit_kind *kind, const char *name,
                    struct pt_limit_zone **slot)
{
    struct zone_ref *ref = pt_palloc(cf->pool, sizeof(*ref));

    if (ref == NULL || (ref->name = pt_pstrdup(cf->pool, name)) == NULL)
        return pt_conf_error(cf, "out of memory");
    ref->kind = kind;
    ref->slot = slot;
    return pt_conf_defer(cf, resolve_ref, ref);
}

int pt_limit_lines_add(struct pt_conf *cf, const struct pt_limit_kind *kind, const char *directive,
                       struct pt_limit_lines **lines, struct pt_limit_line *line, const char *name)
{
    struct pt_limit_lines *l = *lines;

    if (l == NULL && (l = *lines = pt_palloc(cf->pool, sizeof(*l))) == NULL)
        return pt_conf_error(cf, "out of memory");
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i]->name, name) == 0)
            return pt_conf_error(cf,
                                 "\"%s\" is duplicate: zone \"%s\" is limited already at "
                                 "this level",
                                 directive, name);
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 4;
        struct pt_limit_line **v = pt_palloc(cf->pool, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return pt_conf_error(cf, "out of memory");
        if (l->n)
            memcpy(v, l->v, (size_t)l->n * sizeof(*v));
        l->v = v;
        l->cap = cap;
    }
    if ((line->name = pt_pstrdup(cf->pool, name)) == NULL)
        return pt_conf_error(cf, "out of memory");
    l->v[l->n++] = line;
    return zone_ref(cf, kind, name, &line->zone);
}

void pt_limit_zone_each(struct pt_cycle *c, const struct pt_limit_kind *kind,
                        void (*fn)(struct pt_limit_zone *lz))
{
    for (struct pt_shm_zone *z = c->zones; z; z = z->next) {
        struct pt_limit_zone *lz = z->ctx;
        if (strncmp(z->name, ZONE_PREFIX, sizeof(ZONE_PREFIX) - 1) == 0 && lz->kind == kind)
            fn(lz);
    }
}

const struct pt_conf_enum pt_limit_log_levels[] = {{"info", PT_LOG_INFO},
                                                   {"notice", PT_LOG_NOTICE},
                                                   {"warn", PT_LOG_WARN},
                                                   {"error", PT_LOG_ERR},
                                                   {NULL, 0}};
const int64_t pt_limit_status_bounds[2] = {400, 599};

void *pt_limit_conf_create(struct pt_conf *cf)
{
    struct pt_limit_conf *c = pt_palloc(cf->pool, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->log_level = PT_CONF_UNSET;
    c->status = PT_CONF_UNSET;
    c->dry_run = PT_CONF_UNSET;
    return c;
}

int pt_limit_conf_merge(struct pt_conf *cf, void *parent, void *child)
{
    struct pt_limit_conf *p = parent, *c = child;

    pt_unused(cf);
    if (c->limits == NULL)
        c->limits = p->limits;
    pt_conf_merge_int(c->log_level, p->log_level, PT_LOG_ERR);
    pt_conf_merge_int(c->status, p->status, 503);
    pt_conf_merge_int(c->dry_run, p->dry_run, 0);
    return PT_OK;
}

/* --- requests --- */

int pt_limit_key(struct pt_request *r, const struct pt_limit_zone *lz, size_t max,
                 struct pt_str *key)
{
    if (pt_template_eval(r, lz->key, key) != PT_OK)
        return PT_ERROR;
    if (key->len == 0)
        return PT_DECLINED;
    if (key->len > max) {
        pt_http_log(r, PT_LOG_ERR, "the value of the \"%s\" key is more than %zu bytes: \"%.*s%s\"",
                    lz->key_src, max, (int)pt_min(key->len, KEY_SHOWN_MAX), key->p,
                    key->len > KEY_SHOWN_MAX ? "..." : "");
        return PT_DECLINED;
    }
    return PT_OK;
}
