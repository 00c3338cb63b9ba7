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

#endif
