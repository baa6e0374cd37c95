/* The permutation test's price rebuild, the gathers and the cumulative sum, in C: the same IEEE double
 * operations in the same order as the numpy reference in alphaforge/validation/permutation.py (``_log_prices``:
 * take, sequential cumsum, + base for the closes; take + previous log close for the other columns), built with
 * -ffp-contract=off -fno-fast-math, so the results are bit-identical (tests/test_permute_kernel.py). One pass
 * and one random access per bar: the offsets of a bar sit together in one row of ``table``. The exp stays
 * numpy's (its SIMD exp is what the null distribution was defined with).
 *
 * rebuild(table, perm, base, log_close, others) -> None
 *     ``table`` (m, 1 + k): per original bar, the close offset then the offsets of k other price columns.
 *     log_close[0] = base; log_close[t + 1] = (table[perm[0], 0] + ... + table[perm[t], 0]) + base, summed
 *     left to right; others[j, t] = table[perm[t], 1 + j] + log_close[t] (bar t + 1 from the close before).
 *
 * rebuild(table, perm, base, log_close, others, carry) -> float
 *     The same for the chunk ``t0 .. t0 + len(perm) - 1`` of a longer permutation, given ``carry`` = the running
 *     close-offset sum up to bar t0 - 1 (None for t0 = 0): log_close[0] = carry + base (the log close before
 *     the chunk), then as above with the sum continued from ``carry``. Returns the running sum at the chunk's
 *     end (the next chunk's carry; ``carry`` for an empty chunk): chunks give the one-pass values bit for bit.
 *
 * ``perm`` is a 1-D contiguous int64 or int32 array of row indices; ``table`` and ``others`` (k, m) are
 * C-contiguous float64, ``log_close`` 1-D float64 of m + 1 values.
 *
 * permutation(state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger, out) -> (hi, lo, has_uint32, uinteger)
 *     numpy's ``Generator.permutation(len(out))`` for a PCG64 generator in that state, into the int32 ``out``:
 *     the same values, and the generator's state after that call (see ``permutation`` below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_pcg64.h"

/* far enough ahead to cover a DRAM miss; the caller aligns the table's rows to cache lines (64 bytes) */
#define PREFETCH_AHEAD 64

static const char *item_format(const Py_buffer *view)
{
    const char *fmt = view->format ? view->format : "B";
    return (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') ? fmt + 1 : fmt;
}

static int get_array(PyObject *obj, Py_buffer *view, int writable, const char *name, const char *formats,
                     Py_ssize_t itemsize, int ndim)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *fmt = item_format(view);
    if (view->ndim != ndim || strlen(fmt) != 1 || strchr(formats, fmt[0]) == NULL
        || (itemsize && view->itemsize != itemsize)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %d-D contiguous array of format %s", name, ndim, formats);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The index perm[t] as a Py_ssize_t (int64 or int32 buffers). */
static inline Py_ssize_t index_at(const Py_buffer *perm, Py_ssize_t t)
{
    return perm->itemsize == 8 ? (Py_ssize_t)((const int64_t *)perm->buf)[t]
                               : (Py_ssize_t)((const int32_t *)perm->buf)[t];
}

/* Checks every index once (so the loops below never read out of bounds). */
static int check_perm(const Py_buffer *perm, Py_ssize_t m, Py_ssize_t bound)
{
    for (Py_ssize_t t = 0; t < m; t++) {
        Py_ssize_t k = index_at(perm, t);
        if (k < 0 || k >= bound) {
            PyErr_Format(PyExc_IndexError, "perm[%zd] = %zd is out of range for %zd offsets", t, k, bound);
            return -1;
        }
    }
    return 0;
}

static PyObject *rebuild(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_table, *o_perm, *o_close, *o_others, *o_carry = Py_None;
    double base, carry = 0.0;
    if (!PyArg_ParseTuple(args, "OOdOO|O:rebuild", &o_table, &o_perm, &base, &o_close, &o_others, &o_carry))
        return NULL;
    int carried = o_carry != Py_None;
    if (carried) {
        carry = PyFloat_AsDouble(o_carry);
        if (carry == -1.0 && PyErr_Occurred())
            return NULL;
    }
    Py_buffer table, perm, close, others;
    PyObject *result = NULL;
    if (get_array(o_table, &table, 0, "table", "d", 8, 2) < 0)
        return NULL;
    if (get_array(o_perm, &perm, 0, "perm", "ilq", 0, 1) < 0)
        goto release_table;
    if (perm.itemsize != 8 && perm.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "perm must be int64 or int32");
        goto release_perm;
    }
    if (get_array(o_close, &close, 1, "log_close", "d", 8, 1) < 0)
        goto release_perm;
    if (get_array(o_others, &others, 1, "others", "d", 8, 2) < 0)
        goto release_close;
    Py_ssize_t rows = table.shape[0], width = table.shape[1], m = perm.shape[0], k = others.shape[0];
    if (width < 1 || k != width - 1 || others.shape[1] != m || close.shape[0] != m + 1) {
        PyErr_SetString(PyExc_ValueError, "table (rows, 1 + k), perm (m,), log_close (m + 1,) and others (k, m) "
                                          "do not match");
        goto release_others;
    }
    if (check_perm(&perm, m, rows) < 0)
        goto release_others;
    const double *tab = table.buf;
    double *lc = close.buf, *oth = others.buf;
    double sum = carry;
    Py_BEGIN_ALLOW_THREADS
    lc[0] = carried ? carry + base : base;
    for (Py_ssize_t t = 0; t < m; t++) {
        if (t + PREFETCH_AHEAD < m) /* the rows are random: ask for a later one early (a hint, no semantics) */
            __builtin_prefetch(tab + index_at(&perm, t + PREFETCH_AHEAD) * width);
        const double *row = tab + index_at(&perm, t) * width;
        for (Py_ssize_t j = 0; j < k; j++)
            oth[j * m + t] = row[1 + j] + lc[t];
        sum = (t == 0 && !carried) ? row[0] : sum + row[0];
        lc[t + 1] = sum + base;
    }
    Py_END_ALLOW_THREADS
    result = (carried || m > 0) ? PyFloat_FromDouble(sum) : Py_NewRef(Py_None);
release_others:
    PyBuffer_Release(&others);
release_close:
    PyBuffer_Release(&close);
release_perm:
    PyBuffer_Release(&perm);
release_table:
    PyBuffer_Release(&table);
    return result;
}

#if defined(__SIZEOF_INT128__)
/* numpy's Generator.permutation(n) = arange(n) shuffled by Fisher-Yates from the top (numpy/random/
 * _generator.pyx ``_shuffle_raw``, first = 1): for i = n - 1 .. 1, swap out[i] with out[j], j =
 * ``random_interval(i)`` (numpy/random/src/distributions/distributions.c): the smallest all-ones mask >= i,
 * then 32-bit draws (i < 2^32) masked until one is <= i. A 32-bit draw is PCG64's ``next32``: the low half
 * of a new 64-bit output, its high half kept for the next draw (``has_uint32`` / ``uinteger`` in the
 * generator's state). Same draws, same swaps: the same permutation, in an int32 array that stays in cache
 * (numpy's int64 array and byte-wise swaps cost about twice as much at 500k). */
static PyObject *permutation(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    unsigned long long part[6];
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "permutation expects 7 arguments (state_hi, state_lo, inc_hi, inc_lo, "
                     "has_uint32, uinteger, out), got %zd", nargs);
        return NULL;
    }
    if (pcg_words(args, 6, part) < 0)
        return NULL;
    Py_buffer out;
    if (get_array(args[6], &out, 1, "out", "il", 4, 1) < 0)
        return NULL;
    u128 s = ((u128)part[0] << 64) | (u128)part[1];
    const u128 inc = ((u128)part[2] << 64) | (u128)part[3];
    int has = part[4] != 0;
    uint32_t held = (uint32_t)part[5];
    int32_t *a = out.buf;
    Py_ssize_t n = out.shape[0];
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        a[i] = (int32_t)i;
    for (Py_ssize_t i = n - 1; i >= 1; i--) {
        uint32_t mx = (uint32_t)i, mask = UINT32_MAX >> __builtin_clz(mx), v; /* smallest all-ones mask >= mx */
        do {
            if (has) { /* next32: the held high half, else a new output's low half (its high half held) */
                has = 0;
                v = held;
            } else {
                s = s * PCG_MULT + inc;
                uint64_t w = pcg_output(s);
                held = (uint32_t)(w >> 32);
                has = 1;
                v = (uint32_t)w;
            }
            v &= mask;
        } while (v > mx);
        int32_t t = a[i];
        a[i] = a[v];
        a[v] = t;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    return Py_BuildValue("KKiK", (unsigned long long)(s >> 64), (unsigned long long)s, has,
                         (unsigned long long)held);
}
#endif

static PyMethodDef methods[] = {
    {"rebuild", rebuild, METH_VARARGS, "Permuted log closes and the other columns' log prices, in one pass."},
#if defined(__SIZEOF_INT128__)
    {"permutation", (PyCFunction)(void (*)(void))permutation, METH_FASTCALL,
     "permutation(state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger, out, /): numpy's "
     "Generator.permutation(len(out)) for a PCG64 in that state, into the int32 out; the state after it."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_permute", "The permutation test's price rebuild (gathers, cumulative sum), compiled.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__permute(void)
{
    return PyModule_Create(&module);
}
