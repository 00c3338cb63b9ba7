/*
 * waf.h: what the waf module's two files share: its configuration (waf.c) and the
 * per-request transaction that runs the rules (waf_request.c).
 */
#ifndef PT_WAF_H
#define PT_WAF_H

#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

#include "worker/http.h"
#include "worker/var.h"

struct waf_loc_conf {
    int enable;             /* modsecurity */
    RulesSet *rules;        /* this level's own rules merged with its parent's, or the
                               parent's when it has none; NULL: no rules anywhere */
    unsigned own_rules : 1; /* <rules> was made at this level */
    struct pt_template *id; /* modsecurity_transaction_id; NULL: $request_id */
    const struct pt_conf_setting *enable_at; /* where modsecurity was turned on, for errors */
};

extern struct pt_module pt_waf_module;

/* The library, made once per process (waf.c). */
extern ModSecurity *pt_waf_msc;

/* waf_request.c: the handlers waf.c's postconfig registers. */
int pt_waf_access(struct pt_request *r);
int pt_waf_header_filter(struct pt_request *r);
int pt_waf_body_filter(struct pt_request *r, int self, const char *data, size_t len, int last);
int pt_waf_log(struct pt_request *r);

/* The library's log callback: <data> is the request whose transaction logs <msg>. */
void pt_waf_log_rule(void *data, const void *msg);

#endif
