/*
 * try_files.c: nginx's try_files, before the content handler (PRECONTENT).  Each FILE
 * argument is looked up under the location's root or alias; the first that exists (a
 * directory for one written with a trailing '/', else a file) becomes the request's URI
 * and the location's content handler serves it.  When none does, the last argument
 * decides: =CODE answers that status, a URI or a named location is an internal redirect.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/pool.h"
#include "modules/static/static.h"

int pt_static_try_files(struct pt_request *r)
{
    const struct static_loc_conf *lc = pt_http_loc_conf(r, pt_static_module);
    struct pt_str name, path, to;
    struct open_file of;
    int rc;

    if (lc->try_last == NULL)
        return PT_DECLINED;
    for (int i = 0; i < lc->ntry; i++) {
        if (pt_template_eval(r, lc->try_files[i].path, &name) != PT_OK)
            return PT_ERROR;
        if (name.len == 0 || name.p[0] != '/')
            continue; /* names no file under the root ("$arg_x" empty, say) */
        rc = pt_static_map_uri(r, lc, name, &path);
        if (rc == 400)
            continue;
        if (rc != PT_OK)
            return rc;
        if (pt_static_open(r, lc, path, 1, &of) != PT_OK)
            return PT_ERROR;
        if (of.err) {
            if (of.err != ENOENT && of.err != ENOTDIR && of.err != ENAMETOOLONG)
                pt_http_log(r, PT_LOG_ERR, "stat() \"%s\" failed (%d: %s)", path.p, of.err,
                            strerror(of.err));
            continue;
        }
        if (lc->try_files[i].dir ? !S_ISDIR(of.st.st_mode) : S_ISDIR(of.st.st_mode))
            continue;
        /* nginx takes the slash of "$uri/" off: the directory is then asked for without
         * it, and answers 301 to it, as any directory would. */
        if (lc->try_files[i].dir && name.len > 1)
            name.len--;
        r->uri = name;
        return PT_DECLINED;
    }
    if (lc->try_to == NULL)
        return lc->try_code;
    if (pt_template_eval(r, lc->try_to, &to) != PT_OK)
        return PT_ERROR;
    return pt_http_internal_redirect(r, to);
}
