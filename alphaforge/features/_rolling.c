/* Window-local rolling moments in C: the same IEEE double operations, in the same order, as the numpy reference
 * ``alphaforge.features.chunked.window_moments`` (block prefix sums plus suffix sums of the previous block,
 * each a sequential left-to-right sum like numpy's cumsum), built with -ffp-contract=off -fno-fast-math, so the
 * results are bit-identical (tests/test_rolling_kernel.py). One pass, no (blocks x window) temporaries.
 *
 * window_sums(x, window, phase, s1, s2, dev) -> None
 *     ``x``: the slice (float64, 1-D contiguous) whose first value sits at ``phase`` (= origin % window) of
 *     its block; the bars before it in that block count as NaN. ``s1`` receives the window sums; with ``s2``
 *     (not None) the sums are taken of ``x - ref`` (ref = the first bar of the block the window ends in) and
 *     ``s2`` receives the sums of squares of those deviations; ``dev`` (not None, with ``s2``) receives
 *     ``x - ref`` per bar. A window reaching before the slice gives NaN.
 *
 * zscore(x, window, phase, z) -> None
 *     The zscore indicator of ``x`` (as window_sums with s2 and dev, then rolling_std's and _zscore_fn's numpy
 *     steps per bar, in their order) written to ``z``; nothing else is stored.
 *
 * ewm(x, old_wt_factor, new_wt, com_is_one, out) -> None
 *     The exponentially weighted mean of pandas' ``Series.ewm(alpha=..., adjust=False).mean()`` (its compiled
 *     kernel's operations, in its order, for equally spaced points, ignore_na=False, min_periods=1):
 *     ``y[0] = x[0]``; then ``old_wt *= old_wt_factor``; ``y = (old_wt * y + new_wt * x) / (old_wt + new_wt)``
 *     unless ``y == x`` (the division skipped when the denominator is exactly 1: x / 1 == x in IEEE, and
 *     it is the recursion's latency); ``old_wt = 1`` after each observation; with ``com == 1`` pandas re-derives
 *     ``new_wt = 1 - old_wt`` after each decay (equal to the fixed weight except after a NaN). The caller passes
 *     pandas' own
 *     ``new_wt = 1 / (1 + com)`` and ``old_wt_factor = 1 - new_wt`` with ``com = (1 - alpha) / alpha``.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

static int get_doubles(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t n, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    if (view->ndim != 1 || view->itemsize != 8 || strcmp(fmt, "d") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D contiguous float64 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    if (n >= 0 && view->len / 8 != n) {
        PyErr_Format(PyExc_ValueError, "%s has %zd values, expected %zd", name, view->len / 8, n);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* buf[q] of the padded block axis: NaN before the slice */
static inline double at(const double *x, Py_ssize_t phase, Py_ssize_t q)
{
    return q < phase ? NAN : x[q - phase];
}

/* Block k's outputs use the suffix sums of block k-1 (relative to block k's ref), computed while block k-1's
 * own outputs were produced: the two running sums are independent dependency chains, so the CPU overlaps them.
 * suf[0] / suf[1] hold the current block's suffix sums (s1, s2), nxt[0] / nxt[1] the next block's. */
static void moments(const double *x, Py_ssize_t n, Py_ssize_t w, Py_ssize_t phase, double *s1, double *s2,
                    double *dev, double *scratch)
{
    double *suf1 = scratch, *suf2 = scratch + w, *nxt1 = scratch + 2 * w, *nxt2 = scratch + 3 * w;
    Py_ssize_t end = phase + n; /* buffer positions phase .. end-1 are outputs */
    for (Py_ssize_t k = 0; k * w < end; k++) {
        Py_ssize_t start = k * w;
        double ref = s2 ? at(x, phase, start) : 0.0;
        int next = start + w < end && w > 1; /* block k is complete and block k+1 has outputs */
        double ref_next = (s2 && next) ? at(x, phase, start + w) : 0.0;
        double h1 = 0.0, h2 = 0.0, a1 = 0.0, a2 = 0.0;
        for (Py_ssize_t r = 0; r < w && start + r < end; r++) {
            if (next && r < w - 1) { /* suffix of this block for the next: positions w-1 down to 1 */
                double u = at(x, phase, start + w - 1 - r);
                if (s2) {
                    u = u - ref_next;
                    double u2 = u * u;
                    a2 = r == 0 ? u2 : a2 + u2;
                    nxt2[w - 2 - r] = a2;
                }
                a1 = r == 0 ? u : a1 + u;
                nxt1[w - 2 - r] = a1;
            }
            Py_ssize_t q = start + r;
            double v = at(x, phase, q), v2 = 0.0;
            if (s2) {
                v = v - ref;
                v2 = v * v;
            }
            h1 = r == 0 ? v : h1 + v;
            if (s2)
                h2 = r == 0 ? v2 : h2 + v2;
            if (q < phase)
                continue;
            double t1, t2;
            if (r == w - 1)
                t1 = t2 = 0.0;
            else if (k == 0)
                t1 = t2 = NAN;
            else {
                t1 = suf1[r];
                t2 = s2 ? suf2[r] : 0.0;
            }
            Py_ssize_t i = q - phase;
            s1[i] = h1 + t1;
            if (s2) {
                s2[i] = h2 + t2;
                if (dev)
                    dev[i] = v;
            }
        }
        double *swap = suf1;
        suf1 = nxt1;
        nxt1 = swap;
        swap = suf2;
        suf2 = nxt2;
        nxt2 = swap;
    }
}

static PyObject *window_sums(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_x, *o_s1, *o_s2, *o_dev;
    Py_ssize_t w, phase;
    if (!PyArg_ParseTuple(args, "OnnOOO:window_sums", &o_x, &w, &phase, &o_s1, &o_s2, &o_dev))
        return NULL;
    if (w < 1 || phase < 0 || phase >= w) {
        PyErr_SetString(PyExc_ValueError, "window must be >= 1 and 0 <= phase < window");
        return NULL;
    }
    int second = o_s2 != Py_None, want_dev = o_dev != Py_None;
    if (want_dev && !second) {
        PyErr_SetString(PyExc_ValueError, "dev needs s2 (the deviations are from the shifted sums)");
        return NULL;
    }
    Py_buffer bx, b1, b2 = {0}, bd = {0};
    if (get_doubles(o_x, &bx, 0, -1, "x") < 0)
        return NULL;
    Py_ssize_t n = bx.len / 8;
    PyObject *result = NULL;
    if (get_doubles(o_s1, &b1, 1, n, "s1") < 0)
        goto release_x;
    if (second && get_doubles(o_s2, &b2, 1, n, "s2") < 0)
        goto release_1;
    if (want_dev && get_doubles(o_dev, &bd, 1, n, "dev") < 0)
        goto release_2;
    double *suf = malloc((size_t)(4 * w) * sizeof(double));
    if (suf == NULL) {
        PyErr_NoMemory();
        goto release_dev;
    }
    Py_BEGIN_ALLOW_THREADS
    moments(bx.buf, n, w, phase, b1.buf, second ? b2.buf : NULL, want_dev ? bd.buf : NULL, suf);
    Py_END_ALLOW_THREADS
    free(suf);
    result = Py_NewRef(Py_None);
release_dev:
    if (want_dev)
        PyBuffer_Release(&bd);
release_2:
    if (second)
        PyBuffer_Release(&b2);
release_1:
    PyBuffer_Release(&b1);
release_x:
    PyBuffer_Release(&bx);
    return result;
}

/* The z-scores from the moments: rolling_std's and _zscore_fn's numpy steps per bar, in their order
 * (offset = s1 / w; var = (s2 - s1 * offset) / (w - 1); np.maximum(var, 0); sqrt; (dev - offset) / std; NaN
 * where std == 0). Four bars at a time with AVX when the CPU has it (vdivpd / vsqrtpd are correctly rounded
 * per lane: the same values; no FMA). A negative var is clamped to +0 and NaN kept; -0.0 is kept where
 * np.maximum may give +0, which cannot show: sqrt keeps the zero's sign and std == 0 makes z NaN either way. */
static inline double zscore_of(double s1, double s2, double dev, double wd, double wm1)
{
    double offset = s1 / wd;
    double var = (s2 - s1 * offset) / wm1;
    var = var < 0.0 ? 0.0 : var;
    double std = sqrt(var);
    double z = (dev - offset) / std;
    return std == 0.0 ? NAN : z;
}

__attribute__((target("avx"))) static Py_ssize_t zscore_avx(const double *s1, const double *s2, const double *dev,
                                                             Py_ssize_t n, double wd, double wm1, double *z)
{
    const __m256d w4 = _mm256_set1_pd(wd), wm4 = _mm256_set1_pd(wm1), zero = _mm256_setzero_pd();
    const __m256d nan = _mm256_set1_pd(NAN);
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d a = _mm256_loadu_pd(s1 + i), b = _mm256_loadu_pd(s2 + i), d = _mm256_loadu_pd(dev + i);
        __m256d offset = _mm256_div_pd(a, w4);
        __m256d var = _mm256_div_pd(_mm256_sub_pd(b, _mm256_mul_pd(a, offset)), wm4);
        var = _mm256_blendv_pd(var, zero, _mm256_cmp_pd(var, zero, _CMP_LT_OQ));
        __m256d std = _mm256_sqrt_pd(var);
        __m256d zz = _mm256_div_pd(_mm256_sub_pd(d, offset), std);
        _mm256_storeu_pd(z + i, _mm256_blendv_pd(zz, nan, _mm256_cmp_pd(std, zero, _CMP_EQ_OQ)));
    }
    return i;
}

static void finish_zscore(const double *s1, const double *s2, const double *dev, Py_ssize_t n, Py_ssize_t w,
                          double *z)
{
    double wd = (double)w, wm1 = (double)(w - 1);
    Py_ssize_t i = __builtin_cpu_supports("avx") ? zscore_avx(s1, s2, dev, n, wd, wm1, z) : 0;
    for (; i < n; i++)
        z[i] = zscore_of(s1[i], s2[i], dev[i], wd, wm1);
}

static PyObject *zscore(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_x, *o_z;
    Py_ssize_t w, phase;
    if (!PyArg_ParseTuple(args, "OnnO:zscore", &o_x, &w, &phase, &o_z))
        return NULL;
    if (w < 2 || phase < 0 || phase >= w) {
        PyErr_SetString(PyExc_ValueError, "window must be >= 2 and 0 <= phase < window");
        return NULL;
    }
    Py_buffer bx, bz;
    if (get_doubles(o_x, &bx, 0, -1, "x") < 0)
        return NULL;
    Py_ssize_t n = bx.len / 8;
    if (get_doubles(o_z, &bz, 1, n, "z") < 0) {
        PyBuffer_Release(&bx);
        return NULL;
    }
    double *suf = malloc((size_t)(4 * w + 3 * n) * sizeof(double));
    if (suf == NULL) {
        PyBuffer_Release(&bz);
        PyBuffer_Release(&bx);
        return PyErr_NoMemory();
    }
    double *s1 = suf + 4 * w, *s2 = s1 + n, *dev = s2 + n;
    Py_BEGIN_ALLOW_THREADS
    moments(bx.buf, n, w, phase, s1, s2, dev, suf);
    finish_zscore(s1, s2, dev, n, w, bz.buf);
    Py_END_ALLOW_THREADS
    free(suf);
    PyBuffer_Release(&bz);
    PyBuffer_Release(&bx);
    Py_RETURN_NONE;
}

static PyObject *ewm(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_x, *o_out;
    double factor, new_wt;
    int com_is_one;
    if (!PyArg_ParseTuple(args, "OddpO:ewm", &o_x, &factor, &new_wt, &com_is_one, &o_out))
        return NULL;
    Py_buffer bx, bo;
    if (get_doubles(o_x, &bx, 0, -1, "x") < 0)
        return NULL;
    Py_ssize_t n = bx.len / 8;
    if (get_doubles(o_out, &bo, 1, n, "out") < 0) {
        PyBuffer_Release(&bx);
        return NULL;
    }
    const double *x = bx.buf;
    double *y = bo.buf;
    Py_BEGIN_ALLOW_THREADS
    if (n > 0) {
        double weighted = x[0], old_wt = 1.0;
        Py_ssize_t nobs = weighted == weighted;
        y[0] = nobs >= 1 ? weighted : NAN;
        for (Py_ssize_t i = 1; i < n; i++) {
            double cur = x[i];
            int observed = cur == cur;
            nobs += observed;
            if (weighted == weighted) {
                old_wt *= factor;
                if (com_is_one) /* pandas: "update in case of irregular-interval time series" (adjust=False) */
                    new_wt = 1.0 - old_wt;
                if (observed) {
                    if (weighted != cur) {
                        weighted = old_wt * weighted + new_wt * cur;
                        double total = old_wt + new_wt;
                        if (total != 1.0) /* w / 1.0 == w exactly: skip the divide (the recursion's latency) */
                            weighted /= total;
                    }
                    old_wt = 1.0;
                }
            }
            else if (observed) {
                weighted = cur;
            }
            y[i] = nobs >= 1 ? weighted : NAN;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bx);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"window_sums", window_sums, METH_VARARGS, "Window-local rolling sums (and shifted sums of squares)."},
    {"zscore", zscore, METH_VARARGS, "The zscore indicator's values from the window moments, in one pass."},
    {"ewm", ewm, METH_VARARGS, "pandas' ewm(adjust=False).mean() recursion (equally spaced, min_periods=1)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rolling", "The feature kernels' window sums and EW recursion, compiled (bit-identical).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rolling(void)
{
    return PyModule_Create(&module);
}
