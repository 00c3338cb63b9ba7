/* http_phase.c: registering a cycle's phase handlers and response filters. */
#include "worker/http_phase.h"

#include "worker/http.h"

/* The hooks of cycle <c>: they live in its http module's main configuration. */
static struct pt_http_hooks *hooks_of(struct pt_cycle *c)
{
    struct pt_http_main_conf *mc = pt_http_main_conf_of(c, pt_http_module);

    return &mc->hooks;
}

int pt_phase_add(struct pt_cycle *c, enum pt_phase ph, pt_phase_handler h)
{
    struct pt_http_hooks *hk = hooks_of(c);

    if (hk->nphase[ph] == PT_MAX_PHASE_HANDLERS)
        return PT_ERROR;
    hk->phases[ph][hk->nphase[ph]++] = h;
    return PT_OK;
}

int pt_header_filter_add(struct pt_cycle *c, pt_header_filter f)
{
    struct pt_http_hooks *hk = hooks_of(c);

    if (hk->nheader_filters == PT_MAX_FILTERS)
        return PT_ERROR;
    hk->header_filters[hk->nheader_filters++] = f;
    return PT_OK;
}

int pt_body_filter_add(struct pt_cycle *c, pt_body_filter f)
{
    struct pt_http_hooks *hk = hooks_of(c);

    if (hk->nbody_filters == PT_MAX_FILTERS)
        return PT_ERROR;
    hk->body_filters[hk->nbody_filters++] = f;
    return PT_OK;
}

int pt_report_add(struct pt_cycle *c, const char *name, pt_report fn)
{
    struct pt_http_hooks *hk = hooks_of(c);

    if (hk->nreports == PT_MAX_REPORTS)
        return PT_ERROR;
    hk->report_names[hk->nreports] = name;
    hk->reports[hk->nreports++] = fn;
    return PT_OK;
}

int pt_peer_report_add(struct pt_cycle *c, pt_peer_report fn)
{
    struct pt_http_hooks *hk = hooks_of(c);

    if (hk->npeer_reports == PT_MAX_REPORTS)
        return PT_ERROR;
    hk->peer_reports[hk->npeer_reports++] = fn;
    return PT_OK;
}

const struct pt_http_hooks *pt_http_hooks_of(struct pt_cycle *c)
{
    return hooks_of(c);
}
