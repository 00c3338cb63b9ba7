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

#include "config/core_module.h"
#include "worker/http.h"
#include "worker/http_req.h"
#include "worker/http_stats.h"
#include "worker/listen.h"
#include "core/log.h"
#include "core/pool.h"

int (*pt_http_tls_start)(struct pt_http_conn *c);

/* Every open client connection, most recently active first: a connection moves to the head
 * when it is accepted or goes idle, so that walking from the tail finds the oldest idle ones. */
static struct pt_http_conn *conns, *conns_tail;
static unsigned nconns;
static unsigned nupstream; /* upstream connections: they count against worker_connections too */
static int draining;

/* nginx's lingering_time and lingering_timeout: a connection closed while the client may
 * still send reads and drops its input for at most LINGER_TIME_MS in all, and gives up after
 * LINGER_TIMEOUT_MS without a byte. */
#define LINGER_TIME_MS    30000
#define LINGER_TIMEOUT_MS 5000
/* Reads of a lingering connection per event: a client that sends as fast as we read does
 * not hold the loop; the rest is read in the next round. */
#define LINGER_READS 64

/* At the limit, nginx's ngx_drain_connections: up to this many idle connections are closed
 * to make room, the oldest first. */
#define RECLAIM_MAX 32

/* After accept() fails for want of descriptors, listeners rest this long (nginx's 500 ms):
 * the backlog stays readable, so accepting on would only spin. */
#define ACCEPT_PAUSE_MS 500

/* Messages a flood could repeat for every connection attempt appear once per interval,
 * with the number of those left out. */
#define LOG_INTERVAL_MS 5000

struct log_limit {
    uint64_t next; /* pt_now_ms() from which the next one is written */
    unsigned suppressed;
};

static struct log_limit log_no_room, log_reclaim, log_accept;
static struct pt_timer accept_timer;

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
    return pt_http_conn_addr(c)->default_server->srv_conf[pt_http_module.index];
}

static void link_conn(struct pt_http_conn *c)
{
    c->prev = NULL;
    c->next = conns;
    if (conns)
        conns->prev = c;
    else
        conns_tail = c;
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
    else
        conns_tail = c->prev;
    nconns--;
}

/* True once per LOG_INTERVAL_MS for <l>; *<suppressed> is then how many were left out. */
static int log_allowed(struct log_limit *l, unsigned *suppressed)
{
    if (pt_now_ms() < l->next) {
        l->suppressed++;
        return 0;
    }
    l->next = pt_now_ms() + LOG_INTERVAL_MS;
    *suppressed = l->suppressed;
    l->suppressed = 0;
    return 1;
}

/* What nginx calls a reusable connection: one that has not sent a byte of a request yet
 * (just accepted, or idle between keepalive requests).  Closing it loses nothing a client
 * would not retry.  A TLS connection is reusable only once its handshake is done. */
static int reusable(const struct pt_http_conn *c)
{
    return c->r == NULL && !c->closing && !c->lingering && c->s.handshaken &&
           (c->in == NULL || pt_buf_len(c->in) == 0) && (c->out == NULL || pt_buf_len(c->out) == 0);
}

/* nginx's ngx_drain_connections: closes the oldest reusable connections, at most one
 * eighth of those open and RECLAIM_MAX, at least one.  Returns how many it closed. */
static unsigned reclaim_idle(void)
{
    unsigned want = nconns / 8, n = 0;
    struct pt_http_conn *c = conns_tail;

    if (want > RECLAIM_MAX)
        want = RECLAIM_MAX;
    if (want == 0)
        want = 1;
    while (c && n < want) {
        struct pt_http_conn *prev = c->prev;
        if (reusable(c)) {
            pt_http_conn_close(c);
            n++;
        }
        c = prev;
    }
    return n;
}

/* Whether one more connection fits in worker_connections, after closing idle ones if need
 * be; if not, says so (rate-limited), naming <what> is refused. */
static int have_room(const char *what)
{
    int64_t limit = pt_core_conf(pt_cycle)->worker_connections;
    unsigned suppressed;

    if (nconns + nupstream < limit)
        return 1;
    if (!draining && reclaim_idle() && nconns + nupstream < limit) {
        if (log_allowed(&log_reclaim, &suppressed))
            pt_log(PT_LOG_WARN,
                   "%lld worker_connections are not enough, reusing connections "
                   "(%u more times since the last message)",
                   (long long)limit, suppressed);
        return 1;
    }
    if (!draining && log_allowed(&log_no_room, &suppressed))
        pt_log(PT_LOG_WARN,
               "%lld worker_connections are not enough, closing %s "
               "(%u more refused since the last message)",
               (long long)limit, what, suppressed);
    return 0;
}

int pt_conn_slot_take(void)
{
    if (!have_room("an upstream connection")) {
        errno = EMFILE;
        return PT_ERROR;
    }
    nupstream++;
    return PT_OK;
}

void pt_conn_slot_put(void)
{
    nupstream--;
}

void pt_http_conn_close(struct pt_http_conn *c)
{
    if (c->r)
        pt_http_request_free(c->r);
    pt_stream_close(&c->s);
    pt_buf_put(c->in);
    pt_buf_put(c->out);
    c->in = c->out = NULL;
    unlink_conn(c);
    pt_http_stats_add(PT_STAT_ACTIVE, -1);
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
    struct pt_http_conn *c;
    char what[96];
    int one = 1;

    pt_http_stats_add(PT_STAT_ACCEPTED, 1);
    snprintf(what, sizeof(what), "a connection on %s", ls->text);
    if (draining || !have_room(what)) {
        close(fd);
        return;
    }
    c = conn_alloc();
    if (c == NULL) {
        close(fd);
        return;
    }
    /* Counted before anything can close it: pt_http_conn_close() takes it off again. */
    pt_http_stats_add(PT_STAT_HANDLED, 1);
    pt_http_stats_add(PT_STAT_ACTIVE, 1);
    pt_stream_init(&c->s, fd, conn_event, c);
    c->s.timer.handler = conn_timeout;
    c->s.timer.data = c;
    c->ls = ls;
    c->peer = *peer;
    c->s.writable = 1;
    peer_text(c);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    link_conn(c);
    if (pt_event_add(&c->s.ev, 0) != PT_OK ||
        (ls->ssl && (pt_http_tls_start == NULL || pt_http_tls_start(c) != PT_OK))) {
        pt_http_conn_close(c);
        return;
    }
    /* The plain socket's handshake is done at once; TLS's runs from the first event. */
    if (c->s.t == &pt_transport_plain)
        pt_stream_handshake(&c->s);
    pt_timer_add(&c->s.timer, (uint64_t)default_srv_conf(c)->client_header_timeout);
    /* Data often arrives with the handshake: try to read at once and save a wake-up. */
    c->s.readable = 1;
}

/* The pause is over: every listener is watched again (unless the worker stopped
 * accepting meanwhile: its listeners are closed). */
static void accept_resume(struct pt_timer *t)
{
    (void)t;
    if (draining)
        return;
    for (struct pt_listen *ls = pt_cycle->listens; ls; ls = ls->next)
        if (ls->fd >= 0 && pt_event_add_read(&ls->ev, 1) != PT_OK)
            pt_log(PT_LOG_CRIT, "cannot watch %s again: %m", ls->text);
}

/* accept() on <ls> failed for want of descriptors (EMFILE, ENFILE).  The listeners are
 * level-triggered, so the loop would call us again at once for as long as the backlog is
 * not empty: stop watching them all for ACCEPT_PAUSE_MS, as nginx does, and close idle
 * connections to free descriptors meanwhile. */
static void accept_pause(struct pt_listen *ls)
{
    int err = errno;
    unsigned suppressed;

    if (log_allowed(&log_accept, &suppressed))
        pt_log(PT_LOG_ERR,
               "accept() on %s failed: %s; not accepting for %d ms "
               "(%u more failures since the last message)",
               ls->text, strerror(err), ACCEPT_PAUSE_MS, suppressed);
    for (struct pt_listen *l = pt_cycle->listens; l; l = l->next)
        if (l->fd >= 0)
            pt_event_del(&l->ev);
    accept_timer.handler = accept_resume;
    pt_timer_add(&accept_timer, ACCEPT_PAUSE_MS);
    reclaim_idle();
}

void pt_http_accept(struct pt_event *ev, unsigned events)
{
    struct pt_listen *ls = ev->data;

    (void)events;
    /* Bounded so that one busy listener does not starve the connections we already hold. */
    for (int i = 0; i < 64; i++) {
        union pt_sockaddr peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(ev->fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                accept_pause(ls);
            else if (errno == ECONNABORTED)
                continue;
            return;
        }
        accept_one(ls, fd, &peer);
    }
}

ssize_t pt_http_conn_read(struct pt_http_conn *c)
{
    ssize_t n;
    size_t room = pt_buf_room(c->in);

    if (room == 0)
        return PT_AGAIN;
    /* The transport keeps c->s.readable: a plain short read drained the socket and clears
     * it (not after a FIN), while TLS may hold decrypted bytes the socket no longer shows,
     * so only its waiting clears it. */
    n = c->s.t->recv(&c->s, c->in->last, room);
    if (n > 0) {
        c->in->last += n;
        return n;
    }
    if (n == 0)
        c->eof = 1;
    else if (n == PT_ERROR)
        c->error = 1;
    return n;
}

/* Milliseconds the lingering close of <c> may still last (negative once over). */
static int32_t linger_left(const struct pt_http_conn *c)
{
    return (int32_t)(c->linger_until - (uint32_t)pt_now_ms());
}

static void linger_arm(struct pt_http_conn *c)
{
    int32_t left = linger_left(c);

    pt_timer_add(&c->s.timer,
                 left < LINGER_TIMEOUT_MS ? (uint64_t)(left > 0 ? left : 0) : LINGER_TIMEOUT_MS);
}

/* Closes a connection the client may still be writing to (the rest of a body, requests
 * pipelined past keepalive_requests, the rest of a refused head): closing a socket with
 * unread input sends an RST, and the RST destroys the answers still in flight.  So, as
 * nginx's lingering close: once the output is out, send our FIN, then read and drop what
 * comes until the client closes, LINGER_TIMEOUT_MS pass without a byte, or LINGER_TIME_MS
 * in all. */
void pt_http_conn_linger(struct pt_http_conn *c)
{
    if (c->out && pt_buf_len(c->out)) {
        c->closing = 1;
        c->linger_after = 1;
        return;
    }
    /* Read to the end already: nothing unread can be left behind. */
    if (c->eof || c->error) {
        pt_http_conn_close(c);
        return;
    }
    /* The transport's goodbye (TLS close_notify) goes before our FIN, and only once: the
     * close that ends lingering does not repeat it, since a second one (a close_notify
     * exchange) would read what lingering dropped, fail, and the failure would make
     * OpenSSL forget the session. */
    c->s.t->shutdown(&c->s);
    shutdown(c->s.ev.fd, SHUT_WR);
    c->lingering = 1;
    c->linger_until = (uint32_t)(pt_now_ms() + LINGER_TIME_MS);
    linger_arm(c);
    /* Input may be waiting already, and no new edge would tell. */
    pt_event_post(&c->s.ev);
}

/* Reads and drops what the client sends.  Returns 1 when the connection should be closed
 * (its end or an error), 0 when the socket is empty, -1 when it is still readable after
 * LINGER_READS reads (the connection is posted to go on in this round's end). */
static int drop_input(struct pt_http_conn *c)
{
    char junk[4096];

    for (int i = 0; i < LINGER_READS; i++) {
        ssize_t n = read(c->s.ev.fd, junk, sizeof(junk));
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            c->s.readable = 0;
            return 0;
        }
        return 1;
    }
    pt_event_post(&c->s.ev);
    return -1;
}

static void linger_read(struct pt_http_conn *c)
{
    int rc = drop_input(c);

    if (rc == 1 || linger_left(c) <= 0) {
        pt_http_conn_close(c);
        return;
    }
    if (rc == 0)
        linger_arm(c);
}

static void conn_timeout(struct pt_timer *t)
{
    struct pt_http_conn *c = t->data;

    if (c->lingering) {
        pt_http_conn_close(c);
        return;
    }
    if (c->r) {
        pt_http_request_timeout(c->r);
        return;
    }
    if (c->in && pt_buf_len(c->in) && c->s.handshaken && !c->closing) {
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

    pt_stream_ready(&c->s, events);
    if (c->lingering) {
        /* Raw reads: what a TLS client still sends is dropped unread all the same. */
        linger_read(c);
        return;
    }
    if (!c->s.handshaken) {
        int rc = pt_stream_handshake(&c->s);
        if (rc == PT_AGAIN)
            return;
        if (rc != PT_OK) {
            pt_http_conn_close(c);
            return;
        }
        /* The client's first request often came with its last handshake flight. */
        c->s.readable = 1;
    }
    if (c->r) {
        pt_http_request_event(c->r, events);
        return;
    }
    if (c->closing && c->out && pt_buf_len(c->out)) {
        int rc;
        /* The answers wait for a client that may wait for its own requests to go out:
         * what it still sends is dropped, so that neither side blocks on the other.  (A
         * TLS client's records cannot be dropped while ours still go out.) */
        if (c->linger_after && c->s.t == &pt_transport_plain && c->s.readable && drop_input(c) == 1)
            c->linger_after = 0;
        rc = pt_http_flush(c);
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
    if (c->s.readable || (events & PT_EV_POSTED))
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
        pt_timer_add(&c->s.timer, (uint64_t)default_srv_conf(c)->client_header_timeout);
        pt_event_post(&c->s.ev);
        return;
    }
    /* The most recently idle connection is the last one reclaim_idle() would close. */
    unlink_conn(c);
    link_conn(c);
    /* An idle connection holds no buffer. */
    pt_buf_put(c->in);
    c->in = NULL;
    if (c->out && pt_buf_len(c->out) == 0) {
        pt_buf_put(c->out);
        c->out = NULL;
    }
    pt_timer_add(&c->s.timer, (uint64_t)keepalive_ms);
    if (c->s.readable)
        pt_event_post(&c->s.ev);
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
            pt_timer_add(&c->s.timer, DRAIN_GRACE_MS);
    }
}
