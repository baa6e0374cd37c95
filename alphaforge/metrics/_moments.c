/* The Sharpe ratio's two sums in C, bit-identical to numpy's (tests/test_moments_kernel.py): ``np.sum`` of a
 * contiguous float64 array is +0.0 (add's identity) plus numpy's pairwise summation (numpy/_core/src/umath/
 * loops_utils.h.src, ``DOUBLE_pairwise_sum``: below 8 values a plain sum from -0.0; up to 128 values eight running sums, combined
 * as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the remainder; above, the halves split at a
 * multiple of 8, summed recursively and added). ``np.std(ddof=1)`` sums ``(x - mean) * (x - mean)`` the same
 * way. Built with -ffp-contract=off -fno-fast-math: the same IEEE operations in the same order.
 *
 * scan(r) -> (sum, max, min)
 *     ``np.sum(r)``, and r's largest and smallest value, in one pass (meaningful when the sum is finite: then
 *     every value is).
 * squared_deviations(r, mean) -> float
 *     ``np.sum((r - mean) * (r - mean))``, without the two temporaries.
 *
 * ``r`` is a 1-D C-contiguous float64 buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define BLOCK 128

typedef struct {
    double hi, lo;
} extremes;

/* ``x`` of value i: the value itself, or its squared deviation from ``mean`` */
#define VALUE(i) (x[i])
#define SQUARED(i) ((x[i] - mean) * (x[i] - mean))

#define PAIRWISE(name, TERM, TRACK)                                                        \
    static double name(const double *x, Py_ssize_t n, double mean, extremes *e)            \
    {                                                                                      \
        (void)mean;                                                                        \
        (void)e;                                                                           \
        if (n < 8) {                                                                       \
            double res = -0.0;                                                             \
            for (Py_ssize_t i = 0; i < n; i++) {                                           \
                TRACK(i);                                                                  \
                res += TERM(i);                                                            \
            }                                                                              \
            return res;                                                                    \
        }                                                                                  \
        if (n <= BLOCK) {                                                                  \
            double r[8];                                                                   \
            Py_ssize_t i;                                                                  \
            for (int j = 0; j < 8; j++) {                                                  \
                TRACK(j);                                                                  \
                r[j] = TERM(j);                                                            \
            }                                                                              \
            for (i = 8; i < n - (n % 8); i += 8) {                                         \
                for (int j = 0; j < 8; j++) {                                              \
                    TRACK(i + j);                                                          \
                    r[j] += TERM(i + j);                                                   \
                }                                                                          \
            }                                                                              \
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7])); \
            for (; i < n; i++) {                                                           \
                TRACK(i);                                                                  \
                res += TERM(i);                                                            \
            }                                                                              \
            return res;                                                                    \
        }                                                                                  \
        Py_ssize_t n2 = n / 2;                                                             \
        n2 -= n2 % 8;                                                                      \
        return name(x, n2, mean, e) + name(x + n2, n - n2, mean, e);                       \
    }

#define EXTREMES(i)                  \
    do {                             \
        double v_ = x[i];            \
        e->hi = v_ > e->hi ? v_ : e->hi; \
        e->lo = v_ < e->lo ? v_ : e->lo; \
    } while (0)
#define NOTHING(i) ((void)0)

PAIRWISE(sum_tracking, VALUE, EXTREMES)
PAIRWISE(sum_squared, SQUARED, NOTHING)

static int get_returns(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    if (view->ndim != 1 || strcmp(fmt, "d") != 0) {
        PyErr_SetString(PyExc_TypeError, "r must be a 1-D contiguous float64 array");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *scan(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer r;
    if (get_returns(arg, &r) < 0)
        return NULL;
    const double *x = r.buf;
    Py_ssize_t n = r.shape[0];
    extremes e = {n ? x[0] : 0.0, n ? x[0] : 0.0};
    double total;
    Py_BEGIN_ALLOW_THREADS
    total = 0.0 + sum_tracking(x, n, 0.0, &e); /* the reduction starts from add's identity, +0.0 */
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&r);
    return Py_BuildValue("ddd", total, e.hi, e.lo);
}

static PyObject *squared_deviations(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "squared_deviations expects 2 arguments (r, mean), got %zd", nargs);
        return NULL;
    }
    double mean = PyFloat_AsDouble(args[1]);
    if (mean == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer r;
    if (get_returns(args[0], &r) < 0)
        return NULL;
    double total;
    Py_BEGIN_ALLOW_THREADS
    total = 0.0 + sum_squared(r.buf, r.shape[0], mean, NULL);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&r);
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O, "scan(r, /): (np.sum(r), max(r), min(r)) in one pass."},
    {"squared_deviations", (PyCFunction)(void (*)(void))squared_deviations, METH_FASTCALL,
     "squared_deviations(r, mean, /): np.sum((r - mean) * (r - mean)), numpy's pairwise order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_moments", "The Sharpe ratio's sums, numpy's pairwise summation (see _moments.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__moments(void)
{
    return PyModule_Create(&module);
}
