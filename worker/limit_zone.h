/*
 * limit_zone.h: the shared-memory zones behind limit_req and limit_conn, what the two
 * modules share so that each keeps only its own arithmetic.
 *
 * Configuration.  limit_req_zone and limit_conn_zone declare a zone as nginx does, "KEY
 * zone=NAME:SIZE [PARAM...]": KEY a template ($binary_remote_addr, "$host$uri"), SIZE at
 * least 32k (nginx's 8 pages).  Both directives share one namespace of names, as nginx's
 * shared memory does: a NAME declared twice is an error naming the first use.  A limit names
 * its zone (limit_req zone=NAME, limit_conn NAME N) anywhere in the file: the name is looked
 * up once the whole file is read, and an unknown one is an error at the limit's line.
 *
 * Memory.  A zone holds one node per key: the owner's fixed-size state and the key's bytes,
 * found through a hash table (SipHash under a key drawn when the zone is made, so that
 * clients cannot aim their keys at one chain) and kept on a list most recently used first,
 * so that the owner can evict from the old end.  Links are zone offsets (shm.h).  Everything
 * runs under the slab pool's lock, taken with pt_limit_lock(): a lock recovered from a
 * process that died holding it means the lists may be half updated, so the table is emptied
 * (its epoch goes up, telling holders of a node that it is gone).  A zone survives a reload
 * when its name, size, kind and key are unchanged; a changed key starts it empty.
 */
#ifndef PT_LIMIT_ZONE_H
#define PT_LIMIT_ZONE_H

#include <stdint.h>

#include "worker/http.h"

struct pt_limit_zone;
struct pt_template;

/* What a kind of zone is (one static struct per declaring directive). */
struct pt_limit_kind {
    const char *directive; /* "limit_req_zone" */
    const char *user;      /* "limit_req": the directive that names such zones */
    const char *usage;     /* the declaration's shape, for messages */
    int nargs;             /* words of the declaration, KEY included */
    size_t state_size;     /* bytes of the owner's state in each node, a multiple of 8 */
    uint32_t version;      /* layout of that state: a zone of another layout starts empty */
    /* Reads the word <w> of a declaration that is not zone=.  PT_OK, PT_DECLINED when it is
     * no parameter of the kind (reported here as invalid), or PT_ERROR after reporting. */
    int (*param)(struct pt_conf *cf, struct pt_limit_zone *lz, const char *w);
    /* Frees what <state> owns in the zone, for a node the table drops by itself (the reset
     * after a lost lock).  The lock is held.  May be NULL. */
    void (*drop)(struct pt_limit_zone *lz, void *state);
};

/* A declared zone, in the cycle pool; every process has its own copy. */
struct pt_limit_zone {
    const struct pt_limit_kind *kind;
    char *name;    /* NAME of zone=NAME:SIZE */
    char *key_src; /* KEY as written, for messages */
    struct pt_template *key;
    uint64_t rate; /* limit_req_zone's rate=, in thousandths of a request per second */
    struct pt_shm_zone *shm;
};

/* A key's node.  The owner's state follows the header; the key follows the state. */
struct pt_limit_node {
    uint64_t hnext;      /* next in its hash chain */
    uint64_t prev, next; /* on the list, most recently used first */
    uint32_t hash;
    uint16_t key_len;
    uint16_t spare;
    uint64_t state[]; /* kind->state_size bytes */
};

/* --- configuration --- */

/* Reads the declaration cf->value of directive <kind> ("KEY zone=NAME:SIZE ...") and
 * declares its zone in the cycle.  Returns PT_OK, or PT_ERROR after reporting a malformed
 * value, a size under 32k, or a NAME already declared (by either directive). */
int pt_limit_zone_declare(struct pt_conf *cf, const struct pt_limit_kind *kind);

/* One limit line of a level (limit_req zone=NAME ..., limit_conn NAME N): the zone it names.
 * Its owner embeds it, first, in a struct of its own allocated in the configuration pool. */
struct pt_limit_line {
    struct pt_limit_zone *zone; /* set once the whole file is read */
    const char *name;
};

/* The lines of a level in the order written, shared by the levels that inherit them (a
 * level with lines of its own inherits none, as nginx's). */
struct pt_limit_lines {
    struct pt_limit_line **v;
    int n, cap;
};

/* Adds <line> naming the zone <name> of <kind> (written by <directive>) to *<lines>, created
 * on first use.  A zone the level limits already is refused as nginx's "is duplicate".  The
 * zone is looked up once the whole file is read (a declaration may come later), and a NAME
 * not declared, or declared by the other directive, is then reported at the current
 * setting's line.  <name> is copied.  PT_OK or PT_ERROR. */
int pt_limit_lines_add(struct pt_conf *cf, const struct pt_limit_kind *kind, const char *directive,
                       struct pt_limit_lines **lines, struct pt_limit_line *line, const char *name);

/* Calls <fn>(<lz>) for every zone of <kind> that cycle <c> declares. */
void pt_limit_zone_each(struct pt_cycle *c, const struct pt_limit_kind *kind,
                        void (*fn)(struct pt_limit_zone *lz));

/* What limit_req and limit_conn read alike at each level (their location configuration):
 * the limits, and their _log_level, _status and _dry_run. */
struct pt_limit_conf {
    struct pt_limit_lines *limits; /* NULL: none here, inherit */
    int log_level;                 /* of refusals (PT_LOG_*) */
    int64_t status;                /* of refusals */
    int dry_run;
};

/* The values of the _log_level directives, and the bounds of the _status ones (nginx's). */
extern const struct pt_conf_enum pt_limit_log_levels[];
extern const int64_t pt_limit_status_bounds[2];

/* A module's create_loc_conf and merge_loc_conf for a struct pt_limit_conf: unset, then
 * inherited, or nginx's defaults (error, 503, off). */
void *pt_limit_conf_create(struct pt_conf *cf);
int pt_limit_conf_merge(struct pt_conf *cf, void *parent, void *child);

/* --- requests --- */

/* Evaluates the key of <lz> for <r> into *<key> (in the request pool).  PT_OK; PT_DECLINED
 * when the request is not counted: an empty key (nginx's rule), or one longer than <max>
 * bytes (logged at error, as nginx); PT_ERROR when out of memory. */
int pt_limit_key(struct pt_request *r, const struct pt_limit_zone *lz, size_t max,
                 struct pt_str *key);

/* --- the table; every call but pt_limit_lock() needs the lock held --- */

/* Takes the lock of <lz>'s zone.  PT_OK; PT_ERROR (logged) when the lock or the zone is
 * unusable, nothing held.  A lock recovered from a dead holder empties the table first. */
int pt_limit_lock(struct pt_limit_zone *lz);
void pt_limit_unlock(struct pt_limit_zone *lz);

/* The hash of <key> in <lz>'s table. */
uint32_t pt_limit_hash(struct pt_limit_zone *lz, struct pt_str key);

/* How many times the table was emptied: a node found before a change of epoch is gone. */
uint32_t pt_limit_epoch(struct pt_limit_zone *lz);

/* The node of <key> (<hash> from pt_limit_hash), or NULL. */
struct pt_limit_node *pt_limit_find(struct pt_limit_zone *lz, struct pt_str key, uint32_t hash);

/* Adds a node for <key>, its state zeroed, at the recent end of the list.  NULL when the
 * zone has no room (the caller may evict and try again). */
struct pt_limit_node *pt_limit_insert(struct pt_limit_zone *lz, struct pt_str key, uint32_t hash);

/* Moves <n> to the recent end of the list. */
void pt_limit_touch(struct pt_limit_zone *lz, struct pt_limit_node *n);

/* Unlinks and frees <n> (what its state owns is the caller's to free first). */
void pt_limit_remove(struct pt_limit_zone *lz, struct pt_limit_node *n);

/* The least recently used node, or NULL; and the node used next after <n>, or NULL. */
struct pt_limit_node *pt_limit_oldest(struct pt_limit_zone *lz);
struct pt_limit_node *pt_limit_newer(struct pt_limit_zone *lz, struct pt_limit_node *n);

/* Memory in the zone for what a state owns: <size> zeroed bytes or NULL; offsets to store
 * it in a state and back (0 is NULL). */
void *pt_limit_alloc(struct pt_limit_zone *lz, size_t size);
void pt_limit_free(struct pt_limit_zone *lz, void *p);
uint64_t pt_limit_off(struct pt_limit_zone *lz, const void *p);
void *pt_limit_ptr(struct pt_limit_zone *lz, uint64_t off);

#endif
