/*
 * http.h: the HTTP core's types: client connections, requests, and the http/server/
 * location configuration every module reads.  The http core module (http_core.c) owns the
 * http, server and location blocks; request.c runs the phases; response.c writes.
 */
#ifndef PT_HTTP_H
#define PT_HTTP_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "core/buf.h"
#include "config/conf.h"
#include "core/cycle.h"
#include "worker/event.h"
#include "worker/http_parse.h"
#include "worker/http_phase.h"
#include "worker/listen.h"
#include "worker/transport.h"
#include "core/module.h"
#include "core/pt.h"

struct pt_request;
struct pt_listen;
struct pt_names;
struct pt_locations;

typedef int (*pt_http_handler)(struct pt_request *r);
typedef void (*pt_http_event_handler)(struct pt_request *r);

/* An address/port in set_real_ip_from and similar lists. */
struct pt_cidr {
    int family;
    uint8_t addr[16];
    unsigned bits;
};

/* --- configuration --- */

struct pt_http_server; /* a server {} block: its srv and loc arrays */

struct pt_http_main_conf {
    void **srv_conf, **loc_conf; /* the http{} block's defaults, per module index; NULL
                                    until an http block is read */
    struct pt_http_server **servers;
    int nservers, servers_cap;
    struct pt_http_hooks hooks; /* phase handlers and filters (http_phase.h) */
};

struct pt_http_srv_conf {
    struct pt_http_server *server;
    char *server_name; /* the first name, for $server_name */
    struct pt_locations *locations;
    int64_t client_header_timeout;
    int64_t large_header_size; /* of one buffer: the request line limit (414) */
    int64_t large_header_num;  /* buffers: the head limit is num x size (431) */
    int64_t max_headers;
    int underscores_in_headers; /* '_' is valid in a request field name */
    int ignore_invalid_headers; /* invalid request field names are dropped, not kept */
};

struct pt_http_loc_conf {
    char *name;      /* the location's spec ("= /x"), "" at server level */
    void **loc_conf; /* this location's arrays */
    void **parent;   /* an if block's level: the arrays it inherits from; NULL: the server's */
    pt_http_handler handler; /* content handler set by proxy_pass, return, ... */
    int64_t keepalive_timeout;
    int64_t keepalive_requests;
    int reject_unexpected_body; /* 400 for GET, HEAD, DELETE, OPTIONS with a body */
    int64_t client_body_timeout;
    int64_t send_timeout;
    int sendfile;               /* flag: files go out by sendfile where they can */
    int64_t sendfile_max_chunk; /* bytes one connection sends before the others' turn */
    int64_t client_max_body_size;
    int64_t client_body_buffer_size; /* of a body read ahead, kept in memory (body_store.c) */
    char *client_body_temp_path;     /* where the rest of it goes */
    int server_tokens;           /* PT_SERVER_TOKENS_*: the version in Server and on error pages */
    int absolute_redirect;       /* a redirect portier builds to "/path" goes out absolute */
    int port_in_redirect;        /* ... with the listening port when not the scheme's */
    int server_name_in_redirect; /* ... with the server's first name instead of Host's */
    /* A prefix ending in '/' whose handler passes requests on (proxy_pass): its path without
     * the slash answers 301 to it, as nginx's auto_redirect. */
    unsigned auto_redirect : 1;
    struct pt_cidr *real_ip_from;
    int nreal_ip_from;
    struct pt_error_page *error_pages; /* error_page, in the order written */
    int nerror_pages;
    int recursive_error_pages; /* flag */
    /* request_id_header: the field that carries $request_id in (from a set_real_ip_from
     * peer), up (proxy) and back (every response); len 0: off. */
    char *request_id_header_conf;
    struct pt_str request_id_header;
};

/* True when <r>'s peer is one of set_real_ip_from's trusted proxies. */
int pt_http_peer_trusted(struct pt_request *r);

/* One error_page line's target: a status it answers, what it does. */
struct pt_error_page {
    int status;
    int overwrite; /* 0: keep the status; -1 ("="): the new answer's; else this status */
    const char *src;
    struct pt_template *uri; /* "/path[?args]", "@name" or a URL */
};

struct pt_http_server {
    void **srv_conf;
    void **loc_conf;
    const char *file;
    int line;
    const struct pt_conf_setting *setting; /* only while the configuration is being read */
};

/* Per listen address: the servers listening there and the default one. */
struct pt_http_addr {
    struct pt_http_server *default_server;
    unsigned explicit_default : 1; /* chosen by default_server, not by being first */
    struct pt_names *names;
};

/* server_tokens: what Server headers and generated pages say (nginx's values). */
#define PT_SERVER_TOKENS_OFF   0 /* "portier" */
#define PT_SERVER_TOKENS_ON    1 /* "portier/VERSION", the default */
#define PT_SERVER_TOKENS_BUILD 2 /* as on: portier has no build name to add */

/* "portier/VERSION" or "portier", as <server_tokens> asks. */
#define pt_http_server_string(server_tokens) \
    ((server_tokens) == PT_SERVER_TOKENS_OFF ? "portier" : "portier/" PORTIER_VERSION)

extern struct pt_module pt_http_module;

struct pt_http_conn;

/* How a TLS handshake with a client ended (struct pt_http_observers). */
enum pt_tls_outcome {
    PT_TLS_FULL,
    PT_TLS_RESUMED,          /* a session from the cache or a ticket */
    PT_TLS_FAIL_CLOSED,      /* the client went away mid-handshake */
    PT_TLS_FAIL_PROTOCOL,    /* no protocol version in common, or not TLS */
    PT_TLS_FAIL_CIPHER,      /* no cipher in common */
    PT_TLS_FAIL_CERTIFICATE, /* the client refused the certificate */
    PT_TLS_FAIL_HTTP,        /* plain HTTP on a TLS port */
    PT_TLS_FAIL_OTHER,
    PT_TLS_NOUTCOMES
};

/* What modules tell the metrics module.  Each pointer is set by it in the workers of a
 * configuration that counts, NULL otherwise; they live in the core (http_core.c) so that a
 * module calls them whether the metrics module is built or not. */
struct pt_http_observers {
    void (*tls_handshake)(enum pt_tls_outcome outcome);
    /* A response compressed with <coding> (gzip.h's enum pt_coding) is over: <in> bytes of
     * body went in, <out> came out. */
    void (*compressed)(int coding, uint64_t in, uint64_t out);
    /* The waf refused a request on a rule of the group <group> (its rules file's name
     * without directory nor ".conf": "REQUEST-942-APPLICATION-ATTACK-SQLI"; "" if unknown). */
    void (*waf_blocked)(const char *group);
};

extern struct pt_http_observers pt_http_observers;

/* The Server value for what is said on connection <c> before any request is read (a
 * plain HTTP request on a TLS port): its address's default server's server_tokens. */
const char *pt_http_conn_server_string(const struct pt_http_conn *c);

#define pt_http_srv_conf(r, m)     ((r)->srv_conf[(m).index])
#define pt_http_loc_conf(r, m)     ((r)->loc_conf[(m).index])
#define pt_http_main_conf_of(c, m) ((c)->main_conf[(m).index])

/*
 * Splits the value <s> of a header directive (proxy_set_header, add_header), "NAME VALUE",
 * into *<name>, a field name (a token, RFC 9110 5.1), and *<value>, blanks around it trimmed
 * and one pair of enclosing quotes ("..." or '...') dropped as nginx's parser drops them; both
 * are copied into the configuration pool.  With <always> not NULL, a last word "always" is
 * taken off the value and sets *<always> (add_header).  The value may be empty ("NAME \"\"").
 * Returns PT_OK, or PT_ERROR (nothing reported) for a missing or invalid name, a name with
 * no value after it, or CR/LF in the value.
 */
int pt_http_header_directive(struct pt_conf *cf, const char *s, struct pt_str *name, char **value,
                             int *always);

/* True when server <s> has a `listen ... ssl`; *<listen> then names that address. */
int pt_http_server_ssl(struct pt_http_server *s, const char **listen);

/* Calls <fn> for the location configuration arrays of every server (its server level) and
 * every location of the cycle being configured.  Stops at the first error. */
int pt_http_foreach_loc(struct pt_conf *cf, int (*fn)(struct pt_conf *cf, void **loc_conf));

/* --- connections and requests --- */

struct pt_http_conn;

/* Set by the ssl module: makes <c>, accepted on a listener marked ssl, a TLS connection
 * (pt_tls_server on c->s).  PT_OK, or PT_ERROR to close the connection. */
extern int (*pt_http_tls_start)(struct pt_http_conn *c);

/* A client's address: a listener is IPv4 or IPv6 (a sockaddr_storage would be 100 bytes
 * more in every connection). */
union pt_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
};

/* One per open client connection, idle ones included: keep it small (an idle keepalive
 * connection holds this struct, its timer's heap slot and nothing else). */
struct pt_http_conn {
    /* The socket, its event and timer, the transport (plain or TLS) and readiness:
     * c->s.readable says an edge came that was not read up to EAGAIN, c->s.handshaken
     * that the transport's handshake is done. */
    struct pt_stream s;
    struct pt_listen *ls;             /* ls->servers: its routing table (pt_http_conn_addr) */
    struct pt_buf *in;                /* request bytes; NULL while idle between requests */
    struct pt_buf *out;               /* response bytes the socket did not take yet */
    struct pt_request *r;             /* the request being served */
    struct pt_http_conn *prev, *next; /* the worker's list, for draining */
    union {
        unsigned nrequests;
        /* While lingering (no request will come): the pt_now_ms() at which it ends, in 32
         * bits (compared modulo 2^32).  In the room of nrequests, not a field of its own:
         * an idle connection stays small. */
        uint32_t linger_until;
    };
    unsigned req_gen;     /* counts requests begun: tells a handler its request ended */
    unsigned eof : 1;     /* the client closed its side */
    unsigned closing : 1; /* close once the current response is out */
    unsigned error : 1;
    unsigned lingering : 1;
    unsigned linger_after : 1; /* linger once the pending output is out */
    /* A file sent by pt_http_send_file waits for the socket (or yielded to the others): the
     * request's write_handler runs when it takes more, though c->out is empty. */
    unsigned file_wait : 1;
    union pt_sockaddr peer;
    uint16_t peer_port;
    char peer_text[INET6_ADDRSTRLEN];
};

/* The servers listening on the address <c> was accepted on: its listener's routing
 * table, read through the listener rather than kept in every connection. */
static inline struct pt_http_addr *pt_http_conn_addr(const struct pt_http_conn *c)
{
    return c->ls->servers;
}

/* A response header: name and value, both in the request pool (or static). */
struct pt_header {
    struct pt_str name, value;
};

struct pt_headers {
    struct pt_header *h;
    int n, cap;
};

/* The kinds of upstream failure a tap is told about (struct pt_upstream_tap). */
#define PT_UPSTREAM_ERROR          0x1u /* connect, send or read failed; closed too early */
#define PT_UPSTREAM_TIMEOUT        0x2u /* connect, send or read timed out */
#define PT_UPSTREAM_INVALID_HEADER 0x4u /* an invalid (or too large) response head */

/*
 * What a module standing between a request and the upstream it is proxied to (the cache)
 * asks of the module that talks to the upstream (the proxy).  A phase handler before the
 * content phase sets r->tap; the proxy consults it when it builds the upstream request,
 * when the response head has arrived, and when every try has failed.  Both modules see
 * only this struct, never each other's.
 */
struct pt_upstream_tap {
    struct pt_str extra;             /* whole field lines added to the upstream request */
    unsigned strip_conditionals : 1; /* the client's If-* and Range fields do not go up */
    unsigned head_as_get : 1;        /* a HEAD request goes up as GET (and its body is read) */
    /* The upstream's response head <resp> (as received, its slices valid for the call) is
     * in r as it will go to the client (status, r->out, r->out_length), and nothing went
     * to the client yet: PT_DECLINED lets the proxy pass it on, PT_DONE says the tap answers
     * instead (the proxy lets go of the upstream, then calls answer()), PT_ERROR a 500. */
    int (*head)(struct pt_request *r, const struct pt_http_response *resp);
    /* Every try failed, the last with <kind> (PT_UPSTREAM_*): PT_DONE when the tap answers
     * instead of the proxy's 502 or 504 (the proxy then calls answer()), PT_DECLINED. */
    int (*failed)(struct pt_request *r, unsigned kind);
    /* Sends the tap's answer: what a content handler returns (PT_OK once all of it went,
     * PT_AGAIN when the tap finalizes the request itself later, a status or PT_ERROR). */
    int (*answer)(struct pt_request *r);
};

/* What one try of a proxied request leaves for the log. */
struct pt_upstream_try {
    const char *addr;                           /* the server's name */
    int status;                                 /* 0: none came */
    int64_t response_ms, connect_ms, header_ms; /* -1: not reached */
    uint64_t sent, received;                    /* bytes */
};

/* The tries of a request, for nginx's $upstream_* variables, which format them only when
 * asked (one entry per try joined by ", "); the array is in the request pool. */
struct pt_upstream_log {
    struct pt_upstream_try *tries;
    int n, cap;
};

struct pt_request {
    struct pt_http_conn *c;
    struct pt_pool *pool;
    struct pt_http_request h; /* the parsed head: slices into c->in */
    struct pt_str uri;        /* normalized path, used for routing */
    struct pt_str args;       /* query without '?' */
    struct pt_http_server *server;
    void **main_conf, **srv_conf, **loc_conf;
    const struct pt_http_hooks *hooks; /* the cycle's phase handlers and filters */
    void **ctx;                        /* per-module request state */
    size_t *captures;                  /* regex location captures (offset pairs into uri) */
    int ncaptures;

    int phase, phase_index;

    /* request body, as read from the client */
    int64_t body_left; /* Content-Length bytes still to come, or -1 with chunked */
    struct pt_chunked chunk;
    size_t chunk_ready; /* decoded chunk bytes waiting at c->in->pos */
    char *body_start;   /* where the body begins in c->in: the head stays before it */
    unsigned has_body : 1;
    unsigned body_done : 1;
    unsigned expect_sent : 1;
    int64_t body_received;
    /* What a module read of the body ahead of the content handler (body_store.c): handed
     * out again by pt_http_body_peek before what is still with the client.  NULL: none. */
    struct pt_body_store *kept;

    /* response */
    int status;
    struct pt_str status_line; /* reason phrase override, e.g. from upstream */
    struct pt_headers out;
    int64_t out_length; /* -1 when unknown */
    unsigned header_sent : 1;
    unsigned header_only : 1; /* HEAD, 204, 304: no body on the wire */
    unsigned chunked_out : 1;
    unsigned keepalive : 1;
    unsigned response_done : 1; /* the last body byte was handed to the writer */
    unsigned finalized : 1;
    unsigned logged : 1;
    unsigned tunnel : 1; /* after a 101: raw bytes both ways */
    /* Unbuffered (proxy_buffering off, X-Accel-Buffering: no, an event stream): each piece
     * of the body leaves at once, through every filter (a compressor flushes it). */
    unsigned stream_out : 1;
    /* A body filter changes or inspects this response's bytes (set by its header filter):
     * they must pass through pt_http_send_body, never go out as a file. */
    unsigned body_filtered : 1;
    /* A body on GET, HEAD, DELETE or OPTIONS: passed on, but a server that ignored it would
     * read it as a next request, so no connection it travelled on is kept. */
    unsigned unexpected_body : 1;
    /* The client has its whole answer already (a cache's stale entry) and the request goes
     * on in the background (the content handler refreshes the entry): nothing more goes to
     * the client, and however it ends, the client's answer stands. */
    unsigned background : 1;
    /* A rewrite changed r->uri (and r->args): the upstream gets them, not the request's
     * target. */
    unsigned uri_rewritten : 1;
    /* A rewrite with break changed the URI in this location: a proxy_pass URI part no
     * longer replaces its prefix, the whole URI goes (nginx's valid_location). */
    unsigned uri_whole : 1;
    unsigned error_page : 1; /* an error_page redirected it already */
    /* The generated error page shows the request id (the waf's refusals: a user can quote
     * it, and the error log line names it). */
    unsigned page_request_id : 1;
    int err_status;         /* the status the answer goes out with (error_page); 0: its own */
    int internal_redirects; /* error_page's, counted against the loop */
    /* What limit_req and limit_conn decided (their $limit_*_status, 0: nothing yet): kept
     * across an error_page's new pass, which clears r->ctx, so that they decide once per
     * request, as nginx's r->main->limit_*_status. */
    unsigned limit_req_status : 3;
    unsigned limit_conn_status : 2;
    /* The waf's transaction, kept across an error_page's new pass likewise: a request is
     * judged once (ModSecurity-nginx recovers its context after an internal redirect). */
    void *waf_ctx;
    int64_t bytes_sent, body_bytes_sent;

    pt_http_event_handler read_handler;  /* client readable while a module owns the request */
    pt_http_event_handler write_handler; /* client output drained while a module owns it */
    /* The content handler's own header filter, run after every module's: its last word on
     * what they made of the answer (the static module's byte ranges come after gzip and
     * charset, as nginx's range filter). */
    int (*last_header_filter)(struct pt_request *r);
    void (*cleanup)(struct pt_request *r); /* release upstream state when the request ends */

    const struct pt_upstream_tap *tap; /* NULL: nothing stands between it and the upstream */

    uint64_t start_ms;
    const char *request_id;    /* NULL until pt_request_id() makes or takes one */
    struct pt_upstream_log up; /* the $upstream_* lists */
    int64_t body_framing;      /* chunk-size lines and CRLFs read around the body's bytes */
    /* Which of stub_status's Reading and Writing counts this request is in. */
    unsigned stat_reading : 1;
    unsigned stat_writing : 1;
};

/* The Location of a redirect portier answers with (return, rewrite, the 301 to a
 * location's slash), as nginx writes it: <loc> as it is unless it starts with '/' and
 * absolute_redirect is on; then "SCHEME://HOST[:PORT]<loc>", HOST being the request's Host
 * without its port (the server's first name with server_name_in_redirect; the address the
 * connection reached without a Host), PORT the listening port, left out when it is the
 * scheme's or port_in_redirect is off.  In the request pool; PT_NULL_STR when out of
 * memory. */
struct pt_str pt_http_redirect_location(struct pt_request *r, struct pt_str loc);

/* Set by the static module: the MIME type of <r>'s URI by its extension in the location's
 * `types`, else its `default_type` (nginx's ngx_http_set_content_type), in static storage
 * or the configuration's.  NULL without that module. */
extern struct pt_str (*pt_http_uri_type)(struct pt_request *r);

/* The Content-Type of an answer portier makes up from text (return 200 "text"): what
 * pt_http_uri_type says, text/plain without the static module. */
struct pt_str pt_http_text_type(struct pt_request *r);

/* Appends a response header to <r>; <name>/<value> must outlive the request (pool or
 * static).  Returns PT_OK or PT_ERROR. */
int pt_header_add(struct pt_request *r, struct pt_headers *hs, struct pt_str name,
                  struct pt_str value);

/* Removes every header of <hs> named <name> (case-insensitive). */
void pt_header_remove(struct pt_headers *hs, const char *name);

/* Finds a header of <hs> by name; NULL if none. */
struct pt_header *pt_header_find(struct pt_headers *hs, const char *name);

/* --- the request lifecycle (request.c) --- */

/* Runs the phases of <r> from where it stands.  Handlers that return PT_AGAIN call it
 * again (or finalize) when they resume. */
void pt_http_run_phases(struct pt_request *r);

/* Makes the level of an if block inside the location whose arrays are <parent> (the one
 * being read): a configuration of every module, read from the block's other members by the
 * caller, merged with <parent> once the server's locations are, and visited by
 * pt_http_foreach_loc; never found by a URI.  Sets *<arr>.  PT_OK or PT_ERROR. */
int pt_http_nested_level(struct pt_conf *cf, void **parent, void ***arr);

/* Whether error_page would take an answer of <status> for <r> over (for the proxy's
 * proxy_intercept_errors). */
int pt_http_error_page_for(struct pt_request *r, int status);

/* The named location <name> ("@fallback") of <r>'s server, or NULL. */
struct pt_http_loc_conf *pt_http_named_location(struct pt_request *r, struct pt_str name);

/* Makes the phase engine search the location again for r->uri once the current handler
 * (a REWRITE phase one) returns PT_OK: nginx's re-search after a rewrite. */
void pt_http_search_location_again(struct pt_request *r);

/* nginx's internal redirect of <r> to <to>: a URI ("/index.html?a=1") starts the request
 * over from SERVER_REWRITE with it, a named location ("@app") from REWRITE there; the
 * module states (r->ctx) and response fields of the pass so far go.  Returns PT_DONE (the
 * request goes on; the caller returns it), or 500 past ten redirects or for an unknown
 * named location (logged). */
int pt_http_internal_redirect(struct pt_request *r, struct pt_str to);

/* Ends request <r> with <rc>: PT_OK/PT_DONE when the handler produced the response, an HTTP
 * status to send a generated response (if the header was not sent yet), PT_ERROR for 500
 * (or an abrupt close if the header was already sent). */
void pt_http_finalize(struct pt_request *r, int rc);

/* Closes the client connection of <r> at once, ending the request. */
void pt_http_abort(struct pt_request *r);

/* Request body: returns the next slice of decoded body bytes available in the client
 * buffer (PT_OK, possibly empty; *<last> set when the body is complete), PT_AGAIN when
 * nothing is buffered yet (reading is armed), or an HTTP status (400, 413) on a bad body.
 * The slice stays valid until pt_http_body_consumed(r, n). */
int pt_http_body_peek(struct pt_request *r, struct pt_str *data, int *last);
void pt_http_body_consumed(struct pt_request *r, size_t n);

/*
 * Reads the body of <r> ahead of its content handler, for a module that must see it first
 * (the waf).  Each piece read goes to <sink>(r, data, len, last) and is kept: in memory up
 * to client_body_buffer_size, the rest in an unnamed temporary file under
 * client_body_temp_path.  The content handler later reads what was kept through
 * pt_http_body_peek as if it came from the client, then whatever the client still sends.
 * <sink> returns PT_OK for more, PT_DONE when it has seen enough (what follows is not read
 * ahead but streams behind what was kept), or an HTTP status or PT_ERROR to refuse.
 * Returns PT_OK once the sink has all it wants (at once without a body), PT_AGAIN while
 * the client has more to send (the phase engine runs the calling phase handler again as
 * more comes; it calls this again, which goes on where it stopped), or what refused: a
 * status of the sink's, or of the body's (400 for bad chunked framing, 413, 408).
 */
typedef int (*pt_body_sink)(struct pt_request *r, const char *data, size_t len, int last);
int pt_http_body_read_ahead(struct pt_request *r, pt_body_sink sink);

/* Checks the chunked framing of the body bytes already buffered, without consuming them,
 * so that a request whose body is visibly malformed is refused before anything of it goes
 * upstream.  Returns PT_OK or 400. */
int pt_http_body_check_buffered(struct pt_request *r);

/* Sends "100 Continue" if the client asked for it and it was not sent. */
void pt_http_send_continue(struct pt_request *r);

/* --- the response (response.c) --- */

/* Runs the header filters and queues the status line and headers of <r>.  Returns PT_OK or
 * PT_ERROR. */
int pt_http_send_header(struct pt_request *r);

/* Passes <len> body bytes through the body filters to the client (<last> on the final
 * call).  Returns PT_OK (all taken; some may wait in c->out), or PT_ERROR (client gone). */
int pt_http_send_body(struct pt_request *r, const char *data, size_t len, int last);

/* Sends up to <len> bytes of the file <fd> from <off> as <r>'s body, without copying them
 * through user space (sendfile, or kernel TLS), after what waits in c->out; <last>: these
 * are the body's last bytes.  Returns the bytes sent (> 0), PT_AGAIN when the socket must
 * take more first (the request's write_handler runs when it does; set it with
 * pt_http_wait_output), 0 when the file ended sooner (the caller says so and fails),
 * PT_ERROR (the client is gone), or PT_DECLINED when this response cannot go so (a body filter
 * takes its bytes, chunked framing, a transport without it): the caller reads the file and uses
 * pt_http_send_body. */
ssize_t pt_http_send_file(struct pt_request *r, int fd, int64_t off, size_t len, int last);

/* The next bytes of the file <fd> [<off>, <off> + <len>) as <r>'s body, <last> when they
 * end it: by pt_http_send_file where the response allows (pieces under 16 KiB whose header
 * still waits are read, to go with it in one write: as many calls, one packet), else read
 * into *<buf> (64 KiB, made in r's pool on first use) and passed through the filters.
 * Returns the bytes that went (> 0), PT_AGAIN as pt_http_send_file, or PT_ERROR: the
 * client is gone, or the file (<name> in the log, as nginx words it) ended sooner. */
ssize_t pt_http_send_file_part(struct pt_request *r, int fd, const char *name, int64_t off,
                               int64_t len, int last, char **buf);

/* Makes <handler> the request's write_handler, to run when the client takes more, and
 * starts send_timeout for the wait unless it runs already. */
void pt_http_wait_output(struct pt_request *r, void (*handler)(struct pt_request *r));

/* The next body filter after <self> (the last one writes to the client). */
int pt_body_filter_next(struct pt_request *r, int self, const char *data, size_t len, int last);

/* True when response bytes wait for the client socket: producers stop until the request's
 * write_handler runs. */
int pt_http_output_blocked(const struct pt_request *r);

/* Logs at <level> the message made of <fmt> and its arguments followed by the request's
 * part of the line, as nginx writes it: ", client: ADDR, server: NAME, request: "LINE",
 * host: "HOST"" (the client's bytes escaped).  Costs nothing below the log's level. */
void pt_http_log(struct pt_request *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The page portier answers <status> with when it has no text of its own (in r's pool):
 * nginx's, with the request id when r->page_request_id. */
struct pt_str pt_http_error_page(struct pt_request *r, int status);

/* Sends a generated response for <status>: a small HTML page (or <text> when given) with
 * Server: portier.  Returns PT_OK or PT_ERROR. */
int pt_http_send_special(struct pt_request *r, int status, struct pt_str text);

/* Tries to write c->out.  PT_OK when empty, PT_AGAIN when the socket is full, PT_ERROR. */
int pt_http_flush(struct pt_http_conn *c);

/* Standard reason phrase of <status> ("Not Found"), or "Unknown". */
const char *pt_http_reason(int status);

/* Raw writes bypassing filters (tunnels): appends to c->out after trying the socket. */
int pt_http_write_raw(struct pt_http_conn *c, const char *data, size_t len);

/* --- connections (conn.c) --- */

/* Accept handler of a listener. */
void pt_http_accept(struct pt_event *ev, unsigned events);

/* Starts draining: closes idle connections, marks busy ones to close after their request. */
void pt_http_drain(void);

/* Number of open client connections in this worker. */
unsigned pt_http_conn_count(void);

/* Takes one of the worker's worker_connections for an outgoing connection (an upstream
 * one): as in nginx, client and upstream connections share the limit.  At the limit, idle
 * client connections (keepalive, or not a byte sent yet) are closed to make room, the oldest
 * first.  Returns PT_OK, or PT_ERROR with errno EMFILE when no room can be made (logged,
 * rate-limited).  Each PT_OK is given back with pt_conn_slot_put() when that connection
 * closes. */
int pt_conn_slot_take(void);
void pt_conn_slot_put(void);

/* Reads from the client into c->in.  Returns bytes read (>0), 0 on EOF, PT_AGAIN, PT_ERROR
 * (with the buffer full, PT_AGAIN too: the caller must consume first). */
ssize_t pt_http_conn_read(struct pt_http_conn *c);

/* Sets up the worker's per-process HTTP state for <cycle>. */
int pt_http_worker_init(struct pt_cycle *cycle);

/* True when <sa> is in the CIDR list. */
int pt_cidr_match(const struct pt_cidr *list, int n, const struct sockaddr *sa);

/* Parses "ip" or "ip/bits" into <out>.  PT_OK or PT_ERROR. */
int pt_cidr_parse(const char *s, struct pt_cidr *out);

#endif
