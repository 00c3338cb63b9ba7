/*
 * health.h: active health checks of upstream servers.  The `health_check` directive of an
 * upstream group is read here; the checks run in the helper process only (once for all
 * workers, not once per worker), and their results go to the peers' shared state, where
 * every worker's balancer reads them (lb.c).
 */
#ifndef PT_HEALTH_H
#define PT_HEALTH_H

#include <stdint.h>

#include "config/conf.h"
#include "core/pt.h"

struct pt_cycle;
struct pt_health_conf;

/* Setter of `health_check` in an upstream block (the block's struct pt_upstream is
 * <conf>).  Parses "[type=http|tcp] [uri=] [method=] [status=] [body=] [host=] [port=]
 * [interval=] [timeout=] [rise=] [fall=] [mandatory]".  PT_OK, or PT_ERROR after
 * pt_conf_error. */
int pt_health_set(struct pt_conf *cf, const struct pt_directive *d, void *conf);

/* True when <hc> says servers take no requests before their first passed check. */
int pt_health_mandatory(const struct pt_health_conf *hc);

/* In the helper process: starts the checks of every server of every group of <cycle> that
 * has a health_check, staggered over the interval so that they do not all fire at once.
 * Returns PT_OK or PT_ERROR. */
int pt_health_start(struct pt_cycle *cycle);

/* Whether <status> is in <hc>'s expected ranges (exposed for the unit tests). */
int pt_health_status_ok(const struct pt_health_conf *hc, int status);

#endif
