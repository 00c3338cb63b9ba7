/*
 * limit_req.h: the limit_req module's decision, nginx's leaky bucket, apart from requests so
 * that tests can drive it with times of their own.
 */
#ifndef PT_LIMIT_REQ_H
#define PT_LIMIT_REQ_H

#include <stdint.h>

#include "worker/limit_zone.h"

/* One limit_req line: its zone and, as nginx keeps them, thousandths of a request. */
struct pt_limit_req_limit {
    struct pt_limit_line line; /* first: the zone */
    uint64_t burst;            /* burst=N: N * 1000 */
    uint64_t delay;            /* delay=N: N * 1000; nodelay: as good as infinite; default 0 */
    /* Scratch of the one decision in progress (it runs to completion in one process): the
     * node this limit looked up without accounting yet (nginx's ctx->node), and the epoch
     * of the zone when it did. */
    struct pt_limit_node *held;
    uint32_t held_epoch;
};

/* nodelay's delay: nginx's NGX_MAX_INT_T_VALUE / 1000 * 1000. */
#define PT_LIMIT_REQ_NODELAY ((uint64_t)(INT64_MAX / 1000) * 1000)

enum pt_limit_req_outcome {
    PT_LIMIT_REQ_NONE,     /* no limit had a key: not accounted */
    PT_LIMIT_REQ_PASSED,   /* accounted, no delay */
    PT_LIMIT_REQ_DELAYED,  /* accounted, to be delayed by delay_ms */
    PT_LIMIT_REQ_REJECTED, /* over a burst: not accounted anywhere */
    PT_LIMIT_REQ_NO_ROOM   /* a zone could not make a node (logged): refused as rejected */
};

struct pt_limit_req_verdict {
    enum pt_limit_req_outcome outcome;
    uint64_t delay_ms; /* DELAYED: the longest delay any limit asks */
    int64_t excess;    /* of the limit that decided (the one delaying longest, or rejecting) */
    int limit;         /* that limit's index, -1 for NONE */
};

/*
 * Accounts one request against the limits <limits> (struct pt_limit_req_limit lines) of a
 * level, at <now> (pt_now_ms()'s
 * clock), exactly as ngx_http_limit_req_module does: <keys>[i] is the request's key in
 * limit i's zone, empty when that limit does not count it.  The limits are looked up in
 * order; each but the last one with a key only checks its burst and holds its node; the last
 * accounts at once, and the others account (excess and time updated) once all have passed.
 * One over its burst rejects the request and none of them accounts it.  The delay is the
 * longest of the limits' (excess - delay) / rate.  Fills <v>.
 */
void pt_limit_req_decide(const struct pt_limit_lines *limits, const struct pt_str *keys,
                         uint64_t now, struct pt_limit_req_verdict *v);

#endif
