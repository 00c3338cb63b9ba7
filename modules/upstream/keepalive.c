/*
 * keepalive.c: connections to upstream peers and each worker's keepalive pool of idle ones,
 * per group (keepalive, keepalive_timeout, keepalive_requests).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"
#include "core/times.h"
#include "modules/upstream/upstream.h"

static void idle_event(struct pt_upstream_conn *uc, unsigned events);

static void conn_event(struct pt_event *ev, unsigned events)
{
    struct pt_upstream_conn *uc = ev->data;

    pt_stream_ready(&uc->s, events);
    uc->handler(uc, events);
}

/* Closes <uc> (its transport says goodbye first) and gives its worker_connections slot
 * back; the memory goes at the end of the loop's round, since events of this round may
 * still name it. */
static void close_conn(struct pt_upstream_conn *uc)
{
    pt_stream_close(&uc->s);
    pt_conn_slot_put();
    pt_loop_defer_free(uc);
}

static void unlink_idle(struct pt_upstream_conn *uc)
{
    struct pt_upstream_conn **pp = &uc->ups->idle;

    while (*pp && *pp != uc)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = uc->next;
        uc->ups->nidle--;
        pt_upstream_note(uc->peer, PT_UPSTREAM_IDLE, -1, 0);
    }
    uc->next = NULL;
}

/* Whether an idle connection that turned readable can still carry a request: nothing is
 * there to read after all (an edge queued for data read while it was busy), or only what
 * its transport handles itself (a TLS session ticket). */
static int still_idle(struct pt_upstream_conn *uc)
{
    return uc->s.t->idle_check(&uc->s) == PT_OK;
}

/* An idle pooled connection that turns readable was closed by the peer (or sent bytes
 * nobody asked for): either way it cannot be reused. */
static void idle_event(struct pt_upstream_conn *uc, unsigned events)
{
    if (!(events & (PT_EV_READ | PT_EV_ERROR)))
        return;
    if (!(events & (PT_EV_ERROR | PT_EV_RDHUP)) && still_idle(uc)) {
        uc->s.readable = 0;
        return;
    }
    unlink_idle(uc);
    close_conn(uc);
}

static void idle_timeout(struct pt_timer *t)
{
    struct pt_upstream_conn *uc = t->data;

    unlink_idle(uc);
    close_conn(uc);
}

uint32_t pt_peer_address(const struct pt_peer *peer, struct sockaddr_storage *ss, socklen_t *len)
{
    const struct pt_peer_shared *s = peer->shared;
    uint32_t seq;

    if (peer->resolve && s) {
        /* A seqlock: the helper bumps addr_seq to odd, writes, bumps to even. */
        for (int i = 0; i < 100; i++) {
            seq = __atomic_load_n(&s->addr_seq, __ATOMIC_ACQUIRE);
            if (seq & 1)
                continue;
            *len = __atomic_load_n(&s->addrlen, __ATOMIC_RELAXED);
            memcpy(ss, &s->addr, sizeof(*ss));
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&s->addr_seq, __ATOMIC_RELAXED) == seq && *len)
                return seq;
            if (*len == 0)
                break;
        }
    }
    memcpy(ss, &peer->addr, sizeof(*ss));
    *len = peer->addrlen;
    return 0;
}

static struct pt_upstream_conn *take_idle(struct pt_upstream *u, struct pt_peer *peer,
                                          const void *key)
{
    uint32_t seq = 0;

    if (peer->resolve) {
        struct sockaddr_storage ss;
        socklen_t len;
        seq = pt_peer_address(peer, &ss, &len);
    }
    for (struct pt_upstream_conn *uc = u->idle; uc; uc = uc->next) {
        /* A connection made to an address the name no longer has is not reused, nor one
         * made for another transport (plain or TLS, SNI name, client certificate). */
        if (uc->peer == peer && uc->addr_seq == seq && uc->key == key) {
            unlink_idle(uc);
            pt_timer_del(&uc->s.timer);
            uc->reused = 1;
            return uc;
        }
    }
    return NULL;
}

/* A new connection to <peer> for <key>, connecting (see pt_upstream_connect), or NULL
 * with errno set. */
static struct pt_upstream_conn *new_conn(struct pt_upstream *u, struct pt_peer *peer,
                                         const void *key)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    uint32_t seq = pt_peer_address(peer, &ss, &sslen);
    struct pt_upstream_conn *uc;
    int saved;

    /* Upstream connections count against worker_connections, as the client ones. */
    if (pt_conn_slot_take() != PT_OK)
        return NULL;
    uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        pt_conn_slot_put();
        errno = ENOMEM;
        return NULL;
    }
    pt_stream_init(&uc->s, -1, conn_event, uc);
    if (pt_stream_connect(&uc->s, (struct sockaddr *)&ss, sslen) != PT_OK) {
        saved = errno; /* the caller's message says why the connect failed */
        free(uc);
        pt_conn_slot_put();
        errno = saved;
        return NULL;
    }
    uc->ups = u;
    uc->peer = peer;
    uc->addr_seq = seq;
    uc->key = key;
    return uc;
}

struct pt_upstream_conn *pt_upstream_connect(struct pt_upstream *u, struct pt_peer *peer, int fresh,
                                             const void *key, void *owner,
                                             void (*handler)(struct pt_upstream_conn *, unsigned))
{
    struct pt_upstream_conn *uc = fresh ? NULL : take_idle(u, peer, key);

    if (uc == NULL && (uc = new_conn(u, peer, key)) == NULL)
        return NULL;
    uc->owner = owner;
    uc->handler = handler;
    if (peer->shared) {
        __atomic_add_fetch(&peer->shared->conns, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&peer->shared->requests, 1, __ATOMIC_RELAXED);
    }
    return uc;
}

void pt_upstream_release(struct pt_upstream_conn *uc, int keep)
{
    struct pt_upstream *u = uc->ups;

    if (uc->peer->shared)
        __atomic_sub_fetch(&uc->peer->shared->conns, 1, __ATOMIC_RELAXED);
    uc->owner = NULL;
    uc->requests++;
    /* A connection whose FIN was already seen would only fail its next request. */
    if (!keep || uc->s.rdhup || u->keepalive == 0 ||
        uc->requests >= (unsigned)u->keepalive_requests) {
        close_conn(uc);
        return;
    }
    if (u->nidle >= u->keepalive) {
        /* The pool is full: the oldest idle connection (at the tail) makes room. */
        struct pt_upstream_conn *last = u->idle;
        while (last->next)
            last = last->next;
        unlink_idle(last);
        close_conn(last);
    }
    uc->handler = idle_event;
    uc->s.timer.handler = idle_timeout;
    uc->s.timer.data = uc;
    uc->s.readable = 0;
    uc->next = u->idle;
    u->idle = uc;
    u->nidle++;
    pt_upstream_note(uc->peer, PT_UPSTREAM_IDLE, 1, 0);
    pt_timer_add(&uc->s.timer, (uint64_t)u->keepalive_timeout);
}
