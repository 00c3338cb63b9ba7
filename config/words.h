/*
 * words.h: reading the blocks that stand for nginx blocks of lines (map, split_clients): a
 * libconfig group with a few named settings and a list of lines, each split into words as
 * nginx's configuration parser splits it, so that a line copied from nginx, quotes and
 * escapes included, reads the same.
 */
#ifndef PT_WORDS_H
#define PT_WORDS_H

#include "config/conf.h"

/*
 * Splits <s> into words as nginx's ngx_conf_read_token does: blanks (space, tab, CR, LF)
 * separate words; a word starting with '"' or '\'' runs to the matching quote (blanks kept,
 * the quotes dropped) and must be followed by a blank or the end; a backslash makes the next
 * character part of the word; in a word, \" \' and \\ become the character, \t \r \n the
 * control character, any other backslash stays.  An unquoted ';' ends the line, as in nginx
 * (only blanks or a comment may follow); '#' starting a word starts a comment.  The first
 * <max> words are copied into cf->pool and stored in <words>.  Returns the number of words
 * (those past <max> counted, not stored), or -1 after reporting an unterminated quote or
 * text after a closing quote or a ';' through pt_conf_error.
 */
int pt_conf_words(struct pt_conf *cf, const char *s, char **words, int max);

/* Checks that every setting of the group <g> (a <block>, "map" say) is named in <known>
 * (NULL-terminated); an unknown one is reported at its line with <hint>.  PT_OK or
 * PT_ERROR. */
int pt_conf_check_members(struct pt_conf *cf, const struct pt_conf_setting *g,
                          const char *const *known, const char *block, const char *hint);

/* The string setting <name> of the group <g> (a <block>), or NULL: reported when it is
 * missing or not a string, <example> showing one.  The configuration's string. */
const char *pt_conf_member_string(struct pt_conf *cf, const struct pt_conf_setting *g,
                                  const char *name, const char *block, const char *example);

/* The variable that configuration defines as "$name": its name without '$', lower-case (as
 * templates look names up), copied into cf->pool; NULL after reporting a name that is not
 * letters, digits and '_'. */
char *pt_conf_var_name(struct pt_conf *cf, const char *s);

#endif
