/* The sinks' per-line loops in C (optional: the pure Python functions named below
 * are the reference, and what runs where this was not built; tests/sinks/test_accel.py checks
 * both give the same results on generated inputs).
 *
 * timestamps_ns(list[str]) -> list[int | None]
 *   Unix nanoseconds of each schema timestamp of the plain UTC form
 *   YYYY-MM-DDThh:mm:ss[.f{1,9}]Z (sidecar/sinks/timestamps.py's Timestamps); None for any
 *   other string, which the caller converts in Python.
 *
 * trace_metadata_list(trace_ids, span_ids) -> list[bytes | None]
 *   Each entry's Loki structured metadata (loki_proto.trace_metadata) where the trace id
 *   and the span id (if any) are the W3C-sized ASCII ones; b"" where there is no trace id;
 *   None for anything else, which the caller encodes in Python.
 *
 * join_before_last(lines, sep) -> bytes
 *   sep.join([line[:-1] for line in lines]) + sep, without a bytes object per line: the file
 *   sink's enrichment, which puts the static fields before each record's closing brace
 *   (sidecar/enrich.py's Enrichment.append_lines).
 *
 * encode_stream: the Loki push encoder's inner loop, byte for byte what
 * sidecar/sinks/loki_proto.py's encode_stream_py writes: one PushRequest.streams field from a
 * stream's labels and its entries.
 *
 * encode_stream(labels, ts, lines, sm) -> bytes | None
 *   labels  str, the stream selector;
 *   ts      list of int, Unix nanoseconds;
 *   lines   list of bytes;
 *   sm      list of bytes (each entry's encoded structured metadata, b"" for none) or None.
 *   None when the input is outside what this loop handles (not exact lists of bytes / ints,
 *   lengths that differ, a timestamp beyond 64 bits): the caller then runs the Python one,
 *   which raises or encodes as it always did.
 *
 * Field numbers and wire types are grafana/loki pkg/push/push.proto's (see push.proto):
 *   PushRequest.streams = 1, StreamAdapter.labels = 1, StreamAdapter.entries = 2,
 *   EntryAdapter.timestamp = 1, .line = 2, .structuredMetadata = 3 (already encoded),
 *   Timestamp.seconds = 1 (always written, as the Python encoder does), .nanos = 2 (omitted
 *   when 0, as proto3 does).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *put_varint(char *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

/* Timestamp submessage body length for seconds s (two's complement when negative) and
 * nanos ns in [0, 1e9). */
static size_t ts_body_len(uint64_t s, uint64_t ns) {
    return 1 + varint_len(s) + (ns ? 1 + varint_len(ns) : 0);
}

static int split_ts(PyObject *t, uint64_t *s, uint64_t *ns) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(t, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    /* Python's divmod: floor division, a non-negative remainder. */
    long long q = v / 1000000000LL, r = v % 1000000000LL;
    if (r < 0) {
        r += 1000000000LL;
        q -= 1;
    }
    *s = (uint64_t)q;
    *ns = (uint64_t)r;
    return 0;
}

static int digits(const unsigned char *p, int n, long long *out) {
    long long v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Howard Hinnant's days_from_civil, as obskit/schema/record.py; y >= 1, 1 <= m <= 12. */
static long long days_from_civil(long long y, long long m, long long d) {
    y -= m <= 2;
    long long era = y / 400; /* y >= 0 here */
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* -1: not the plain form (the caller's Python decides). */
static int plain_ts(PyObject *s, long long *out) {
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_COMPACT_ASCII(s))
        return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const unsigned char *p = (const unsigned char *)PyUnicode_DATA(s);
    if (n < 20 || n > 30 || p[n - 1] != 'Z' || p[4] != '-' || p[7] != '-' || p[10] != 'T' ||
        p[13] != ':' || p[16] != ':')
        return -1;
    long long y, mo, d, h, mi, sec, frac = 0;
    if (digits(p, 4, &y) || digits(p + 5, 2, &mo) || digits(p + 8, 2, &d) ||
        digits(p + 11, 2, &h) || digits(p + 14, 2, &mi) || digits(p + 17, 2, &sec))
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    if (n > 20) { /* ".f{1,9}Z" */
        int nf = (int)n - 21;
        if (p[19] != '.' || nf < 1 || digits(p + 20, nf, &frac))
            return -1;
        for (int i = nf; i < 9; i++)
            frac *= 10;
    }
    long long secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    if (secs < -9223372035LL || secs > 9223372035LL) /* nanoseconds beyond 64 bits */
        return -1;
    *out = secs * 1000000000LL + frac;
    return 0;
}

static PyObject *timestamps_ns(PyObject *self, PyObject *arg) {
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "timestamps_ns: a list of str expected");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(arg);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v;
        PyObject *item;
        if (plain_ts(PyList_GET_ITEM(arg, i), &v) < 0) {
            item = Py_None;
            Py_INCREF(item);
        } else if ((item = PyLong_FromLongLong(v)) == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

/* The W3C-sized ids schema v1 enforces, as sidecar/sinks/loki_proto.py's TRACE_HDR and
 * SPAN_HDR: StreamAdapter... EntryAdapter.structuredMetadata (3) of LabelPairAdapter
 * {name = 1, value = 2}. */
static const char TRACE_HDR[] = "\x1a\x2c\x0a\x08trace_id\x12\x20";
static const char SPAN_HDR[] = "\x1a\x1b\x0a\x07span_id\x12\x10";
#define TRACE_HDR_LEN 14
#define SPAN_HDR_LEN 13

static int ascii_of_len(PyObject *s, Py_ssize_t n) {
    return PyUnicode_CheckExact(s) && PyUnicode_IS_COMPACT_ASCII(s) && PyUnicode_GET_LENGTH(s) == n;
}

static PyObject *trace_metadata_list(PyObject *self, PyObject *args) {
    PyObject *tids, *sids;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &tids, &PyList_Type, &sids))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(tids);
    if (PyList_GET_SIZE(sids) != n) {
        PyErr_SetString(PyExc_ValueError, "trace_metadata_list: lists of different lengths");
        return NULL;
    }
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL)
        return NULL;
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(empty);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *tid = PyList_GET_ITEM(tids, i), *sid = PyList_GET_ITEM(sids, i), *item;
        int t_true = PyObject_IsTrue(tid), s_true = 0;
        if (t_true < 0)
            goto fail;
        if (t_true)
            s_true = PyObject_IsTrue(sid);
        if (s_true < 0)
            goto fail;
        if (!t_true) {
            item = empty;
            Py_INCREF(item);
        } else if (ascii_of_len(tid, 32) && (!s_true || ascii_of_len(sid, 16))) {
            Py_ssize_t len = TRACE_HDR_LEN + 32 + (s_true ? SPAN_HDR_LEN + 16 : 0);
            item = PyBytes_FromStringAndSize(NULL, len);
            if (item == NULL)
                goto fail;
            char *p = PyBytes_AS_STRING(item);
            memcpy(p, TRACE_HDR, TRACE_HDR_LEN);
            memcpy(p + TRACE_HDR_LEN, PyUnicode_DATA(tid), 32);
            if (s_true) {
                p += TRACE_HDR_LEN + 32;
                memcpy(p, SPAN_HDR, SPAN_HDR_LEN);
                memcpy(p + SPAN_HDR_LEN, PyUnicode_DATA(sid), 16);
            }
        } else {
            item = Py_None; /* other ids: the caller's Python */
            Py_INCREF(item);
        }
        PyList_SET_ITEM(out, i, item);
    }
    Py_DECREF(empty);
    return out;
fail:
    Py_DECREF(empty);
    Py_DECREF(out);
    return NULL;
}

static PyObject *encode_stream(PyObject *self, PyObject *args) {
    PyObject *labels, *ts, *lines, *sm;
    if (!PyArg_ParseTuple(args, "UOOO", &labels, &ts, &lines, &sm))
        return NULL;
    if (!PyList_CheckExact(ts) || !PyList_CheckExact(lines))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(lines);
    if (PyList_GET_SIZE(ts) != n)
        Py_RETURN_NONE;
    int has_sm = sm != Py_None;
    if (has_sm && (!PyList_CheckExact(sm) || PyList_GET_SIZE(sm) != n))
        Py_RETURN_NONE;
    Py_ssize_t lb_len;
    const char *lb = PyUnicode_AsUTF8AndSize(labels, &lb_len);
    if (lb == NULL)
        return NULL;

    /* First pass: check the items and size the message. */
    size_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(ts, i), *line = PyList_GET_ITEM(lines, i);
        if (!PyLong_CheckExact(t) || !PyBytes_CheckExact(line))
            Py_RETURN_NONE;
        uint64_t s, ns;
        if (split_ts(t, &s, &ns) < 0)
            Py_RETURN_NONE;
        size_t meta = 0;
        if (has_sm) {
            PyObject *m = PyList_GET_ITEM(sm, i);
            if (!PyBytes_CheckExact(m))
                Py_RETURN_NONE;
            meta = (size_t)PyBytes_GET_SIZE(m);
        }
        size_t ln = (size_t)PyBytes_GET_SIZE(line);
        size_t tl = ts_body_len(s, ns);
        size_t elen = 2 + tl + 1 + varint_len(ln) + ln + meta;
        size += 1 + varint_len(elen) + elen;
    }
    size_t head = 1 + varint_len((uint64_t)lb_len) + (size_t)lb_len;
    size_t body = head + size;
    size_t total = 1 + varint_len(body) + body;
    if (total > (size_t)PY_SSIZE_T_MAX)
        Py_RETURN_NONE;

    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    *p++ = 0x0a;
    p = put_varint(p, body);
    *p++ = 0x0a;
    p = put_varint(p, (uint64_t)lb_len);
    memcpy(p, lb, (size_t)lb_len);
    p += lb_len;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        uint64_t s, ns;
        split_ts(PyList_GET_ITEM(ts, i), &s, &ns); /* checked in the first pass */
        size_t meta = 0;
        const char *mp = NULL;
        if (has_sm) {
            PyObject *m = PyList_GET_ITEM(sm, i);
            meta = (size_t)PyBytes_GET_SIZE(m);
            mp = PyBytes_AS_STRING(m);
        }
        size_t ln = (size_t)PyBytes_GET_SIZE(line);
        size_t tl = ts_body_len(s, ns);
        size_t elen = 2 + tl + 1 + varint_len(ln) + ln + meta;
        *p++ = 0x12; /* StreamAdapter.entries */
        p = put_varint(p, elen);
        *p++ = 0x0a; /* EntryAdapter.timestamp */
        *p++ = (char)tl; /* at most 17: one byte */
        *p++ = 0x08;
        p = put_varint(p, s);
        if (ns) {
            *p++ = 0x10;
            p = put_varint(p, ns);
        }
        *p++ = 0x12; /* EntryAdapter.line */
        p = put_varint(p, ln);
        memcpy(p, PyBytes_AS_STRING(line), ln);
        p += ln;
        if (meta) {
            memcpy(p, mp, meta);
            p += meta;
        }
    }
    if (p != PyBytes_AS_STRING(out) + total) { /* cannot happen: both passes agree */
        Py_DECREF(out);
        PyErr_SetString(PyExc_SystemError, "_accel: size mismatch");
        return NULL;
    }
    return out;
}

static PyObject *join_before_last(PyObject *self, PyObject *args) {
    PyObject *lines, *sep;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &lines, &PyBytes_Type, &sep))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lines), ns = PyBytes_GET_SIZE(sep), total = 0;
    if (n == 0) /* as sep.join([]) + sep */
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(sep), ns);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ln = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(ln)) {
            PyErr_SetString(PyExc_TypeError, "join_before_last: a list of bytes expected");
            return NULL;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(ln);
        total += (len ? len - 1 : 0) + ns;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    const char *sp = PyBytes_AS_STRING(sep);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ln = PyList_GET_ITEM(lines, i);
        Py_ssize_t len = PyBytes_GET_SIZE(ln);
        if (len > 1) {
            memcpy(p, PyBytes_AS_STRING(ln), (size_t)(len - 1));
            p += len - 1;
        }
        memcpy(p, sp, (size_t)ns);
        p += ns;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"join_before_last", join_before_last, METH_VARARGS,
     "join_before_last(lines, sep) -> bytes: each line without its last byte, then sep."},
    {"timestamps_ns", timestamps_ns, METH_O,
     "timestamps_ns(list[str]) -> list[int | None]: Unix ns of plain UTC timestamps."},
    {"trace_metadata_list", trace_metadata_list, METH_VARARGS,
     "trace_metadata_list(trace_ids, span_ids) -> list[bytes | None]: Loki structured "
     "metadata of W3C-sized ids, b\"\" without a trace id, None for other ids."},
    {"encode_stream", encode_stream, METH_VARARGS,
     "encode_stream(labels, ts, lines, sm) -> bytes | None: one PushRequest.streams field."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel", "The sinks' per-line loops in C (optional).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }
