/*
 * var.h: variables ($host, $http_user_agent, ...) and templates: strings with variables
 * compiled once at configuration time and evaluated per request.  Modules register the
 * variables they offer; log_format, proxy_set_header and add_header use templates.
 */
#ifndef PT_VAR_H
#define PT_VAR_H

#include "worker/http.h"
#include "core/pt.h"

/* Getter of a variable: sets *<out> to the value for <r> (a slice that must stay valid for
 * the request: static, the request pool, or the request head) and returns PT_OK, or
 * PT_DECLINED when the variable has no value (rendered as "" or "-" in logs).  <arg> is the
 * suffix of a prefix variable ("user_agent" for $http_user_agent), else the variable's own
 * name ("is_mobile"), in the case it was written in: a getter serving several names that
 * configuration defines (map) finds which one by it. */
typedef int (*pt_var_get)(struct pt_request *r, struct pt_str arg, struct pt_str *out);

/* Registers variable <name> (or, with <prefix> set, every variable starting with <name>,
 * like "http_").  Call from postconfig.  Returns PT_OK or PT_ERROR when already taken. */
int pt_var_register(const char *name, int prefix, pt_var_get get);

/* How a template escapes variable values: none, default (nginx's: \xHH for bytes outside
 * printable ASCII and for '"' and '\\'), json (JSON string escapes). */
enum pt_escape { PT_ESCAPE_NONE, PT_ESCAPE_DEFAULT, PT_ESCAPE_JSON };

/* Writes the escape sequence for byte <c> under <esc> into <seq> (room for 6 bytes);
 * returns its length, or 0 when <c> is written as is. */
size_t pt_escape_byte(enum pt_escape esc, unsigned char c, char *seq);

struct pt_template;

/* Compiles <src> ("$remote_addr - ${http_x}x") from configuration into a template in the
 * cycle pool.  Unknown variables are errors reported with pt_conf_error (file:line).
 * Returns NULL on error. */
struct pt_template *pt_template_compile(struct pt_conf *cf, const char *src, enum pt_escape esc);

/*
 * Makes template <t> render a variable without a value as "-" instead of nothing, as
 * nginx's access log does.  (Belongs in var.h; kept here until the lead moves it.)
 */
void pt_template_dash_missing(struct pt_template *t);

/* True when <t> has no variables (its value can be used as is). */
int pt_template_is_static(const struct pt_template *t, struct pt_str *value);

/* Evaluates <t> for <r> into the request pool; *<out> is the result.  PT_OK or PT_ERROR. */
int pt_template_eval(struct pt_request *r, const struct pt_template *t, struct pt_str *out);

/* Evaluates into a caller buffer <buf> of <cap> bytes; returns the length written
 * (truncated at cap).  For the access log's hot path, no allocation. */
size_t pt_template_render(struct pt_request *r, const struct pt_template *t, char *buf, size_t cap);

/* Looks a variable up by name at request time (for $arg_x in other modules).  PT_OK,
 * PT_DECLINED (no value) or PT_ERROR (no such variable). */
int pt_var_value(struct pt_request *r, const char *name, struct pt_str *out);

#endif
