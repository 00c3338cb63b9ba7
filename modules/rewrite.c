/*
 * rewrite.c: the rewrite module, nginx's: return, rewrite, set, if and break, run in the
 * order written, at server level before a location is chosen (SERVER_REWRITE) and at
 * location level once it is (REWRITE).  As in nginx a level's directives are not inherited:
 * the server's run for every request, a location's for its own.
 *
 * The order written: libconfig hands a block's settings over in the order of the file, so
 * `set`, `rewrite`, `if`, `return` and `break` run as they appear, each list in its order.
 * A key appears once per block, so rules that nginx interleaves (set, rewrite, set again)
 * are written in one list, `rewrite_script = ( "set $a 1", "rewrite ^/x /y", { if = ...} )`,
 * whose strings are nginx's lines without the semicolon.
 *
 * A rewrite that changes the URI without `break` makes the location be searched again
 * after the location's directives ran (`last` at once), at most 10 times, as nginx; $1..$9
 * are the captures of the last regex that matched (a rewrite's, an if's, or the regex
 * location's).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/regex.h"
#include "worker/http.h"
#include "worker/http_phase.h"
#include "worker/var.h"

#define MAX_URI_CHANGES 10
#define NCAPS           10 /* $0..$9 */

enum op_kind { OP_RETURN, OP_REWRITE, OP_SET, OP_BREAK, OP_IF };
enum flag { FLAG_NONE, FLAG_LAST, FLAG_BREAK, FLAG_REDIRECT, FLAG_PERMANENT };
enum cond_kind { C_VAR, C_EQ, C_NE, C_MATCH, C_NOMATCH, C_FILE, C_DIR, C_EXISTS, C_EXEC };

struct script;

/* One directive, compiled.  Its sources are kept until postconfig compiles its values, when
 * every module has registered its variables. */
struct op {
    enum op_kind kind;
    const struct pt_conf_setting *setting; /* for errors found in postconfig */
    /* return */
    int status;
    const char *text_src;
    struct pt_template *text; /* body or URL; NULL: a generated page */
    /* rewrite */
    pcre2_code *re;            /* also an if's ~ condition's */
    struct pt_regex_hint hint; /* what a subject it matches starts or ends with */
    const char *repl_src;
    struct pt_template *repl;
    enum flag flag;
    unsigned redirect : 1; /* the replacement is a URL, or the flag asks for one */
    /* set */
    int var; /* the set variable's index; SET_ARGS: $args */
    const char *value_src;
    struct pt_template *value;
    /* if */
    enum cond_kind cond;
    unsigned negate : 1;
    const char *left_src, *right_src;
    struct pt_template *left, *right;
    struct script *then;
    void **loc_conf; /* the block's own level (proxy_pass, add_header ... in it); NULL: none */
};

struct script {
    struct op *ops;
    int n, cap;
};

struct rewrite_main_conf {
    char **vars; /* the names `set` assigns, indexing a request's values */
    int nvars;
};

struct rewrite_loc_conf {
    struct script *script; /* this level's directives; NULL: none */
};

/* A request's state: what `set` assigned, the last regex's captures, URI changes. */
struct rewrite_ctx {
    struct pt_str *vals;
    struct pt_str subject; /* what the captures index */
    PCRE2_SIZE caps[2 * NCAPS];
    int ncaps; /* 0: none from a rewrite or an if */
    int changes_left;
    unsigned uri_changed : 1;
};

/* What running a script came to. */
enum run { RUN_ON, RUN_STOP, RUN_LAST };

static int set_op(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_if(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_script(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const int k_return = OP_RETURN, k_rewrite = OP_REWRITE, k_set = OP_SET, k_break = OP_BREAK;

#define SL (PT_CTX_SRV | PT_CTX_LOC)

static const struct pt_directive rewrite_directives[] = {
    {"return", SL, 0, PT_LOC_CONF, set_op, 0, &k_return,
     "\"CODE [TEXT]\", \"CODE URL\" (301, 302, 303, 307, 308) or \"URL\": answer at once; a "
     "redirect to a path goes out absolute (absolute_redirect); TEXT's Content-Type is the "
     "URI's by its extension in types, else default_type, as nginx's"},
    {"rewrite", SL, PT_DIR_MULTI, PT_LOC_CONF, set_op, 0, &k_rewrite,
     "\"REGEX REPLACEMENT [last|break|redirect|permanent]\" (a list, run in order): a URI the "
     "regex matches becomes the replacement ($1..$9, variables); a replacement starting with "
     "http://, https:// or $scheme redirects (302, 301 with permanent); the query is appended "
     "unless the replacement ends in '?'; without break the location is searched again, at "
     "most 10 times (then 500), as nginx"},
    {"set", SL, PT_DIR_MULTI, PT_LOC_CONF, set_op, 0, &k_set,
     "\"$VARIABLE VALUE\" (a list): the variable gets the value (with variables) for the rest "
     "of the request; $args, the one of portier's own it may set (as nginx), changes the query "
     "the upstream gets"},
    {"break", SL, 0, PT_LOC_CONF, set_op, 0, &k_break,
     "true: the rewrite directives after it at this level do not run, and a changed URI stays "
     "in this location"},
    {"if", SL, PT_DIR_BLOCK, PT_LOC_CONF, set_if, 0, NULL,
     "( { condition = \"$VAR\" | \"$VAR = TEXT\" | \"!=\" | \"~ REGEX\" | \"~*\" | \"!~\" | "
     "\"!~*\" | \"-f PATH\" | \"-d\" | \"-e\" | \"-x\" (\"!\" negates); then return, rewrite, "
     "set, break, if as in a location } ): nginx's if; the regex's captures are $1..$9 inside"},
    {"rewrite_script", SL, PT_DIR_BLOCK, PT_LOC_CONF, set_script, 0, NULL,
     "( \"set $a 1\", \"rewrite REGEX REPLACEMENT [FLAG]\", \"return CODE [TEXT]\", \"break\", "
     "{ if = \"CONDITION\"; then = ( ... ); } ): the rewrite directives in one ordered list, "
     "for the orders a libconfig block cannot write (a key appears once per block)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_rewrite_module;

/* --- configuration --- */

static int get_capture(struct pt_request *r, struct pt_str name, struct pt_str *out);

static void *create_main_conf(struct pt_conf *cf)
{
    static const char *const caps[NCAPS] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

    /* $0..$9 exist before any module compiles a value that uses them (proxy_pass, say). */
    for (int i = 0; i < NCAPS; i++)
        if (pt_var_register(caps[i], 0, get_capture) != PT_OK)
            return NULL;
    return pt_palloc(cf->pool, sizeof(struct rewrite_main_conf));
}

static void *create_loc_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct rewrite_loc_conf));
}

static struct op *add_op(struct pt_conf *cf, struct script **sp, enum op_kind kind)
{
    struct script *s = *sp;

    if (s == NULL && (s = *sp = pt_palloc(cf->pool, sizeof(*s))) == NULL)
        return NULL;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 4;
        struct op *a = pt_palloc(cf->pool, (size_t)cap * sizeof(*a));
        if (a == NULL)
            return NULL;
        if (s->n)
            memcpy(a, s->ops, (size_t)s->n * sizeof(*a));
        s->ops = a;
        s->cap = cap;
    }
    s->ops[s->n] = (struct op){.kind = kind, .setting = cf->setting};
    return &s->ops[s->n++];
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static int is_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
           strncmp(s, "$scheme", 7) == 0;
}

static void free_regex(void *code)
{
    pcre2_code_free(code);
}

/* Compiles <src> (caseless for ~*) for <op>, and its hint; reports errors with the offset
 * in the pattern. */
static pcre2_code *compile_regex(struct pt_conf *cf, struct op *op, const char *src, int caseless)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;
    int rc;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                                   caseless ? PCRE2_CASELESS : 0, &rc, &off, NULL);

    if (re == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        pt_conf_error(cf, "invalid regex \"%s\": %s at offset %zu", src, (const char *)msg,
                      (size_t)off);
        return NULL;
    }
    if (pt_pool_cleanup(cf->pool, free_regex, re) != PT_OK) {
        pcre2_code_free(re);
        pt_conf_error(cf, "out of memory");
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pt_regex_hint(&op->hint, src, strlen(src), caseless);
    return re;
}

/* "return CODE [TEXT]" / "return URL". */
static int parse_return(struct pt_conf *cf, struct op *op, char *v)
{
    char *sp = strchr(v, ' '), *end;
    long code;

    if (is_url(v)) {
        op->status = 302;
        op->text_src = v;
        return PT_OK;
    }
    code = strtol(v, &end, 10);
    if (end == v || (*end != '\0' && *end != ' ') || code < 100 || code > 999)
        return pt_conf_error(cf, "invalid return code \"%s\" (use \"CODE [TEXT]\" or \"URL\")", v);
    op->status = (int)code;
    if (sp) {
        sp += strspn(sp, " ");
        /* nginx's quotes around the text ("return 200 "ok";") are the line's, not the text's. */
        if (sp[0] == '"' && strlen(sp) >= 2 && sp[strlen(sp) - 1] == '"') {
            sp[strlen(sp) - 1] = '\0';
            sp++;
        }
        op->text_src = sp;
    }
    return PT_OK;
}

/* "REGEX REPLACEMENT [FLAG]". */
static int parse_rewrite(struct pt_conf *cf, struct op *op, const char *v)
{
    static const char *const flags[] = {"", "last", "break", "redirect", "permanent"};
    char *w[4];
    int n = pt_conf_words(cf, v, w, 4);

    if (n < 0)
        return PT_ERROR;
    if (n < 2 || n > 3)
        return pt_conf_error(cf,
                             "invalid \"rewrite\" \"%s\": use \"REGEX REPLACEMENT [last|"
                             "break|redirect|permanent]\"",
                             v);
    if ((op->re = compile_regex(cf, op, w[0], 0)) == NULL)
        return PT_ERROR;
    op->repl_src = w[1];
    op->flag = FLAG_NONE;
    for (int i = 1; n == 3 && i < (int)pt_nelems(flags); i++)
        if (strcmp(w[2], flags[i]) == 0)
            op->flag = (enum flag)i;
    if (n == 3 && op->flag == FLAG_NONE)
        return pt_conf_error(cf,
                             "invalid flag \"%s\" in \"rewrite\": use last, break, redirect "
                             "or permanent",
                             w[2]);
    op->redirect = op->flag == FLAG_REDIRECT || op->flag == FLAG_PERMANENT || is_url(w[1]);
    return PT_OK;
}

/* The one variable of portier's own that `set` may assign, as nginx's: the query. */
#define SET_ARGS (-2)

/* The index of the `set` variable <name> (without '$'), registering it on first use. */
static int var_index(struct pt_conf *cf, const char *name);

/* "$VARIABLE VALUE". */
static int parse_set(struct pt_conf *cf, struct op *op, const char *v)
{
    char *w[2];
    int n = pt_conf_words(cf, v, w, 2);

    if (n < 0)
        return PT_ERROR;
    if (n < 1 || n > 2 || w[0][0] != '$' || w[0][1] == '\0')
        return pt_conf_error(cf, "invalid \"set\" \"%s\": use \"$VARIABLE VALUE\"", v);
    op->var = strcasecmp(w[0] + 1, "args") == 0 ? SET_ARGS : var_index(cf, w[0] + 1);
    if (op->var == PT_ERROR)
        return PT_ERROR;
    op->value_src = n == 2 ? w[1] : "";
    return PT_OK;
}

/* One line of a script: its directive's name, then its value. */
static int parse_line(struct pt_conf *cf, struct script **sp, enum op_kind kind, char *v)
{
    struct op *op = add_op(cf, sp, kind);

    if (op == NULL)
        return pt_conf_error(cf, "out of memory");
    switch (kind) {
    case OP_RETURN: return parse_return(cf, op, v);
    case OP_REWRITE: return parse_rewrite(cf, op, v);
    case OP_SET: return parse_set(cf, op, v);
    default: return PT_OK;
    }
}

static int set_op(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct rewrite_loc_conf *lc = conf;
    enum op_kind kind = (enum op_kind) * (const int *)d->post;
    char *v = pt_pstrdup(cf->pool, cf->value);

    if (v == NULL)
        return pt_conf_error(cf, "out of memory");
    if (kind == OP_BREAK && strcmp(v, "on") != 0 && strcmp(v, "true") != 0)
        return strcmp(v, "off") == 0 || strcmp(v, "false") == 0
                   ? PT_OK
                   : pt_conf_error(cf, "\"break\" takes true");
    return parse_line(cf, &lc->script, kind, v);
}

static int read_script_list(struct pt_conf *cf, const struct pt_conf_setting *list,
                            struct script **sp);
static int read_if(struct pt_conf *cf, const struct pt_conf_setting *group, struct script **sp);

/* The directive <name> of a script line or an if block's member. */
static int kind_of(const char *name, enum op_kind *kind)
{
    static const struct {
        const char *name;
        enum op_kind kind;
    } names[] = {{"return", OP_RETURN},
                 {"rewrite", OP_REWRITE},
                 {"set", OP_SET},
                 {"break", OP_BREAK},
                 {"if", OP_IF}};

    for (size_t i = 0; i < pt_nelems(names); i++)
        if (strcmp(name, names[i].name) == 0) {
            *kind = names[i].kind;
            return PT_OK;
        }
    return PT_ERROR;
}

/* "! -f PATH", "$x ~* REGEX", "$x = TEXT", "$x": the condition of an if, with nginx's
 * optional parentheses. */
static int parse_cond(struct pt_conf *cf, struct op *op, const char *src)
{
    static const struct {
        const char *word;
        enum cond_kind kind;
        int negate, caseless;
    } ops[] = {{"=", C_EQ, 0, 0},     {"!=", C_EQ, 1, 0},     {"~", C_MATCH, 0, 0},
               {"~*", C_MATCH, 0, 1}, {"!~", C_MATCH, 1, 0},  {"!~*", C_MATCH, 1, 1},
               {"-f", C_FILE, 0, 0},  {"!-f", C_FILE, 1, 0},  {"-d", C_DIR, 0, 0},
               {"!-d", C_DIR, 1, 0},  {"-e", C_EXISTS, 0, 0}, {"!-e", C_EXISTS, 1, 0},
               {"-x", C_EXEC, 0, 0},  {"!-x", C_EXEC, 1, 0}};
    char *s = pt_pstrdup(cf->pool, src), *w[4];
    size_t len;
    int n;

    if (s == NULL)
        return pt_conf_error(cf, "out of memory");
    s += strspn(s, " ");
    len = strlen(s);
    if (s[0] == '(' && len > 1 && s[len - 1] == ')') {
        s[len - 1] = '\0';
        s++;
    }
    if ((n = pt_conf_words(cf, s, w, 4)) < 0)
        return PT_ERROR;
    if (n == 1) {
        op->cond = C_VAR;
        op->left_src = w[0];
        return w[0][0] == '$' ? PT_OK : pt_conf_error(cf, "invalid condition \"%s\"", src);
    }
    for (size_t i = 0; n >= 2 && i < pt_nelems(ops); i++) {
        int unary = ops[i].kind >= C_FILE;
        if (strcmp(w[unary ? 0 : 1], ops[i].word) != 0 || n != (unary ? 2 : 3))
            continue;
        op->cond = ops[i].kind;
        op->negate = ops[i].negate;
        op->left_src = w[unary ? 1 : 0];
        op->right_src = unary || ops[i].kind == C_MATCH ? NULL : w[2];
        if (op->cond == C_MATCH && (op->re = compile_regex(cf, op, w[2], ops[i].caseless)) == NULL)
            return PT_ERROR;
        return PT_OK;
    }
    return pt_conf_error(cf,
                         "invalid condition \"%s\": use $VAR, $VAR = TEXT, $VAR != TEXT, "
                         "$VAR ~ REGEX (~*, !~, !~*), or -f/-d/-e/-x PATH (! negates)",
                         src);
}

/* One member of an if block, or one element of a script list. */
static int read_member(struct pt_conf *cf, const struct pt_conf_setting *m, const char *name,
                       struct script **sp)
{
    enum op_kind kind;
    int n = pt_conf_setting_count(m);

    cf->setting = m;
    if (strcmp(name, "then") == 0)
        return read_script_list(cf, m, sp);
    if (kind_of(name, &kind) != PT_OK)
        return pt_conf_error(cf,
                             "\"%s\" is not allowed in \"if\": use return, rewrite, set, "
                             "break, if or then",
                             name);
    if (kind == OP_IF)
        return read_if(cf, m, sp);
    if (kind == OP_BREAK)
        return parse_line(cf, sp, OP_BREAK, NULL);
    if (n == 0) {
        const char *v = pt_conf_setting_string(m);
        char *copy = v ? pt_pstrdup(cf->pool, v) : NULL;
        return copy ? parse_line(cf, sp, kind, copy)
                    : pt_conf_error(cf, "\"%s\" takes a string", name);
    }
    for (int i = 0; i < n; i++) {
        const char *v = pt_conf_setting_string(pt_conf_setting_elem(m, i));
        char *copy = v ? pt_pstrdup(cf->pool, v) : NULL;
        if (copy == NULL || parse_line(cf, sp, kind, copy) != PT_OK)
            return copy ? PT_ERROR : pt_conf_error(cf, "\"%s\" takes strings", name);
    }
    return PT_OK;
}

/* The members of an if block that are not the rewrite module's. */
static const char *const rewrite_members[] = {
    "condition", "if", "then", "return", "rewrite", "set", "break", "rewrite_script", NULL};

static int rewrite_member(const char *name)
{
    for (int i = 0; rewrite_members[i]; i++)
        if (strcmp(name, rewrite_members[i]) == 0)
            return 1;
    return 0;
}

/* An if block in a location that holds other modules' directives (proxy_pass, add_header,
 * proxy_set_header ...) gets a level of its own, as nginx's: read here, inheriting from the
 * location, and the request's while the condition holds. */
static int read_block_level(struct pt_conf *cf, const struct pt_conf_setting *g, struct op *op)
{
    struct pt_conf_ctx ctx = *cf->conf;
    int others = 0;

    for (int i = 0; i < pt_conf_setting_count(g); i++)
        others |= !rewrite_member(pt_conf_setting_name(pt_conf_setting_elem(g, i)));
    if (!others)
        return PT_OK;
    if (!(cf->ctx & PT_CTX_LOC))
        return pt_conf_error(cf, "an \"if\" block at server level holds only return, rewrite, "
                                 "set, break and if (nginx's rule)");
    if (pt_http_nested_level(cf, cf->conf->loc_conf, &ctx.loc_conf) != PT_OK)
        return PT_ERROR;
    op->loc_conf = ctx.loc_conf;
    return pt_conf_read_block(cf, g, PT_CTX_LOC, &ctx, rewrite_members);
}

/* One if block: its condition, then its members in order. */
static int read_if_group(struct pt_conf *cf, const struct pt_conf_setting *g, struct script **sp)
{
    const struct pt_conf_setting *c = pt_conf_setting_member(g, "condition");
    const char *cond = c ? pt_conf_setting_string(c) : NULL;
    struct op *op;

    if (cond == NULL)
        c = pt_conf_setting_member(g, "if"), cond = c ? pt_conf_setting_string(c) : NULL;
    cf->setting = g;
    if (cond == NULL)
        return pt_conf_error(cf, "an \"if\" block needs condition = \"...\"");
    op = add_op(cf, sp, OP_IF);
    if (op == NULL || parse_cond(cf, op, cond) != PT_OK)
        return op ? PT_ERROR : pt_conf_error(cf, "out of memory");
    if (read_block_level(cf, g, op) != PT_OK)
        return PT_ERROR;
    for (int i = 0; i < pt_conf_setting_count(g); i++) {
        const struct pt_conf_setting *m = pt_conf_setting_elem(g, i);
        const char *name = pt_conf_setting_name(m);
        /* The op may move as its script grows: its block is found again by index. */
        int at = (int)(op - (*sp)->ops);
        if (strcmp(name, "condition") == 0 || (strcmp(name, "if") == 0 && m == c) ||
            !rewrite_member(name))
            continue;
        if (read_member(cf, m, name, &(*sp)->ops[at].then) != PT_OK)
            return PT_ERROR;
        op = &(*sp)->ops[at];
    }
    return PT_OK;
}

static int read_if(struct pt_conf *cf, const struct pt_conf_setting *s, struct script **sp)
{
    if (pt_conf_setting_kind(s) == PT_CONF_GROUP)
        return read_if_group(cf, s, sp);
    for (int i = 0; i < pt_conf_setting_count(s); i++) {
        const struct pt_conf_setting *g = pt_conf_setting_elem(s, i);
        if (pt_conf_setting_kind(g) != PT_CONF_GROUP) {
            cf->setting = g;
            return pt_conf_error(cf, "\"if\" takes blocks { condition = ...; ... }");
        }
        if (read_if_group(cf, g, sp) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

/* A script list: strings "DIRECTIVE VALUE" and if blocks, in order. */
static int read_script_list(struct pt_conf *cf, const struct pt_conf_setting *list,
                            struct script **sp)
{
    for (int i = 0; i < pt_conf_setting_count(list); i++) {
        const struct pt_conf_setting *e = pt_conf_setting_elem(list, i);
        const char *line = pt_conf_setting_string(e);
        char *copy, *sp1;
        enum op_kind kind;
        cf->setting = e;
        if (line == NULL) {
            if (pt_conf_setting_kind(e) != PT_CONF_GROUP)
                return pt_conf_error(cf, "a rewrite script holds strings and if blocks");
            if (read_if_group(cf, e, sp) != PT_OK)
                return PT_ERROR;
            continue;
        }
        copy = pt_pstrdup(cf->pool, line);
        if (copy == NULL)
            return pt_conf_error(cf, "out of memory");
        sp1 = copy + strcspn(copy, " ");
        if (*sp1)
            *sp1++ = '\0';
        sp1 += strspn(sp1, " ");
        if (kind_of(copy, &kind) != PT_OK || kind == OP_IF)
            return pt_conf_error(cf,
                                 "\"%s\" in a rewrite script: use return, rewrite, set or "
                                 "break lines, and { if = ...; } blocks",
                                 line);
        if (parse_line(cf, sp, kind, sp1) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int set_if(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct rewrite_loc_conf *lc = conf;
    const struct pt_conf_setting *s = cf->setting;
    int rc;

    pt_unused(d);
    rc = read_if(cf, s, &lc->script);
    cf->setting = s;
    return rc;
}

static int set_script(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct rewrite_loc_conf *lc = conf;
    const struct pt_conf_setting *s = cf->setting;
    int rc;

    pt_unused(d);
    if (pt_conf_setting_kind(s) != PT_CONF_LIST && pt_conf_setting_kind(s) != PT_CONF_ARRAY)
        return pt_conf_error(cf, "\"rewrite_script\" takes a list ( \"set $a 1\", ... )");
    rc = read_script_list(cf, s, &lc->script);
    cf->setting = s;
    return rc;
}

/* --- variables: what `set` assigns, and $0..$9 --- */

static struct rewrite_ctx *ctx_of(struct pt_request *r)
{
    struct rewrite_main_conf *mc = r->main_conf[pt_rewrite_module.index];
    struct rewrite_ctx *ctx = r->ctx[pt_rewrite_module.index];

    if (ctx)
        return ctx;
    ctx = pt_palloc(r->pool, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->vals = mc->nvars ? pt_palloc(r->pool, (size_t)mc->nvars * sizeof(*ctx->vals)) : NULL;
    if (mc->nvars && ctx->vals == NULL)
        return NULL;
    ctx->changes_left = MAX_URI_CHANGES;
    r->ctx[pt_rewrite_module.index] = ctx;
    return ctx;
}

/* A `set` variable: its value for this request, none before it is set. */
static int get_set_var(struct pt_request *r, struct pt_str name, struct pt_str *out)
{
    struct rewrite_main_conf *mc = r->main_conf[pt_rewrite_module.index];
    struct rewrite_ctx *ctx = r->ctx ? r->ctx[pt_rewrite_module.index] : NULL;

    for (int i = 0; ctx && i < mc->nvars; i++)
        if (strlen(mc->vars[i]) == name.len && strncasecmp(mc->vars[i], name.p, name.len) == 0 &&
            ctx->vals[i].p) {
            *out = ctx->vals[i];
            return PT_OK;
        }
    return PT_DECLINED;
}

/* $0..$9: the last regex match's captures (a rewrite's or an if's), else the regex
 * location's. */
static int get_capture(struct pt_request *r, struct pt_str name, struct pt_str *out)
{
    struct rewrite_ctx *ctx = r->ctx ? r->ctx[pt_rewrite_module.index] : NULL;
    int i = name.len == 1 ? name.p[0] - '0' : -1;

    if (i < 0 || i >= NCAPS)
        return PT_DECLINED;
    if (ctx && ctx->ncaps) {
        if (i >= ctx->ncaps || ctx->caps[2 * i] == PCRE2_UNSET)
            return PT_DECLINED;
        *out = (struct pt_str){ctx->subject.p + ctx->caps[2 * i],
                               ctx->caps[2 * i + 1] - ctx->caps[2 * i]};
        return PT_OK;
    }
    if (i >= r->ncaptures || r->captures[2 * i] == (size_t)-1)
        return PT_DECLINED;
    *out =
        (struct pt_str){r->uri.p + r->captures[2 * i], r->captures[2 * i + 1] - r->captures[2 * i]};
    return PT_OK;
}

static int var_index(struct pt_conf *cf, const char *name)
{
    struct rewrite_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_rewrite_module);
    char low[129];
    size_t len = strlen(name);
    char **a;

    if (len >= sizeof(low))
        return pt_conf_error(cf, "variable name \"$%s\" is too long", name);
    for (size_t i = 0; i <= len; i++)
        low[i] = pt_lower(name[i]);
    for (int i = 0; i < mc->nvars; i++)
        if (strcmp(mc->vars[i], low) == 0)
            return i;
    if (pt_var_register(low, 0, get_set_var) != PT_OK)
        return pt_conf_error(cf,
                             "\"set\" cannot assign \"$%s\": the name is portier's own "
                             "variable (use another name)",
                             name);
    a = pt_palloc(cf->pool, (size_t)(mc->nvars + 1) * sizeof(*a));
    if (a == NULL || (a[mc->nvars] = pt_pstrdup(cf->pool, low)) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (mc->nvars)
        memcpy(a, mc->vars, (size_t)mc->nvars * sizeof(*a));
    mc->vars = a;
    return mc->nvars++;
}

/* --- running a script --- */

static pcre2_match_data *match_data(void)
{
    static pcre2_match_data *md; /* one per process: matches do not nest */

    if (md == NULL)
        md = pcre2_match_data_create(NCAPS, NULL);
    return md;
}

/* Matches <op>'s regex against <subject>; on a match keeps its captures as $0..$9.  1, 0
 * or -1.  Callers ask the regex's hint first: most rewrites of a location do not match a
 * given URI, and its literal start or end tells most of them without running it. */
static int match(struct rewrite_ctx *ctx, const struct op *op, struct pt_str subject)
{
    pcre2_match_data *md = match_data();
    int rc = md ? pt_regex_exec(op->re, subject.p, subject.len, md) : -1;
    PCRE2_SIZE *ov;

    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return -1;
    ov = pcre2_get_ovector_pointer(md);
    ctx->ncaps = rc == 0 ? NCAPS : rc;
    memcpy(ctx->caps, ov, (size_t)ctx->ncaps * 2 * sizeof(*ov));
    ctx->subject = subject;
    return 1;
}

static int cond_true(struct pt_request *r, struct rewrite_ctx *ctx, const struct op *op)
{
    struct pt_str left, right = PT_NULL_STR;
    struct stat st;
    char *path;
    int t;

    if (pt_template_eval(r, op->left, &left) != PT_OK ||
        (op->right && pt_template_eval(r, op->right, &right) != PT_OK))
        return -1;
    switch (op->cond) {
    case C_VAR: t = left.len && !(left.len == 1 && left.p[0] == '0'); break;
    case C_EQ:
        t = left.len == right.len && (left.len == 0 || memcmp(left.p, right.p, left.len) == 0);
        break;
    case C_MATCH:
        t = pt_regex_may_match(&op->hint, left.p, left.len) ? match(ctx, op, left) : 0;
        if (t < 0)
            return -1;
        break;
    default:
        path = pt_pstrndup(r->pool, left.p, left.len);
        if (path == NULL)
            return -1;
        t = stat(path, &st) == 0;
        if (op->cond == C_FILE)
            t = t && S_ISREG(st.st_mode);
        else if (op->cond == C_DIR)
            t = t && S_ISDIR(st.st_mode);
        else if (op->cond == C_EXEC)
            t = t && access(path, X_OK) == 0;
        break;
    }
    return op->negate ? !t : t;
}

static int do_return(struct pt_request *r, const struct op *op)
{
    struct pt_str text, type;

    if (op->text == NULL)
        return op->status;
    if (pt_template_eval(r, op->text, &text) != PT_OK)
        return PT_ERROR;
    if (is_redirect(op->status)) {
        /* "return 301 /new" goes out absolute, as nginx's (absolute_redirect). */
        text = pt_http_redirect_location(r, text);
        r->status = op->status;
        if (text.p == NULL || pt_header_add(r, &r->out, PT_STR("Location"), text) != PT_OK)
            return PT_ERROR;
        return op->status;
    }
    r->status = op->status;
    r->out_length = (int64_t)text.len;
    /* nginx types the text as a file of the URI's name: default_type for most. */
    type = pt_http_text_type(r);
    if ((type.len && pt_header_add(r, &r->out, PT_STR("Content-Type"), type) != PT_OK) ||
        pt_http_send_header(r) != PT_OK || pt_http_send_body(r, text.p, text.len, 1) != PT_OK)
        return PT_ERROR;
    /* The answer is complete: no later phase (and no proxy_pass) may see this request. */
    pt_http_finalize(r, PT_OK);
    return PT_DONE;
}

/* The query after a rewrite to <repl>: the replacement's own, the request's appended
 * unless the replacement ends in '?' (nginx's rule); the request's when it has none. */
static void split_replacement(struct pt_request *r, struct pt_str repl, struct pt_str *path,
                              struct pt_str *args, int *has_args)
{
    const char *q = memchr(repl.p, '?', repl.len);
    int drop = repl.len && repl.p[repl.len - 1] == '?';
    struct pt_str own;
    char *p;

    *path = q ? (struct pt_str){repl.p, (size_t)(q - repl.p)} : repl;
    if (q == NULL) {
        *args = r->args;
        *has_args = r->h.has_query && r->args.len > 0;
        return;
    }
    own = (struct pt_str){q + 1, repl.len - (size_t)(q + 1 - repl.p)};
    /* "/x?" has no query of its own; "/x?a=1?" has "a=1": the last '?' only says so. */
    if (drop && own.len)
        own.len--;
    if (drop || r->args.len == 0) {
        *args = own;
    } else if ((p = pt_palloc(r->pool, own.len + 1 + r->args.len)) != NULL) {
        memcpy(p, own.p, own.len);
        p[own.len] = '&';
        memcpy(p + own.len + 1, r->args.p, r->args.len);
        *args = (struct pt_str){p, own.len + 1 + r->args.len};
    } else {
        *args = own;
    }
    *has_args = args->len > 0;
}

/* A rewrite whose regex matched: a redirect (its status), or the new URI (PT_OK). */
static int apply_rewrite(struct pt_request *r, struct rewrite_ctx *ctx, const struct op *op)
{
    struct pt_str repl, path, args, loc;
    int has_args;
    char *p;

    if (pt_template_eval(r, op->repl, &repl) != PT_OK)
        return PT_ERROR;
    split_replacement(r, repl, &path, &args, &has_args);
    if (op->redirect) {
        p = pt_palloc(r->pool, path.len + 1 + args.len + 1);
        if (p == NULL)
            return PT_ERROR;
        memcpy(p, path.p, path.len);
        loc = (struct pt_str){p, path.len};
        if (has_args) {
            p[loc.len++] = '?';
            memcpy(p + loc.len, args.p, args.len);
            loc.len += args.len;
        }
        loc = pt_http_redirect_location(r, loc);
        if (loc.p == NULL || pt_header_add(r, &r->out, PT_STR("Location"), loc) != PT_OK)
            return PT_ERROR;
        return op->flag == FLAG_PERMANENT ? 301 : 302;
    }
    r->uri = (struct pt_str){pt_pstrndup(r->pool, path.p, path.len), path.len};
    r->args = args;
    r->h.has_query = has_args;
    r->uri_rewritten = 1;
    ctx->uri_changed = 1;
    return r->uri.p ? PT_OK : PT_ERROR;
}

/* `set $args VALUE`: the request's query becomes VALUE, for the variables and the upstream,
 * which then gets the URI as portier has it (nginx's valid_unparsed_uri cleared); an empty
 * one leaves no '?'.  $request_uri keeps what the client sent. */
static void set_args(struct pt_request *r, struct pt_str v)
{
    r->args = v.p ? v : PT_STR("");
    r->h.has_query = r->args.len > 0;
    r->uri_rewritten = 1;
}

/* Runs <s>: PT_OK with *<how> (go on, stop here, search the location again now), or what a
 * phase handler returns for an answer (a status, PT_DONE, PT_ERROR). */
static int run(struct pt_request *r, struct rewrite_ctx *ctx, const struct script *s, enum run *how)
{
    for (int i = 0; s && i < s->n; i++) {
        const struct op *op = &s->ops[i];
        struct pt_str v;
        int rc;
        switch (op->kind) {
        case OP_RETURN: return do_return(r, op);
        case OP_BREAK:
            ctx->uri_changed = 0;
            *how = RUN_STOP;
            return PT_OK;
        case OP_SET:
            if (pt_template_eval(r, op->value, &v) != PT_OK)
                return PT_ERROR;
            if (op->var == SET_ARGS)
                set_args(r, v);
            else
                ctx->vals[op->var] = v.p ? v : PT_STR("");
            break;
        case OP_IF:
            rc = cond_true(r, ctx, op);
            if (rc < 0)
                return PT_ERROR;
            /* A block with a level of its own makes it the request's, as nginx's. */
            if (rc && op->loc_conf)
                r->loc_conf = op->loc_conf;
            if (rc && ((rc = run(r, ctx, op->then, how)) != PT_OK || *how != RUN_ON))
                return rc;
            break;
        case OP_REWRITE:
            if (!pt_regex_may_match(&op->hint, r->uri.p, r->uri.len))
                break;
            rc = match(ctx, op, r->uri);
            if (rc < 0)
                return PT_ERROR;
            if (rc == 0)
                break;
            if ((rc = apply_rewrite(r, ctx, op)) != PT_OK)
                return rc;
            if (op->flag == FLAG_BREAK) {
                ctx->uri_changed = 0;
                r->uri_whole = 1;
            }
            if (op->flag == FLAG_LAST || op->flag == FLAG_BREAK) {
                *how = op->flag == FLAG_LAST ? RUN_LAST : RUN_STOP;
                return PT_OK;
            }
            break;
        }
    }
    *how = RUN_ON;
    return PT_OK;
}

/* Server level: before a location is chosen, which the (new) URI then picks. */
static int server_rewrite(struct pt_request *r)
{
    struct rewrite_loc_conf *lc = r->server->loc_conf[pt_rewrite_module.index];
    struct rewrite_ctx *ctx;
    enum run how;
    int rc;

    if (lc->script == NULL)
        return PT_DECLINED;
    if ((ctx = ctx_of(r)) == NULL)
        return PT_ERROR;
    rc = run(r, ctx, lc->script, &how);
    ctx->uri_changed = 0;
    return rc == PT_OK ? PT_DECLINED : rc;
}

static int location_rewrite(struct pt_request *r)
{
    struct rewrite_loc_conf *lc = pt_http_loc_conf(r, pt_rewrite_module);
    struct rewrite_ctx *ctx;
    enum run how;
    int rc;

    /* The server level already ran; a request no location took has no other. */
    if (r->loc_conf == r->server->loc_conf || lc->script == NULL)
        return PT_DECLINED;
    if ((ctx = ctx_of(r)) == NULL)
        return PT_ERROR;
    rc = run(r, ctx, lc->script, &how);
    if (rc != PT_OK)
        return rc;
    if (how != RUN_LAST && !ctx->uri_changed)
        return PT_DECLINED;
    ctx->uri_changed = 0;
    ctx->ncaps = 0;
    if (--ctx->changes_left < 0) {
        pt_log(PT_LOG_ERR,
               "rewrite or internal redirection cycle while processing \"%.*s\", "
               "client: %s",
               (int)r->uri.len, r->uri.p, r->c->peer_text);
        return 500;
    }
    pt_http_search_location_again(r);
    return PT_OK;
}

/* --- postconfig: compiling the values --- */

static int compile_tpl(struct pt_conf *cf, const struct op *op, const char *src,
                       struct pt_template **t)
{
    if (src == NULL)
        return PT_OK;
    cf->setting = op->setting;
    *t = pt_template_compile(cf, src, PT_ESCAPE_NONE);
    return *t ? PT_OK : PT_ERROR;
}

/* A replacement's $N (or ${N}) must name a group its regex has: nginx would give "" for
 * it at run time; portier says so when the configuration is read. */
static int check_captures(struct pt_conf *cf, const struct op *op)
{
    uint32_t groups = 0;

    if (op->kind != OP_REWRITE || op->repl_src == NULL)
        return PT_OK;
    pcre2_pattern_info(op->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    for (const char *p = op->repl_src; (p = strchr(p, '$')) != NULL; p++) {
        const char *d = p[1] == '{' ? p + 2 : p + 1;
        if (*d >= '1' && *d <= '9' && (uint32_t)(*d - '0') > groups) {
            cf->setting = op->setting;
            return pt_conf_error(cf,
                                 "\"rewrite\" replacement \"%s\" uses $%c, but its regex has "
                                 "%u capture group%s",
                                 op->repl_src, *d, groups, groups == 1 ? "" : "s");
        }
    }
    return PT_OK;
}

static int compile_script(struct pt_conf *cf, struct script *s)
{
    for (int i = 0; s && i < s->n; i++) {
        struct op *op = &s->ops[i];
        if (check_captures(cf, op) != PT_OK)
            return PT_ERROR;
        if (compile_tpl(cf, op, op->text_src, &op->text) != PT_OK ||
            compile_tpl(cf, op, op->repl_src, &op->repl) != PT_OK ||
            compile_tpl(cf, op, op->value_src, &op->value) != PT_OK ||
            compile_tpl(cf, op, op->left_src, &op->left) != PT_OK ||
            compile_tpl(cf, op, op->right_src, &op->right) != PT_OK ||
            compile_script(cf, op->then) != PT_OK)
            return PT_ERROR;
        op->text_src = op->repl_src = op->value_src = op->left_src = op->right_src = NULL;
    }
    return PT_OK;
}

static int compile_level(struct pt_conf *cf, void **loc_conf)
{
    struct rewrite_loc_conf *lc = loc_conf[pt_rewrite_module.index];

    return compile_script(cf, lc->script);
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_phase_add(cf->cycle, PT_PHASE_SERVER_REWRITE, server_rewrite) != PT_OK ||
        pt_phase_add(cf->cycle, PT_PHASE_REWRITE, location_rewrite) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return pt_http_foreach_loc(cf, compile_level);
}

struct pt_module pt_rewrite_module = {
    .name = "rewrite",
    .directives = rewrite_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .postconfig = postconfig,
};
