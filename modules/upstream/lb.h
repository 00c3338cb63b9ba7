/*
 * lb.h: choosing the peer of an upstream group that takes the next request: smooth
 * weighted round robin (the default), least_conn, ip_hash, hash KEY [consistent] and
 * random [two], with nginx's meanings.
 *
 * Everything a choice depends on that changes at run time (failures, down-until times,
 * active connections, slow-start progress, round-robin weights) is in the peers' shared
 * state, so that every worker steps the same balancer.  The functions here see only a peer
 * array, its shared state and what the request contributes (a key, an address): no request,
 * no worker, no lock, so the unit tests drive them with the state in plain memory.  The
 * caller (upstream.c) serializes choices of one group with the group's shared lock.
 */
#ifndef PT_LB_H
#define PT_LB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/pt.h"

#define PT_LB_SCALE  1000 /* weights are counted in 1/1000s so that slow start ramps smoothly */
#define PT_LB_POINTS 160  /* consistent hash: points on the ring per unit of weight (ketama) */
#define PT_LB_TRIES  20   /* hash probes before falling back to round robin (nginx's bound) */

/* A peer's state shared by every worker (in the "upstream" zone; no pointers inside).  Every
 * field is read and written with atomics; current_weight only under the group's lock. */
struct pt_peer_shared {
    char key[160];          /* "group/host:port", to find the entry again after a reload */
    uint32_t bound;         /* the zone's bind count when a configuration last named it */
    uint32_t fails;         /* failures counted in the current fail_timeout window */
    uint64_t fail_start_ms; /* start of that window (CLOCK_MONOTONIC, system-wide) */
    uint64_t down_until_ms; /* unavailable until then after max_fails failures */
    int32_t conns;          /* active connections, all workers */
    uint64_t requests;
    uint64_t total_fails;
    uint64_t recovered_ms;  /* when it last came back up (slow start ramps from there); 0: never */
    int64_t current_weight; /* smooth round robin: one sequence for all workers */
    /* active health checks: written by the helper process only */
    uint32_t health;        /* PT_HEALTH_* */
    uint32_t check_passes;  /* consecutive passed checks */
    uint32_t check_fails;   /* consecutive failed checks */
    uint32_t check_seq;     /* odd while last_check is being written */
    uint64_t checks;        /* checks run */
    uint64_t checks_failed; /* checks failed */
    int64_t last_check_ms;  /* wall clock (ms since the epoch) of the last result; 0: none */
    char last_check[64];    /* "200 OK", "connect refused", "timeout" ... */
    /* runtime control (the status API), kept across reloads while the server exists */
    uint32_t admin;       /* PT_ADMIN_* */
    int32_t admin_weight; /* 0: the configured weight */
    /* `resolve`: the address the helper last found for the server's name */
    uint32_t addr_seq; /* odd while addr is being written; bumps on each change */
    uint32_t addrlen;  /* 0: none published yet (the configured address holds) */
    struct sockaddr_storage addr;
};

/* Health of a peer by its active checks. */
enum pt_health {
    PT_HEALTH_UNKNOWN, /* no result yet ("checking") */
    PT_HEALTH_UP,
    PT_HEALTH_DOWN,
};

/* What an operator set through the status API; it overrides the configuration's `down`. */
enum pt_admin {
    PT_ADMIN_NONE,  /* as configured */
    PT_ADMIN_UP,    /* takes requests (even if configured `down`) */
    PT_ADMIN_DOWN,  /* takes none */
    PT_ADMIN_DRAIN, /* takes no new requests; those in flight finish */
};

struct pt_peer {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[64];  /* "127.0.0.1:3000"; with resolve, the name as written ("app:3000") */
    char host[128]; /* "HOST:PORT" as written in `server` */
    int weight;
    int max_fails;
    int64_t fail_timeout; /* ms */
    int64_t slow_start;   /* ms over which the weight ramps up after a recovery; 0: none */
    int max_conns;        /* 0: no limit */
    unsigned down : 1;
    unsigned backup : 1;
    unsigned resolve : 1;          /* the helper re-resolves host; the address is in shared */
    unsigned checked : 1;          /* the group has health_check: shared->health counts */
    unsigned mandatory : 1;        /* health_check mandatory: no requests before a first pass */
    struct pt_peer_shared *shared; /* NULL only in a group of one peer (nothing to decide) */
    void *metrics; /* the metrics module's counters of this server (in its zone); NULL: none */
};

enum pt_lb_method {
    PT_LB_ROUND_ROBIN, /* smooth weighted round robin */
    PT_LB_LEAST_CONN,  /* fewest active connections per weight, ties by round robin */
    PT_LB_IP_HASH,     /* client /24 (IPv4) or address (IPv6) */
    PT_LB_HASH,        /* a key: modulo the total weight, or on a ring (consistent) */
    PT_LB_RANDOM,      /* weighted random, or the less loaded of two (two) */
};

/* A point of the consistent-hash ring: the peer owning hashes up to <hash>. */
struct pt_lb_point {
    uint32_t hash;
    uint32_t peer; /* index in the group's peer array */
};

/* A group's balancing, fixed at configuration time. */
struct pt_lb {
    enum pt_lb_method method;
    unsigned consistent : 1;    /* hash: on the ring */
    unsigned two : 1;           /* random: the less loaded of two */
    struct pt_lb_point *points; /* consistent hash: the ring, sorted by hash */
    uint32_t npoints;
};

/* One choice: the candidates and what the request contributes. */
struct pt_lb_pick {
    struct pt_peer *peers;
    int npeers;
    uint64_t tried;      /* peer i already tried when bit i % 64 is set */
    uint64_t now;        /* ms, CLOCK_MONOTONIC */
    const uint8_t *addr; /* ip_hash: the client's bytes (pt_lb_ip_bytes()) */
    size_t addrlen;      /* 0: no address (round robin) */
    struct pt_str key;   /* hash: the evaluated key; p NULL: none (round robin) */
    uint64_t *rng;       /* random: the generator's state (pt_lb_random()) */
};

/*
 * Chooses the peer for one request among <k>'s peers by <lb>'s method.  A peer is a
 * candidate when it is not marked down, not failed (down_until in the future), under its
 * max_conns by the shared count, and not in <k>->tried.  Backup peers are candidates only
 * when no primary one is.  The hash methods probe up to PT_LB_TRIES peers, then fall back to
 * round robin, as nginx does.  Updates the shared round-robin weights: the caller holds the
 * group's lock.  Returns the peer, or NULL when no peer is a candidate.
 */
struct pt_peer *pt_lb_choose(const struct pt_lb *lb, const struct pt_lb_pick *k);

/* True when <p> may take a request at <now>: not down (by configuration, by the status API,
 * or by its active checks), not draining, not failed, under max_conns.  (Says nothing about
 * tried or backup.)  <p>->shared may be NULL (never failed, no count). */
int pt_lb_usable(const struct pt_peer *p, uint64_t now);

/* The weight of <p> at <now> in PT_LB_SCALE units: its configured weight (or the one set
 * through the status API), or while slow start ramps (<p>->slow_start ms after
 * shared->recovered_ms) a share of it, at least 1. */
int64_t pt_lb_weight(const struct pt_peer *p, uint64_t now);

/* Points the ring of <npeers> <peers> needs: PT_LB_POINTS per unit of weight of every
 * primary (not backup) peer.  The caller allocates that many struct pt_lb_point. */
uint32_t pt_lb_ring_size(const struct pt_peer *peers, int npeers);

/* Fills <points> (pt_lb_ring_size() of them) with the ketama ring of <peers>, keyed by
 * their names so that a peer keeps its points when others come or go, and sorts it.
 * Returns the number of points kept (duplicates removed). */
uint32_t pt_lb_ring_build(struct pt_lb_point *points, const struct pt_peer *peers, int npeers);

/* Writes into <out> the bytes of client address <sa> that ip_hash hashes: the first three
 * octets of an IPv4 address (also when IPv4-mapped in IPv6), the 16 bytes of an IPv6 one.
 * Returns their count, 0 for other families (ip_hash then falls back to round robin). */
size_t pt_lb_ip_bytes(const struct sockaddr *sa, uint8_t out[16]);

/* CRC-32 (IEEE, as zlib and nginx compute it) of <len> bytes at <data>. */
uint32_t pt_lb_crc32(const void *data, size_t len);

/* Next number of the xorshift64* generator whose state is *<state> (0 is replaced by a
 * fixed seed).  Not for secrets. */
uint64_t pt_lb_random(uint64_t *state);

#endif
