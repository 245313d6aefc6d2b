/* One pass over a window of log lines for the checks Python's re can only do one at a time.
 *
 * scan(blob) -> (schema_keys, two_objects_at, escaped_key_at)
 *   schema_keys     non-overlapping occurrences of "timestamp" "level" "service" "trace_id"
 *                   "span_id" "message" (quotes included), as re.findall counts them;
 *   two_objects_at  offset of the first  }[ \t\r]*{  or -1;
 *   escaped_key_at  offset of the first  \uXXXX(?:[^"\\\n]|\\.)*"[ \t\r]*:  or -1.
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
        for (int k = 0; k < 6; k++) {
            Py_ssize_t L = LENS[k];
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

static PyMethodDef methods[] = {
    {"scan", scan, METH_O, "scan(blob) -> (schema_keys, two_objects_at, escaped_key_at)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
