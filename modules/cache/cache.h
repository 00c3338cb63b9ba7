/*
 * cache.h: what the files of the cache module share.
 *   cache.c      the module: its directives (nginx's proxy_cache family), the caches
 *                (proxy_cache_path) and their zones, $upstream_cache_status
 *   index.c      a cache's index in shared memory (index.h)
 *   store.c      a cache's files (store.h)
 *   policy.c     RFC 9111's decisions on headers: storable, fresh, variants (policy.h)
 *   answer.c     the client's conditionals and ranges against a stored entry (policy.h)
 *   fields.h     the field-value readers policy.c and answer.c share
 */
#ifndef PT_CACHE_H
#define PT_CACHE_H

#include "core/shm.h"
#include "modules/cache/index.h"
#include "modules/cache/store.h"
#include "worker/http.h"
#include "worker/var.h"

/* One proxy_cache_path. */
struct cache {
    char *name; /* keys_zone's NAME */
    struct cache_path path;
    int64_t zone_size;
    int64_t inactive; /* s (default 10m) */
    int64_t max_size; /* bytes; 0: no limit */
    int64_t min_free; /* bytes; 0: no check */
    int64_t mem_max;  /* memory_max_object: bytes of a file kept in memory; 0: none */
    struct pt_shm_zone *zone;
    const char *file; /* where it was declared, for messages */
    int line;
    struct cache *next;
};

struct cache_main_conf {
    struct cache *caches;
};

/* proxy_cache_valid: one line. */
struct cache_valid {
    int status; /* 0: any */
    int64_t seconds;
};

/* proxy_cache_use_stale's words. */
#define CACHE_STALE_ERROR          0x0001u
#define CACHE_STALE_TIMEOUT        0x0002u
#define CACHE_STALE_INVALID_HEADER 0x0004u
#define CACHE_STALE_UPDATING       0x0008u
#define CACHE_STALE_HTTP_500       0x0010u
#define CACHE_STALE_HTTP_502       0x0020u
#define CACHE_STALE_HTTP_503       0x0040u
#define CACHE_STALE_HTTP_504       0x0080u
#define CACHE_STALE_HTTP_403       0x0100u
#define CACHE_STALE_HTTP_404       0x0200u
#define CACHE_STALE_HTTP_429       0x0400u
#define CACHE_STALE_OFF            0x8000u

/* proxy_ignore_headers' words. */
#define CACHE_IGN_X_ACCEL_EXPIRES  0x01u
#define CACHE_IGN_EXPIRES          0x02u
#define CACHE_IGN_CACHE_CONTROL    0x04u
#define CACHE_IGN_SET_COOKIE       0x08u
#define CACHE_IGN_VARY             0x10u
#define CACHE_IGN_X_ACCEL_REDIRECT 0x20u /* accepted for nginx's configurations; no effect */
#define CACHE_IGN_X_ACCEL_LIMIT    0x40u /* the same */
#define CACHE_IGN_X_ACCEL_BUFFER   0x80u /* X-Accel-Buffering is then not obeyed */
#define CACHE_IGN_X_ACCEL_CHARSET  0x100u

/* A value with variables, compiled in postconfig once every module registered its
 * variables; shared by the levels that inherit it. */
struct cache_tpl {
    const char *src;
    const struct pt_conf_setting *setting;
    struct pt_template *t;
};

struct cache_loc_conf {
    struct cache *cache; /* NULL: off */
    int cache_set;       /* proxy_cache was given at this level (off counts) */
    const char *cache_name;
    const struct pt_conf_setting *cache_setting;
    struct cache_tpl *key;
    struct cache_valid *valid;
    int nvalid;
    int methods; /* bits (1 << PT_HTTP_*) */
    int64_t min_uses;
    struct cache_tpl *bypass, *no_cache;
    int nbypass, nno_cache;
    int use_stale;         /* CACHE_STALE_* */
    int background_update; /* flag */
    int lock;              /* flag */
    int64_t lock_timeout, lock_age;
    int revalidate;      /* flag */
    int heuristic;       /* flag: proxy_cache_heuristic */
    int convert_head;    /* flag */
    int ignore;          /* CACHE_IGN_* */
    struct cache *purge; /* proxy_cache_purge: this location purges that cache */
    const char *purge_name;
    const struct pt_conf_setting *purge_setting;
};

/* $upstream_cache_status's values. */
enum cache_status {
    CACHE_NONE, /* the request did not use the cache: the variable is empty */
    CACHE_MISS,
    CACHE_BYPASS,
    CACHE_EXPIRED,
    CACHE_STALE,
    CACHE_UPDATING,
    CACHE_REVALIDATED,
    CACHE_HIT
};

/* A request's use of the cache. */
struct cache_ctx {
    struct pt_request *r;
    struct cache_loc_conf *lc;
    struct cache *cache;
    struct pt_str key;
    uint8_t main_md5[CACHE_MD5_LEN]; /* the key's */
    uint8_t md5[CACHE_MD5_LEN];      /* the entry's: the key's, or its variant's */
    char *vary;                      /* the Vary names of a varying key; NULL: none */
    uint64_t ticket;                 /* this request's lock, unique among processes */
    enum cache_status status;
    struct cache_view view;
    char *mem; /* the memory tier's copy of the entry, when there was one */
    /* The stored entry this request looked at (to serve, or stale to fall back on). */
    struct cache_file file;
    unsigned have_entry : 1; /* <file> holds a sound stored entry */
    unsigned locked : 1;     /* this request holds the key's update lock */
    unsigned may_store : 1;  /* the upstream's response may be stored (if storable) */
    unsigned revalidating : 1;
    unsigned serving : 1; /* the response comes from the cache */
    unsigned waited : 1;  /* it waited for another request's lock */
    /* Once the stale entry is out, the request refreshes it in the background
     * (proxy_cache_background_update). */
    unsigned background : 1;
    struct pt_timer wait; /* polling the lock */
    uint64_t wait_until;  /* pt_now_ms() when waiting ends (proxy_cache_lock_timeout) */
    /* Serving a file: where the rest of the body is, and the buffer it goes through. */
    off_t off;
    uint64_t left;
    char *buf;
    /* Filling: the file being written. */
    struct cache_writer *writer;
    struct pt_upstream_tap tap;
};

extern struct pt_module pt_cache_module;

struct pt_cache_req;
struct pt_cache_resp;
struct pt_cache_range;

/* lookup.c.
 * cache_lookup_handler: the PRECONTENT phase handler.
 * cache_md5: the MD5 of <a>/<alen> followed by <b>/<blen> into <out>.
 * cache_any_set: whether one of the <n> values <t> is set (not empty, not "0").
 * cache_req_of: the request as the policy sees it. */
int cache_lookup_handler(struct pt_request *r);
void cache_md5(const char *a, size_t alen, const char *b, size_t blen, uint8_t *out);
int cache_any_set(struct pt_request *r, const struct cache_tpl *t, int n);
void cache_req_of(struct pt_request *r, struct pt_cache_req *req);

/* fill.c.
 * cache_tap_init: sets up ctx->tap and points the request at it.
 * cache_body_filter: writes the stored copy as the body streams.
 * cache_revalidate: asks the upstream whether the stale entry still holds (If-None-Match,
 * If-Modified-Since); returns PT_DECLINED (the proxy goes on).
 * cache_revalidated: the upstream's 304 <resp> refreshes the entry; returns PT_DONE (the
 * entry answers) or PT_DECLINED.
 * cache_stale_for_status: whether the upstream's <status> lets the stale entry answer
 * (proxy_cache_use_stale http_*, stale-if-error); sets the status when it does.
 * cache_stale_allowed: whether a failure of kind <want> (CACHE_STALE_*) lets it answer. */
void cache_tap_init(struct cache_ctx *ctx);
int cache_body_filter(struct pt_request *r, int self, const char *data, size_t len, int last);
int cache_revalidate(struct cache_ctx *ctx);
int cache_revalidated(struct cache_ctx *ctx, const struct pt_cache_resp *resp);
int cache_stale_for_status(struct cache_ctx *ctx, int status);
int cache_stale_allowed(struct cache_ctx *ctx, int want);

/* purge.c.
 * cache_purge_handler: the content handler of a proxy_cache_purge location.
 * cache_purge: removes from <c> the entries whose key is <key>/<len> (<exact>: the key's
 * entry and its variants) or starts with it, index first, then their files; returns how
 * many stored entries went.  <pool> holds the list of files meanwhile. */
int cache_purge_handler(struct pt_request *r);
/* cache_make_room: the keys_zone is full: the least recently used entries go (their files
 * too) until a twentieth of it is free, as the helper's sweep would, now. */
void cache_make_room(struct cache *c, struct pt_pool *pool);
uint64_t cache_purge(struct cache *c, struct pt_pool *pool, const char *key, size_t len, int exact);

/* manager.c: the helper's work for every cache (init_helper): the loader, then sweeps. */
int cache_helper_init(struct pt_cycle *cycle);

/* serve.c.
 * cache_apply_head: puts the stored head <head> ("200 OK\r\nName: value\r\n..."; the
 * fields are slices of it, which must live as long as <r>) into <r>'s response.  PT_OK or PT_ERROR.
 * cache_head_field: the value of field <name> in the stored head <head> (empty: none).
 * cache_apply_range: makes the response the 206 (or 416) of <range> (one of
 * enum pt_cache_ranges in <kind>).  PT_OK or PT_ERROR. */
int cache_apply_head(struct pt_request *r, char *head);
struct pt_str cache_head_field(const char *head, const char *name);
int cache_apply_range(struct cache_ctx *ctx, int kind, const struct pt_cache_range *range);

/* serve.c: answers <ctx>'s request from ctx->file (opened by the lookup) with status
 * <status> for $upstream_cache_status.  Returns what a phase handler returns: PT_OK when
 * the whole response went out, PT_AGAIN when the rest follows as the client reads (the
 * request is finalized then), or an HTTP status / PT_ERROR. */
int cache_serve(struct cache_ctx *ctx, enum cache_status status);

#endif
