/*
 * http_phase.h: the phases of an HTTP request and the response filters, and how modules
 * register handlers for them.  Modules register from their postconfig hook; the handlers of
 * a cycle live in the http module's main configuration (pt_http_main_conf), request.c runs
 * the phases and response.c the filters.
 */
#ifndef PT_HTTP_PHASE_H
#define PT_HTTP_PHASE_H

#include <stddef.h>

struct pt_cycle;
struct pt_request;

/* Phases of a request, in order (DESIGN.md "request lifecycle"). */
enum pt_phase {
    PT_PHASE_POST_READ,
    PT_PHASE_SERVER_REWRITE,
    PT_PHASE_FIND_CONFIG,
    PT_PHASE_REWRITE,
    PT_PHASE_PREACCESS, /* before allow/deny: limit_req, limit_conn (nginx's order) */
    PT_PHASE_ACCESS,
    PT_PHASE_PRECONTENT, /* after access is granted, before the content handler (the cache) */
    PT_PHASE_CONTENT,
    PT_PHASE_LOG,
    PT_NPHASES
};

/* A phase handler returns PT_OK (phase done), PT_DECLINED (next handler), PT_AGAIN (it
 * will resume the request itself), PT_DONE (request taken over), PT_ERROR (500) or an
 * HTTP status >= 100 (finalize with it). */
typedef int (*pt_phase_handler)(struct pt_request *r);

/* A header filter may edit r's response status and headers; it returns PT_OK or PT_ERROR. */
typedef int (*pt_header_filter)(struct pt_request *r);

/* A body filter receives <len> bytes at <data> (<last> on the final call) and passes what
 * it produces on with pt_body_filter_next(r, <self>, ...).  It must not keep <data> after
 * it returns.  Returns PT_OK or PT_ERROR. */
typedef int (*pt_body_filter)(struct pt_request *r, int self, const char *data, size_t len,
                              int last);

/* A module's section of the status document (the status module's JSON): writes one JSON
 * value (an object) for <cycle> through <put>(<w>, bytes, length).  PT_OK or PT_ERROR. */
typedef int (*pt_report)(struct pt_cycle *cycle, void (*put)(void *w, const char *s, size_t n),
                         void *w);

struct pt_peer;

/* A module's members of an upstream server's object in the status document: writes
 * ",\"name\":value" pairs for <peer> through <put>(<w>, bytes, length), or nothing.  Lets
 * a module add to the rows the status module builds without either knowing the other.
 * PT_OK or PT_ERROR. */
typedef int (*pt_peer_report)(const struct pt_peer *peer,
                              void (*put)(void *w, const char *s, size_t n), void *w);

#define PT_MAX_PHASE_HANDLERS 16
#define PT_MAX_FILTERS        16
#define PT_MAX_REPORTS        8

/* One cycle's phase handlers and filters, in registration order.  A request keeps a pointer
 * to them (r->hooks) so that running them costs no lookup. */
struct pt_http_hooks {
    pt_phase_handler phases[PT_NPHASES][PT_MAX_PHASE_HANDLERS];
    int nphase[PT_NPHASES];
    pt_header_filter header_filters[PT_MAX_FILTERS];
    int nheader_filters;
    pt_body_filter body_filters[PT_MAX_FILTERS];
    int nbody_filters;
    const char *report_names[PT_MAX_REPORTS];
    pt_report reports[PT_MAX_REPORTS];
    int nreports;
    pt_peer_report peer_reports[PT_MAX_REPORTS];
    int npeer_reports;
};

/* Registers <h> to run in phase <ph> of <c>, after those registered before.  PT_OK or
 * PT_ERROR when the phase is full. */
int pt_phase_add(struct pt_cycle *c, enum pt_phase ph, pt_phase_handler h);

/* Adds a header or body filter to <c>; filters run in registration order.  PT_OK or
 * PT_ERROR when PT_MAX_FILTERS are registered already. */
int pt_header_filter_add(struct pt_cycle *c, pt_header_filter f);
int pt_body_filter_add(struct pt_cycle *c, pt_body_filter f);

/* Adds the status section <name> (a JSON key; static storage) written by <fn> to <c>.
 * PT_OK or PT_ERROR when PT_MAX_REPORTS are registered already. */
int pt_report_add(struct pt_cycle *c, const char *name, pt_report fn);

/* Adds <fn>'s members to every upstream server's object in <c>'s status document.  PT_OK or
 * PT_ERROR when PT_MAX_REPORTS are registered already. */
int pt_peer_report_add(struct pt_cycle *c, pt_peer_report fn);

/* The phase handlers, filters and status sections of <c>. */
const struct pt_http_hooks *pt_http_hooks_of(struct pt_cycle *c);

#endif
