/*
 * http_chars.c: the table behind http_chars.h, one entry per byte.  The bytes not listed,
 * the CTLs but HTAB and DEL, are in no class.  The short macros name the combinations
 * that recur, so that the table reads as two columns.
 */
#include "worker/http_chars.h"

#define TVR (PT_HTTP_C_TCHAR | PT_HTTP_C_VALUE | PT_HTTP_C_TARGET | PT_HTTP_C_REGNAME)
#define TV  (PT_HTTP_C_TCHAR | PT_HTTP_C_VALUE | PT_HTTP_C_TARGET)
#define VR  (PT_HTTP_C_VALUE | PT_HTTP_C_TARGET | PT_HTTP_C_REGNAME)
#define V   (PT_HTTP_C_VALUE | PT_HTTP_C_TARGET)
#define VAL PT_HTTP_C_VALUE
#define HEX PT_HTTP_C_HEX

const uint8_t pt_http_cclass[256] = {
    ['\t'] = VAL,        [' '] = VAL,
    ['!'] = TVR,         ['"'] = V,
    ['#'] = TV,          ['$'] = TVR,
    ['%'] = TVR,         ['&'] = TVR,
    ['\''] = TVR,        ['('] = VR,
    [')'] = VR,          ['*'] = TVR,
    ['+'] = TVR,         [','] = VR,
    ['-'] = TVR,         ['.'] = TVR,
    ['/'] = V,           ['0' ... '9'] = TVR | HEX,
    [':'] = V,           [';'] = VR,
    ['<'] = V,           ['='] = VR,
    ['>'] = V,           ['?'] = V,
    ['@'] = V,           ['A' ... 'F'] = TVR | HEX,
    ['G' ... 'Z'] = TVR, ['['] = V,
    ['\\'] = V,          [']'] = V,
    ['^'] = TV,          ['_'] = TVR,
    ['`'] = TV,          ['a' ... 'f'] = TVR | HEX,
    ['g' ... 'z'] = TVR, ['{'] = V,
    ['|'] = TV,          ['}'] = V,
    ['~'] = TVR,         [0x80 ... 0xff] = V,
};
