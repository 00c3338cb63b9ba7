/*
 * helper.c: the helper, the one unprivileged process that does periodic work once for all
 * workers.  It serves no client: the modules give it its work through their init_helper
 * hook (the upstream module its active health checks and re-resolving of names, the ssl
 * module its OCSP fetches), and it runs its loop until told to stop.
 */
#include "worker/helper.h"

#include <unistd.h>

#include "core/log.h"
#include "core/module.h"
#include "worker/event.h"
#include "worker/process.h"

void pt_helper_main(struct pt_cycle *cycle)
{
    pt_process_start(cycle, "helper", "portier: helper process");
    for (int i = 0; pt_modules[i]; i++) {
        if (pt_modules[i]->init_helper && pt_modules[i]->init_helper(cycle) != PT_OK) {
            pt_log(PT_LOG_CRIT, "module %s failed to start in the helper", pt_modules[i]->name);
            _exit(PT_EXIT_FATAL);
        }
    }
    /* The helper holds no client: a graceful stop is as quick as a fast one.  A check in
     * flight is abandoned; the next generation's helper starts its own. */
    while (!pt_sig_quit && !pt_sig_term) {
        pt_loop_once(1000);
        if (pt_sig_reopen) {
            pt_sig_reopen = 0;
            pt_log_reopen();
        }
    }
    _exit(0);
}
