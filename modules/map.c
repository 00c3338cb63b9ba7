/*
 * map.c: the map module: nginx's `map`.  A map defines a variable whose value is chosen by
 * a source string (variables allowed), in nginx's order: an exact key (matched ignoring
 * case); with `hostnames`, the longest mask .example.com or *.example.com, then the longest
 * mask mail.*; the first regex (~, or ~* ignoring case) in the order written; else the
 * default ("" without one).  The value is computed when a request first uses the variable
 * and kept for the rest of the request, unless the map is `volatile`.
 *
 * In the configuration a map is a group whose entries are the lines of nginx's block, each
 * split into words as nginx splits them (config/words.h), so that a map copied from nginx
 * reads the same.  Exact keys and the masks' labels share one hash table per map: a mask is
 * a path of labels in a trie (from the last label for .example.com and *.example.com, from
 * the first for mail.*), each edge a slot keyed by its parent node and the label, searched
 * as nginx searches its wildcard hashes.  A map's regexes are also joined into one
 * alternation asked first, so that a value none matches costs one pass, not one per regex;
 * which one matches, and its captures, still come from each in order.  Each worker also
 * remembers what the regexes made of the values it saw lately (map_regex_cache): a browser
 * sends the same User-Agent with every request, and asking again costs a hash and a
 * compare, not a pass of every regex (HAProxy keeps such a cache, tune.pattern.cache-size).
 *
 * Every map variable has one getter, map_get: the variable's name, which the registry
 * passes as the getter's argument, finds the map in the request's configuration.
 */
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/regex.h"
#include "worker/http.h"
#include "worker/var.h"

/* Nesting of map variables evaluated inside one another beyond which a map is taken to use
 * itself (nginx's limit on nested variables). */
#define MAP_DEPTH_MAX 100

/* One piece of a value: text with variables, or a capture of the entry's regex. */
struct value_part {
    struct pt_template *t; /* NULL: a capture */
    int group;             /* the capture's group, or -1: a capture that has no value here */
};

/* The value of an entry (or the default). */
struct map_value {
    const char *src;                       /* as written; compiled in postconfig */
    const struct pt_conf_setting *setting; /* its entry, for errors found compiling it */
    const struct map_regex *rx;            /* the regex it is the value of, or NULL */
    struct pt_str text;                    /* the value, when it has no variables */
    struct value_part *parts;              /* else its pieces in order */
    int nparts;
};

struct map_regex {
    const char *src; /* the pattern, without "~" or "~*" */
    int caseless;
    pcre2_code *code;
    struct pt_regex_hint hint;
    pcre2_match_data *md; /* shared by the worker's requests: captures are copied at once */
    struct map_value *value;
};

/* A node of a mask trie: the mask ending at it, if any, and whether it has labels below. */
struct wc_node {
    struct map_value *value;
    unsigned sub_only : 1; /* that mask is *.NAME: subdomains of NAME, not NAME itself */
    unsigned children : 1;
};

/* A slot of a map's table: an exact key (scope NULL, value a struct map_value, NULL for a
 * key that a .NAME mask reserves), or the edge labelled <key> below the node <scope> of a
 * mask trie (value its struct wc_node). */
struct slot {
    const void *scope;
    const char *key;
    size_t len;
    void *value;
    struct slot *next;
};

struct table {
    struct slot **b;
    size_t nb, n; /* nb a power of 2 */
};

struct map {
    char *name; /* of the variable, lower-case, without '$' */
    size_t len;
    const char *source_src;
    const struct pt_conf_setting *source_setting;
    struct pt_template *source;
    unsigned hostnames : 1;
    unsigned nocache : 1; /* volatile */
    struct table keys;
    struct wc_node head, tail; /* roots of the .NAME / *.NAME and the NAME.* masks */
    struct map_regex **rx;
    int nrx, rxcap;
    /* All the regexes as one alternation, asked first: a value that none matches (most
     * often, as with user agents) costs one pass over it instead of one per regex.  NULL
     * when there are fewer than two or they cannot be joined (see join_regexes). */
    pcre2_code *any;
    pcre2_match_data *any_md;
    struct memo_slot *memo; /* map_regex_cache slots (a power of 2), or NULL */
    size_t memo_mask;
    struct map_value *dflt;
    struct map_value **values; /* every value, for compiling them */
    int nvalues, valcap;
    const struct pt_conf_setting *setting;
};

struct map_main_conf {
    struct map **maps; /* sorted by name after postconfig: a request's cache follows it */
    int n, cap;
    int64_t hash_max_size, hash_bucket_size; /* accepted, unused */
    int64_t regex_cache;                     /* values remembered per map and worker */
};

/* The longest value whose regex outcome is remembered, and the most captures kept; a
 * longer value, or a regex with more groups, is matched every time. */
#define MEMO_KEY_MAX 320
#define MEMO_PAIRS   10
#define MEMO_UNSET   UINT16_MAX

/* What a map's regexes made of one value: the first that matched (-1: none) and its
 * captures as offsets in the value.  Written by one worker for itself (after the fork,
 * the slots are the worker's own copy); a slot is overwritten by the next value that
 * hashes to it. */
struct memo_slot {
    uint64_t hash;
    uint16_t len; /* of key; 0: empty (an empty value asks no regex) */
    int16_t rx;
    uint16_t npairs;
    uint16_t ov[2 * MEMO_PAIRS];
    char key[MEMO_KEY_MAX];
};

/* A request's value of one map variable. */
struct map_cache {
    struct pt_str v;
    int done;
};

/* The captures of the regex that chose a value. */
struct captures {
    const char *subject;
    const PCRE2_SIZE *ov;
    int n; /* pairs */
};

static int map_block(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int map_get(struct pt_request *r, struct pt_str name, struct pt_str *out);

static const int64_t regex_cache_bounds[2] = {0, 65536};

static const struct pt_directive map_directives[] = {
    {"map", PT_CTX_HTTP, PT_DIR_BLOCK, PT_MAIN_CONF, map_block, 0, NULL,
     "nginx's `map SOURCE $VARIABLE { ... }` as a group, or a list of groups: ( { source = "
     "\"$http_host\"; variable = \"$name\"; entries = ( \"hostnames\", \"default 0\", "
     "\"example.com 1\", \"*.example.com 2\", \"~^(?<sub>[^.]+)\\\\.example\\\\.org$ $sub\" ); "
     "} ); each entry is a line of nginx's block without its ';', split into words as nginx "
     "splits them (quote a word with blanks): \"KEY VALUE\", \"default VALUE\", \"hostnames\" "
     "(masks .example.com, *.example.com, mail.* as keys), \"volatile\" (computed at each use, "
     "not once per request), \"\\\\default VALUE\" for a key named like a parameter; an exact "
     "key matches ignoring case, then the longest mask, then ~REGEX or ~*REGEX (ignoring case) "
     "in order, else default (\"\" without one); VALUE may use variables, and the matching "
     "regex's $1..$9 and named captures; a map may come anywhere in http, before or after "
     "what uses its variable"},
    {"map_hash_max_size", PT_CTX_HTTP, 0, PT_MAIN_CONF, pt_conf_set_num,
     offsetof(struct map_main_conf, hash_max_size), NULL,
     "accepted for nginx configurations and unused: portier's map tables grow as needed"},
    {"map_hash_bucket_size", PT_CTX_HTTP, 0, PT_MAIN_CONF, pt_conf_set_size,
     offsetof(struct map_main_conf, hash_bucket_size), NULL,
     "accepted for nginx configurations and unused, as map_hash_max_size"},
    {"map_regex_cache", PT_CTX_HTTP, 0, PT_MAIN_CONF, pt_conf_set_num,
     offsetof(struct map_main_conf, regex_cache), regex_cache_bounds,
     "portier's own, like HAProxy's tune.pattern.cache-size: for each map with regexes, "
     "each worker remembers, for up to N values it saw lately, which regex matched and its "
     "captures, so that a value seen again (a browser's User-Agent on its next request) is "
     "not matched again; values over 320 bytes are always matched; about 370 bytes a value; "
     "0 turns it off, at most 65536 (default 256).  The map gives the same values either "
     "way"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_map_module;

static void *create_main_conf(struct pt_conf *cf)
{
    struct map_main_conf *mc = pt_palloc(cf->pool, sizeof(*mc));

    if (mc)
        mc->hash_max_size = mc->hash_bucket_size = mc->regex_cache = PT_CONF_UNSET;
    return mc;
}

/* The pool array <arr> of <n> elements of <size> bytes, room for *<cap>, with room for one
 * more: <arr> itself, or a larger copy.  NULL when out of memory. */
static void *grow(struct pt_conf *cf, void *arr, int n, int *cap, size_t size)
{
    void *b;

    if (n < *cap)
        return arr;
    *cap = *cap ? 2 * *cap : 8;
    if ((b = pt_palloc(cf->pool, (size_t)*cap * size)) != NULL && n)
        memcpy(b, arr, (size_t)n * size);
    return b;
}

/* ---- the table of keys and mask labels -------------------------------------------------- */

static size_t slot_hash(const void *scope, const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)(uintptr_t)scope;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3u;
    return (size_t)(h ^ h >> 32);
}

static struct slot *table_find(const struct table *t, const void *scope, const char *key,
                               size_t len)
{
    struct slot *s;

    if (t->nb == 0)
        return NULL;
    for (s = t->b[slot_hash(scope, key, len) & (t->nb - 1)]; s; s = s->next)
        if (s->scope == scope && s->len == len && (len == 0 || memcmp(s->key, key, len) == 0))
            return s;
    return NULL;
}

static void table_put(struct slot **b, size_t nb, struct slot *s)
{
    size_t h = slot_hash(s->scope, s->key, s->len) & (nb - 1);

    s->next = b[h];
    b[h] = s;
}

/* Adds <key>/<len> (kept as given: a pool copy) under <scope> with <value>.  The slot, or
 * NULL when out of memory. */
static struct slot *table_add(struct pt_conf *cf, struct table *t, const void *scope,
                              const char *key, size_t len, void *value)
{
    struct slot *s = pt_palloc(cf->pool, sizeof(*s));

    if (s == NULL)
        return NULL;
    if (t->n >= t->nb) {
        size_t nb = t->nb ? 2 * t->nb : 16;
        struct slot **b = pt_palloc(cf->pool, nb * sizeof(*b));
        if (b == NULL)
            return NULL;
        for (size_t i = 0; i < t->nb; i++) {
            for (struct slot *o = t->b[i], *next; o; o = next) {
                next = o->next;
                table_put(b, nb, o);
            }
        }
        t->b = b;
        t->nb = nb;
    }
    *s = (struct slot){scope, key, len, value, NULL};
    table_put(t->b, t->nb, s);
    t->n++;
    return s;
}

/* ---- reading a map ---------------------------------------------------------------------- */

static int conflict(struct pt_conf *cf, const char *key)
{
    return pt_conf_error(cf,
                         "conflicting parameter \"%s\": the map has this key already (with "
                         "hostnames, .example.com stands for example.com and *.example.com too)",
                         key);
}

static int invalid_mask(struct pt_conf *cf, const char *key)
{
    return pt_conf_error(cf,
                         "invalid hostname or wildcard \"%s\" (masks are .example.com, "
                         "*.example.com and mail.*)",
                         key);
}

/* Adds the mask whose labels are <p>/<len> (split at dots, walked from the first) to the
 * trie <root>: *.NAME with <sub_only>. */
static int add_mask(struct pt_conf *cf, struct map *m, struct wc_node *root, const char *p,
                    size_t len, int sub_only, struct map_value *v, const char *key)
{
    struct wc_node *node = root;

    for (size_t i = 0, j;; i = j + 1) {
        struct slot *s;
        for (j = i; j < len && p[j] != '.'; j++)
            ;
        s = table_find(&m->keys, node, p + i, j - i);
        if (s == NULL) {
            struct wc_node *c = pt_palloc(cf->pool, sizeof(*c));
            if (c == NULL || (s = table_add(cf, &m->keys, node, p + i, j - i, c)) == NULL)
                return pt_conf_error(cf, "out of memory");
            node->children = 1;
        }
        node = s->value;
        if (j == len)
            break;
    }
    if (node->value)
        return conflict(cf, key);
    node->value = v;
    node->sub_only = sub_only != 0;
    return PT_OK;
}

/* "a.example.com" -> "com.example.a": the labels of <p>/<len> in reverse order, into <out>. */
static void reverse_labels(const char *p, size_t len, char *out)
{
    size_t o = 0, end = len, i = len;

    for (;;) {
        while (i > 0 && p[i - 1] != '.')
            i--;
        memcpy(out + o, p + i, end - i);
        o += end - i;
        if (i == 0)
            return;
        out[o++] = '.';
        end = --i;
    }
}

/* A mask .NAME (<skip> 1) or *.NAME (<skip> 2): a path from the last label of NAME.  As in
 * nginx, .NAME also takes the exact key NAME, so that NAME cannot be mapped twice. */
static int add_head_mask(struct pt_conf *cf, struct map *m, const char *key, size_t skip,
                         struct map_value *v)
{
    const char *name = key + skip;
    size_t len = strlen(name);
    char *rev = pt_pnalloc(cf->pool, len + 1);

    if (rev == NULL)
        return pt_conf_error(cf, "out of memory");
    if (skip == 1) {
        if (table_find(&m->keys, NULL, name, len))
            return conflict(cf, key);
        if (table_add(cf, &m->keys, NULL, name, len, NULL) == NULL)
            return pt_conf_error(cf, "out of memory");
    }
    reverse_labels(name, len, rev);
    return add_mask(cf, m, &m->head, rev, len, skip == 2, v, key);
}

/* Adds the string key <key> (a pool copy, lower-cased here) with value <v>: an exact key,
 * or with hostnames a mask, classified as nginx's ngx_hash_add_key classifies it. */
static int add_key(struct pt_conf *cf, struct map *m, char *key, struct map_value *v)
{
    size_t len = strlen(key);
    int stars = 0;

    for (size_t i = 0; i < len; i++)
        key[i] = pt_lower(key[i]);
    if (m->hostnames) {
        for (size_t i = 0; i < len; i++)
            if ((key[i] == '*' && ++stars > 1) || (key[i] == '.' && key[i + 1] == '.'))
                return invalid_mask(cf, key);
        if (len > 1 && key[0] == '.')
            return add_head_mask(cf, m, key, 1, v);
        if (len > 2 && key[0] == '*' && key[1] == '.')
            return add_head_mask(cf, m, key, 2, v);
        if (len > 2 && key[len - 2] == '.' && key[len - 1] == '*')
            return add_mask(cf, m, &m->tail, key, len - 2, 0, v, key);
        if (stars)
            return invalid_mask(cf, key);
    }
    if (table_find(&m->keys, NULL, key, len))
        return conflict(cf, key);
    if (table_add(cf, &m->keys, NULL, key, len, v) == NULL)
        return pt_conf_error(cf, "out of memory");
    return PT_OK;
}

static void free_code(void *code)
{
    pcre2_code_free(code);
}

static void free_md(void *md)
{
    pcre2_match_data_free(md);
}

/* Adds the regex <pat> (after its '~'; "*" first: ignoring case) with value <v>. */
static int add_regex(struct pt_conf *cf, struct map *m, const char *pat, struct map_value *v)
{
    int caseless = *pat == '*', rc;
    struct map_regex *rx = pt_palloc(cf->pool, sizeof(*rx));
    struct map_regex **all = grow(cf, m->rx, m->nrx, &m->rxcap, sizeof(*all));
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;

    if (rx == NULL || all == NULL)
        return pt_conf_error(cf, "out of memory");
    m->rx = all;
    pat += caseless;
    rx->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, caseless ? PCRE2_CASELESS : 0,
                             &rc, &off, NULL);
    if (rx->code == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return pt_conf_error(cf, "invalid regex \"%s\": %s at offset %zu", pat, (const char *)msg,
                             (size_t)off);
    }
    if (pt_pool_cleanup(cf->pool, free_code, rx->code) != PT_OK ||
        (rx->md = pcre2_match_data_create_from_pattern(rx->code, NULL)) == NULL ||
        pt_pool_cleanup(cf->pool, free_md, rx->md) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    (void)pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE);
    pt_regex_hint(&rx->hint, pat, strlen(pat), caseless);
    rx->src = pat;
    rx->caseless = caseless;
    rx->value = v;
    v->rx = rx;
    m->rx[m->nrx++] = rx;
    return PT_OK;
}

static struct map_value *new_value(struct pt_conf *cf, struct map *m, const char *src,
                                   const struct pt_conf_setting *setting)
{
    struct map_value *v = pt_palloc(cf->pool, sizeof(*v));
    struct map_value **all = grow(cf, m->values, m->nvalues, &m->valcap, sizeof(*all));

    if (v == NULL || all == NULL)
        return NULL;
    m->values = all;
    v->src = src;
    v->setting = setting;
    m->values[m->nvalues++] = v;
    return v;
}

/* One entry <e> of a map: a line of nginx's map block, as ngx_http_map reads it. */
static int read_entry(struct pt_conf *cf, struct map *m, const struct pt_conf_setting *e)
{
    const char *line = pt_conf_setting_string(e);
    struct map_value *v;
    char *w[3];
    int n;

    cf->setting = e;
    if (line == NULL)
        return pt_conf_error(cf, "map entries are strings: \"KEY VALUE\", \"default VALUE\", "
                                 "\"hostnames\" or \"volatile\"");
    if ((n = pt_conf_words(cf, line, w, 3)) < 0)
        return PT_ERROR;
    if (n == 1 && strcmp(w[0], "hostnames") == 0) {
        m->hostnames = 1;
        return PT_OK;
    }
    if (n == 1 && strcmp(w[0], "volatile") == 0) {
        m->nocache = 1;
        return PT_OK;
    }
    if (n != 2)
        return pt_conf_error(cf,
                             "invalid map entry \"%s\": use \"KEY VALUE\", \"default VALUE\", "
                             "\"hostnames\" or \"volatile\" (quote a KEY or VALUE with blanks "
                             "as in nginx: \"'a b' 1\")",
                             line);
    if (strcmp(w[0], "include") == 0)
        return pt_conf_error(cf, "\"include\" is not supported in a map: list the file's "
                                 "entries here (a key named include is written \\\\include)");
    if ((v = new_value(cf, m, w[1], e)) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (strcmp(w[0], "default") == 0) {
        if (m->dflt)
            return pt_conf_error(cf, "duplicate default map parameter");
        m->dflt = v;
        return PT_OK;
    }
    if (w[0][0] == '~')
        return add_regex(cf, m, w[0] + 1, v);
    return add_key(cf, m, w[0] + (w[0][0] == '\\'), v);
}

/* Registers the variable "$name" <var> of the map <m>. */
static int map_variable(struct pt_conf *cf, struct map_main_conf *mc, struct map *m,
                        const char *var)
{
    if ((m->name = pt_conf_var_name(cf, var)) == NULL)
        return PT_ERROR;
    m->len = strlen(m->name);
    for (int i = 0; i < mc->n; i++)
        if (strcmp(mc->maps[i]->name, m->name) == 0)
            return pt_conf_error(cf, "duplicate variable \"$%s\": the map at line %d defines it",
                                 m->name, pt_conf_setting_line(mc->maps[i]->setting));
    if (pt_var_register(m->name, 0, map_get) != PT_OK)
        return pt_conf_error(cf,
                             "variable \"$%s\" is already defined (by portier or by "
                             "split_clients; one moved between them since start-up needs a "
                             "restart, not a reload)",
                             m->name);
    return PT_OK;
}

static int read_map(struct pt_conf *cf, const struct pt_conf_setting *g)
{
    static const char *const members[] = {"source", "variable", "entries", NULL};
    struct map_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_map_module);
    const struct pt_conf_setting *entries = pt_conf_setting_member(g, "entries");
    const char *var;
    struct map *m = pt_palloc(cf->pool, sizeof(*m));
    struct map **all = grow(cf, mc->maps, mc->n, &mc->cap, sizeof(*all));
    enum pt_conf_kind kind = entries ? pt_conf_setting_kind(entries) : PT_CONF_LIST;

    if (m == NULL || all == NULL)
        return pt_conf_error(cf, "out of memory");
    mc->maps = all;
    if (pt_conf_check_members(cf, g, members, "a map",
                              "it has source, variable and entries (hostnames, volatile and "
                              "default are entries, as in nginx: entries = ( \"hostnames\", "
                              "\"default 0\" ))") != PT_OK ||
        (m->source_src = pt_conf_member_string(cf, g, "source", "a map", "$http_host")) == NULL ||
        (var = pt_conf_member_string(cf, g, "variable", "a map", "$name")) == NULL)
        return PT_ERROR;
    m->setting = g;
    m->source_setting = pt_conf_setting_member(g, "source");
    cf->setting = pt_conf_setting_member(g, "variable");
    if (map_variable(cf, mc, m, var) != PT_OK)
        return PT_ERROR;
    if (kind != PT_CONF_LIST && kind != PT_CONF_ARRAY)
        return pt_conf_error_at(cf, entries,
                                "\"entries\" of a map is a list of strings: ( "
                                "\"default 0\", \"KEY VALUE\", ... )");
    for (int i = 0; entries && i < pt_conf_setting_count(entries); i++)
        if (read_entry(cf, m, pt_conf_setting_elem(entries, i)) != PT_OK)
            return PT_ERROR;
    mc->maps[mc->n++] = m;
    return PT_OK;
}

static int map_block(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const struct pt_conf_setting *setting = cf->setting;
    int rc;

    pt_unused(d);
    pt_unused(conf);
    rc = pt_conf_each_group(cf, setting, read_map);
    cf->setting = setting;
    return rc;
}

/* ---- compiling values --------------------------------------------------------------------- */

/* The group of the named capture <name>/<len> of <code> (ignoring case: nginx's variable
 * names do), the last one of that name as nginx sets them in turn; -1 if it has none. */
static int named_group(const pcre2_code *code, const char *name, size_t len)
{
    uint32_t count, size;
    PCRE2_SPTR table;
    int group = -1;

    if (pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &count) != 0 ||
        pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &size) != 0 ||
        pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table) != 0)
        return -1;
    for (uint32_t i = 0; i < count; i++, table += size) {
        const char *n = (const char *)table + 2;
        if (strncasecmp(n, name, len) == 0 && n[len] == '\0')
            group = table[0] << 8 | table[1];
    }
    return group;
}

static int name_char(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * If the reference after a '$' at <s> in the value <v> is a capture, returns its length
 * (after the '$') and sets *<group>: $1..$9 of the value's regex, or a named capture of it
 * ($name or ${name}); a capture that cannot have a value here (a number in the value of an
 * exact key or the default, a name of another regex of the map) is -1, an empty string.
 * Returns 0 for a variable, left to the template.  Names are scanned as var.c scans them.
 */
static size_t capture_ref(const struct map *m, const struct map_value *v, const char *s, int *group)
{
    size_t n = 0, skip = *s == '{';

    if (*s >= '1' && *s <= '9') {
        *group = v->rx ? *s - '0' : -1;
        return 1;
    }
    while (name_char(s[skip + n]))
        n++;
    if (n == 0 || (skip && s[1 + n] != '}') || (*s >= '0' && *s <= '9'))
        return 0;
    *group = v->rx ? named_group(v->rx->code, s + skip, n) : -1;
    for (int i = 0; *group < 0 && i < m->nrx; i++) {
        if (named_group(m->rx[i]->code, s + skip, n) >= 0)
            return n + 2 * skip; /* another regex's: empty here */
    }
    return *group >= 0 ? n + 2 * skip : 0;
}

/* Appends the text <from>..<to> of a value, variables and all, as a template part. */
static int add_text(struct pt_conf *cf, struct map_value *v, const char *from, const char *to)
{
    char *src;

    if (to == from)
        return PT_OK;
    if ((src = pt_pstrndup(cf->pool, from, (size_t)(to - from))) == NULL)
        return pt_conf_error(cf, "out of memory");
    v->parts[v->nparts] = (struct value_part){pt_template_compile(cf, src, PT_ESCAPE_NONE), 0};
    return v->parts[v->nparts++].t ? PT_OK : PT_ERROR;
}

static int value_compile(struct pt_conf *cf, const struct map *m, struct map_value *v)
{
    const char *p, *lit = v->src;
    size_t ndollars = 0, n;
    int group;

    cf->setting = v->setting;
    for (p = v->src; *p; p++)
        ndollars += *p == '$';
    if ((v->parts = pt_palloc(cf->pool, (2 * ndollars + 1) * sizeof(*v->parts))) == NULL)
        return pt_conf_error(cf, "out of memory");
    for (p = v->src; *p;) {
        if (*p != '$' || (n = capture_ref(m, v, p + 1, &group)) == 0) {
            p++;
            continue;
        }
        if (add_text(cf, v, lit, p) != PT_OK)
            return PT_ERROR;
        v->parts[v->nparts++] = (struct value_part){NULL, group};
        p += 1 + n;
        lit = p;
    }
    if (add_text(cf, v, lit, p) != PT_OK)
        return PT_ERROR;
    /* Without captures or variables, the value is its text. */
    v->text = PT_STR("");
    if (v->nparts == 0 ||
        (v->nparts == 1 && v->parts[0].t && pt_template_is_static(v->parts[0].t, &v->text))) {
        v->parts = NULL;
        v->nparts = 0;
    }
    return PT_OK;
}

/* True when <pat> holds what could mean something else inside a larger pattern: group
 * numbers or names referred to (\\1, \\g, \\k, (?P=, (?1, (?R, (?&, (?( ...), quoting
 * that runs to the end (\\Q), or leading verbs ((*UTF)). */
static int not_joinable(const char *pat)
{
    static const char *const refs[] = {"\\g", "\\k", "\\Q", "\\E", "(?P", "(?R",
                                       "(?&", "(?(", "(?+", "(?-", "(*",  NULL};

    for (const char *p = pat; *p; p++)
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '9')
            return 1;
    for (int i = 0; refs[i]; i++)
        if (strstr(pat, refs[i]))
            return 1;
    for (const char *p = strstr(pat, "(?"); p; p = strstr(p + 2, "(?"))
        if (p[2] >= '0' && p[2] <= '9')
            return 1;
    return 0;
}

/* Builds m->any, "(?i:R1)|(?:R2)|...", when <m> has two regexes or more that can be joined.
 * Failing to is no error: each regex is then tried alone, as always. */
static void join_regexes(struct pt_conf *cf, struct map *m)
{
    size_t len = 0;
    char *pat, *p;
    int rc;
    PCRE2_SIZE off;

    if (m->nrx < 2)
        return;
    for (int i = 0; i < m->nrx; i++) {
        if (not_joinable(m->rx[i]->src))
            return;
        len += strlen(m->rx[i]->src) + sizeof("|(?i:)");
    }
    if ((p = pat = pt_pnalloc(cf->pool, len + 1)) == NULL)
        return;
    for (int i = 0; i < m->nrx; i++)
        p += sprintf(p, "%s(?%s:%s)", i ? "|" : "", m->rx[i]->caseless ? "i" : "", m->rx[i]->src);
    m->any = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                           PCRE2_DUPNAMES | PCRE2_NO_AUTO_CAPTURE, &rc, &off, NULL);
    if (m->any == NULL)
        return;
    if (pt_pool_cleanup(cf->pool, free_code, m->any) != PT_OK) {
        pcre2_code_free(m->any);
        m->any = NULL;
        return;
    }
    /* From here on the pool frees what was made. */
    if ((m->any_md = pcre2_match_data_create(1, NULL)) == NULL ||
        pt_pool_cleanup(cf->pool, free_md, m->any_md) != PT_OK) {
        pcre2_match_data_free(m->any_md);
        m->any = NULL;
        return;
    }
    (void)pcre2_jit_compile(m->any, PCRE2_JIT_COMPLETE);
}

static int map_name_order(const void *a, const void *b)
{
    return strcmp((*(struct map *const *)a)->name, (*(struct map *const *)b)->name);
}

/* Gives <m> its map_regex_cache slots: <size> rounded up to a power of 2. */
static int memo_create(struct pt_conf *cf, struct map *m, int64_t size)
{
    size_t n = 1;

    if (m->nrx == 0 || size == 0)
        return PT_OK;
    while ((int64_t)n < size)
        n <<= 1;
    if ((m->memo = pt_palloc(cf->pool, n * sizeof(*m->memo))) == NULL)
        return pt_conf_error(cf, "out of memory");
    m->memo_mask = n - 1;
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    struct map_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_map_module);

    if (mc->regex_cache == PT_CONF_UNSET)
        mc->regex_cache = 256;
    for (int i = 0; i < mc->n; i++) {
        struct map *m = mc->maps[i];
        cf->setting = m->source_setting;
        if ((m->source = pt_template_compile(cf, m->source_src, PT_ESCAPE_NONE)) == NULL)
            return PT_ERROR;
        for (int j = 0; j < m->nvalues; j++)
            if (value_compile(cf, m, m->values[j]) != PT_OK)
                return PT_ERROR;
        join_regexes(cf, m);
        if (memo_create(cf, m, mc->regex_cache) != PT_OK)
            return PT_ERROR;
    }
    cf->setting = NULL;
    if (mc->n)
        qsort(mc->maps, (size_t)mc->n, sizeof(*mc->maps), map_name_order);
    return PT_OK;
}

/* ---- finding a value ---------------------------------------------------------------------- */

static const struct wc_node *child(const struct map *m, const struct wc_node *n, const char *label,
                                   size_t len)
{
    const struct slot *s = n->children ? table_find(&m->keys, n, label, len) : NULL;

    return s ? s->value : NULL;
}

/* nginx's ngx_hash_find_wc_head on the trie: the value of the longest mask .NAME or *.NAME
 * below node <p> matching <name>/<len>, labels taken from the end; NULL if none. */
static struct map_value *wc_head(const struct map *m, const struct wc_node *p, const char *name,
                                 size_t len)
{
    size_t n = len;
    const struct wc_node *c;
    struct map_value *v;

    while (n && name[n - 1] != '.')
        n--;
    if ((c = child(m, p, name + n, len - n)) == NULL)
        return p->value;
    if (n == 0) /* the name is this label: *.NAME does not match NAME itself */
        return c->sub_only ? NULL : c->value;
    if (c->children && (v = wc_head(m, c, name, n - 1)) != NULL)
        return v;
    return c->value;
}

/* nginx's ngx_hash_find_wc_tail: the value of the longest mask NAME.* below <p> matching
 * <name>/<len>, labels taken from the start; a mask needs a label after it. */
static struct map_value *wc_tail(const struct map *m, const struct wc_node *p, const char *name,
                                 size_t len)
{
    size_t i = 0;
    const struct wc_node *c;
    struct map_value *v;

    while (i < len && name[i] != '.')
        i++;
    if (i == len)
        return NULL;
    if ((c = child(m, p, name, i)) == NULL)
        return p->value;
    if (c->children && (v = wc_tail(m, c, name + i + 1, len - i - 1)) != NULL)
        return v;
    return c->value;
}

/* The index of the first regex of <m> matching <src>, its captures in the regex's match
 * data; -1 when none matches, -2 on a matching error (logged), as nginx then takes the
 * default. */
static int regex_index(const struct map *m, struct pt_str src)
{
    if (m->any && pt_regex_exec(m->any, src.p, src.len, m->any_md) == PCRE2_ERROR_NOMATCH)
        return -1;
    for (int i = 0; i < m->nrx; i++) {
        const struct map_regex *rx = m->rx[i];
        int rc = pt_regex_may_match(&rx->hint, src.p, src.len)
                     ? pt_regex_exec(rx->code, src.p, src.len, rx->md)
                     : PCRE2_ERROR_NOMATCH;
        if (rc == PCRE2_ERROR_NOMATCH)
            continue;
        if (rc <= 0) {
            pt_log(PT_LOG_ERR, "map of \"$%s\": pcre2_match() failed: %d on \"%.*s\"", m->name, rc,
                   (int)pt_min(src.len, 256), src.p);
            return -2;
        }
        return i;
    }
    return -1;
}

static uint64_t memo_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ len, w;

    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

/* Remembers in <slot> that regex <i> of <m> (-1: none) is what <src> matched. */
static void memo_put(const struct map *m, struct memo_slot *slot, uint64_t hash, struct pt_str src,
                     int i)
{
    const PCRE2_SIZE *ov = NULL;
    uint32_t pairs = 0;

    if (i >= 0) {
        pairs = pcre2_get_ovector_count(m->rx[i]->md);
        ov = pcre2_get_ovector_pointer(m->rx[i]->md);
        if (pairs > MEMO_PAIRS)
            return;
    }
    slot->len = 0; /* empty while being written */
    for (uint32_t k = 0; k < 2 * pairs; k++)
        slot->ov[k] = ov[k] == PCRE2_UNSET ? MEMO_UNSET : (uint16_t)ov[k];
    memcpy(slot->key, src.p, src.len);
    slot->hash = hash;
    slot->rx = (int16_t)i;
    slot->npairs = (uint16_t)pairs;
    slot->len = (uint16_t)src.len;
}

/* The captures that <slot> remembers, as offsets in its value, in <r>'s pool: NULL when out
 * of memory. */
static const PCRE2_SIZE *memo_captures(struct pt_request *r, const struct memo_slot *slot)
{
    PCRE2_SIZE *ov = pt_pnalloc(r->pool, 2 * (size_t)slot->npairs * sizeof(*ov) + 1);

    for (uint32_t k = 0; ov && k < 2 * (uint32_t)slot->npairs; k++)
        ov[k] = slot->ov[k] == MEMO_UNSET ? PCRE2_UNSET : slot->ov[k];
    return ov;
}

/* The first regex of <m> matching <src>: its value, with its captures copied into <caps>
 * (the match data is shared).  NULL when none matches or on a matching error.  A value
 * seen lately is answered from the worker's memo of it. */
static const struct map_value *regex_find(struct pt_request *r, const struct map *m,
                                          struct pt_str src, struct captures *caps)
{
    struct memo_slot *slot = NULL;
    uint64_t hash = 0;
    PCRE2_SIZE *ov;
    int i, rc;

    if (m->memo && src.len <= MEMO_KEY_MAX) {
        hash = memo_hash(src.p, src.len);
        slot = &m->memo[hash & m->memo_mask];
        if (slot->len == src.len && slot->hash == hash && memcmp(slot->key, src.p, src.len) == 0) {
            if (slot->rx < 0)
                return NULL;
            if ((caps->ov = memo_captures(r, slot)) == NULL)
                return NULL;
            caps->subject = src.p;
            caps->n = slot->npairs;
            return m->rx[slot->rx]->value;
        }
    }
    if ((i = regex_index(m, src)) == -2)
        return NULL;
    if (slot)
        memo_put(m, slot, hash, src, i);
    if (i < 0)
        return NULL;
    rc = (int)pcre2_get_ovector_count(m->rx[i]->md);
    if ((ov = pt_pnalloc(r->pool, 2 * (size_t)rc * sizeof(*ov))) == NULL)
        return NULL;
    memcpy(ov, pcre2_get_ovector_pointer(m->rx[i]->md), 2 * (size_t)rc * sizeof(*ov));
    *caps = (struct captures){src.p, ov, rc};
    return m->rx[i]->value;
}

/* The value <m> gives <src>, in nginx's order (ngx_http_map_find); NULL for the default. */
static const struct map_value *map_find(struct pt_request *r, const struct map *m,
                                        struct pt_str src, struct captures *caps)
{
    char *low;
    const struct slot *s;
    struct map_value *v;

    /* Regexes alone (a User-Agent map, say): no key or mask to look up in lower case. */
    if (m->keys.n == 0)
        return src.len ? regex_find(r, m, src, caps) : NULL;
    if ((low = pt_pnalloc(r->pool, src.len + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < src.len; i++)
        low[i] = pt_lower(src.p[i]);
    if ((s = table_find(&m->keys, NULL, low, src.len)) != NULL && s->value)
        return s->value;
    if (src.len == 0)
        return NULL;
    if (m->head.children && (v = wc_head(m, &m->head, low, src.len)) != NULL)
        return v;
    if (m->tail.children && (v = wc_tail(m, &m->tail, low, src.len)) != NULL)
        return v;
    return regex_find(r, m, src, caps);
}

static struct pt_str capture(const struct captures *c, int group)
{
    if (group < 0 || group >= c->n || c->ov[2 * group] == PCRE2_UNSET ||
        c->ov[2 * group + 1] < c->ov[2 * group])
        return PT_STR("");
    return (struct pt_str){c->subject + c->ov[2 * group], c->ov[2 * group + 1] - c->ov[2 * group]};
}

static int value_eval(struct pt_request *r, const struct map_value *v, const struct captures *caps,
                      struct pt_str *out)
{
    struct pt_str *piece;
    size_t len = 0;
    char *p;

    if (v->parts == NULL) {
        *out = v->text;
        return PT_OK;
    }
    if (v->nparts == 1 && v->parts[0].t)
        return pt_template_eval(r, v->parts[0].t, out);
    if ((piece = pt_palloc(r->pool, (size_t)v->nparts * sizeof(*piece))) == NULL)
        return PT_ERROR;
    for (int i = 0; i < v->nparts; i++) {
        if (v->parts[i].t == NULL)
            piece[i] = capture(caps, v->parts[i].group);
        else if (pt_template_eval(r, v->parts[i].t, &piece[i]) != PT_OK)
            return PT_ERROR;
        len += piece[i].len;
    }
    if ((p = pt_pnalloc(r->pool, len + 1)) == NULL)
        return PT_ERROR;
    *out = (struct pt_str){p, len};
    for (int i = 0; i < v->nparts; i++) {
        if (piece[i].len)
            memcpy(p, piece[i].p, piece[i].len);
        p += piece[i].len;
    }
    *p = '\0';
    return PT_OK;
}

static int map_eval(struct pt_request *r, const struct map *m, struct pt_str *out)
{
    struct captures caps = {NULL, NULL, 0};
    const struct map_value *v;
    struct pt_str src;

    if (pt_template_eval(r, m->source, &src) != PT_OK)
        return PT_ERROR;
    /* "example.com." is the host name example.com. */
    if (m->hostnames && src.len && src.p[src.len - 1] == '.')
        src.len--;
    v = map_find(r, m, src, &caps);
    if (v == NULL)
        v = m->dflt;
    if (v == NULL) {
        *out = PT_STR("");
        return PT_OK;
    }
    return value_eval(r, v, &caps, out);
}

/* Compares the name <a>/<alen>, in any case, with the lower-case <name>/<len>. */
static int name_cmp(const char *a, size_t alen, const char *name, size_t len)
{
    for (size_t i = 0; i < alen && i < len; i++) {
        int d = (unsigned char)pt_lower(a[i]) - (unsigned char)name[i];
        if (d)
            return d;
    }
    return alen < len ? -1 : alen > len;
}

/* The place of the map named <name> in <mc>'s sorted list, or -1. */
static int map_index(const struct map_main_conf *mc, struct pt_str name)
{
    int lo = 0, hi = mc->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int d = name_cmp(name.p, name.len, mc->maps[mid]->name, mc->maps[mid]->len);
        if (d == 0)
            return mid;
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

static int map_get(struct pt_request *r, struct pt_str name, struct pt_str *out)
{
    static int depth;
    struct map_main_conf *mc = r->main_conf ? r->main_conf[pt_map_module.index] : NULL;
    int i = mc ? map_index(mc, name) : -1, rc;
    struct map_cache *cache = NULL;

    /* A name an earlier configuration defined stays registered: no value now. */
    if (i < 0)
        return PT_DECLINED;
    if (r->ctx && (cache = r->ctx[pt_map_module.index]) == NULL) {
        cache = r->ctx[pt_map_module.index] = pt_palloc(r->pool, (size_t)mc->n * sizeof(*cache));
        if (cache == NULL)
            return PT_ERROR;
    }
    if (cache && cache[i].done) {
        *out = cache[i].v;
        return PT_OK;
    }
    if (depth == MAP_DEPTH_MAX) {
        pt_log(PT_LOG_ERR, "cycle while evaluating variable \"$%s\"", mc->maps[i]->name);
        return PT_DECLINED;
    }
    depth++;
    rc = map_eval(r, mc->maps[i], out);
    depth--;
    if (rc == PT_OK && cache && !mc->maps[i]->nocache)
        cache[i] = (struct map_cache){*out, 1};
    return rc;
}

struct pt_module pt_map_module = {
    .name = "map",
    .directives = map_directives,
    .create_main_conf = create_main_conf,
    .postconfig = postconfig,
};
