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
#include "worker/transport.h"
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

/* An upstream connection; the proxy module owns it while a request uses it.  Its stream
 * (socket, event, timer, transport and readiness) comes first; the owner reads and writes
 * it through s.t, whatever the transport (the plain socket, or TLS set up by the proxy). */
struct pt_upstream_conn {
    struct pt_stream s; /* s.ev.data: this connection */
    struct pt_upstream *ups;
    struct pt_peer *peer;
    void *owner; /* the request using it; NULL while idle in the pool */
    void (*handler)(struct pt_upstream_conn *uc, unsigned events); /* owner's */
    unsigned requests;
    uint32_t addr_seq; /* the peer's shared address version it was made for (resolve) */
    /* What the connection was made for (a TLS configuration; NULL: plain): the pool hands
     * it only to a request asking for the same. */
    const void *key;
    unsigned reused : 1; /* taken from the pool: may have been closed by the peer */
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
 * idle pooled one made for the same <key> (reused set) unless <fresh>, or a new plain
 * stream opened by pt_stream_connect() (s.connected set when made at once, else
 * pt_stream_connect_done() says how it went), on which the caller sets up the transport
 * <key> names.  Registered with the loop; events go to <handler> with the stream's
 * readiness already updated; the stream's timer is <owner>'s to set.  Counts against
 * worker_connections.  Returns NULL with errno set (EMFILE when no slot is left, or why
 * the socket or the connect failed). */
struct pt_upstream_conn *pt_upstream_connect(struct pt_upstream *u, struct pt_peer *peer, int fresh,
                                             const void *key, void *owner,
                                             void (*handler)(struct pt_upstream_conn *, unsigned));

/* Ends the use of <uc>: back to the pool when <keep> (and the pool has room), else closed
 * (after the transport's goodbye). */
void pt_upstream_release(struct pt_upstream_conn *uc, int keep);

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

/* What the proxy tells of each try of a request on an upstream server, for the metrics
 * module to count.  <ms> is the time since the try began. */
enum pt_upstream_step {
    PT_UPSTREAM_TRY,       /* a try begins; <value> is 1 when it is not the request's first */
    PT_UPSTREAM_CONNECTED, /* the connection can carry the request (TLS handshake included) */
    PT_UPSTREAM_HEADER,    /* the response head came; <value> is its status */
    PT_UPSTREAM_DONE,      /* the whole response came */
    PT_UPSTREAM_FAILED,    /* the try failed; <value> is a PT_UPSTREAM_FAIL_* */
    PT_UPSTREAM_IDLE,      /* a connection joined (<value> 1) or left (-1) a keepalive pool */
};

enum pt_upstream_failure {
    PT_UPSTREAM_FAIL_CONNECT, /* refused, unreachable, TLS handshake failed */
    PT_UPSTREAM_FAIL_TIMEOUT, /* connect, send or read timed out */
    PT_UPSTREAM_FAIL_INVALID_HEADER,
    PT_UPSTREAM_FAIL_ERROR, /* sending or reading failed, or closed too early */
};

/* Set by the metrics module in workers whose configuration counts; NULL: nobody listens. */
extern void (*pt_upstream_observe)(struct pt_peer *peer, enum pt_upstream_step step, int value,
                                   uint64_t ms);

/* Tells the observer, if any, <step> of a try on <peer> (cheap when nobody listens). */
static inline void pt_upstream_note(struct pt_peer *peer, enum pt_upstream_step step, int value,
                                    uint64_t ms)
{
    if (pt_upstream_observe && peer->metrics)
        pt_upstream_observe(peer, step, value, ms);
}

/* Copies into <ss>/<len> the address to connect to for <peer>: the one the helper last
 * published for a `resolve` server, else the configured one.  Returns the published
 * address's version (0 for a configured address). */
uint32_t pt_peer_address(const struct pt_peer *peer, struct sockaddr_storage *ss, socklen_t *len);

/* Parses "host:port" into an address (resolving a name).  PT_OK or PT_ERROR with <err>. */
int pt_resolve_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err,
                        size_t errlen);

#endif
