/*
 * split_clients.c: the split_clients module: nginx's `split_clients`, for A/B testing.  Its
 * variable takes the value of the bucket that the MurmurHash2 of a source string falls in,
 * with nginx's hash and nginx's arithmetic (percentages in hundredths, each bucket's share
 * of the 32-bit range rounded down on its own), so that every client keeps the bucket it
 * had under nginx.  The value is computed when a request first uses the variable and kept
 * for the rest of the request.
 *
 * Every split_clients variable has one getter, split_get: the variable's name, which the
 * registry passes as the getter's argument, finds the block in the request's configuration.
 */
#include "modules/split_clients.h"

#include <stdint.h>
#include <string.h>

#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "worker/http.h"
#include "worker/var.h"

/* Nesting of split_clients variables evaluated inside one another beyond which one is
 * taken to use itself (nginx's limit on nested variables). */
#define SPLIT_DEPTH_MAX 100

/* nginx's percentages are hundredths: 100% is 10000. */
#define SPLIT_ALL 10000u

struct bucket {
    uint32_t bound; /* the bucket takes a hash below it; 0: any hash */
    struct pt_str value;
};

struct split {
    char *name; /* of the variable, lower-case, without '$' */
    const char *source_src;
    const struct pt_conf_setting *source_setting;
    struct pt_template *source;
    struct bucket *b;
    int n;
    const struct pt_conf_setting *setting;
};

struct split_main_conf {
    struct split **s;
    int n, cap;
};

/* A request's value of one split_clients variable. */
struct split_cache {
    struct pt_str v;
    int done;
};

static int split_block(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int split_get(struct pt_request *r, struct pt_str name, struct pt_str *out);

static const struct pt_directive split_directives[] = {
    {"split_clients", PT_CTX_HTTP, PT_DIR_BLOCK, PT_MAIN_CONF, split_block, 0, NULL,
     "nginx's `split_clients SOURCE $VARIABLE { ... }` as a group, or a list of groups: ( { "
     "source = \"${remote_addr}AAA\"; variable = \"$variant\"; buckets = ( \"0.5% .one\", "
     "\"2.0% .two\", \"* \\\"\\\"\" ); } ); each bucket is a line of nginx's block without its "
     "';', \"PERCENT% VALUE\" (at most two decimals) or \"* VALUE\" (what is left); the "
     "variable is the VALUE of the bucket that the MurmurHash2 of SOURCE falls in, computed "
     "exactly as nginx does, so that clients keep their nginx buckets; \"\" in the part the "
     "percentages leave out; VALUE is text, without variables"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_split_clients_module;

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct split_main_conf));
}

uint32_t pt_murmur_hash2(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint32_t h = (uint32_t)len, k;

    for (; len >= 4; p += 4, len -= 4) {
        k = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= 0x5bd1e995;
        k ^= k >> 24;
        k *= 0x5bd1e995;
        h *= 0x5bd1e995;
        h ^= k;
    }
    switch (len) {
    case 3: h ^= (uint32_t)p[2] << 16; /* fall through */
    case 2: h ^= (uint32_t)p[1] << 8;  /* fall through */
    case 1: h ^= p[0]; h *= 0x5bd1e995;
    }
    h ^= h >> 13;
    h *= 0x5bd1e995;
    h ^= h >> 15;
    return h;
}

/* ---- reading split_clients ---------------------------------------------------------------- */

/* nginx's ngx_atofp: <line>/<n> as a fixed-point number with <point> decimals ("0.5" with 2
 * is 50), or -1 for anything else (more decimals, two dots, a sign, an overflow). */
static int64_t atofp(const char *line, size_t n, size_t point)
{
    int64_t value = 0, cutoff = INT64_MAX / 10, cutlim = INT64_MAX % 10;
    int dot = 0;

    if (n == 0)
        return -1;
    for (; n--; line++) {
        if (point == 0)
            return -1;
        if (*line == '.') {
            if (dot)
                return -1;
            dot = 1;
            continue;
        }
        if (*line < '0' || *line > '9')
            return -1;
        if (value >= cutoff && (value > cutoff || *line - '0' > cutlim))
            return -1;
        value = value * 10 + (*line - '0');
        point -= (size_t)dot;
    }
    while (point--) {
        if (value > cutoff)
            return -1;
        value *= 10;
    }
    return value;
}

/*
 * One bucket <e>, "PERCENT% VALUE" or "* VALUE", read as ngx_http_split_clients reads it and
 * placed as ngx_conf_split_clients_block places it: *<sum> counts the hundredths given so
 * far (a bucket that makes 100%, or "*", takes every hash left), *<last> the bound so far.
 * Its arithmetic is nginx's, in 32 bits, so that the bounds are nginx's to the unit.
 */
static int read_bucket(struct pt_conf *cf, struct split *sp, const struct pt_conf_setting *e,
                       uint32_t *sum, uint32_t *last)
{
    const char *line = pt_conf_setting_string(e);
    struct bucket *b = &sp->b[sp->n];
    char *w[2];
    int64_t percent = 0;
    int n = 0;

    cf->setting = e;
    if (line == NULL || (n = pt_conf_words(cf, line, w, 2)) != 2) {
        if (line && n < 0)
            return PT_ERROR;
        return pt_conf_error(cf,
                             "invalid bucket%s%s%s: use \"PERCENT%% VALUE\" or \"* VALUE\" "
                             "(quote a VALUE with blanks, \"\" for an empty one)",
                             line ? " \"" : "", line ? line : "", line ? "\"" : "");
    }
    if (strcmp(w[0], "*") != 0) {
        size_t len = strlen(w[0]);
        if (len == 0 || w[0][len - 1] != '%' || (percent = atofp(w[0], len - 1, 2)) <= 0)
            return pt_conf_error(cf,
                                 "invalid percent value \"%s\" (use \"N%%\" with at most two "
                                 "decimals, like \"0.5%%\", or \"*\")",
                                 w[0]);
    }
    b->bound = (uint32_t)percent;
    b->value = (struct pt_str){w[1], strlen(w[1])};
    *sum = b->bound ? *sum + b->bound : SPLIT_ALL;
    if (*sum == SPLIT_ALL)
        b->bound = 0;
    if (*sum > SPLIT_ALL)
        return pt_conf_error(cf, "percent total is greater than 100%%");
    if (b->bound) {
        *last += (uint32_t)(b->bound * (uint64_t)0xffffffff / SPLIT_ALL);
        b->bound = *last;
    }
    sp->n++;
    return PT_OK;
}

/* Registers the variable "$name" <var> of <sp>. */
static int split_variable(struct pt_conf *cf, struct split_main_conf *mc, struct split *sp,
                          const char *var)
{
    if ((sp->name = pt_conf_var_name(cf, var)) == NULL)
        return PT_ERROR;
    for (int i = 0; i < mc->n; i++)
        if (strcmp(mc->s[i]->name, sp->name) == 0)
            return pt_conf_error(cf,
                                 "duplicate variable \"$%s\": the split_clients at line %d "
                                 "defines it",
                                 sp->name, pt_conf_setting_line(mc->s[i]->setting));
    if (pt_var_register(sp->name, 0, split_get) != PT_OK)
        return pt_conf_error(cf,
                             "variable \"$%s\" is already defined (by portier or by map; one "
                             "moved between them since start-up needs a restart, not a reload)",
                             sp->name);
    return PT_OK;
}

static int read_split(struct pt_conf *cf, const struct pt_conf_setting *g)
{
    static const char *const members[] = {"source", "variable", "buckets", NULL};
    struct split_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_split_clients_module);
    const struct pt_conf_setting *buckets = pt_conf_setting_member(g, "buckets");
    struct split *sp = pt_palloc(cf->pool, sizeof(*sp)), **all = mc->s;
    const char *var;
    uint32_t sum = 0, last = 0;
    int n = buckets ? pt_conf_setting_count(buckets) : 0;

    if (sp == NULL)
        return pt_conf_error(cf, "out of memory");
    if (pt_conf_check_members(cf, g, members, "split_clients",
                              "it has source, variable and buckets") != PT_OK ||
        (sp->source_src = pt_conf_member_string(cf, g, "source", "split_clients",
                                                "${remote_addr}AAA")) == NULL ||
        (var = pt_conf_member_string(cf, g, "variable", "split_clients", "$variant")) == NULL)
        return PT_ERROR;
    sp->setting = g;
    sp->source_setting = pt_conf_setting_member(g, "source");
    cf->setting = pt_conf_setting_member(g, "variable");
    if (split_variable(cf, mc, sp, var) != PT_OK)
        return PT_ERROR;
    if (buckets && pt_conf_setting_kind(buckets) != PT_CONF_LIST &&
        pt_conf_setting_kind(buckets) != PT_CONF_ARRAY)
        return pt_conf_error_at(cf, buckets,
                                "\"buckets\" of split_clients is a list of strings: "
                                "( \"50%% a\", \"* b\" )");
    if (mc->n == mc->cap) {
        mc->cap = mc->cap ? 2 * mc->cap : 4;
        if ((all = pt_palloc(cf->pool, (size_t)mc->cap * sizeof(*all))) != NULL && mc->n)
            memcpy(all, mc->s, (size_t)mc->n * sizeof(*all));
    }
    if (all == NULL || (sp->b = pt_palloc(cf->pool, (size_t)n * sizeof(*sp->b) + 1)) == NULL)
        return pt_conf_error(cf, "out of memory");
    mc->s = all;
    for (int i = 0; i < n; i++)
        if (read_bucket(cf, sp, pt_conf_setting_elem(buckets, i), &sum, &last) != PT_OK)
            return PT_ERROR;
    mc->s[mc->n++] = sp;
    return PT_OK;
}

static int split_block(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const struct pt_conf_setting *setting = cf->setting;
    int rc;

    pt_unused(d);
    pt_unused(conf);
    rc = pt_conf_each_group(cf, setting, read_split);
    cf->setting = setting;
    return rc;
}

static int postconfig(struct pt_conf *cf)
{
    struct split_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_split_clients_module);

    for (int i = 0; i < mc->n; i++) {
        cf->setting = mc->s[i]->source_setting;
        mc->s[i]->source = pt_template_compile(cf, mc->s[i]->source_src, PT_ESCAPE_NONE);
        if (mc->s[i]->source == NULL)
            return PT_ERROR;
    }
    cf->setting = NULL;
    return PT_OK;
}

/* ---- the variable ------------------------------------------------------------------------- */

/* nginx's ngx_http_split_clients_variable: the first bucket whose bound is above the hash
 * of the source, or the one taking any hash; "" when the percentages leave the hash out. */
static int split_eval(struct pt_request *r, const struct split *sp, struct pt_str *out)
{
    struct pt_str src;
    uint32_t hash;

    if (pt_template_eval(r, sp->source, &src) != PT_OK)
        return PT_ERROR;
    hash = pt_murmur_hash2(src.p, src.len);
    for (int i = 0; i < sp->n; i++) {
        if (hash < sp->b[i].bound || sp->b[i].bound == 0) {
            *out = sp->b[i].value;
            return PT_OK;
        }
    }
    *out = PT_STR("");
    return PT_OK;
}

static int split_get(struct pt_request *r, struct pt_str name, struct pt_str *out)
{
    static int depth;
    struct split_main_conf *mc = r->main_conf ? r->main_conf[pt_split_clients_module.index] : NULL;
    struct split_cache *cache = NULL;
    int i, rc;

    /* Few blocks: found by name in turn.  A name an earlier configuration defined stays
     * registered, with no value now. */
    for (i = 0; mc && i < mc->n; i++)
        if (strlen(mc->s[i]->name) == name.len &&
            strncasecmp(mc->s[i]->name, name.p, name.len) == 0)
            break;
    if (mc == NULL || i == mc->n)
        return PT_DECLINED;
    if (r->ctx && (cache = r->ctx[pt_split_clients_module.index]) == NULL) {
        cache = pt_palloc(r->pool, (size_t)mc->n * sizeof(*cache));
        if ((r->ctx[pt_split_clients_module.index] = cache) == NULL)
            return PT_ERROR;
    }
    if (cache && cache[i].done) {
        *out = cache[i].v;
        return PT_OK;
    }
    if (depth == SPLIT_DEPTH_MAX) {
        pt_log(PT_LOG_ERR, "cycle while evaluating variable \"$%s\"", mc->s[i]->name);
        return PT_DECLINED;
    }
    depth++;
    rc = split_eval(r, mc->s[i], out);
    depth--;
    if (rc == PT_OK && cache)
        cache[i] = (struct split_cache){*out, 1};
    return rc;
}

struct pt_module pt_split_clients_module = {
    .name = "split_clients",
    .directives = split_directives,
    .create_main_conf = create_main_conf,
    .postconfig = postconfig,
};
