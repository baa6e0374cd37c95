/* The bootstrap's kernels (alphaforge.validation.resample; each bit-identical to its numpy reference):
 * chunk_sums (reference: resample.chunk_sums_numpy) and pcg64_raw (reference: numpy's PCG64.random_raw, see
 * its comment below).
 *
 * chunk_sums(table, offsets, counts, out): the trials of one table chunk. ``table`` is the chunk's slice of
 * the block-sum table, float64 rows ``(sum x, sum x^2, sum log1p r)`` (m, 3), C-contiguous; ``offsets`` are
 * uint16 row numbers (< m), the segments of the trials one after the other; ``counts`` (int64, one per trial)
 * are the segment lengths; ``out`` (float64 (trials, 3), C-contiguous) is added to. Per trial and column the
 * segment's rows are summed sequentially in segment order from +0.0 (``s = s + row``), then ``out += s``: the
 * documented order (module docstring of alphaforge.validation.bootstrap, "Sums"). Trials are interleaved four
 * at a time only to overlap their independent additions; each trial's own order is unchanged. A dense call
 * (at least one offset per two rows, e.g. the IID path) first reads the table once in order, so that a cold
 * table slice is streamed into the cache instead of missing line by line (no effect on the sums). Compiled with
 * -ffp-contract=off -fno-fast-math (setup.py): plain IEEE double additions, nothing reassociated.
 *
 * Only the Python buffer protocol is used (no numpy headers at build time). The GIL is released while the
 * offsets are range-checked and summed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "_pcg64.h"

#define COLS 3

/* The format code of a buffer ('d', 'H', 'l', ...), ignoring a native/little-endian prefix. */
static char format_code(const Py_buffer *b) {
    const char *f = b->format ? b->format : "B";
    if (f[0] == '@' || f[0] == '=' || f[0] == '<') {
        f++;
    }
    return (f[0] != '\0' && f[1] == '\0') ? f[0] : '\0';
}

static int check(const Py_buffer *b, const char *name, int ndim, const char *codes, Py_ssize_t itemsize) {
    char code = format_code(b);
    if (b->ndim != ndim || b->itemsize != itemsize || code == '\0' || strchr(codes, code) == NULL) {
        PyErr_Format(PyExc_TypeError, "chunk_sums: %s must be a %d-D array of item code %s and size %zd, got a "
                     "%d-D buffer of format '%s' and item size %zd", name, ndim, codes, itemsize, b->ndim,
                     b->format ? b->format : "B", b->itemsize);
        return -1;
    }
    return 0;
}

/* One accumulator per trial: columns 0 and 1 as one SSE2 pair (two independent IEEE additions, the same
 * as two scalar ones), column 2 alone. */
#if defined(__SSE2__)
#include <emmintrin.h>
typedef struct { __m128d lo; double hi; } acc_t;
#define ACC_ADD(a, row) ((a).lo = _mm_add_pd((a).lo, _mm_loadu_pd(row)), (a).hi += (row)[2])
#define ACC_STORE(a, dst) (_mm_storeu_pd((dst), (a).lo), (dst)[2] = (a).hi)
#define ACC_LOAD(a, src) ((a).lo = _mm_loadu_pd(src), (a).hi = (src)[2])
#else
typedef struct { double c0, c1, hi; } acc_t;
#define ACC_ADD(a, row) ((a).c0 += (row)[0], (a).c1 += (row)[1], (a).hi += (row)[2])
#define ACC_STORE(a, dst) ((dst)[0] = (a).c0, (dst)[1] = (a).c1, (dst)[2] = (a).hi)
#define ACC_LOAD(a, src) ((a).c0 = (src)[0], (a).c1 = (src)[1], (a).hi = (src)[2])
#endif

/* Four trials' segments summed in lockstep over their common length; the states ``s`` (4 x COLS) are
 * continued (each trial's sum stays sequential). */
static void sum_four(const double *tab, const uint16_t *const seg[4], Py_ssize_t len, double s[4][COLS]) {
    acc_t a, b, c, d;
    const uint16_t *p = seg[0], *q = seg[1], *r = seg[2], *t = seg[3];
    ACC_LOAD(a, s[0]); ACC_LOAD(b, s[1]); ACC_LOAD(c, s[2]); ACC_LOAD(d, s[3]);
    for (Py_ssize_t k = 0; k < len; k++) {
        ACC_ADD(a, tab + (size_t)p[k] * COLS);
        ACC_ADD(b, tab + (size_t)q[k] * COLS);
        ACC_ADD(c, tab + (size_t)r[k] * COLS);
        ACC_ADD(d, tab + (size_t)t[k] * COLS);
    }
    ACC_STORE(a, s[0]); ACC_STORE(b, s[1]); ACC_STORE(c, s[2]); ACC_STORE(d, s[3]);
}

static void sum_one(const double *tab, const uint16_t *seg, Py_ssize_t len, double s[COLS]) {
    acc_t a;
    ACC_LOAD(a, s);
    for (Py_ssize_t k = 0; k < len; k++) {
        ACC_ADD(a, tab + (size_t)seg[k] * COLS);
    }
    ACC_STORE(a, s);
}

/* Reads the table once in order (one load per 64-byte line) so the hardware prefetcher streams it into the
 * cache before the random gathers: a cold table costs a sequential read instead of a miss per line. */
static double warm(const double *tab, Py_ssize_t n_doubles) {
    double sink = 0.0;
    for (Py_ssize_t k = 0; k < n_doubles; k += 8) {
        sink += tab[k];
    }
    return sink;
}

static Py_ssize_t counts_total(const int64_t *counts, Py_ssize_t trials) {
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < trials; i++) {
        total += (Py_ssize_t)counts[i];
    }
    return total;
}

static void sum_trials(const double *tab, Py_ssize_t rows, const uint16_t *offsets, const int64_t *counts,
                       Py_ssize_t trials, double *out) {
    Py_ssize_t start = 0, i = 0;
    if (2 * counts_total(counts, trials) >= rows) { /* dense draws (the IID path): most lines are hit anyway */
        volatile double sink = warm(tab, rows * COLS); /* a local: no state shared between threads */
        (void)sink;
    }
    for (; i + 4 <= trials; i += 4) {
        const uint16_t *seg[4];
        Py_ssize_t len[4], common;
        double s[4][COLS] = {{0.0}};
        for (int g = 0; g < 4; g++) {
            seg[g] = offsets + start;
            len[g] = (Py_ssize_t)counts[i + g];
            start += len[g];
        }
        common = len[0];
        for (int g = 1; g < 4; g++) {
            common = len[g] < common ? len[g] : common;
        }
        sum_four(tab, seg, common, s);
        for (int g = 0; g < 4; g++) {
            sum_one(tab, seg[g] + common, len[g] - common, s[g]);
            for (int c = 0; c < COLS; c++) {
                out[(i + g) * COLS + c] += s[g][c];
            }
        }
    }
    for (; i < trials; i++) {
        double s[COLS] = {0.0};
        sum_one(tab, offsets + start, (Py_ssize_t)counts[i], s);
        start += (Py_ssize_t)counts[i];
        for (int c = 0; c < COLS; c++) {
            out[i * COLS + c] += s[c];
        }
    }
}

/* Whether every offset is below ``rows``: one pass, eight offsets at a time with SSE2 (a saturating
 * ``offset - (rows - 1)`` is nonzero exactly for an offset out of range). */
static int offsets_in_range(const uint16_t *off, Py_ssize_t n, Py_ssize_t rows) {
    Py_ssize_t k = 0;
    uint16_t lim;
    if (rows > 65535) {
        return 1;
    }
    if (rows == 0) {
        return n == 0;
    }
    lim = (uint16_t)(rows - 1);
#if defined(__SSE2__)
    {
        __m128i acc = _mm_setzero_si128(), top = _mm_set1_epi16((short)lim);
        for (; k + 8 <= n; k += 8) {
            acc = _mm_or_si128(acc, _mm_subs_epu16(_mm_loadu_si128((const __m128i *)(off + k)), top));
        }
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(acc, _mm_setzero_si128())) != 0xFFFF) {
            return 0;
        }
    }
#endif
    for (; k < n; k++) {
        if (off[k] > lim) {
            return 0;
        }
    }
    return 1;
}

static PyObject *chunk_sums(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer table, offsets, counts, out;
    PyObject *result = NULL;
    (void)self;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "chunk_sums expects 4 arguments (table, offsets, counts, out), got %zd",
                     nargs);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &table, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &offsets, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        goto release_table;
    }
    if (PyObject_GetBuffer(args[2], &counts, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        goto release_offsets;
    }
    if (PyObject_GetBuffer(args[3], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        goto release_counts;
    }
    if (check(&table, "table", 2, "d", 8) < 0 || check(&offsets, "offsets", 1, "H", 2) < 0
        || check(&counts, "counts", 1, "lq", 8) < 0 || check(&out, "out", 2, "d", 8) < 0) {
        goto release_out;
    }
    {
        const double *tab = (const double *)table.buf;
        const uint16_t *off = (const uint16_t *)offsets.buf;
        const int64_t *cnt = (const int64_t *)counts.buf;
        Py_ssize_t rows = table.shape[0], n_off = offsets.shape[0], trials = counts.shape[0];
        Py_ssize_t total = 0;
        uint16_t top = 0;
        int in_range;
        if (table.shape[1] != COLS || out.shape[0] != trials || out.shape[1] != COLS) {
            PyErr_Format(PyExc_ValueError, "chunk_sums: table must be (m, 3) and out (trials=%zd, 3), got (%zd, "
                         "%zd) and (%zd, %zd)", trials, rows, table.shape[1], out.shape[0], out.shape[1]);
            goto release_out;
        }
        for (Py_ssize_t i = 0; i < trials; i++) {
            if (cnt[i] < 0 || cnt[i] > n_off - total) {
                PyErr_Format(PyExc_ValueError, "chunk_sums: counts must be >= 0 and sum to len(offsets) = %zd",
                             n_off);
                goto release_out;
            }
            total += (Py_ssize_t)cnt[i];
        }
        if (total != n_off) {
            PyErr_Format(PyExc_ValueError, "chunk_sums: counts sum to %zd, not len(offsets) = %zd", total, n_off);
            goto release_out;
        }
        Py_BEGIN_ALLOW_THREADS
        in_range = offsets_in_range(off, n_off, rows);
        if (in_range) {
            sum_trials(tab, rows, off, cnt, trials, (double *)out.buf);
        }
        Py_END_ALLOW_THREADS
        if (!in_range) {
            for (Py_ssize_t k = 0; k < n_off; k++) {
                top = off[k] > top ? off[k] : top;
            }
            PyErr_Format(PyExc_IndexError, "chunk_sums: offset %u outside the table's %zd rows", (unsigned)top,
                         rows);
            goto release_out;
        }
    }
    result = Py_None;
    Py_INCREF(result);
release_out:
    PyBuffer_Release(&out);
release_counts:
    PyBuffer_Release(&counts);
release_offsets:
    PyBuffer_Release(&offsets);
release_table:
    PyBuffer_Release(&table);
    return result;
}

#if defined(__SIZEOF_INT128__)
/* numpy's PCG64 (_pcg64.h). pcg64_raw(state_hi, state_lo, inc_hi, inc_lo, out) writes the next len(out)
 * outputs — exactly what ``PCG64.random_raw(len(out))`` returns — and gives back the state after them. The
 * stream is stepped in four lanes (``x[k + 4] = MULT^4 x[k] + inc (MULT^3 + MULT^2 + MULT + 1)``, exact mod
 * 2^128) only to overlap four independent multiplications; every word is the same. */
static u128 pcg_fill(u128 s, u128 inc, uint64_t *out, Py_ssize_t n) {
    Py_ssize_t k = 0;
    if (n >= 4) {
        const u128 m2 = PCG_MULT * PCG_MULT, m4 = m2 * m2, c4 = inc * (PCG_MULT * m2 + m2 + PCG_MULT + 1);
        u128 x0 = s * PCG_MULT + inc, x1 = x0 * PCG_MULT + inc, x2 = x1 * PCG_MULT + inc;
        u128 x3 = x2 * PCG_MULT + inc;
        for (; k + 4 <= n; k += 4) {
            out[k] = pcg_output(x0);
            out[k + 1] = pcg_output(x1);
            out[k + 2] = pcg_output(x2);
            out[k + 3] = pcg_output(x3);
            s = x3;
            x0 = x0 * m4 + c4;
            x1 = x1 * m4 + c4;
            x2 = x2 * m4 + c4;
            x3 = x3 * m4 + c4;
        }
    }
    for (; k < n; k++) {
        s = s * PCG_MULT + inc;
        out[k] = pcg_output(s);
    }
    return s;
}

static PyObject *pcg64_raw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long part[4];
    Py_buffer out;
    u128 state, inc;
    (void)self;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "pcg64_raw expects 5 arguments (state_hi, state_lo, inc_hi, inc_lo, out), "
                     "got %zd", nargs);
        return NULL;
    }
    if (pcg_words(args, 4, part) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[4], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (check(&out, "out", 1, "LQ", 8) < 0) {
        PyBuffer_Release(&out);
        return NULL;
    }
    state = ((u128)part[0] << 64) | (u128)part[1];
    inc = ((u128)part[2] << 64) | (u128)part[3];
    Py_BEGIN_ALLOW_THREADS
    state = pcg_fill(state, inc, (uint64_t *)out.buf, out.shape[0]);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    return Py_BuildValue("KK", (unsigned long long)(state >> 64), (unsigned long long)state);
}
#endif

static PyMethodDef methods[] = {
    {"chunk_sums", (PyCFunction)(void (*)(void))chunk_sums, METH_FASTCALL,
     "chunk_sums(table, offsets, counts, out, /): add each trial's sequential row sums to out."},
#if defined(__SIZEOF_INT128__)
    {"pcg64_raw", (PyCFunction)(void (*)(void))pcg64_raw, METH_FASTCALL,
     "pcg64_raw(state_hi, state_lo, inc_hi, inc_lo, out, /): PCG64.random_raw(len(out)) into out; the new "
     "state as (hi, lo)."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_resample", "The bootstrap's trial-sum kernel (see _resample.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__resample(void) {
    return PyModule_Create(&module);
}
