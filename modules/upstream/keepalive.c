/*
 * keepalive.c: connections to upstream peers and each worker's keepalive pool of idle ones,
 * per group (keepalive, keepalive_timeout, keepalive_requests).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/http.h"
#include "core/times.h"
#include "modules/upstream/upstream.h"

static void idle_event(struct pt_upstream_conn *uc, unsigned events);

static void conn_event(struct pt_event *ev, unsigned events)
{
    struct pt_upstream_conn *uc = ev->data;

    /* A transport that waited for the other direction (a TLS write needing to read a
     * record first, or a read needing to flush one) can go on when that one is ready:
     * no edge of its own would come. */
    if (events & PT_EV_READ) {
        uc->readable = 1;
        if (uc->send_wants_read)
            uc->writable = 1;
        uc->send_wants_read = 0;
    }
    if (events & PT_EV_RDHUP)
        uc->rdhup = 1;
    if (events & PT_EV_WRITE) {
        uc->writable = 1;
        if (uc->recv_wants_write)
            uc->readable = 1;
        uc->recv_wants_write = 0;
    }
    uc->handler(uc, events);
}

ssize_t pt_upstream_recv(struct pt_upstream_conn *uc, char *buf, size_t len)
{
    ssize_t n;

    if (uc->io)
        return uc->io->recv(uc, buf, len);
    n = read(uc->ev.fd, buf, len);
    if (n > 0) {
        /* A short read emptied the socket: more bytes bring a new edge.  Not after the
         * peer's FIN, which no edge follows: read on to the EOF. */
        if ((size_t)n < len && !uc->rdhup)
            uc->readable = 0;
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR) {
        uc->readable = 0;
        return PT_AGAIN;
    }
    return PT_ERROR;
}

ssize_t pt_upstream_send(struct pt_upstream_conn *uc, const char *buf, size_t len)
{
    ssize_t n;

    if (uc->io)
        return uc->io->send(uc, buf, len);
    n = write(uc->ev.fd, buf, len);
    if (n >= 0) {
        if ((size_t)n < len)
            uc->writable = 0; /* the socket is full: EPOLLOUT says when it has room */
        return n;
    }
    if (errno == EAGAIN || errno == EINTR) {
        uc->writable = 0;
        return PT_AGAIN;
    }
    return PT_ERROR;
}

static void close_conn(struct pt_upstream_conn *uc)
{
    pt_timer_del(&uc->timer);
    pt_event_del(&uc->ev);
    if (uc->io)
        uc->io->close(uc);
    close(uc->ev.fd);
    uc->ev.fd = -1;
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
    }
    uc->next = NULL;
}

/* Whether an idle connection that turned readable can still carry a request: nothing is
 * there to read after all (an edge queued for data read while it was busy), or only what
 * its transport handles itself (a TLS session ticket). */
static int still_idle(struct pt_upstream_conn *uc)
{
    char byte;

    if (uc->io)
        return uc->io->idle_check(uc) == PT_OK;
    return recv(uc->ev.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* An idle pooled connection that turns readable was closed by the peer (or sent bytes
 * nobody asked for): either way it cannot be reused. */
static void idle_event(struct pt_upstream_conn *uc, unsigned events)
{
    if (!(events & (PT_EV_READ | PT_EV_ERROR)))
        return;
    if (!(events & (PT_EV_ERROR | PT_EV_RDHUP)) && still_idle(uc)) {
        uc->readable = 0;
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
            pt_timer_del(&uc->timer);
            uc->reused = 1;
            return uc;
        }
    }
    return NULL;
}

struct pt_upstream_conn *pt_upstream_connect(struct pt_upstream *u, struct pt_peer *peer, int fresh,
                                             const void *key, void *owner,
                                             void (*handler)(struct pt_upstream_conn *, unsigned))
{
    struct pt_upstream_conn *uc = fresh ? NULL : take_idle(u, peer, key);
    struct sockaddr_storage ss;
    socklen_t sslen;
    int one = 1, fd;

    if (uc == NULL) {
        uint32_t seq = pt_peer_address(peer, &ss, &sslen);
        /* Upstream connections count against worker_connections, as the client ones. */
        if (pt_conn_slot_take() != PT_OK)
            return NULL;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || (uc = calloc(1, sizeof(*uc))) == NULL) {
            int saved = fd < 0 ? errno : ENOMEM;
            if (fd >= 0)
                close(fd);
            pt_conn_slot_put();
            errno = saved;
            return NULL;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        uc->ev.fd = fd;
        uc->ev.handler = conn_event;
        uc->ev.data = uc;
        uc->ups = u;
        uc->peer = peer;
        uc->addr_seq = seq;
        uc->key = key;
        if (connect(fd, (struct sockaddr *)&ss, sslen) == 0) {
            uc->connected = 1;
            uc->writable = 1;
        } else if (errno != EINPROGRESS) {
            int saved = errno;
            close(fd);
            free(uc);
            pt_conn_slot_put();
            errno = saved;
            return NULL;
        }
        if (pt_event_add(&uc->ev, 0) != PT_OK) {
            close(fd);
            free(uc);
            pt_conn_slot_put();
            return NULL;
        }
    }
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
    if (!keep || uc->rdhup || u->keepalive == 0 ||
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
    uc->timer.handler = idle_timeout;
    uc->timer.data = uc;
    uc->readable = 0;
    uc->next = u->idle;
    u->idle = uc;
    u->nidle++;
    pt_timer_add(&uc->timer, (uint64_t)u->keepalive_timeout);
}
