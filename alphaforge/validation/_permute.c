/* The permutation test's price rebuild, the gathers and the cumulative sum, in C: the same IEEE double
 * operations in the same order as the numpy reference in alphaforge/validation/permutation.py
 * (``_log_closes``: take, sequential cumsum, + base; ``_rebuild_column``'s take + previous log close), built
 * with -ffp-contract=off -fno-fast-math, so the results are bit-identical (tests/test_permute_kernel.py).
 * The exp stays numpy's (its SIMD exp is what the null distribution was defined with).
 *
 * log_closes(close_offsets, perm, base, out) -> None
 *     out[0] = base; out[t + 1] = (offsets[perm[0]] + ... + offsets[perm[t]]) + base, summed left to right.
 * log_opens(offsets, perm, log_close, out) -> None
 *     out[t] = offsets[perm[t]] + log_close[t]  (the log price of bar t + 1 from the close before it).
 *
 * ``perm`` is a 1-D contiguous int64 or int32 array of indices into the offsets; float arrays are 1-D
 * contiguous float64.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const char *item_format(const Py_buffer *view)
{
    const char *fmt = view->format ? view->format : "B";
    return (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') ? fmt + 1 : fmt;
}

static int get_array(PyObject *obj, Py_buffer *view, int writable, const char *name, const char *formats,
                     Py_ssize_t itemsize)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *fmt = item_format(view);
    if (view->ndim != 1 || strlen(fmt) != 1 || strchr(formats, fmt[0]) == NULL
        || (itemsize && view->itemsize != itemsize)) {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D contiguous array of format %s", name, formats);
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

static PyObject *gather_sum(PyObject *args, int cumulative)
{
    PyObject *o_off, *o_perm, *o_third, *o_out;
    double base = 0.0;
    Py_buffer off, perm, prev = {0}, out;
    if (cumulative) {
        if (!PyArg_ParseTuple(args, "OOdO:log_closes", &o_off, &o_perm, &base, &o_out))
            return NULL;
    }
    else if (!PyArg_ParseTuple(args, "OOOO:log_opens", &o_off, &o_perm, &o_third, &o_out)) {
        return NULL;
    }
    if (get_array(o_off, &off, 0, "offsets", "d", 8) < 0)
        return NULL;
    if (get_array(o_perm, &perm, 0, "perm", "ilq", 0) < 0)
        goto release_off;
    if (perm.itemsize != 8 && perm.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "perm must be int64 or int32");
        goto release_perm;
    }
    if (!cumulative && get_array(o_third, &prev, 0, "log_close", "d", 8) < 0)
        goto release_perm;
    if (get_array(o_out, &out, 1, "out", "d", 8) < 0)
        goto release_prev;

    Py_ssize_t n_off = off.len / 8, m = perm.len / perm.itemsize, n_out = out.len / 8;
    PyObject *result = NULL;
    if (n_out != (cumulative ? m + 1 : m) || (!cumulative && prev.len / 8 < m)) {
        PyErr_SetString(PyExc_ValueError, "perm, log_close and out lengths do not match");
        goto release_out;
    }
    if (check_perm(&perm, m, n_off) < 0)
        goto release_out;
    const double *offsets = off.buf;
    double *dst = out.buf;
    Py_BEGIN_ALLOW_THREADS
    if (cumulative) {
        double sum = 0.0;
        dst[0] = base;
        for (Py_ssize_t t = 0; t < m; t++) {
            double v = offsets[index_at(&perm, t)];
            sum = t == 0 ? v : sum + v;
            dst[t + 1] = sum + base;
        }
    }
    else {
        const double *log_close = prev.buf;
        for (Py_ssize_t t = 0; t < m; t++)
            dst[t] = offsets[index_at(&perm, t)] + log_close[t];
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
release_out:
    PyBuffer_Release(&out);
release_prev:
    if (!cumulative)
        PyBuffer_Release(&prev);
release_perm:
    PyBuffer_Release(&perm);
release_off:
    PyBuffer_Release(&off);
    return result;
}

static PyObject *log_closes(PyObject *self, PyObject *args)
{
    (void)self;
    return gather_sum(args, 1);
}

static PyObject *log_opens(PyObject *self, PyObject *args)
{
    (void)self;
    return gather_sum(args, 0);
}

static PyMethodDef methods[] = {
    {"log_closes", log_closes, METH_VARARGS, "Permuted log closes: base, then base + the running offset sum."},
    {"log_opens", log_opens, METH_VARARGS, "Permuted log open/high/low: gathered offset + previous log close."},
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
