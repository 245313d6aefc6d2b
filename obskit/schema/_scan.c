/* The validator's block kernel: one call decides, for every line of a block, whether it is
 * certainly valid under log schema v1 or doubtful.
 *
 * check_block(buf, end, config) -> (lines, valid, doubtful, services, eligible, carrying)
 *   The lines are buf[0:end] split at every LF (end is the length of buf or the position of
 *   a LF; the region always holds at least one line, possibly empty).
 *   config is a tuple (max_line_bytes, max_depth, required, trace_floor, service_ok, cache):
 *     required     tuple of bytes: extra top-level keys every record must carry;
 *     trace_floor  level rank (DEBUG 0 .. ERROR 3) from which lines count for trace coverage,
 *                  or -1 to skip that count;
 *     service_ok   None, or a callable deciding whether a well-formed service name is allowed
 *                  (called once per name, the answer kept in the dict cache).
 *   lines     how many lines the region holds;
 *   valid     how many of them are certainly valid;
 *   doubtful  list of (index, start, stop) for every other line, stop excluding the LF;
 *   services  dict service -> count over the valid lines;
 *   eligible  valid lines at or above trace_floor; carrying: those of them with a trace_id.
 *
 * "Certainly valid" is a strict subset of what the precise path (obskit/schema/precise.py)
 * accepts: strict RFC 8259 JSON, strict UTF-8, one object per line, every schema field
 * present once, spelled plainly and valid. Anything unusual (a leap second, an escape inside
 * a timestamp, an escaped top-level key, a lone surrogate escape, ...) is only doubtful: the
 * precise path then decides and writes the message. Property tests keep the three paths (this
 * kernel, the pure Python fast path, the precise path) in agreement.
 *
 * The scan of the lines runs without the GIL; only the per-service bookkeeping holds it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(_MSC_VER)
#include <intrin.h>
#endif

/* Byte classes inside a JSON string. */
enum { C_PLAIN = 0, C_QUOTE, C_BACKSLASH, C_CONTROL, C_HIGH };
static unsigned char STR_CLASS[256];
static unsigned char LOWER_HEX[256]; /* 1 for 0-9 and a-f */

enum { F_TIMESTAMP, F_LEVEL, F_SERVICE, F_TRACE, F_SPAN, F_MESSAGE, N_FIELDS };

typedef struct {
    const unsigned char *p; /* start of the string's content (after the quote) */
    Py_ssize_t n;           /* content length in bytes */
    char kind;              /* 0 absent, 's' plain string, 'e' string with escapes, 'n' null */
} Field;

#define MAX_REQUIRED 63

typedef struct {
    Py_ssize_t max_line;
    int max_depth;
    int n_required;
    const char *required[MAX_REQUIRED];
    Py_ssize_t required_len[MAX_REQUIRED];
} Limits;

typedef struct {
    Py_ssize_t start, stop; /* the line is buf[start:stop] */
    Py_ssize_t svc, svc_len;
    signed char level; /* 0..3 when certainly valid, -1 when doubtful */
    char traced;
} LineInfo;

/* ---- JSON, strictly ------------------------------------------------------------------ */

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *e) {
    while (p < e && *p <= ' ' && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of \uXXXX at p (p at the backslash), or -1. */
static long u_escape(const unsigned char *p, const unsigned char *e) {
    if (e - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* One UTF-8 sequence starting at p (a byte >= 0x80), exactly as Python's strict decoder
 * accepts it (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). Returns
 * its length or 0. */
static int utf8_len(const unsigned char *p, const unsigned char *e) {
    unsigned char c = p[0];
    Py_ssize_t left = e - p;
#define CONT(i) (left > (i) && (p[i] & 0xC0) == 0x80)
    if (c >= 0xC2 && c <= 0xDF) return CONT(1) ? 2 : 0;
    if (c == 0xE0) return left > 2 && p[1] >= 0xA0 && p[1] <= 0xBF && CONT(2) ? 3 : 0;
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return CONT(1) && CONT(2) ? 3 : 0;
    if (c == 0xED) return left > 2 && p[1] >= 0x80 && p[1] <= 0x9F && CONT(2) ? 3 : 0;
    if (c == 0xF0)
        return left > 3 && p[1] >= 0x90 && p[1] <= 0xBF && CONT(2) && CONT(3) ? 4 : 0;
    if (c >= 0xF1 && c <= 0xF3) return CONT(1) && CONT(2) && CONT(3) ? 4 : 0;
    if (c == 0xF4)
        return left > 3 && p[1] >= 0x80 && p[1] <= 0x8F && CONT(2) && CONT(3) ? 4 : 0;
#undef CONT
    return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The 8 bytes at p, word at a time: a high bit set in the result for each byte that is not
 * plain inside a string (quote, backslash, control byte, non-ASCII byte). A flag can be
 * wrong only above a right one (a borrow), so the lowest flag is the first such byte. */
static uint64_t special8(const unsigned char *p) {
    uint64_t v, q, b;
    memcpy(&v, p, 8);
    q = v ^ (ONES * '"');
    b = v ^ (ONES * '\\');
    uint64_t control = (v - ONES * 0x20) & ~v;
    uint64_t quote = (q - ONES) & ~q;
    uint64_t backslash = (b - ONES) & ~b;
    return (control | quote | backslash | v) & HIGHS;
}

#if PY_LITTLE_ENDIAN
/* Index of the lowest flagged byte of a non-zero special8() result. */
static int first_flagged(uint64_t mask) {
#if defined(_MSC_VER) && defined(_WIN64)
    unsigned long bit;
    _BitScanForward64(&bit, mask);
    return (int)(bit >> 3);
#elif defined(_MSC_VER) /* 32-bit Windows: one half at a time */
    unsigned long bit;
    if (_BitScanForward(&bit, (unsigned long)mask)) return (int)(bit >> 3);
    _BitScanForward(&bit, (unsigned long)(mask >> 32));
    return (int)((bit + 32) >> 3);
#else
    return __builtin_ctzll(mask) >> 3;
#endif
}
#endif

/* A string at *pp (at its opening quote). On success moves *pp past the closing quote, sets
 * *escaped when it holds an escape, and returns 0; -1 when doubtful. */
static int scan_string(const unsigned char **pp, const unsigned char *e, int *escaped) {
    const unsigned char *p = *pp + 1;
    *escaped = 0;
    for (;;) {
        for (; e - p >= 8; p += 8) {
            uint64_t flagged = special8(p);
            if (flagged) {
#if PY_LITTLE_ENDIAN
                p += first_flagged(flagged);
#endif
                break;
            }
        }
        while (p < e && STR_CLASS[*p] == C_PLAIN) p++;
        if (p >= e) return -1;
        switch (STR_CLASS[*p]) {
        case C_QUOTE:
            *pp = p + 1;
            return 0;
        case C_BACKSLASH: {
            *escaped = 1;
            if (p + 1 >= e) return -1;
            unsigned char c = p[1];
            if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                c == 'r' || c == 't') {
                p += 2;
                break;
            }
            long u = u_escape(p, e);
            if (u < 0) return -1;
            if (u >= 0xDC00 && u <= 0xDFFF) return -1; /* a lone low surrogate */
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo = u_escape(p + 6, e);
                if (lo < 0xDC00 || lo > 0xDFFF) return -1; /* a lone high surrogate */
                p += 12;
            } else {
                p += 6;
            }
            break;
        }
        case C_CONTROL:
            return -1;
        default: { /* C_HIGH */
            int n = utf8_len(p, e);
            if (n == 0) return -1;
            p += n;
        }
        }
    }
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(const unsigned char **pp, const unsigned char *e) {
    const unsigned char *p = *pp;
    if (p < e && *p == '-') p++;
    if (p >= e || !is_digit(*p)) return -1;
    if (*p == '0') {
        p++;
    } else {
        while (p < e && is_digit(*p)) p++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !is_digit(*p)) return -1;
        while (p < e && is_digit(*p)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || !is_digit(*p)) return -1;
        while (p < e && is_digit(*p)) p++;
    }
    *pp = p;
    return 0;
}

static int scan_literal(const unsigned char **pp, const unsigned char *e, const char *word,
                        Py_ssize_t n) {
    if (e - *pp < n || memcmp(*pp, word, (size_t)n) != 0) return -1;
    *pp += n;
    return 0;
}

static int scan_value(const unsigned char **pp, const unsigned char *e, int depth, int max_depth);

/* An object or array at *pp, whose nesting level is depth (the line's own object is 1). */
static int scan_container(const unsigned char **pp, const unsigned char *e, int depth,
                          int max_depth) {
    const unsigned char *p = *pp;
    int object = *p == '{';
    unsigned char close = object ? '}' : ']';
    int escaped;
    if (depth > max_depth) return -1;
    p = skip_ws(p + 1, e);
    if (p < e && *p == close) {
        *pp = p + 1;
        return 0;
    }
    for (;;) {
        if (object) {
            if (p >= e || *p != '"' || scan_string(&p, e, &escaped) < 0) return -1;
            p = skip_ws(p, e);
            if (p >= e || *p != ':') return -1;
            p = skip_ws(p + 1, e);
        }
        if (scan_value(&p, e, depth, max_depth) < 0) return -1;
        p = skip_ws(p, e);
        if (p >= e) return -1;
        if (*p == close) {
            *pp = p + 1;
            return 0;
        }
        if (*p != ',') return -1;
        p = skip_ws(p + 1, e);
    }
}

/* Any value at *pp, inside a container at nesting level depth. */
static int scan_value(const unsigned char **pp, const unsigned char *e, int depth,
                      int max_depth) {
    int escaped;
    if (*pp >= e) return -1;
    switch (**pp) {
    case '"':
        return scan_string(pp, e, &escaped);
    case '{':
    case '[':
        return scan_container(pp, e, depth + 1, max_depth);
    case 't':
        return scan_literal(pp, e, "true", 4);
    case 'f':
        return scan_literal(pp, e, "false", 5);
    case 'n':
        return scan_literal(pp, e, "null", 4);
    default:
        return scan_number(pp, e);
    }
}

/* ---- the schema fields --------------------------------------------------------------- */

static int field_of(const unsigned char *k, Py_ssize_t n) {
    switch (n) {
    case 9:
        return memcmp(k, "timestamp", 9) == 0 ? F_TIMESTAMP : -1;
    case 5:
        return memcmp(k, "level", 5) == 0 ? F_LEVEL : -1;
    case 7:
        if (memcmp(k, "service", 7) == 0) return F_SERVICE;
        if (memcmp(k, "span_id", 7) == 0) return F_SPAN;
        if (memcmp(k, "message", 7) == 0) return F_MESSAGE;
        return -1;
    case 8:
        return memcmp(k, "trace_id", 8) == 0 ? F_TRACE : -1;
    default:
        return -1;
    }
}

static int digits(const unsigned char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!is_digit(s[i])) return 0;
    return 1;
}

static int num(const unsigned char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

/* YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|+hh:mm|-hh:mm): a real Gregorian date, hour 00-23, minute
 * and second 00-59 (a leap second is left to the precise path), offset hours 00-23. */
static int timestamp_ok(const unsigned char *s, Py_ssize_t n) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20) return 0;
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
        s[16] != ':' || !digits(s + 17, 2))
        return 0;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    if (mo < 1 || mo > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > ((mo == 2 && leap) ? 29 : dim[mo - 1])) return 0;
    if (num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 59) return 0;
    Py_ssize_t i = 19;
    if (s[i] == '.') {
        Py_ssize_t j = i + 1;
        while (j < n && is_digit(s[j])) j++;
        if (j - i - 1 < 1 || j - i - 1 > 9) return 0;
        i = j;
    }
    if (i < n && s[i] == 'Z') return i + 1 == n;
    if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' &&
        digits(s + i + 4, 2))
        return num(s + i + 1, 2) <= 23 && num(s + i + 4, 2) <= 59;
    return 0;
}

/* 32 or 16 lower-case hex characters, not all zero. */
static int hex_id_ok(const unsigned char *s, Py_ssize_t n, Py_ssize_t want) {
    if (n != want) return 0;
    int hex = 1, nonzero = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        hex &= LOWER_HEX[s[i]];
        nonzero |= s[i] != '0';
    }
    return hex && nonzero;
}

/* [a-z0-9][a-z0-9._-]{0,62} */
static int service_ok(const unsigned char *s, Py_ssize_t n) {
    if (n < 1 || n > 63) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok) return 0;
    }
    return 1;
}

static int level_rank(const unsigned char *s, Py_ssize_t n) {
    if (n == 4 && memcmp(s, "INFO", 4) == 0) return 1;
    if (n == 5 && memcmp(s, "DEBUG", 5) == 0) return 0;
    if (n == 4 && memcmp(s, "WARN", 4) == 0) return 2;
    if (n == 5 && memcmp(s, "ERROR", 5) == 0) return 3;
    return -1;
}

/* One line: fills info->level (-1 when doubtful), ->svc, ->svc_len and ->traced. */
static void check_line(const unsigned char *buf, LineInfo *info, const Limits *lim) {
    const unsigned char *p = buf + info->start, *e = buf + info->stop;
    Field f[N_FIELDS];
    unsigned long long required_seen = 0;
    int escaped;
    info->level = -1;
    if (info->stop - info->start > lim->max_line) return;
    memset(f, 0, sizeof f);
    p = skip_ws(p, e);
    if (p >= e || *p != '{') return;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}') return; /* {} lacks the required fields */
    for (;;) {
        if (p >= e || *p != '"') return;
        const unsigned char *key = p + 1;
        if (scan_string(&p, e, &escaped) < 0 || escaped) return; /* escaped keys: doubtful */
        Py_ssize_t klen = p - 1 - key;
        int fid = field_of(key, klen);
        for (int r = 0; r < lim->n_required; r++)
            if (lim->required_len[r] == klen && memcmp(lim->required[r], key, (size_t)klen) == 0)
                required_seen |= 1ULL << r;
        p = skip_ws(p, e);
        if (p >= e || *p != ':') return;
        p = skip_ws(p + 1, e);
        if (fid >= 0) {
            if (f[fid].kind) return; /* a schema key twice */
            if (p < e && *p == '"') {
                f[fid].p = p + 1;
                if (scan_string(&p, e, &escaped) < 0) return;
                f[fid].n = p - 1 - f[fid].p;
                f[fid].kind = escaped ? 'e' : 's';
            } else if (scan_literal(&p, e, "null", 4) == 0) {
                f[fid].kind = 'n';
            } else {
                return; /* a number, object, array or boolean is never a valid schema value */
            }
        } else if (scan_value(&p, e, 1, lim->max_depth) < 0) {
            return;
        }
        p = skip_ws(p, e);
        if (p >= e) return;
        if (*p == '}') break;
        if (*p != ',') return;
        p = skip_ws(p + 1, e);
    }
    if (skip_ws(p + 1, e) != e) return; /* anything after the object */
    if (lim->n_required && required_seen != (1ULL << lim->n_required) - 1) return;

    for (int i = 0; i < N_FIELDS; i++) {
        if (i == F_TRACE || i == F_SPAN) continue;
        if (f[i].kind == 0 || f[i].kind == 'n') return; /* missing, or null */
        if (i != F_MESSAGE && f[i].kind != 's') return;
    }
    if (!timestamp_ok(f[F_TIMESTAMP].p, f[F_TIMESTAMP].n)) return;
    if (!service_ok(f[F_SERVICE].p, f[F_SERVICE].n)) return;
    int traced = f[F_TRACE].kind == 's';
    if (f[F_TRACE].kind == 'e' || (traced && !hex_id_ok(f[F_TRACE].p, f[F_TRACE].n, 32))) return;
    if (f[F_SPAN].kind == 'e') return;
    if (f[F_SPAN].kind == 's' && (!traced || !hex_id_ok(f[F_SPAN].p, f[F_SPAN].n, 16))) return;
    int rank = level_rank(f[F_LEVEL].p, f[F_LEVEL].n);
    if (rank < 0) return;
    info->level = (signed char)rank;
    info->traced = (char)traced;
    info->svc = f[F_SERVICE].p - buf;
    info->svc_len = f[F_SERVICE].n;
}

/* ---- services: counted per name, each name's verdict asked once ---------------------- */

typedef struct {
    Py_ssize_t at, len; /* the name in the buffer; len < 0 marks a free slot */
    Py_ssize_t count;
    int allowed;
    PyObject *name;
} Service;

typedef struct {
    Service *slots;
    Py_ssize_t cap, used;
} ServiceTable;

static Py_hash_t fnv(const unsigned char *s, Py_ssize_t n) {
    unsigned long long h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return (Py_hash_t)(h >> 1);
}

static int table_init(ServiceTable *t, Py_ssize_t cap) {
    t->slots = (Service *)PyMem_Malloc((size_t)cap * sizeof(Service));
    if (t->slots == NULL) return -1;
    for (Py_ssize_t i = 0; i < cap; i++) t->slots[i].len = -1;
    t->cap = cap;
    t->used = 0;
    return 0;
}

static void table_free(ServiceTable *t) {
    for (Py_ssize_t i = 0; i < t->cap; i++)
        if (t->slots[i].len >= 0) Py_XDECREF(t->slots[i].name);
    PyMem_Free(t->slots);
}

static Service *table_find(ServiceTable *t, const unsigned char *buf, Py_ssize_t at,
                           Py_ssize_t len) {
    Py_ssize_t i = fnv(buf + at, len) & (t->cap - 1);
    for (;;) {
        Service *s = &t->slots[i];
        if (s->len < 0) return s;
        if (s->len == len && memcmp(buf + s->at, buf + at, (size_t)len) == 0) return s;
        i = (i + 1) & (t->cap - 1);
    }
}

static int table_grow(ServiceTable *t, const unsigned char *buf) {
    ServiceTable bigger;
    if (table_init(&bigger, t->cap * 2) < 0) return -1;
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        Service *s = &t->slots[i];
        if (s->len >= 0) *table_find(&bigger, buf, s->at, s->len) = *s;
    }
    bigger.used = t->used;
    PyMem_Free(t->slots);
    *t = bigger;
    return 0;
}

/* The verdict on a well-formed service name: the cache first, else service_ok(name). */
static int ask_allowed(PyObject *name, PyObject *check, PyObject *cache) {
    if (check == Py_None) return 1;
    PyObject *known = PyDict_GetItemWithError(cache, name);
    if (known != NULL) return PyObject_IsTrue(known);
    if (PyErr_Occurred()) return -1;
    PyObject *res = PyObject_CallOneArg(check, name);
    if (res == NULL) return -1;
    int ok = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (ok < 0) return -1;
    if (PyDict_SetItem(cache, name, ok ? Py_True : Py_False) < 0) return -1;
    return ok;
}

/* ---- check_block ---------------------------------------------------------------------- */

static int parse_limits(PyObject *config, Limits *lim, int *floor, PyObject **check,
                        PyObject **cache) {
    PyObject *required;
    if (!PyArg_ParseTuple(config, "niO!iOO!;config must be (max_line_bytes, max_depth, "
                          "required, trace_floor, service_ok, cache)",
                          &lim->max_line, &lim->max_depth, &PyTuple_Type, &required, floor,
                          check, &PyDict_Type, cache))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(required);
    if (n > MAX_REQUIRED) {
        PyErr_SetString(PyExc_ValueError, "at most 63 required fields");
        return -1;
    }
    lim->n_required = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyTuple_GET_ITEM(required, i);
        if (!PyBytes_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "required fields must be bytes");
            return -1;
        }
        lim->required[i] = PyBytes_AS_STRING(k);
        lim->required_len[i] = PyBytes_GET_SIZE(k);
    }
    return 0;
}

static PyObject *check_block(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *data, *config, *check, *cache;
    Py_ssize_t end;
    Limits lim;
    int floor;
    if (!PyArg_ParseTuple(args, "O!nO!", &PyBytes_Type, &data, &end, &PyTuple_Type, &config))
        return NULL;
    if (parse_limits(config, &lim, &floor, &check, &cache) < 0) return NULL;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    if (end < 0 || end > PyBytes_GET_SIZE(data)) {
        PyErr_SetString(PyExc_ValueError, "end out of range");
        return NULL;
    }

    /* Where the lines are, then each line's verdict, without the GIL. */
    Py_ssize_t n = 1;
    for (const unsigned char *q = buf; (q = memchr(q, '\n', (size_t)(buf + end - q))) != NULL;
         q++)
        n++;
    LineInfo *info = (LineInfo *)PyMem_Malloc((size_t)n * sizeof(LineInfo));
    if (info == NULL) return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *nl = memchr(buf + start, '\n', (size_t)(end - start));
        Py_ssize_t stop = nl ? nl - buf : end;
        info[i].start = start;
        info[i].stop = stop;
        check_line(buf, &info[i], &lim);
        start = stop + 1;
    }
    Py_END_ALLOW_THREADS

    /* Counts and services, with the GIL. */
    PyObject *doubtful = PyList_New(0), *services = PyDict_New(), *result = NULL;
    ServiceTable table;
    Py_ssize_t valid = 0, eligible = 0, carrying = 0;
    if (doubtful == NULL || services == NULL || table_init(&table, 16) < 0) {
        Py_XDECREF(doubtful);
        Py_XDECREF(services);
        PyMem_Free(info);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        LineInfo *li = &info[i];
        if (li->level >= 0) {
            Service *s = table_find(&table, buf, li->svc, li->svc_len);
            if (s->len < 0) {
                s->name = PyUnicode_DecodeASCII((const char *)buf + li->svc, li->svc_len, NULL);
                if (s->name == NULL) goto done;
                s->allowed = ask_allowed(s->name, check, cache);
                if (s->allowed < 0) {
                    Py_DECREF(s->name);
                    goto done;
                }
                s->at = li->svc;
                s->len = li->svc_len;
                s->count = 0;
                if (++table.used * 2 > table.cap && table_grow(&table, buf) < 0) goto done;
                s = table_find(&table, buf, li->svc, li->svc_len);
            }
            if (s->allowed) {
                s->count++;
                valid++;
                if (floor >= 0 && li->level >= floor) {
                    eligible++;
                    carrying += li->traced;
                }
                continue;
            }
        }
        PyObject *item = Py_BuildValue("(nnn)", i, li->start, li->stop);
        if (item == NULL || PyList_Append(doubtful, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    for (Py_ssize_t i = 0; i < table.cap; i++) {
        Service *s = &table.slots[i];
        if (s->len < 0 || s->count == 0) continue;
        PyObject *count = PyLong_FromSsize_t(s->count);
        if (count == NULL || PyDict_SetItem(services, s->name, count) < 0) {
            Py_XDECREF(count);
            goto done;
        }
        Py_DECREF(count);
    }
    result = Py_BuildValue("(nnOOnn)", n, valid, doubtful, services, eligible, carrying);
done:
    table_free(&table);
    PyMem_Free(info);
    Py_DECREF(doubtful);
    Py_DECREF(services);
    return result;
}

static PyMethodDef methods[] = {
    {"check_block", check_block, METH_VARARGS,
     "check_block(buf, end, config) -> (lines, valid, doubtful, services, eligible, carrying)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scan(void) {
    for (int c = 0; c < 256; c++)
        STR_CLASS[c] = c < 0x20 ? C_CONTROL : c >= 0x80 ? C_HIGH : C_PLAIN;
    for (int c = 0; c < 256; c++)
        LOWER_HEX[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    STR_CLASS['"'] = C_QUOTE;
    STR_CLASS['\\'] = C_BACKSLASH;
    return PyModule_Create(&module);
}
