/*
 * var_http.h: the HTTP core's variables ($host, $uri, $remote_addr, $status, ...), the
 * request id behind $request_id, and a template flag the access log needs.
 */
#ifndef PT_VAR_HTTP_H
#define PT_VAR_HTTP_H

#include "worker/http.h"
#include "worker/var.h"

/*
 * Registers the core HTTP variables: host uri request_uri args query_string is_args
 * arg_* http_* cookie_* sent_http_* remote_addr remote_port remote_user scheme
 * request_method request server_protocol server_name server_addr server_port status
 * body_bytes_sent bytes_sent request_time msec time_local time_iso8601 request_id
 * upstream_addr upstream_status upstream_response_time upstream_connect_time
 * upstream_header_time upstream_bytes_sent upstream_bytes_received connection_requests
 * request_length
 * content_length content_type.  Idempotent (call it on every configuration load).
 * Returns PT_OK, or PT_ERROR when a name is taken by another getter or out of memory.
 */
int pt_http_vars_register(void);

/*
 * Returns the id of request <r> ($request_id), NUL-terminated, made or taken on first use
 * and kept in r->request_id: the value of the request_id_header field when the peer is a
 * set_real_ip_from proxy and the value is 1 to 128 letters, digits or "-_.:+/=@", else 32
 * lower-case hex characters (128 random bits, as nginx's).
 */
const char *pt_request_id(struct pt_request *r);

/*
 * Writes <n> random lower-case hex characters to <dst> (no NUL).  The source is seeded once
 * per process from getrandom() (re-seeded in a forked child) and is not cryptographic:
 * values are unique, not secret.
 */
void pt_random_hex(char *dst, size_t n);

#endif
