/* shmtx.c: the robust process-shared lock. */
#include "core/shmtx.h"

#include <errno.h>

int pt_shmtx_init(struct pt_shmtx *mtx)
{
    pthread_mutexattr_t attr;
    int err;

    err = pthread_mutexattr_init(&attr);
    if (err != 0) {
        errno = err;
        return PT_ERROR;
    }
    err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (err == 0)
        err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (err == 0)
        err = pthread_mutex_init(&mtx->m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (err != 0) {
        errno = err;
        return PT_ERROR;
    }
    return PT_OK;
}

/* Turns the result <err> of a lock attempt into the contract's vocabulary.  On EOWNERDEAD
 * the caller holds the lock; marking it consistent at once keeps it usable for everyone
 * else: left unmarked, the next unlock would make it ENOTRECOVERABLE for good.  Repairing
 * the protected data is the caller's business, which is why it hears about it. */
static int lock_result(struct pt_shmtx *mtx, int err)
{
    if (err == 0)
        return PT_OK;
    if (err == EBUSY)
        return PT_AGAIN;
    if (err == EOWNERDEAD) {
        err = pthread_mutex_consistent(&mtx->m);
        if (err == 0)
            return PT_SHMTX_RECOVERED;
        pthread_mutex_unlock(&mtx->m);
    }
    errno = err;
    return PT_ERROR;
}

int pt_shmtx_lock(struct pt_shmtx *mtx)
{
    return lock_result(mtx, pthread_mutex_lock(&mtx->m));
}

int pt_shmtx_trylock(struct pt_shmtx *mtx)
{
    return lock_result(mtx, pthread_mutex_trylock(&mtx->m));
}

void pt_shmtx_unlock(struct pt_shmtx *mtx)
{
    pthread_mutex_unlock(&mtx->m);
}
