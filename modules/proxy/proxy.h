/*
 * proxy.h: what the files of the proxy module share: its location configuration, the
 * state of one proxied exchange, and the steps each file offers the others.
 *   proxy.c           the module, its directives, and the exchange's control: choosing
 *                     and connecting a peer, failures, retries, timeouts, events
 *   proxy_request.c   the request sent upstream: its head, then the body, re-framed
 *   proxy_response.c  the response: its head, the body to the client, tunnels
 */
#ifndef PT_PROXY_H
#define PT_PROXY_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "pool.h"
#include "upstream.h"
#include "var.h"

struct proxy_header {
    struct pt_str name;
    struct pt_template *value;
};

struct proxy_loc_conf {
    struct pt_upstream *upstream;
    char *pass; /* "http://app/v1/" as written */
    const config_setting_t *pass_setting;
    char *host;        /* the part after http:// and before the URI */
    struct pt_str uri; /* URI part of proxy_pass */
    unsigned has_uri : 1;
    struct pt_str prefix; /* the location prefix the URI part replaces */
    int64_t connect_timeout, read_timeout, send_timeout;
    struct proxy_header *set;
    int nset;
    char **hide;
    int nhide;
};

enum proxy_err {
    ERR_CONNECT,
    ERR_CONNECT_TIMEOUT,
    ERR_WRITE,
    ERR_READ,
    ERR_READ_TIMEOUT,
    ERR_INVALID
};

struct proxy_ctx {
    struct pt_request *r;
    struct proxy_loc_conf *plc;
    struct pt_upstream_conn *uc;
    struct pt_peer *peer;
    struct pt_str head; /* the request head sent upstream (kept for a retry) */
    size_t head_copied;
    struct pt_buf *out; /* bytes on their way upstream */
    struct pt_buf *in;  /* bytes from upstream */
    struct pt_http_response resp;
    uint64_t tried;
    int tries;
    int64_t resp_left;
    struct pt_chunked chunk;
    uint64_t start_ms;
    unsigned req_chunked : 1;  /* the body goes upstream chunked */
    unsigned body_started : 1; /* client body bytes were consumed: no retry */
    unsigned body_sent : 1;
    unsigned req_sent : 1;
    unsigned got_bytes : 1; /* the upstream sent something on this connection */
    unsigned resp_head : 1;
    unsigned resp_until_close : 1;
    unsigned resp_chunked : 1;
    unsigned resp_done : 1;
    unsigned stale_retried : 1;
};

extern struct pt_module pt_proxy_module;

/* proxy_request.c: builds the request head for <ctx> into the request pool (PT_OK or
 * PT_ERROR), and sends what can be sent of head and body (PT_OK: sent or waiting for a
 * socket; PT_DONE: the request ended). */
int pt_proxy_build_head(struct proxy_ctx *ctx);
int pt_proxy_send_request(struct proxy_ctx *ctx);

/* proxy_response.c: reads and passes on the response (PT_OK: waiting; PT_DONE: the
 * request ended), and moves tunnel bytes from the client to the upstream. */
int pt_proxy_read_response(struct proxy_ctx *ctx);
int pt_proxy_tunnel_client(struct proxy_ctx *ctx);

/* True when the field name <name> is a token of the Connection value <conn>. */
int pt_proxy_named_in(struct pt_str conn, struct pt_str name);

/* proxy.c: the exchange's control, used by the other two files. */
void pt_proxy_failed(struct proxy_ctx *ctx, enum proxy_err err);
void pt_proxy_release(struct proxy_ctx *ctx, int keep);
void pt_proxy_cleanup(struct pt_request *r);
void pt_proxy_note_upstream(struct proxy_ctx *ctx);

#endif
