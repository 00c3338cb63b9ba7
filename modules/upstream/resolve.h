/*
 * resolve.h: re-resolving the names of upstream servers marked `resolve`.  The helper
 * process asks the system's resolver every resolve_interval and publishes a changed
 * address in the server's shared state; workers connect to the published address
 * (pt_peer_address()) without a reload.
 */
#ifndef PT_RESOLVE_H
#define PT_RESOLVE_H

struct pt_cycle;

/* In the helper: starts re-resolving every `resolve` server of <cycle>.  PT_OK or
 * PT_ERROR. */
int pt_resolve_start(struct pt_cycle *cycle);

#endif
