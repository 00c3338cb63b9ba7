/*
 * passive.c: what the upstream module's workers read and write in a peer's shared state:
 * passive health (failures within fail_timeout), the view and runtime control of the status
 * API, and choosing a peer under the group's lock (the algorithms are in lb.c).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "worker/http.h"
#include "worker/listen.h"
#include "core/log.h"
#include "core/shmtx.h"
#include "core/times.h"
#include "modules/upstream/upstream_internal.h"
#include "worker/var.h"

#define HASH_KEY_MAX 1024 /* bytes of a hash key that count */

/* This worker's random numbers (random), seeded apart from the other workers'. */
static uint64_t rng_state;

void pt_peer_failed(struct pt_upstream *u, struct pt_peer *p)
{
    struct pt_peer_shared *s = p->shared;
    uint64_t now = pt_now_ms();
    uint32_t fails;

    if (s == NULL)
        return;
    __atomic_add_fetch(&s->total_fails, 1, __ATOMIC_RELAXED);
    /* As in nginx, a group of one server never marks it down: there is nothing else to
     * send the request to, so refusing would only turn a blip into an outage. */
    if (p->max_fails == 0 || u->npeers == 1)
        return;
    /* A window older than fail_timeout starts over.  Races between workers here can only
     * lose a count, never mark a healthy peer down.  A window started by a worker that read
     * the clock after us is ahead of our <now>: it is not old. */
    if (now > __atomic_load_n(&s->fail_start_ms, __ATOMIC_RELAXED) + (uint64_t)p->fail_timeout) {
        __atomic_store_n(&s->fail_start_ms, now, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
    }
    fails = __atomic_add_fetch(&s->fails, 1, __ATOMIC_RELAXED);
    if (fails >= (uint32_t)p->max_fails) {
        __atomic_store_n(&s->down_until_ms, now + (uint64_t)p->fail_timeout, __ATOMIC_RELAXED);
        /* It comes back when the window ends: slow start ramps from there. */
        __atomic_store_n(&s->recovered_ms, now + (uint64_t)p->fail_timeout, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
        pt_log(PT_LOG_WARN,
               "upstream %s server %s temporarily disabled for %lldms after %u failures", u->name,
               p->name, (long long)p->fail_timeout, fails);
    }
}

void pt_peer_succeeded(struct pt_peer *p)
{
    struct pt_peer_shared *s = p->shared;

    if (s && __atomic_load_n(&s->fails, __ATOMIC_RELAXED))
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
}

/* The state of <p> at <now> for the status API; *<why> gets what holds it down, else "". */
static const char *peer_state(const struct pt_peer *p, uint64_t now, const char **why)
{
    const struct pt_peer_shared *s = p->shared;
    uint32_t admin = s ? __atomic_load_n(&s->admin, __ATOMIC_RELAXED) : PT_ADMIN_NONE;
    uint32_t health = s ? __atomic_load_n(&s->health, __ATOMIC_RELAXED) : PT_HEALTH_UNKNOWN;

    *why = "";
    if (admin == PT_ADMIN_DRAIN)
        return "draining";
    if (admin == PT_ADMIN_DOWN || (p->down && admin != PT_ADMIN_UP)) {
        *why = admin == PT_ADMIN_DOWN ? "api" : "configuration";
        return "down";
    }
    if (p->checked && health == PT_HEALTH_DOWN) {
        *why = "health checks";
        return "down";
    }
    if (s && p->max_fails && __atomic_load_n(&s->down_until_ms, __ATOMIC_RELAXED) > now) {
        *why = "failures";
        return "down";
    }
    return p->checked && health == PT_HEALTH_UNKNOWN ? "checking" : "up";
}

/* The last check result of <s>, read under the helper's seqlock (health.c writes it). */
static void last_check(const struct pt_peer_shared *s, struct pt_peer_view *v)
{
    for (int i = 0; i < 100; i++) {
        uint32_t seq = __atomic_load_n(&s->check_seq, __ATOMIC_ACQUIRE);
        if (seq & 1)
            continue;
        snprintf(v->last_check, sizeof(v->last_check), "%s", s->last_check);
        v->last_check_ms = __atomic_load_n(&s->last_check_ms, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->check_seq, __ATOMIC_RELAXED) == seq)
            return;
    }
    v->last_check[0] = '\0';
    v->last_check_ms = 0;
}

void pt_peer_view(const struct pt_peer *p, uint64_t now, struct pt_peer_view *v)
{
    static const char *const health[] = {"checking", "up", "down"};
    const struct pt_peer_shared *s = p->shared;
    struct sockaddr_storage ss;
    socklen_t len;
    int32_t set = s ? __atomic_load_n(&s->admin_weight, __ATOMIC_RELAXED) : 0;
    uint64_t until = s ? __atomic_load_n(&s->down_until_ms, __ATOMIC_RELAXED) : 0;

    memset(v, 0, sizeof(*v));
    v->name = p->name;
    pt_peer_address(p, &ss, &len);
    pt_sockaddr_text((struct sockaddr *)&ss, v->address, sizeof(v->address));
    v->state = peer_state(p, now, &v->down_reason);
    v->weight = set > 0 ? set : p->weight;
    v->configured_weight = p->weight;
    v->max_conns = p->max_conns;
    v->backup = p->backup;
    v->unavailable_ms = until > now ? until - now : 0;
    v->checked = p->checked && s;
    if (s == NULL)
        return;
    v->active = __atomic_load_n(&s->conns, __ATOMIC_RELAXED);
    v->requests = __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
    v->fails = __atomic_load_n(&s->total_fails, __ATOMIC_RELAXED);
    if (!v->checked)
        return;
    v->health = health[__atomic_load_n(&s->health, __ATOMIC_RELAXED) % 3];
    v->checks = __atomic_load_n(&s->checks, __ATOMIC_RELAXED);
    v->checks_failed = __atomic_load_n(&s->checks_failed, __ATOMIC_RELAXED);
    v->passes_in_a_row = __atomic_load_n(&s->check_passes, __ATOMIC_RELAXED);
    v->fails_in_a_row = __atomic_load_n(&s->check_fails, __ATOMIC_RELAXED);
    last_check(s, v);
}

void pt_peer_control(struct pt_peer *p, int admin, int weight)
{
    struct pt_peer_shared *s = p->shared;

    if (s == NULL)
        return;
    if (admin >= 0) {
        uint32_t was = __atomic_exchange_n(&s->admin, (uint32_t)admin, __ATOMIC_RELAXED);
        /* Back from down: slow start ramps from now, as after any recovery. */
        if ((was == PT_ADMIN_DOWN || was == PT_ADMIN_DRAIN) && admin != (int)was)
            __atomic_store_n(&s->recovered_ms, pt_now_ms(), __ATOMIC_RELAXED);
    }
    if (weight >= 0)
        __atomic_store_n(&s->admin_weight, weight, __ATOMIC_RELAXED);
}

struct pt_peer *pt_upstream_choose(struct pt_upstream *u, struct pt_request *r, uint64_t tried)
{
    struct pt_lb_pick k = {.peers = u->peers,
                           .npeers = u->npeers,
                           .tried = tried,
                           .now = pt_now_ms(),
                           .rng = &rng_state};
    uint8_t addr[16];
    char key[HASH_KEY_MAX];
    struct pt_peer *p;
    int locked;

    if (r && u->lb.method == PT_LB_IP_HASH) {
        k.addrlen = pt_lb_ip_bytes((struct sockaddr *)&r->c->peer, addr);
        k.addr = addr;
    } else if (r && u->lb.method == PT_LB_HASH) {
        k.key = (struct pt_str){key, pt_template_render(r, u->hash, key, sizeof(key))};
    }
    /* One lock per group makes the shared round-robin weights one sequence.  Were it lost,
     * choosing unlocked still gives a live peer, only a less even spread. */
    locked = u->npeers > 1 && u->lock && pt_shmtx_lock(u->lock) != PT_ERROR;
    p = pt_lb_choose(&u->lb, &k);
    if (locked)
        pt_shmtx_unlock(u->lock);
    return p;
}

void pt_upstream_seed(struct pt_cycle *cycle)
{
    rng_state = ((uint64_t)getpid() << 32) ^ pt_now_ms() ^ (uint64_t)(uintptr_t)&cycle;
}
