/*
 * lb.c: the balancing algorithms of upstream groups (see lb.h).  Each follows nginx's
 * ngx_http_upstream_*_module so that a configuration moved from nginx balances the same
 * way, with one difference: the state they step lives in shared memory, so the workers
 * together behave as one balancer instead of N independent ones.
 */
#include "modules/upstream/lb.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t crc_update(uint32_t crc, const void *data, size_t len);

/* The load of a peer: conns / weight, compared by cross-multiplying. */
struct load {
    int64_t conns, weight;
};

static int64_t shared_conns(const struct pt_peer *p)
{
    return p->shared ? __atomic_load_n(&p->shared->conns, __ATOMIC_RELAXED) : 0;
}

int pt_lb_usable(const struct pt_peer *p, uint64_t now)
{
    const struct pt_peer_shared *s = p->shared;
    uint32_t admin = s ? __atomic_load_n(&s->admin, __ATOMIC_RELAXED) : PT_ADMIN_NONE;

    if (admin == PT_ADMIN_DOWN || admin == PT_ADMIN_DRAIN || (p->down && admin != PT_ADMIN_UP))
        return 0;
    if (s && p->checked) {
        uint32_t h = __atomic_load_n(&s->health, __ATOMIC_RELAXED);
        if (h == PT_HEALTH_DOWN || (h == PT_HEALTH_UNKNOWN && p->mandatory))
            return 0;
    }
    if (s && p->max_fails && __atomic_load_n(&s->down_until_ms, __ATOMIC_RELAXED) > now)
        return 0;
    if (p->max_conns && shared_conns(p) >= p->max_conns)
        return 0;
    return 1;
}

int64_t pt_lb_weight(const struct pt_peer *p, uint64_t now)
{
    int32_t set = p->shared ? __atomic_load_n(&p->shared->admin_weight, __ATOMIC_RELAXED) : 0;
    int64_t w = (int64_t)(set > 0 ? set : p->weight) * PT_LB_SCALE;
    uint64_t since;

    if (p->slow_start <= 0 || p->shared == NULL)
        return w;
    since = __atomic_load_n(&p->shared->recovered_ms, __ATOMIC_RELAXED);
    if (since == 0 || now >= since + (uint64_t)p->slow_start)
        return w;
    /* At least 1: a recovering peer alone in its group must still be chosen. */
    if (now <= since)
        return 1;
    w = w * (int64_t)(now - since) / p->slow_start;
    return w > 0 ? w : 1;
}

static int tried(const struct pt_lb_pick *k, int i)
{
    return (k->tried >> (i % 64)) & 1;
}

static int candidate(const struct pt_lb_pick *k, int i, int backup)
{
    const struct pt_peer *p = &k->peers[i];

    return p->backup == (unsigned)backup && !tried(k, i) && pt_lb_usable(p, k->now);
}

static struct load load_of(const struct pt_lb_pick *k, int i)
{
    return (struct load){shared_conns(&k->peers[i]), pt_lb_weight(&k->peers[i], k->now)};
}

/* a < b, i.e. a.conns / a.weight < b.conns / b.weight */
static int lighter(struct load a, struct load b)
{
    return a.conns * b.weight < b.conns * a.weight;
}

static int same_load(struct load a, struct load b)
{
    return a.conns * b.weight == b.conns * a.weight;
}

/*
 * Smooth weighted round robin over the candidates of tier <backup> (only those as loaded
 * as *<only> when it is not NULL): every one gains its weight, the richest is chosen and
 * pays the total back.  For weights 5, 1, 1 that gives a a b a c a a, spread rather than
 * in bursts.  The current weights are shared, so the workers step one sequence.
 */
static struct pt_peer *round_robin(const struct pt_lb_pick *k, int backup, const struct load *only)
{
    struct pt_peer_shared *best = NULL;
    int64_t total = 0;
    int besti = -1;

    for (int i = 0; i < k->npeers; i++) {
        struct pt_peer_shared *s = k->peers[i].shared;
        int64_t w;
        if (!candidate(k, i, backup) || (only && !same_load(load_of(k, i), *only)))
            continue;
        w = pt_lb_weight(&k->peers[i], k->now);
        s->current_weight += w;
        total += w;
        if (best == NULL || s->current_weight > best->current_weight) {
            best = s;
            besti = i;
        }
    }
    if (best == NULL)
        return NULL;
    best->current_weight -= total;
    return &k->peers[besti];
}

/* nginx's least_conn: the fewest active connections per weight, all workers counted;
 * among equals, round robin. */
static struct pt_peer *least_conn(const struct pt_lb_pick *k, int backup)
{
    struct load best = {0, 0};
    int found = 0;
    struct pt_peer *p;

    for (int i = 0; i < k->npeers; i++) {
        struct load l;
        if (!candidate(k, i, backup))
            continue;
        l = load_of(k, i);
        if (!found || lighter(l, best))
            best = l;
        found = 1;
    }
    if (!found)
        return NULL;
    p = round_robin(k, backup, &best);
    /* Counts move outside the lock: if the lightest changed meanwhile, any candidate. */
    return p ? p : round_robin(k, backup, NULL);
}

/* The primary peer that weight unit <w> (below the primaries' total) falls on, nginx's
 * walk: peers own consecutive ranges of units in configuration order. */
static int peer_at(const struct pt_lb_pick *k, uint64_t w)
{
    for (int i = 0; i < k->npeers; i++) {
        const struct pt_peer *p = &k->peers[i];
        if (p->backup)
            continue;
        if (w < (uint64_t)p->weight)
            return i;
        w -= (uint64_t)p->weight;
    }
    return -1;
}

static uint64_t primary_weight(const struct pt_lb_pick *k)
{
    uint64_t total = 0;

    for (int i = 0; i < k->npeers; i++)
        if (!k->peers[i].backup)
            total += (uint64_t)k->peers[i].weight;
    return total;
}

/* nginx's ip_hash: the address bytes folded into a hash modulo 6271, spread over the
 * configured weights (not the slow-start ones: the mapping must not move), rehashed
 * from where it was when the peer is not a candidate. */
static struct pt_peer *ip_hash(const struct pt_lb_pick *k)
{
    uint64_t total = primary_weight(k);
    uint32_t hash = 89;

    if (k->addrlen == 0 || total == 0)
        return NULL;
    for (int t = 0; t < PT_LB_TRIES; t++) {
        int i;
        for (size_t j = 0; j < k->addrlen; j++)
            hash = (hash * 113 + k->addr[j]) % 6271;
        i = peer_at(k, hash % total);
        if (i >= 0 && candidate(k, i, 0))
            return &k->peers[i];
    }
    return NULL;
}

/* nginx's hash (compatible with Cache::Memcached): the sum of
 * ((crc32([REHASH] KEY) >> 16) & 0x7fff) over the probes, modulo the total weight. */
static struct pt_peer *hash_modulo(const struct pt_lb_pick *k)
{
    uint64_t total = primary_weight(k), hash = 0;

    if (total == 0 || k->key.p == NULL)
        return NULL;
    for (int t = 0; t < PT_LB_TRIES; t++) {
        char rehash[16];
        int n = t ? snprintf(rehash, sizeof(rehash), "%d", t) : 0, i;
        uint32_t crc = crc_update(0xffffffffu, rehash, (size_t)n);
        crc = crc_update(crc, k->key.p, k->key.len) ^ 0xffffffffu;
        hash += (crc >> 16) & 0x7fff;
        i = peer_at(k, hash % total);
        if (i >= 0 && candidate(k, i, 0))
            return &k->peers[i];
    }
    return NULL;
}

/* The first point at or after <hash>, wrapping round. */
static uint32_t ring_find(const struct pt_lb *lb, uint32_t hash)
{
    uint32_t lo = 0, hi = lb->npoints;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lb->points[mid].hash < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo % lb->npoints;
}

/* Consistent hash: the key's point on the ring, then the next points while their peer is
 * not a candidate, so that a peer going away moves only its own keys. */
static struct pt_peer *hash_ring(const struct pt_lb *lb, const struct pt_lb_pick *k)
{
    uint32_t at;

    if (lb->npoints == 0 || k->key.p == NULL)
        return NULL;
    at = ring_find(lb, pt_lb_crc32(k->key.p, k->key.len));
    for (int t = 0; t < PT_LB_TRIES; t++) {
        uint32_t i = lb->points[(at + (uint32_t)t) % lb->npoints].peer;
        if ((int)i < k->npeers && candidate(k, (int)i, 0))
            return &k->peers[i];
    }
    return NULL;
}

/* A candidate of tier <backup> other than <skip>, at random in proportion to weight. */
static int random_peer(const struct pt_lb_pick *k, int backup, int skip)
{
    int64_t total = 0, x;

    for (int i = 0; i < k->npeers; i++)
        if (i != skip && candidate(k, i, backup))
            total += pt_lb_weight(&k->peers[i], k->now);
    if (total == 0)
        return -1;
    x = (int64_t)(pt_lb_random(k->rng) % (uint64_t)total);
    for (int i = 0; i < k->npeers; i++) {
        if (i == skip || !candidate(k, i, backup))
            continue;
        x -= pt_lb_weight(&k->peers[i], k->now);
        if (x < 0)
            return i;
    }
    return -1;
}

/* nginx's random [two]: weighted random; with two, of two different random candidates
 * the one with fewer active connections per weight (all workers counted). */
static struct pt_peer *random_two(const struct pt_lb *lb, const struct pt_lb_pick *k, int backup)
{
    int a = random_peer(k, backup, -1), b;

    if (a < 0)
        return NULL;
    if (!lb->two || (b = random_peer(k, backup, a)) < 0)
        return &k->peers[a];
    return lighter(load_of(k, b), load_of(k, a)) ? &k->peers[b] : &k->peers[a];
}

/* The methods that apply to backups too (nginx's hashes have no backups: their fallback,
 * round robin, reaches them). */
static struct pt_peer *by_tier(const struct pt_lb *lb, const struct pt_lb_pick *k, int backup)
{
    switch (lb->method) {
    case PT_LB_LEAST_CONN: return least_conn(k, backup);
    case PT_LB_RANDOM: return random_two(lb, k, backup);
    default: return round_robin(k, backup, NULL);
    }
}

struct pt_peer *pt_lb_choose(const struct pt_lb *lb, const struct pt_lb_pick *k)
{
    struct pt_peer *p = NULL;

    /* One peer: nothing to decide, and no shared state to decide with. */
    if (k->npeers == 1)
        return !tried(k, 0) && pt_lb_usable(&k->peers[0], k->now) ? &k->peers[0] : NULL;
    if (lb->method == PT_LB_IP_HASH)
        p = ip_hash(k);
    else if (lb->method == PT_LB_HASH)
        p = lb->consistent ? hash_ring(lb, k) : hash_modulo(k);
    if (p)
        return p;
    p = by_tier(lb, k, 0);
    return p ? p : by_tier(lb, k, 1);
}

/* --- the ring --- */

uint32_t pt_lb_ring_size(const struct pt_peer *peers, int npeers)
{
    uint32_t n = 0;

    for (int i = 0; i < npeers; i++)
        if (!peers[i].backup)
            n += PT_LB_POINTS * (uint32_t)peers[i].weight;
    return n;
}

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int j = 0; j < 8; j++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* Runs <crc> (not yet inverted at the end) over <len> bytes at <data>. */
static uint32_t crc_update(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *b = data;

    if (crc_table[1] == 0)
        crc_init();
    while (len--)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t pt_lb_crc32(const void *data, size_t len)
{
    return crc_update(0xffffffffu, data, len) ^ 0xffffffffu;
}

static int point_cmp(const void *a, const void *b)
{
    const struct pt_lb_point *x = a, *y = b;

    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->peer > y->peer) - (x->peer < y->peer);
}

/* nginx's ring: a base CRC of "host\0port", and each point the CRC of the base followed by
 * the previous point's hash (little-endian). */
static uint32_t add_points(struct pt_lb_point *at, const struct pt_peer *p, uint32_t index)
{
    const char *colon = strrchr(p->name, ':');
    size_t hostlen = colon ? (size_t)(colon - p->name) : strlen(p->name);
    uint32_t base = crc_update(0xffffffffu, p->name, hostlen), prev = 0;
    uint32_t n = PT_LB_POINTS * (uint32_t)p->weight;

    base = crc_update(base, "", 1);
    if (colon)
        base = crc_update(base, colon + 1, strlen(colon + 1));
    for (uint32_t j = 0; j < n; j++) {
        uint8_t le[4] = {(uint8_t)prev, (uint8_t)(prev >> 8), (uint8_t)(prev >> 16),
                         (uint8_t)(prev >> 24)};
        prev = crc_update(base, le, 4) ^ 0xffffffffu;
        at[j] = (struct pt_lb_point){prev, index};
    }
    return n;
}

uint32_t pt_lb_ring_build(struct pt_lb_point *points, const struct pt_peer *peers, int npeers)
{
    uint32_t n = 0, kept = 0;

    for (int i = 0; i < npeers; i++)
        if (!peers[i].backup)
            n += add_points(points + n, &peers[i], (uint32_t)i);
    qsort(points, n, sizeof(*points), point_cmp);
    /* Two peers on one hash: the first keeps it, so every process agrees. */
    for (uint32_t i = 0; i < n; i++)
        if (kept == 0 || points[i].hash != points[kept - 1].hash)
            points[kept++] = points[i];
    return kept;
}

size_t pt_lb_ip_bytes(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 3);
        return 3;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: the same /24. */
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(out, &a->s6_addr[12], 3);
            return 3;
        }
        memcpy(out, a->s6_addr, 16);
        return 16;
    }
    return 0;
}

uint64_t pt_lb_random(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}
