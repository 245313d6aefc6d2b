/* One pass over a window of log lines for the checks Python's re can only do one at a time.
 *
 * scan(blob) -> (schema_keys, two_objects_at, escaped_key_at)
 *   schema_keys     non-overlapping occurrences of "timestamp" "level" "service" "trace_id"
 *                   "span_id" "message" (quotes included), as re.findall counts them;
 *   two_objects_at  offset of the first  }[ \t\r]*{  or -1;
 *   escaped_key_at  offset of the first  \uXXXX(?:[^"\\\n]|\\.)*"[ \t\r]*:  or -1.
 * check_records(records, UNSET) -> (bad, no_trace, no_span): index of the first record whose
 *   timestamp, trace_id or span_id the bulk patterns reject, or that has a span without a
 *   trace (-1 if none), and how many records lack trace_id / span_id (UNSET; meaningful
 *   only when no record is bad).
 * Exactly the results of the regexes in obskit/schema/batch.py (property-tested); the pure
 * Python path is used wherever this extension was not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static const char *NAMES[] = {"timestamp", "level", "service", "trace_id", "span_id", "message"};
static const Py_ssize_t LENS[] = {9, 5, 7, 8, 7, 7};

static int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; }

static Py_ssize_t count_keys(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t count = 0, p = 0;
    while (p < n) {
        const unsigned char *q = memchr(s + p, '"', (size_t)(n - p));
        if (q == NULL) break;
        p = q - s;
        int matched = 0;
        /* Only names that start with the byte after the quote can match. */
        unsigned char first = p + 1 < n ? s[p + 1] : 0;
        if (first != 't' && first != 'l' && first != 's' && first != 'm') {
            p++;
            continue;
        }
        for (int k = 0; k < 6; k++) {
            Py_ssize_t L = LENS[k];
            if ((unsigned char)NAMES[k][0] != first) continue;
            if (p + 1 + L < n && memcmp(s + p + 1, NAMES[k], (size_t)L) == 0 && s[p + 1 + L] == '"') {
                count++;
                p += L + 2; /* the match includes both quotes; findall resumes after it */
                matched = 1;
                break;
            }
        }
        if (!matched) p++;
    }
    return count;
}

static Py_ssize_t two_objects(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t p = 0;
    while (p < n) {
        const unsigned char *q = memchr(s + p, '}', (size_t)(n - p));
        if (q == NULL) return -1;
        p = q - s;
        Py_ssize_t r = p + 1;
        while (r < n && is_ws(s[r])) r++;
        if (r < n && s[r] == '{') return p;
        p++;
    }
    return -1;
}

static Py_ssize_t escaped_key(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t p = 0;
    while (p < n) {
        const unsigned char *q = memchr(s + p, '\\', (size_t)(n - p));
        if (q == NULL) return -1;
        p = q - s;
        if (p + 5 < n && s[p + 1] == 'u' && is_hex(s[p + 2]) && is_hex(s[p + 3]) &&
            is_hex(s[p + 4]) && is_hex(s[p + 5])) {
            Py_ssize_t r = p + 6;
            for (;;) {
                if (r >= n) break;
                unsigned char c = s[r];
                if (c == '"') {
                    Py_ssize_t t = r + 1;
                    while (t < n && is_ws(s[t])) t++;
                    if (t < n && s[t] == ':') return p;
                    break;
                }
                if (c == '\n') break;
                if (c == '\\') {
                    if (r + 1 >= n || s[r + 1] == '\n') break;
                    r += 2;
                    continue;
                }
                r++;
            }
        }
        p++;
    }
    return -1;
}

static PyObject *scan(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    Py_ssize_t keys, two, esc;
    Py_BEGIN_ALLOW_THREADS
    keys = count_keys(s, n);
    two = two_objects(s, n);
    esc = escaped_key(s, n);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(nnn)", keys, two, esc);
}


/* ---- check_records: timestamps, trace and span ids of decoded records ------------------- */

static PyObject *S_TIMESTAMP, *S_TRACE, *S_SPAN;

static int digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int num(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

/* The bulk timestamp pattern of batch.py: YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|+hh:mm|-hh:mm), a
 * real Gregorian date, hour 00-23, minute and second 00-59 (leap seconds go to the precise
 * path), offset hours 00-23. */
static int ts_ok(const char *s, Py_ssize_t n) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20) return 0;
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
        s[16] != ':' || !digits(s + 17, 2))
        return 0;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    if (mo < 1 || mo > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int maxd = (mo == 2 && leap) ? 29 : dim[mo - 1];
    if (d > maxd) return 0;
    if (num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 59) return 0;
    Py_ssize_t i = 19;
    if (s[i] == '.') {
        Py_ssize_t j = i + 1;
        while (j < n && s[j] >= '0' && s[j] <= '9') j++;
        if (j - i - 1 < 1 || j - i - 1 > 9) return 0;
        i = j;
    }
    if (i < n && s[i] == 'Z') return i + 1 == n;
    if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' &&
        digits(s + i + 4, 2))
        return num(s + i + 1, 2) <= 23 && num(s + i + 4, 2) <= 59;
    return 0;
}

static int hex_ok(const char *s, Py_ssize_t n, Py_ssize_t want) {
    if (n != want) return 0;
    int nonzero = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        if (c != '0') nonzero = 1;
    }
    return nonzero;
}

/* 1 when the string object is ASCII and passes check, 0 otherwise. */
static int str_check(PyObject *o, int kind, int *ok) {
    if (!PyUnicode_Check(o) || !PyUnicode_IS_ASCII(o)) { *ok = 0; return 0; }
    Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    const char *s = (const char *)PyUnicode_DATA(o);
    *ok = kind == 0 ? ts_ok(s, n) : hex_ok(s, n, kind == 1 ? 32 : 16);
    return 0;
}

/* A trace or span value: None / UNSET are absent (fine), a str must be a valid id. Sets
 * *present to whether it is a non-empty string (Python truthiness, as batch.py tests it). */
static int id_check(PyObject *o, PyObject *unset, int kind, int *ok, int *present) {
    if (o == Py_None || o == unset) { *ok = 1; *present = 0; return 0; }
    *present = PyUnicode_Check(o) && PyUnicode_GET_LENGTH(o) > 0;
    return str_check(o, kind, ok);
}

static PyObject *check_records(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *recs, *unset;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &recs, &unset)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(recs), t_unset = 0, s_unset = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(recs, i);
        int ok, t_present, s_present;
        PyObject *v = PyObject_GetAttr(r, S_TIMESTAMP);
        if (v == NULL) return NULL;
        str_check(v, 0, &ok);
        Py_DECREF(v);
        if (!ok) return Py_BuildValue("(nnn)", i, t_unset, s_unset);
        v = PyObject_GetAttr(r, S_TRACE);
        if (v == NULL) return NULL;
        t_unset += v == unset;
        id_check(v, unset, 1, &ok, &t_present);
        Py_DECREF(v);
        if (!ok) return Py_BuildValue("(nnn)", i, t_unset, s_unset);
        v = PyObject_GetAttr(r, S_SPAN);
        if (v == NULL) return NULL;
        s_unset += v == unset;
        id_check(v, unset, 2, &ok, &s_present);
        Py_DECREF(v);
        if (!ok || (s_present && !t_present)) return Py_BuildValue("(nnn)", i, t_unset, s_unset);
    }
    return Py_BuildValue("(nnn)", (Py_ssize_t)-1, t_unset, s_unset);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O, "scan(blob) -> (schema_keys, two_objects_at, escaped_key_at)"},
    {"check_records", check_records, METH_VARARGS,
     "check_records(records, UNSET) -> (index of the first record whose timestamp, trace_id "
     "or span_id fails the bulk patterns or that has a span without a trace, else -1; records "
     "without trace_id; records without span_id)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scan(void) {
    S_TIMESTAMP = PyUnicode_InternFromString("timestamp");
    S_TRACE = PyUnicode_InternFromString("trace_id");
    S_SPAN = PyUnicode_InternFromString("span_id");
    if (!S_TIMESTAMP || !S_TRACE || !S_SPAN) return NULL;
    return PyModule_Create(&module);
}
