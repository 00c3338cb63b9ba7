/*
 * router.c: server_name and location tables (contracts in router.h).
 *
 * Exact names, wildcard names and exact locations live in small open-addressing hash
 * tables; prefix locations in a sorted array searched by bisection; regexes in an array
 * tried in config order.  Everything is built once at config time: prefixes are appended
 * as they come and sorted and linked once, after the last (O(n log n) for n locations, where
 * keeping the array sorted on every add was quadratic), so that lookups stay O(log n) or
 * O(labels).
 */
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif

#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/regex.h"
#include "worker/normalize.h"
#include "worker/router.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- hash table: byte-string keys, owned copies, open addressing ------------------ */

struct hentry {
    char *key; /* NULL: free slot */
    size_t len;
    void *value;
};

struct htab {
    struct hentry *slots;
    size_t cap; /* 0 or a power of two */
    size_t used;
};

/* FNV-1a: short keys, no adversary at config time, and lookups hash a few labels. */
static size_t ht_hash(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* Returns the entry holding <key>/<len>, or the free slot where it belongs. */
static struct hentry *ht_slot(const struct htab *t, const char *key, size_t len)
{
    size_t i = ht_hash(key, len) & (t->cap - 1);

    for (;; i = (i + 1) & (t->cap - 1)) {
        struct hentry *e = &t->slots[i];

        if (e->key == NULL || (e->len == len && memcmp(e->key, key, len) == 0))
            return e;
    }
}

static void *ht_find(const struct htab *t, const char *key, size_t len)
{
    struct hentry *e;

    if (t->used == 0)
        return NULL;
    e = ht_slot(t, key, len);
    return e->key ? e->value : NULL;
}

/* Doubles <t>'s capacity (or creates it).  Returns PT_OK or PT_ERROR. */
static int ht_grow(struct htab *t)
{
    struct htab bigger = {NULL, t->cap ? t->cap * 2 : 16, t->used};

    bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
    if (bigger.slots == NULL)
        return PT_ERROR;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key)
            *ht_slot(&bigger, t->slots[i].key, t->slots[i].len) = t->slots[i];
    }
    free(t->slots);
    *t = bigger;
    return PT_OK;
}

/* Adds a copy of <key>/<len> -> <value>.  Returns PT_OK, PT_DECLINED if present, or
   PT_ERROR when out of memory. */
static int ht_insert(struct htab *t, const char *key, size_t len, void *value)
{
    struct hentry *e;
    char *copy;

    if (ht_find(t, key, len))
        return PT_DECLINED;
    /* Keep the load at most 1/2 so that probe runs stay short. */
    if ((t->used + 1) * 2 > t->cap && ht_grow(t) != PT_OK)
        return PT_ERROR;
    copy = malloc(len + 1);
    if (copy == NULL)
        return PT_ERROR;
    memcpy(copy, key, len);
    copy[len] = '\0';
    e = ht_slot(t, key, len);
    *e = (struct hentry){copy, len, value};
    t->used++;
    return PT_OK;
}

static void ht_free(struct htab *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    *t = (struct htab){NULL, 0, 0};
}

/* ---- regex lists: tried in the order added ----------------------------------------- */

struct regex {
    pcre2_code *code;
    char *src;
    int caseless;
    void *value;
    struct pt_regex_hint hint; /* "\\.php$": a path not ending so is told without PCRE2 */
};

struct rxlist {
    struct regex *v;
    size_t n, cap;
    pcre2_match_data *md; /* shared by all matches: one list per worker process */
};

/* Tells whether <rl> already holds the regex <src>/<len> compiled with <caseless>. */
static int rx_exists(const struct rxlist *rl, const char *src, size_t len, int caseless)
{
    for (size_t i = 0; i < rl->n; i++) {
        const struct regex *r = &rl->v[i];

        if (r->caseless == caseless && strlen(r->src) == len && memcmp(r->src, src, len) == 0)
            return 1;
    }
    return 0;
}

/* Compiles <src>/<len>.  Returns the code, or NULL with PCRE2's reason and the offset in
   <err>.  JIT is used when the library has it; without it the interpreter runs. */
static pcre2_code *rx_compile(const char *src, size_t len, int caseless, char *err, size_t errlen)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;
    pcre2_code *code;
    int rc;

    code = pcre2_compile((PCRE2_SPTR)src, len, caseless ? PCRE2_CASELESS : 0, &rc, &off, NULL);
    if (code == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        set_err(err, errlen, "invalid regex \"%.*s\": %s at offset %zu", (int)len, src,
                (const char *)msg, (size_t)off);
        return NULL;
    }
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    return code;
}

/* Appends the regex <src>/<len> -> <value> to <rl>, whose match data gets room for
   <ncaps> pairs.  Returns PT_OK, PT_DECLINED for a duplicate, or PT_ERROR with <err>. */
static int rx_add(struct rxlist *rl, const char *src, size_t len, int caseless, uint32_t ncaps,
                  void *value, char *err, size_t errlen)
{
    struct regex r = {NULL, NULL, caseless, value, {0}};

    if (len == 0) {
        set_err(err, errlen, "empty regex");
        return PT_ERROR;
    }
    if (rx_exists(rl, src, len, caseless))
        return PT_DECLINED;
    r.code = rx_compile(src, len, caseless, err, errlen);
    if (r.code == NULL)
        return PT_ERROR;
    pt_regex_hint(&r.hint, src, len, caseless);
    if (rl->md == NULL)
        rl->md = pcre2_match_data_create(ncaps, NULL);
    if (rl->n == rl->cap) {
        size_t cap = rl->cap ? rl->cap * 2 : 8;
        struct regex *v = realloc(rl->v, cap * sizeof(*v));

        if (v != NULL) {
            rl->v = v;
            rl->cap = cap;
        }
    }
    r.src = strndup(src, len);
    if (rl->md == NULL || rl->n == rl->cap || r.src == NULL) {
        pcre2_code_free(r.code);
        free(r.src);
        set_err(err, errlen, "out of memory");
        return PT_ERROR;
    }
    rl->v[rl->n++] = r;
    return PT_OK;
}

/* Returns the first regex of <rl> matching <subj>/<len>, or NULL; *<rc> gets pcre2_match's
   result for it, or PCRE2_ERROR_NOMATCH.  A regex that fails to run stops the search. */
static const struct regex *rx_first_match(const struct rxlist *rl, const char *subj, size_t len,
                                          int *rc)
{
    *rc = PCRE2_ERROR_NOMATCH;
    for (size_t i = 0; i < rl->n; i++) {
        if (!pt_regex_may_match(&rl->v[i].hint, subj, len))
            continue;
        *rc = pt_regex_exec(rl->v[i].code, subj, len, rl->md);
        if (*rc >= 0)
            return &rl->v[i];
        if (*rc != PCRE2_ERROR_NOMATCH)
            return NULL;
    }
    return NULL;
}

static void rx_free(struct rxlist *rl)
{
    for (size_t i = 0; i < rl->n; i++) {
        pcre2_code_free(rl->v[i].code);
        free(rl->v[i].src);
    }
    free(rl->v);
    pcre2_match_data_free(rl->md);
    *rl = (struct rxlist){NULL, 0, 0, NULL};
}

/* ---- server names ------------------------------------------------------------------ */

struct pt_names {
    struct htab exact; /* "example.com" */
    struct htab head;  /* "*.example.com" stored as ".example.com" */
    struct htab tail;  /* "www.example.*" stored as "www.example." */
    struct rxlist rx;
};

struct pt_names *pt_names_create(void)
{
    return calloc(1, sizeof(struct pt_names));
}

void pt_names_free(struct pt_names *n)
{
    if (n == NULL)
        return;
    ht_free(&n->exact);
    ht_free(&n->head);
    ht_free(&n->tail);
    rx_free(&n->rx);
    free(n);
}

/* Copies <src>/<len> lower-cased to <dst>, NUL-terminated (which also keeps GCC from
   warning that an empty name passes unset bytes). */
static void lower_copy(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = pt_lower(src[i]);
    dst[len] = '\0';
}

/* Where a non-regex name goes: <key> in <table>, and for ".example.com" also <key>+1 in the
   exact table. */
struct name_form {
    struct htab *table;
    const char *key;
    size_t len;
    int also_exact;
};

/* A name without its wildcard markers must be a plain host: no '*' left, no empty first
   or last label, nothing that cannot appear in a Host header. */
static int valid_core(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '*' || c <= ' ' || c == 0x7f || c == '/')
            return 0;
    }
    return 1;
}

/* Classifies the lower-cased name <low>/<len> into <f>.  Returns PT_OK or PT_ERROR. */
static int classify_name(struct pt_names *n, const char *low, size_t len, struct name_form *f)
{
    *f = (struct name_form){&n->exact, low, len, 0};
    if (len == 0)
        return PT_OK; /* server_name "": requests without a Host */
    if (len >= 2 && low[0] == '*' && low[1] == '.') {
        *f = (struct name_form){&n->head, low + 1, len - 1, 0};
        return valid_core(low + 2, len - 2) ? PT_OK : PT_ERROR;
    }
    if (low[0] == '.') {
        *f = (struct name_form){&n->head, low, len, 1};
        return valid_core(low + 1, len - 1) ? PT_OK : PT_ERROR;
    }
    if (len >= 2 && low[len - 2] == '.' && low[len - 1] == '*') {
        *f = (struct name_form){&n->tail, low, len - 1, 0};
        return valid_core(low, len - 2) ? PT_OK : PT_ERROR;
    }
    return valid_core(low, len) ? PT_OK : PT_ERROR;
}

int pt_names_add(struct pt_names *n, const char *name, void *value, char *err, size_t errlen)
{
    char low[PT_HOST_MAX + 1];
    struct name_form f;
    size_t len = strlen(name);
    int rc;

    if (name[0] == '~')
        return rx_add(&n->rx, name + 1, len - 1, 1, 1, value, err, errlen);
    if (len > 1 && name[len - 1] == '.')
        len--;
    if (len > PT_HOST_MAX) {
        set_err(err, errlen, "server name \"%.32s...\" is longer than %d bytes", name, PT_HOST_MAX);
        return PT_ERROR;
    }
    lower_copy(low, name, len);
    if (classify_name(n, low, len, &f) != PT_OK) {
        set_err(err, errlen, "invalid server name or wildcard \"%s\"", name);
        return PT_ERROR;
    }
    /* Check both halves of ".example.com" first, so that a conflict adds nothing. */
    if (ht_find(f.table, f.key, f.len) || (f.also_exact && ht_find(&n->exact, low + 1, len - 1)))
        return PT_DECLINED;
    rc = ht_insert(f.table, f.key, f.len, value);
    if (rc == PT_OK && f.also_exact)
        rc = ht_insert(&n->exact, low + 1, len - 1, value);
    if (rc != PT_OK)
        set_err(err, errlen, "out of memory");
    return rc;
}

/* Returns the length of <host>/<len> without its ":port" and one trailing dot. */
static size_t host_strip(const char *host, size_t len)
{
    const char *end;

    if (len > 0 && host[0] == '[') {
        end = memchr(host, ']', len);
        len = end ? (size_t)(end - host) + 1 : len;
    } else if ((end = memchr(host, ':', len)) != NULL) {
        len = (size_t)(end - host);
    }
    if (len > 0 && host[len - 1] == '.')
        len--;
    return len;
}

/* Longest "*.suffix" matching <low>/<len>: try the suffixes from the first dot on. */
static void *find_head(const struct pt_names *n, const char *low, size_t len)
{
    for (size_t i = 1; i < len && n->head.used; i++) {
        void *v;

        if (low[i] == '.' && (v = ht_find(&n->head, low + i, len - i)) != NULL)
            return v;
    }
    return NULL;
}

/* Longest "prefix.*" matching <low>/<len>: try the prefixes from the last dot back. */
static void *find_tail(const struct pt_names *n, const char *low, size_t len)
{
    for (size_t i = len; i-- > 1 && n->tail.used;) {
        void *v;

        if (low[i] == '.' && i + 1 < len && (v = ht_find(&n->tail, low, i + 1)) != NULL)
            return v;
    }
    return NULL;
}

void *pt_names_find(const struct pt_names *n, const char *host, size_t len)
{
    char low[PT_HOST_MAX + 1];
    const struct regex *r;
    void *v;
    int rc;

    len = host_strip(host, len);
    if (len > PT_HOST_MAX)
        return NULL;
    lower_copy(low, host, len);
    if ((v = ht_find(&n->exact, low, len)) != NULL)
        return v;
    if ((v = find_head(n, low, len)) != NULL)
        return v;
    if ((v = find_tail(n, low, len)) != NULL)
        return v;
    r = rx_first_match(&n->rx, low, len, &rc);
    return r ? r->value : NULL;
}

/* ---- locations --------------------------------------------------------------------- */

#define NO_PARENT ((size_t)-1)

/* A prefix location.  <parent> is the index of the longest other prefix that is a proper
   prefix of this one, so that the prefixes of any string form a chain. */
struct prefix {
    char *p;
    size_t len;
    int noregex; /* "^~" */
    void *value;
    size_t parent;
};

struct pt_locations {
    struct htab exact;
    struct htab prekeys; /* the prefixes, for duplicates: owns the strings <pre> points to */
    struct prefix *pre;  /* once built: sorted bytewise, a string before its extensions */
    size_t npre, cappre;
    int built; /* <pre> is sorted and linked: no prefix was added since */
    struct rxlist rx;
};

struct pt_locations *pt_locations_create(void)
{
    return calloc(1, sizeof(struct pt_locations));
}

void pt_locations_free(struct pt_locations *l)
{
    if (l == NULL)
        return;
    ht_free(&l->exact);
    ht_free(&l->prekeys);
    free(l->pre);
    rx_free(&l->rx);
    free(l);
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, pt_min(alen, blen));

    return c ? c : (alen > blen) - (alen < blen);
}

static int is_prefix_of(const struct prefix *p, const char *s, size_t len)
{
    return p->len <= len && memcmp(p->p, s, p->len) == 0;
}

/* Number of prefixes sorting at or before <s>/<len>. */
static size_t prefix_upper_bound(const struct pt_locations *l, const char *s, size_t len)
{
    size_t lo = 0, hi = l->npre;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (bytes_cmp(l->pre[mid].p, l->pre[mid].len, s, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Returns the longest prefix of <s>/<len> among entries [0, <end>), or NULL.
 * Why the chain walk is enough: every prefix p of s sorts at or before s, hence at or
 * before e = the last entry sorting at or before s; and any string between p and s in
 * that order starts with p, so p is a prefix of e, i.e. on e's parent chain.  The chain
 * is ordered by decreasing length, so the first hit is the longest.
 */
static const struct prefix *longest_prefix(const struct pt_locations *l, size_t end, const char *s,
                                           size_t len)
{
    size_t i = end ? end - 1 : NO_PARENT;

    while (i != NO_PARENT && !is_prefix_of(&l->pre[i], s, len))
        i = l->pre[i].parent;
    return i == NO_PARENT ? NULL : &l->pre[i];
}

/* Appends a prefix location; pt_locations_build() sorts and links them.  Returns PT_OK,
   PT_DECLINED for a duplicate, or PT_ERROR when out of memory. */
static int prefix_insert(struct pt_locations *l, const char *p, size_t len, int noregex,
                         void *value)
{
    int rc;

    if (l->npre == l->cappre) {
        size_t cap = l->cappre ? l->cappre * 2 : 16;
        struct prefix *v = realloc(l->pre, cap * sizeof(*v));

        if (v == NULL)
            return PT_ERROR;
        l->pre = v;
        l->cappre = cap;
    }
    rc = ht_insert(&l->prekeys, p, len, value); /* non-NULL: ht_find() sees it */
    if (rc != PT_OK)
        return rc;
    /* The table's copy of the key is the prefix's string: it stays where it is as the
       table grows. */
    l->pre[l->npre++] =
        (struct prefix){ht_slot(&l->prekeys, p, len)->key, len, noregex, value, NO_PARENT};
    l->built = 0;
    return PT_OK;
}

static int prefix_cmp(const void *a, const void *b)
{
    const struct prefix *x = a, *y = b;

    return bytes_cmp(x->p, x->len, y->p, y->len);
}

/*
 * Each parent is the longest proper prefix among the entries sorted before it: the first
 * on the parent chain of the entry just before.  This costs O(n) comparisons in all: the
 * chain walked from entry i - 1 is a stack of the prefixes still open, and an entry passed
 * over for i (not a prefix of it) is a prefix of no later entry either, so it is never
 * walked again.
 */
void pt_locations_build(struct pt_locations *l)
{
    if (l->built)
        return;
    if (l->npre > 1) /* qsort() wants an array, even an empty one */
        qsort(l->pre, l->npre, sizeof(*l->pre), prefix_cmp);
    for (size_t i = 0; i < l->npre; i++) {
        const struct prefix *par = longest_prefix(l, i, l->pre[i].p, l->pre[i].len);

        l->pre[i].parent = par ? (size_t)(par - l->pre) : NO_PARENT;
    }
    l->built = 1;
}

enum loc_kind { LOC_EXACT, LOC_NOREGEX, LOC_PREFIX, LOC_REGEX, LOC_REGEX_CASELESS };

/* Splits <spec> into its kind and pattern (<*pat>/<*len>, blanks trimmed). */
static enum loc_kind parse_spec(const char *spec, const char **pat, size_t *len)
{
    /* Longer modifiers first: "~*" before "~". */
    static const struct {
        const char *mod;
        enum loc_kind kind;
    } mods[] = {
        {"^~", LOC_NOREGEX}, {"~*", LOC_REGEX_CASELESS}, {"~", LOC_REGEX}, {"=", LOC_EXACT}};
    enum loc_kind kind = LOC_PREFIX;
    const char *s = spec + strspn(spec, " \t");
    size_t n;

    for (size_t i = 0; i < pt_nelems(mods); i++) {
        if (strncmp(s, mods[i].mod, strlen(mods[i].mod)) == 0) {
            kind = mods[i].kind;
            s += strlen(mods[i].mod);
            break;
        }
    }
    s += strspn(s, " \t");
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *pat = s;
    *len = n;
    return kind;
}

/* Adds an exact or prefix location for the path <pat>/<len> from <spec>, normalized. */
static int add_path_location(struct pt_locations *l, enum loc_kind kind, const char *spec,
                             const char *pat, size_t len, void *value, char *err, size_t errlen)
{
    char *canon = malloc(3 * len + 1);
    size_t clen;
    int rc;

    if (canon == NULL) {
        set_err(err, errlen, "out of memory");
        return PT_ERROR;
    }
    if (pt_path_normalize(pat, len, canon, &clen) != PT_OK) {
        set_err(err, errlen,
                "location \"%s\": the path must start with \"/\" and be a valid "
                "URI path (percent-encode other bytes)",
                spec);
        free(canon);
        return PT_ERROR;
    }
    if (kind == LOC_EXACT)
        rc = ht_insert(&l->exact, canon, clen, value);
    else
        rc = prefix_insert(l, canon, clen, kind == LOC_NOREGEX, value);
    free(canon);
    if (rc == PT_ERROR)
        set_err(err, errlen, "out of memory");
    return rc;
}

int pt_locations_add(struct pt_locations *l, const char *spec, void *value, char *err,
                     size_t errlen)
{
    const char *pat;
    size_t len;
    enum loc_kind kind = parse_spec(spec, &pat, &len);

    if (kind == LOC_PREFIX && pat[0] == '@') {
        set_err(err, errlen, "location \"%s\": named locations are not routed by path", spec);
        return PT_ERROR;
    }
    if (kind == LOC_REGEX || kind == LOC_REGEX_CASELESS) {
        if (len == 0) {
            set_err(err, errlen, "location \"%s\": missing regex", spec);
            return PT_ERROR;
        }
        return rx_add(&l->rx, pat, len, kind == LOC_REGEX_CASELESS, PT_LOC_MAX_CAPTURES, value, err,
                      errlen);
    }
    return add_path_location(l, kind, spec, pat, len, value, err, errlen);
}

/* Copies the capture pairs of the last match (pcre2_match returned <rc>) to <caps>. */
static int copy_captures(const struct pt_locations *l, int rc, size_t *caps)
{
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(l->rx.md);
    /* rc == 0: more groups than the match data holds; all of its pairs are set. */
    int n = rc == 0 ? (int)pcre2_get_ovector_count(l->rx.md) : rc;

    n = pt_min(n, PT_LOC_MAX_CAPTURES);
    for (int k = 0; k < 2 * n; k++)
        caps[k] = ov[k] == PCRE2_UNSET ? PT_LOC_UNSET : (size_t)ov[k];
    return n;
}

void *pt_locations_find(const struct pt_locations *l, const char *path, size_t len, size_t *caps,
                        int *ncaps)
{
    const struct prefix *pre;
    const struct regex *r;
    void *v;
    int rc;

    if (ncaps)
        *ncaps = 0;
    if ((v = ht_find(&l->exact, path, len)) != NULL)
        return v;
    /* A table used before its builder called pt_locations_build(): build it now, once.  It
       only sorts and links in place, so this neither allocates nor changes what is found. */
    if (!l->built)
        pt_locations_build((struct pt_locations *)l);
    pre = longest_prefix(l, prefix_upper_bound(l, path, len), path, len);
    if (pre && pre->noregex)
        return pre->value;
    r = rx_first_match(&l->rx, path, len, &rc);
    if (r) {
        if (caps && ncaps)
            *ncaps = copy_captures(l, rc, caps);
        return r->value;
    }
    if (rc != PCRE2_ERROR_NOMATCH) {
        if (ncaps)
            *ncaps = PT_ERROR;
        return NULL;
    }
    return pre ? pre->value : NULL;
}
