/*
 * waf.c: the waf module's configuration: ModSecurity-nginx's directives on libmodsecurity 3.
 *
 * Rules are read by whoever loads the configuration (the master, or `portier -t`), once:
 * each level (http, server, location) with modsecurity_rules_file or modsecurity_rules of
 * its own gets a rule set, into which its parent's is merged as ModSecurity-nginx merges
 * them; a level without shares its parent's.  Workers inherit the sets read-only when
 * they are forked and never change them; a reload reads them again for the new cycle and
 * frees the old ones with its pool.
 *
 * The requests' side, one libmodsecurity transaction each, is waf_request.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/conf.h"
#include "core/log.h"
#include "core/pool.h"
#include "modules/waf/waf.h"
#include "worker/http_phase.h"

ModSecurity *pt_waf_msc;

static int set_rules(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_id(struct pt_conf *cf, const struct pt_directive *d, void *conf);

#define HSL (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

/* d->post of the two rule directives: what their value is. */
static const int rules_file = 1, rules_inline = 0;

static const struct pt_directive waf_directives[] = {
    {"modsecurity", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, offsetof(struct waf_loc_conf, enable),
     NULL,
     "true: requests here go through the ModSecurity rules of this level (default false); "
     "the rules decide by their own SecRuleEngine (On blocks, DetectionOnly only logs)"},
    {"modsecurity_rules_file", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_rules, 0, &rules_file,
     "a ModSecurity rules file (a list for several, read in order; a relative path is "
     "beside the configuration file, as include's), e.g. the OWASP CRS set "
     "up by a file that includes /etc/modsecurity/crs/crs-setup.conf and "
     "/usr/share/modsecurity-crs/rules/*.conf; read once at start and reload, an error in "
     "it fails `portier -t` with libmodsecurity's file, line and message.  A level's rules "
     "are its own followed by its parent's, as ModSecurity-nginx merges them"},
    {"modsecurity_rules", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_rules, 0, &rules_inline,
     "ModSecurity rules written inline (\"SecRuleEngine DetectionOnly\"), added after the "
     "level's rules files"},
    {"modsecurity_transaction_id", HSL, 0, PT_LOC_CONF, set_id, 0, NULL,
     "the transaction's id (variables allowed), ModSecurity's unique_id in its log lines and "
     "audit log (default $request_id, which portier's error page for a refused request "
     "shows)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void *create_loc_conf(struct pt_conf *cf)
{
    struct waf_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc)
        lc->enable = PT_CONF_UNSET;
    return lc;
}

static void free_rules(void *rules)
{
    msc_rules_cleanup(rules);
}

/* The rule set of the level <lc>, made on first use. */
static RulesSet *own_rules(struct pt_conf *cf, struct waf_loc_conf *lc)
{
    if (lc->own_rules)
        return lc->rules;
    if ((lc->rules = msc_create_rules_set()) == NULL)
        return NULL;
    if (pt_pool_cleanup(cf->pool, free_rules, lc->rules) != PT_OK) {
        msc_rules_cleanup(lc->rules);
        return lc->rules = NULL;
    }
    lc->own_rules = 1;
    return lc->rules;
}

static int set_rules(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    RulesSet *rules = own_rules(cf, conf);
    const char *error = NULL, *path = NULL;
    int n;

    if (rules == NULL)
        return pt_conf_error(cf, "out of memory");
    if (*(const int *)d->post == rules_file) {
        if ((path = pt_conf_path_beside(cf, cf->value)) == NULL)
            return pt_conf_error(cf, "out of memory");
        /* libmodsecurity's own words for a missing file do not say why. */
        if (access(path, R_OK) != 0)
            return pt_conf_error(cf, "cannot read \"%s\": %s", path, strerror(errno));
        n = msc_rules_add_file(rules, path, &error);
    } else {
        n = msc_rules_add(rules, cf->value, &error);
    }
    if (n >= 0)
        return PT_OK;
    pt_conf_error(cf, "%s%s%s: %s", d->name, path ? " " : "", path ? path : "",
                  error ? error : "rules refused");
    free((void *)error);
    return PT_ERROR;
}

static int set_id(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct waf_loc_conf *lc = conf;

    pt_unused(d);
    if (lc->id)
        return pt_conf_error(cf, "\"modsecurity_transaction_id\" is duplicate");
    return (lc->id = pt_template_compile(cf, cf->value, PT_ESCAPE_NONE)) ? PT_OK : PT_ERROR;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct waf_loc_conf *p = parent, *c = child;
    const char *error = NULL;

    pt_conf_merge_int(c->enable, p->enable, 0);
    pt_conf_merge_ptr(c->id, p->id, NULL);
    if (!c->own_rules) {
        c->rules = p->rules;
        return PT_OK;
    }
    if (p->rules == NULL || msc_rules_merge(c->rules, p->rules, &error) >= 0)
        return PT_OK;
    pt_conf_error(cf, "cannot merge the ModSecurity rules of a level with its parent's: %s",
                  error ? error : "refused");
    free((void *)error);
    return PT_ERROR;
}

static int postconfig(struct pt_conf *cf)
{
    struct pt_cycle *c = cf->cycle;

    /* One library instance per process: its log callback and the connector's name. */
    if (pt_waf_msc == NULL) {
        if ((pt_waf_msc = msc_init()) == NULL)
            return pt_conf_error(cf, "msc_init() failed: out of memory");
        msc_set_connector_info(pt_waf_msc, "portier/" PORTIER_VERSION);
        msc_set_log_cb(pt_waf_msc, pt_waf_log_rule);
    }
    if (pt_phase_add(c, PT_PHASE_ACCESS, pt_waf_access) != PT_OK ||
        pt_phase_add(c, PT_PHASE_LOG, pt_waf_log) != PT_OK ||
        pt_header_filter_add(c, pt_waf_header_filter) != PT_OK ||
        pt_body_filter_add(c, pt_waf_body_filter) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers or filters");
    return PT_OK;
}

struct pt_module pt_waf_module = {
    .name = "waf",
    .directives = waf_directives,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
