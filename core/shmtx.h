/*
 * shmtx.h: a lock shared by processes (master, workers, helper) through shared memory,
 * recovered when the process holding it dies.
 *
 * It is a robust, process-shared pthread mutex: when its holder dies, the kernel hands the
 * lock to the next process that asks, and that process learns it (PT_SHMTX_RECOVERED) so it
 * can repair what the lock protects.  A worker killed by a segfault or the OOM killer must
 * not freeze every other worker on the next lock.
 */
#ifndef PT_SHMTX_H
#define PT_SHMTX_H

#include <pthread.h>

#include "core/pt.h"

/* Returned by pt_shmtx_lock() and pt_shmtx_trylock() when the lock was taken over from a
 * process that died holding it: the caller holds it now, but the data it protects may be
 * half-updated.  Worth a log line. */
#define PT_SHMTX_RECOVERED 1

/* Lives in shared memory: nothing in it is a pointer. */
struct pt_shmtx {
    pthread_mutex_t m;
};

/* Initializes the unlocked lock <mtx>, which must already be in memory shared by every
 * process that will take it (e.g. in a zone, before forking).  Must not be called while any
 * process may be using <mtx>.  Returns PT_OK, or PT_ERROR with errno set. */
int pt_shmtx_init(struct pt_shmtx *mtx);

/* Blocks until the calling process holds <mtx>.  Returns PT_OK, PT_SHMTX_RECOVERED when the
 * previous holder died holding it (the lock is marked consistent again and is held), or
 * PT_ERROR with errno set (e.g. EDEADLK: the caller already holds it) and the lock not held. */
int pt_shmtx_lock(struct pt_shmtx *mtx);

/* Takes <mtx> if it is free.  Returns PT_OK, PT_SHMTX_RECOVERED (see pt_shmtx_lock()),
 * PT_AGAIN when another process holds it, or PT_ERROR with errno set. */
int pt_shmtx_trylock(struct pt_shmtx *mtx);

/* Releases <mtx>, which the caller must hold. */
void pt_shmtx_unlock(struct pt_shmtx *mtx);

#endif
