/*
 * access.c: the access module: allow and deny by client address, nginx's meaning.  The
 * rules of a level form one ordered list across both directives; the first rule matching
 * the connection's peer decides, and a peer no rule matches is allowed.  As in nginx, a
 * level that has any allow or deny does not inherit its parent's list.
 *
 * libconfig keeps allow and deny as two settings of a group, so the order written is the
 * order of their source lines (and, within a list, of its elements).
 */
#include <ctype.h>
#include <string.h>

#include "worker/http.h"
#include "core/log.h"
#include "core/pool.h"

struct access_rule {
    struct pt_cidr net;
    int line;          /* source line of the setting: orders allow against deny */
    unsigned all : 1;  /* "all": matches every peer, of any family */
    unsigned deny : 1; /* deny rather than allow */
};

/* The rules of one level, in the order written; shared by the levels that inherit it. */
struct access_rules {
    struct access_rule *rule;
    int n, cap;
};

struct access_loc_conf {
    struct access_rules *rules; /* NULL: not set here, inherit */
};

static int set_rule(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_access(struct pt_conf *cf, const struct pt_directive *d, void *conf);

/* d->post of each row: what a rule of that directive does. */
static const int rule_allow = 0, rule_deny = 1;

static const struct pt_directive access_directives[] = {
    {"allow", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, PT_DIR_MULTI, PT_LOC_CONF, set_rule, 0,
     &rule_allow,
     "\"ADDRESS\", \"ADDRESS/BITS\" or \"all\": allows clients from there; allow and deny "
     "rules are checked in the order written, the first match decides"},
    {"deny", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, PT_DIR_MULTI, PT_LOC_CONF, set_rule, 0,
     &rule_deny,
     "\"ADDRESS\", \"ADDRESS/BITS\" or \"all\": answers 403 to clients from there; a level "
     "with allow or deny does not inherit its parent's rules"},
    {"access", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, PT_DIR_MULTI, PT_LOC_CONF, set_access, 0,
     NULL,
     "[ \"deny 10.0.0.1\", \"allow 10.0.0.0/8\", \"deny all\" ]: allow and deny rules in one "
     "list, for the orders two libconfig settings cannot write (a key appears once per "
     "block)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_access_module;

static void *create_loc_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct access_loc_conf));
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct access_loc_conf *p = parent, *c = child;

    pt_unused(cf);
    if (c->rules == NULL)
        c->rules = p->rules;
    return PT_OK;
}

/*
 * Parses "ADDRESS", "ADDRESS/BITS" or "all" <s> into <rule>.  Host bits beyond the mask
 * are cleared (the rule means the network) with a warning, as nginx does.  PT_OK, or
 * PT_ERROR for a malformed value (the caller reports it).
 */
static int parse_rule(struct pt_conf *cf, const char *s, struct access_rule *rule)
{
    const char *slash = strchr(s, '/');
    const char *file = pt_conf_setting_file(cf, cf->setting);
    unsigned bits, len;
    int changed = 0;

    if (strcmp(s, "all") == 0) {
        rule->all = 1;
        return PT_OK;
    }
    /* pt_cidr_parse reads BITS with strtol, which would take " 8" or "+8". */
    if (slash && !isdigit((unsigned char)slash[1]))
        return PT_ERROR;
    if (pt_cidr_parse(s, &rule->net) != PT_OK)
        return PT_ERROR;
    bits = rule->net.bits;
    len = rule->net.family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < len; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        uint8_t mask = (uint8_t)(0xff00u >> keep);
        changed |= (rule->net.addr[i] & (uint8_t)~mask) != 0;
        rule->net.addr[i] &= mask;
    }
    if (changed)
        pt_log(PT_LOG_WARN, "%s:%d: low address bits of \"%s\" are meaningless", file, rule->line,
               s);
    return PT_OK;
}

/* Makes room for one more rule in <l>, growing it geometrically (the pool frees nothing
 * until the cycle ends, so a long list must not cost a copy per element).  PT_OK or
 * PT_ERROR. */
static int rules_grow(struct pt_conf *cf, struct access_rules *l)
{
    struct access_rule *a;
    int cap = l->cap ? 2 * l->cap : 4;

    if (l->n < l->cap)
        return PT_OK;
    if ((a = pt_palloc(cf->pool, (size_t)cap * sizeof(*a))) == NULL)
        return PT_ERROR;
    if (l->n)
        memcpy(a, l->rule, (size_t)l->n * sizeof(*a));
    l->rule = a;
    l->cap = cap;
    return PT_OK;
}

/* Adds the rule <value> (allow, or deny when <deny>) of directive <name> to <alc>. */
static int add_rule(struct pt_conf *cf, struct access_loc_conf *alc, int deny, const char *value,
                    const char *name)
{
    struct access_rules *l = alc->rules;
    struct access_rule rule = {.line = pt_conf_setting_line(cf->setting)};
    int pos;

    rule.deny = deny;
    if (parse_rule(cf, value, &rule) != PT_OK)
        return pt_conf_error(cf,
                             "invalid value \"%s\" for \"%s\": use ADDRESS, ADDRESS/BITS or "
                             "\"all\"",
                             value, name);
    if (l == NULL && (l = alc->rules = pt_palloc(cf->pool, sizeof(*l))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (rules_grow(cf, l) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    /* After every rule written on an earlier or the same line: the order of the file. */
    for (pos = l->n; pos > 0 && l->rule[pos - 1].line > rule.line; pos--)
        ;
    memmove(&l->rule[pos + 1], &l->rule[pos], (size_t)(l->n - pos) * sizeof(rule));
    l->rule[pos] = rule;
    l->n++;
    return PT_OK;
}

static int set_rule(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    return add_rule(cf, conf, *(const int *)d->post == rule_deny, cf->value, d->name);
}

/* access: "allow ADDRESS" or "deny ADDRESS", in the list's order. */
static int set_access(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const char *v = cf->value;

    if (strncmp(v, "allow ", 6) == 0)
        return add_rule(cf, conf, 0, v + 6, "access");
    if (strncmp(v, "deny ", 5) == 0)
        return add_rule(cf, conf, 1, v + 5, "access");
    return pt_conf_error(cf,
                         "invalid value \"%s\" for \"%s\": use \"allow ADDRESS\" or \"deny "
                         "ADDRESS\" (ADDRESS/BITS or all)",
                         v, d->name);
}

/* Whether <rule> matches peer <sa>.  pt_cidr_match checks an IPv4-mapped IPv6 peer against
 * IPv4 rules; a peer of another family (none today) matches "all" only. */
static int rule_matches(const struct access_rule *rule, const struct sockaddr *sa)
{
    if (rule->all)
        return 1;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return 0;
    return pt_cidr_match(&rule->net, 1, sa);
}

static int access_handler(struct pt_request *r)
{
    struct access_loc_conf *alc = r->loc_conf ? pt_http_loc_conf(r, pt_access_module) : NULL;
    const struct access_rules *l = alc ? alc->rules : NULL;
    const struct sockaddr *sa = (const struct sockaddr *)&r->c->peer;

    for (int i = 0; l && i < l->n; i++) {
        if (!rule_matches(&l->rule[i], sa))
            continue;
        if (!l->rule[i].deny)
            break;
        pt_log(PT_LOG_ERR, "access forbidden by rule, client %s, request \"%.*s %.*s\"",
               r->c->peer_text, (int)r->h.method.len, r->h.method.p, (int)r->h.target.len,
               r->h.target.p);
        return 403;
    }
    /* Allowed: later ACCESS handlers (auth, ...) still have their say. */
    return PT_DECLINED;
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_phase_add(cf->cycle, PT_PHASE_ACCESS, access_handler) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return PT_OK;
}

struct pt_module pt_access_module = {
    .name = "access",
    .directives = access_directives,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
