/*
 * http_req.h: what conn.c and request.c tell each other; not for modules.
 */
#ifndef PT_HTTP_REQ_H
#define PT_HTTP_REQ_H

#include "worker/http.h"

/* conn.c */
void pt_http_conn_close(struct pt_http_conn *c);
void pt_http_conn_linger(struct pt_http_conn *c);
void pt_http_conn_idle(struct pt_http_conn *c, int64_t keepalive_ms);

/* request.c */
void pt_http_read_head(struct pt_http_conn *c);
void pt_http_request_event(struct pt_request *r, unsigned events);
void pt_http_request_timeout(struct pt_request *r);
void pt_http_head_timeout(struct pt_http_conn *c);
void pt_http_request_free(struct pt_request *r);
/* pt_http_body_peek of the client's bytes alone, ignoring what was kept. */
int pt_http_body_peek_from_client(struct pt_request *r, struct pt_str *data, int *last);
/* Takes <n> bytes of the body from the client's buffer (pt_http_body_consumed takes them
 * from what was kept first). */
void pt_http_body_consumed_from_client(struct pt_request *r, size_t n);

/* body_store.c: what pt_http_body_peek and pt_http_body_consumed ask of the kept body.
 * peek: PT_DECLINED when nothing kept is left to hand out (the client's bytes are next),
 * else as pt_http_body_peek.  consumed: 1 when the <n> bytes were kept ones, else 0. */
int pt_body_store_peek(struct pt_request *r, struct pt_str *data, int *last);
int pt_body_store_consumed(struct pt_request *r, size_t n);

#endif
