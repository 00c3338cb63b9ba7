/*
 * resolve.c: re-resolution of `resolve` servers in the helper (see resolve.h).  The
 * system's resolver is asked synchronously: the helper serves no client, so a slow answer
 * only delays its own next check.  A failed lookup keeps the last address.
 */
#include "modules/upstream/resolve.h"

#include <stdlib.h>
#include <string.h>

#include "core/cycle.h"
#include "worker/event.h"
#include "worker/listen.h"
#include "core/log.h"
#include "modules/upstream/upstream.h"

struct group_timer {
    struct pt_timer timer;
    struct pt_upstream *u;
};

/* Publishes <ss> as <p>'s address under the seqlock pt_peer_address() reads. */
static void publish(struct pt_peer_shared *s, const struct sockaddr_storage *ss, socklen_t len)
{
    __atomic_add_fetch(&s->addr_seq, 1, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(&s->addr, ss, sizeof(*ss));
    __atomic_store_n(&s->addrlen, (uint32_t)len, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->addr_seq, 1, __ATOMIC_RELEASE);
}

static void resolve_peer(struct pt_upstream *u, struct pt_peer *p)
{
    struct sockaddr_storage now, was;
    socklen_t len, was_len;
    char err[300], before[64], after[64];

    if (pt_resolve_hostport(p->host, &now, &len, err, sizeof(err)) != PT_OK) {
        pt_log(PT_LOG_WARN, "upstream %s server %s: %s; keeping its last address", u->name, p->name,
               err);
        return;
    }
    pt_peer_address(p, &was, &was_len);
    if (len == was_len && memcmp(&now, &was, len) == 0)
        return;
    pt_sockaddr_text((struct sockaddr *)&was, before, sizeof(before));
    pt_sockaddr_text((struct sockaddr *)&now, after, sizeof(after));
    publish(p->shared, &now, len);
    pt_log(PT_LOG_NOTICE, "upstream %s server %s now resolves to %s (was %s)", u->name, p->name,
           after, before);
}

static void on_timer(struct pt_timer *t)
{
    struct group_timer *g = t->data;

    for (int i = 0; i < g->u->npeers; i++)
        if (g->u->peers[i].resolve && g->u->peers[i].shared)
            resolve_peer(g->u, &g->u->peers[i]);
    pt_timer_add(&g->timer, (uint64_t)g->u->resolve_interval);
}

int pt_resolve_start(struct pt_cycle *cycle)
{
    int n;
    struct pt_upstream **ups = pt_upstream_groups(cycle, &n);

    for (int i = 0; i < n; i++) {
        struct group_timer *g;
        int any = 0;
        for (int j = 0; j < ups[i]->npeers; j++)
            any |= ups[i]->peers[j].resolve;
        if (!any)
            continue;
        g = calloc(1, sizeof(*g));
        if (g == NULL)
            return PT_ERROR;
        g->u = ups[i];
        g->timer.handler = on_timer;
        g->timer.data = g;
        /* At once: the master resolved at start, but a reload may have been long ago. */
        pt_timer_add(&g->timer, 1);
    }
    return PT_OK;
}
