/*
 * conn.c: client connections: accepting, reading request heads, keepalive, closing, and
 * draining when the worker is told to stop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core_module.h"
#include "http.h"
#include "http_req.h"
#include "listen.h"
#include "log.h"
#include "pool.h"

int (*pt_http_tls_start)(struct pt_http_conn *c);

static struct pt_http_conn *conns; /* every open client connection */
static unsigned nconns;
static int draining;

/* Connection structs are carved from blocks of CONN_BLOCK and recycled through a free
 * list, apart from the buffers and request pools.  Malloc'd one by one they would sit
 * between the blocks a burst of requests allocates and frees, and keep resident every page
 * they land on after the burst is over; packed together, 2,000 idle connections are 2,000
 * times sizeof(struct pt_http_conn) and no more.  Blocks are never freed (as nginx's
 * connection array), so the worker keeps its peak number of structs. */
#define CONN_BLOCK 64

/* Under ASan a recycled struct is poisoned while it waits on the free list, so that a
 * stale pointer to a closed connection (a timer, a posted event) is still reported as a
 * use after free, as it was when each struct was freed. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CONN_POISON(c)   ASAN_POISON_MEMORY_REGION((c), sizeof(*(c)))
#define CONN_UNPOISON(c) ASAN_UNPOISON_MEMORY_REGION((c), sizeof(*(c)))
#else
#define CONN_POISON(c)   ((void)(c))
#define CONN_UNPOISON(c) ((void)(c))
#endif

static struct pt_http_conn *free_conns;

unsigned pt_http_conn_count(void)
{
    return nconns;
}

static void conn_event(struct pt_event *ev, unsigned events);
static void conn_timeout(struct pt_timer *t);

/* A zeroed connection struct, or NULL when out of memory. */
static struct pt_http_conn *conn_alloc(void)
{
    struct pt_http_conn *c;

    if (free_conns == NULL) {
        struct pt_http_conn *block = malloc(CONN_BLOCK * sizeof(*block));
        if (block == NULL)
            return NULL;
        for (int i = 0; i < CONN_BLOCK; i++) {
            block[i].next = free_conns;
            free_conns = &block[i];
            CONN_POISON(&block[i]);
        }
    }
    c = free_conns;
    CONN_UNPOISON(c);
    free_conns = c->next;
    memset(c, 0, sizeof(*c));
    return c;
}

/* Gives a closed connection's struct back; run after the round of events (see
 * pt_loop_defer), so that an event of the same batch still finds its fd at -1. */
static void conn_release(void *p)
{
    struct pt_http_conn *c = p;

    c->next = free_conns;
    free_conns = c;
    CONN_POISON(c);
}

static struct pt_http_srv_conf *default_srv_conf(struct pt_http_conn *c)
{
    return c->addr->default_server->srv_conf[pt_http_module.index];
}

static void link_conn(struct pt_http_conn *c)
{
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;
}

static void unlink_conn(struct pt_http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
}

void pt_http_conn_close(struct pt_http_conn *c)
{
    if (c->r)
        pt_http_request_free(c->r);
    pt_timer_del(&c->timer);
    pt_event_del(&c->ev);
    if (c->io)
        c->io->close(c);
    close(c->ev.fd);
    c->ev.fd = -1;
    pt_buf_put(c->in);
    pt_buf_put(c->out);
    c->in = c->out = NULL;
    unlink_conn(c);
    pt_loop_defer(conn_release, c);
}

static void peer_text(struct pt_http_conn *c)
{
    if (c->peer.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &c->peer.sin6.sin6_addr, c->peer_text, sizeof(c->peer_text));
        c->peer_port = ntohs(c->peer.sin6.sin6_port);
    } else {
        inet_ntop(AF_INET, &c->peer.sin.sin_addr, c->peer_text, sizeof(c->peer_text));
        c->peer_port = ntohs(c->peer.sin.sin_port);
    }
}

static void accept_one(struct pt_listen *ls, int fd, const union pt_sockaddr *peer)
{
    struct pt_core_conf *cc = pt_core_conf(pt_cycle);
    struct pt_http_conn *c;
    int one = 1;

    /* Upstream connections count against worker_connections too: leave them room. */
    if (nconns >= (unsigned)cc->worker_connections || draining) {
        if (!draining)
            pt_log(PT_LOG_WARN, "%lld worker_connections are not enough, closing %s",
                   (long long)cc->worker_connections, ls->text);
        close(fd);
        return;
    }
    c = conn_alloc();
    if (c == NULL) {
        close(fd);
        return;
    }
    c->ev.fd = fd;
    c->ev.handler = conn_event;
    c->ev.data = c;
    c->timer.handler = conn_timeout;
    c->timer.data = c;
    c->ls = ls;
    c->addr = ls->servers;
    c->peer = *peer;
    c->writable = 1;
    peer_text(c);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    link_conn(c);
    if (pt_event_add(&c->ev, 0) != PT_OK ||
        (ls->ssl && (pt_http_tls_start == NULL || pt_http_tls_start(c) != PT_OK))) {
        pt_http_conn_close(c);
        return;
    }
    c->handshaking = c->io && c->io->handshake;
    pt_timer_add(&c->timer, (uint64_t)default_srv_conf(c)->client_header_timeout);
    /* Data often arrives with the handshake: try to read at once and save a wake-up. */
    c->readable = 1;
}

void pt_http_accept(struct pt_event *ev, unsigned events)
{
    struct pt_listen *ls = ev->data;

    /* Bounded so that one busy listener does not starve the connections we already hold. */
    for (int i = 0; i < 64; i++) {
        union pt_sockaddr peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(ev->fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                pt_log(PT_LOG_ERR, "accept() on %s failed: %m", ls->text);
            return;
        }
        accept_one(ls, fd, &peer);
    }
}

/* pt_http_conn_read() through the transport.  A short read says nothing here: the TLS
 * library may hold decrypted bytes the socket no longer shows, so only PT_AGAIN ends the
 * readable state. */
static ssize_t tls_read(struct pt_http_conn *c, size_t room)
{
    ssize_t n = c->io->recv(c, c->in->last, room);

    if (n > 0) {
        c->in->last += n;
        return n;
    }
    c->readable = 0;
    if (n == 0)
        c->eof = 1;
    else if (n == PT_ERROR)
        c->error = 1;
    return n;
}

ssize_t pt_http_conn_read(struct pt_http_conn *c)
{
    ssize_t n;
    size_t room = pt_buf_room(c->in);

    if (room == 0)
        return PT_AGAIN;
    if (c->io)
        return tls_read(c, room);
    n = read(c->ev.fd, c->in->last, room);
    if (n > 0) {
        c->in->last += n;
        /* A short read drained the socket: with edge-triggered epoll the next edge tells
         * us when more arrives, so the extra read() that would return EAGAIN is saved.
         * Not after a FIN, whose edge came with the data: the EOF still has to be read. */
        if ((size_t)n < room && !c->rdhup)
            c->readable = 0;
        return n;
    }
    if (n == 0) {
        c->eof = 1;
        c->readable = 0;
        return 0;
    }
    if (errno == EAGAIN || errno == EINTR) {
        c->readable = 0;
        return PT_AGAIN;
    }
    c->error = 1;
    c->readable = 0;
    return PT_ERROR;
}

/* Closes after an error response: stop sending, read and drop what the client still sends
 * for a moment, so that our response is not destroyed by an RST in flight. */
void pt_http_conn_linger(struct pt_http_conn *c)
{
    if (c->out && pt_buf_len(c->out)) {
        c->closing = 1;
        c->linger_after = 1;
        return;
    }
    if (c->io)
        c->io->shutdown(c);
    shutdown(c->ev.fd, SHUT_WR);
    c->lingering = 1;
    pt_timer_add(&c->timer, 2000);
}

static void linger_read(struct pt_http_conn *c)
{
    char junk[4096];

    for (;;) {
        ssize_t n = read(c->ev.fd, junk, sizeof(junk));
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        pt_http_conn_close(c);
        return;
    }
}

static void conn_timeout(struct pt_timer *t)
{
    struct pt_http_conn *c = t->data;

    if (c->r && !c->lingering) {
        pt_http_request_timeout(c->r);
        return;
    }
    if (c->in && pt_buf_len(c->in) && !c->lingering && !c->handshaking) {
        /* A partial head: nginx closes silently after client_header_timeout; we answer
         * 408 so that the client knows why. */
        pt_http_head_timeout(c);
        return;
    }
    pt_http_conn_close(c);
}

static void conn_event(struct pt_event *ev, unsigned events)
{
    struct pt_http_conn *c = ev->data;

    if (events & PT_EV_READ)
        c->readable = 1;
    if (events & PT_EV_RDHUP)
        c->rdhup = 1;
    if (events & PT_EV_WRITE)
        c->writable = 1;
    if (c->lingering) {
        /* Raw reads: what a TLS client still sends is dropped unread all the same. */
        linger_read(c);
        return;
    }
    if (c->handshaking) {
        int rc = c->io->handshake(c);
        if (rc == PT_AGAIN)
            return;
        if (rc != PT_OK) {
            pt_http_conn_close(c);
            return;
        }
        /* The client's first request often came with its last handshake flight. */
        c->handshaking = 0;
        c->readable = 1;
    }
    if (c->r) {
        pt_http_request_event(c->r, events);
        return;
    }
    if (c->closing && c->out && pt_buf_len(c->out)) {
        int rc = pt_http_flush(c);
        if (rc == PT_AGAIN)
            return;
        if (rc == PT_OK && c->linger_after) {
            c->linger_after = 0;
            pt_http_conn_linger(c);
            return;
        }
        pt_http_conn_close(c);
        return;
    }
    if (c->readable || (events & PT_EV_POSTED))
        pt_http_read_head(c);
}

/* Called when a request ends and the connection may serve another one. */
void pt_http_conn_idle(struct pt_http_conn *c, int64_t keepalive_ms)
{
    if (draining) {
        pt_http_conn_close(c);
        return;
    }
    if (c->in && pt_buf_len(c->in)) {
        /* A pipelined request is already here: it starts once this call chain has
         * unwound, so that a long pipeline does not grow the stack. */
        pt_buf_compact(c->in);
        pt_timer_add(&c->timer, (uint64_t)default_srv_conf(c)->client_header_timeout);
        pt_event_post(&c->ev);
        return;
    }
    /* An idle connection holds no buffer. */
    pt_buf_put(c->in);
    c->in = NULL;
    if (c->out && pt_buf_len(c->out) == 0) {
        pt_buf_put(c->out);
        c->out = NULL;
    }
    pt_timer_add(&c->timer, (uint64_t)keepalive_ms);
    if (c->readable)
        pt_event_post(&c->ev);
}

/* How long a draining worker keeps an idle keepalive connection open.  Closing it at once
 * races with a client that is sending its next request on it (the request then meets a
 * reset); within the grace such a request is answered, with Connection: close. */
#define DRAIN_GRACE_MS 3000

void pt_http_drain(void)
{
    struct pt_http_conn *c;

    draining = 1;
    for (c = conns; c; c = c->next) {
        c->closing = 1;
        if (c->r == NULL && (c->in == NULL || pt_buf_len(c->in) == 0) && !c->lingering)
            pt_timer_add(&c->timer, DRAIN_GRACE_MS);
    }
}
