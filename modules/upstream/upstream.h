/*
 * upstream.h: upstream groups and their peers, the per-worker keepalive pool of upstream
 * connections, and the passive health every worker shares through shared memory.
 * Peers (struct pt_peer) and the balancing algorithms are in lb.h.
 */
#ifndef PT_UPSTREAM_H
#define PT_UPSTREAM_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "core/buf.h"
#include "config/conf.h"
#include "worker/event.h"
#include "modules/upstream/lb.h"
#include "core/pt.h"

struct pt_request;
struct pt_shmtx;
struct pt_template;

struct pt_upstream_conn;
struct pt_health_conf;

struct pt_upstream {
    char *name;
    struct pt_peer *peers;
    int npeers;
    int64_t keepalive;          /* idle connections kept per worker; 0: none */
    int64_t keepalive_timeout;  /* ms an idle connection is kept */
    int64_t keepalive_requests; /* requests per connection */
    unsigned implicit : 1;      /* made from proxy_pass host:port */
    const char *file;
    int line;
    /* balancing: the directives as read, then the method they make */
    int least_conn;           /* flag */
    int ip_hash;              /* flag */
    int random;               /* 0 off, 1 on, 2 two; PT_CONF_UNSET when absent */
    struct pt_template *hash; /* hash KEY */
    struct pt_lb lb;
    struct pt_shmtx *lock;        /* in the zone: one choice at a time, all workers */
    struct pt_health_conf *check; /* health_check; NULL: none */
    int64_t resolve_interval;     /* ms between re-resolutions of `resolve` servers */
    /* per worker */
    struct pt_upstream_conn *idle;
    int nidle;
};

/*
 * An upstream connection's transport when it is not the plain socket: TLS, provided by the
 * proxy module.  recv and send have the meaning of pt_upstream_recv() and pt_upstream_send()
 * and keep the connection's readable/writable flags true to what the loop will report.
 */
struct pt_upstream_io {
    ssize_t (*recv)(struct pt_upstream_conn *uc, char *buf, size_t len);
    ssize_t (*send)(struct pt_upstream_conn *uc, const char *buf, size_t len);
    /* An idle pooled connection turned readable: PT_OK when it can still carry a request
     * (what arrived was the transport's own business), PT_ERROR when it must be closed. */
    int (*idle_check)(struct pt_upstream_conn *uc);
    /* Says goodbye at the transport's level (best effort) and frees its state; the socket
     * is closed by the caller. */
    void (*close)(struct pt_upstream_conn *uc);
};

/* An upstream connection; the proxy module owns it while a request uses it. */
struct pt_upstream_conn {
    struct pt_event ev;
    struct pt_timer timer;
    struct pt_upstream *ups;
    struct pt_peer *peer;
    void *owner; /* the request using it; NULL while idle in the pool */
    void (*handler)(struct pt_upstream_conn *uc, unsigned events); /* owner's */
    unsigned requests;
    uint32_t addr_seq; /* the peer's shared address version it was made for (resolve) */
    /* What the connection was made for (a TLS configuration; NULL: plain): the pool hands
     * it only to a request asking for the same. */
    const void *key;
    const struct pt_upstream_io *io; /* NULL: the plain socket */
    void *tls;                       /* the transport's state (an SSL *) */
    unsigned connected : 1;
    unsigned handshaken : 1; /* the transport's handshake is done (TLS only) */
    unsigned reused : 1;     /* taken from the pool: may have been closed by the peer */
    unsigned readable : 1;
    unsigned writable : 1;
    unsigned rdhup : 1; /* the peer's FIN was seen: read on to the EOF */
    /* The transport's last send waited for the socket to be readable, or its last recv for
     * it to be writable (TLS records go both ways): that event makes both ready again. */
    unsigned send_wants_read : 1;
    unsigned recv_wants_write : 1;
    struct pt_upstream_conn *next;
};

extern struct pt_module pt_upstream_module;

/* The upstream groups of <cycle>: sets *<n> and returns the array (NULL when none). */
struct pt_upstream **pt_upstream_groups(struct pt_cycle *cycle, int *n);

/* Finds the upstream group <name> of the cycle being configured, or NULL. */
struct pt_upstream *pt_upstream_find(struct pt_conf *cf, const char *name);

/* Finds or creates an implicit single-peer group for "host:port" (proxy_pass without an
 * upstream block).  Resolves the host now.  Returns NULL after pt_conf_error. */
struct pt_upstream *pt_upstream_implicit(struct pt_conf *cf, const char *hostport);

/* Chooses the peer of <u> for request <r> by the group's method, among those up and under
 * their limits, skipping those marked in the bitmask <tried> (peer i is bit i; groups beyond
 * 64 peers wrap).  <r> may be NULL: ip_hash and hash then use round robin.  Takes the
 * group's shared lock for the time of the choice.  Returns the peer, or NULL when none is
 * live. */
struct pt_peer *pt_upstream_choose(struct pt_upstream *u, struct pt_request *r, uint64_t tried);

/* Gets a connection to <peer> for <key> (a transport configuration, NULL for plain): an
 * idle pooled one made for the same <key> (reused set) unless <fresh>, or a new
 * non-blocking connect in progress, on which the caller sets up the transport <key> names.
 * Registers it with the loop; events go to <handler>.  Returns NULL with errno set when
 * the socket cannot be created. */
struct pt_upstream_conn *pt_upstream_connect(struct pt_upstream *u, struct pt_peer *peer, int fresh,
                                             const void *key, void *owner,
                                             void (*handler)(struct pt_upstream_conn *, unsigned));

/* Ends the use of <uc>: back to the pool when <keep> (and the pool has room), else closed
 * (after the transport's goodbye). */
void pt_upstream_release(struct pt_upstream_conn *uc, int keep);

/* Reads up to <len> bytes from <uc> into <buf>, through its transport: as read(), bytes
 * (> 0), 0 at the peer's end, PT_AGAIN (nothing now: uc->readable or uc->writable was
 * cleared, and the event that sets it again resumes), or PT_ERROR with errno set.  While
 * uc->readable stays set after bytes came, more may be waiting (TLS buffers records): the
 * caller reads on. */
ssize_t pt_upstream_recv(struct pt_upstream_conn *uc, char *buf, size_t len);

/* Writes up to <len> (> 0) bytes from <buf> to <uc>, through its transport: as write(),
 * bytes taken (possibly fewer; uc->writable is cleared when the socket is full), PT_AGAIN
 * (nothing taken, waiting for an event as above), or PT_ERROR with errno set.  After
 * PT_AGAIN the same bytes must be offered again. */
ssize_t pt_upstream_send(struct pt_upstream_conn *uc, const char *buf, size_t len);

/* What the status API shows of a peer: its configuration and a copy of its shared state. */
struct pt_peer_view {
    const char *name;        /* as in $upstream_addr (the written name with resolve) */
    char address[64];        /* where new connections go */
    const char *state;       /* "up", "down", "draining", or "checking" (no check result yet) */
    const char *down_reason; /* "configuration", "api", "health checks", "failures"; "" */
    int weight;              /* in force: set at run time, else configured */
    int configured_weight;
    int max_conns;
    unsigned backup : 1;
    unsigned checked : 1; /* the group has health_check: the fields below mean something */
    int32_t active;
    uint64_t requests, fails, unavailable_ms;
    const char *health; /* "checking", "up", "down" */
    uint64_t checks, checks_failed;
    uint32_t passes_in_a_row, fails_in_a_row;
    char last_check[64];   /* the last result ("200 OK", "connect refused"); "" before one */
    int64_t last_check_ms; /* its wall-clock time; 0: none yet */
};

/* Fills <v> with <peer> as it stands at <now> (CLOCK_MONOTONIC ms), reading the shared state
 * the way its writers expect (the check result under the helper's seqlock). */
void pt_peer_view(const struct pt_peer *peer, uint64_t now, struct pt_peer_view *v);

/* Runtime control (the status API): sets <peer>'s state to <admin> (PT_ADMIN_*; NONE
 * returns to the configuration) unless <admin> is negative, and its weight to <weight>
 * (0: the configured one) unless <weight> is negative.  Kept in shared memory: every
 * worker follows at once, and a reload keeps it while the server is still configured. */
void pt_peer_control(struct pt_peer *peer, int admin, int weight);

/* Passive health: records a failure or a success of <peer> in shared memory. */
void pt_peer_failed(struct pt_upstream *u, struct pt_peer *peer);
void pt_peer_succeeded(struct pt_peer *peer);

/* Copies into <ss>/<len> the address to connect to for <peer>: the one the helper last
 * published for a `resolve` server, else the configured one.  Returns the published
 * address's version (0 for a configured address). */
uint32_t pt_peer_address(const struct pt_peer *peer, struct sockaddr_storage *ss, socklen_t *len);

/* Parses "host:port" into an address (resolving a name).  PT_OK or PT_ERROR with <err>. */
int pt_resolve_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err,
                        size_t errlen);

#endif
