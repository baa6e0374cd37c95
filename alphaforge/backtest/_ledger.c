/* The engine's ledger loop in C: the same IEEE double operations, in the same order, as the pure-Python
 * reference ``alphaforge.backtest.engine._run_ledger`` (built with -ffp-contract=off -fno-fast-math: no FMA
 * contraction, no reassociation), so every output is bit-identical to it. tests/test_ledger_kernel.py
 * compares the two bit for bit.
 *
 * Two entry points (arrays are C-contiguous float64 buffers, e.g. numpy arrays):
 *
 * ledger(open, close, cum_close, exposure, initial_equity, cost_rate, borrow_rate, want_rows)
 *     -> (segments: bytes, rows: bytes | None)
 *     ``segments`` packs one row of 9 doubles per segment (first bar, units, cash, borrow base, close base,
 *     short rate, average entry, realized, costs), segment 0 = before the first fill. ``rows`` packs one
 *     row of 8 doubles per trade row (bar, side code 0 buy / 1 sell / 2 flat, qty, entry price, exit price,
 *     borrow cost, pnl, position after).
 *
 * returns(open, close, year_fraction, exposure, out, initial_equity, cost_rate, borrow_rate[, lo]) -> None
 *     The fused per-bar path of ``equity_returns``: cum_close = cumsum(close * year_fraction) (sequential,
 *     as numpy's cumsum), the ledger, the equity of each bar from the segment in force, and the returns
 *     ``equity[s] / equity[s-1] - 1`` (0 at bar 0 and where the previous equity is not positive) written
 *     into ``out``. One pass over the bars, no per-bar temporaries. ``exposure`` may be float32 (the strategy
 *     registry's: widened exactly) or float64, and so may ``open`` and ``close`` (the permutation's rebuilt
 *     float32 prices); each value is clipped to [lo, 1] (default lo = -1) as np.clip
 *     does (``x < lo ? lo : x > 1 ? 1 : x``: the identity on an already clipped exposure, -0.0 kept).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEGMENT_WIDTH 9
#define ROW_WIDTH 8
enum { SIDE_BUY = 0, SIDE_SELL = 1, SIDE_FLAT = 2 };

typedef struct {
    double units, cash, b_base, c_base, s_rate, avg, realized, costs, allocated;
} Book;

typedef struct {
    double *data;
    Py_ssize_t len, cap, width; /* len and cap in rows */
} Table;

static int table_push(Table *t, const double *row)
{
    if (t->len == t->cap) {
        Py_ssize_t cap = t->cap ? t->cap * 2 : 64;
        double *data = realloc(t->data, (size_t)cap * (size_t)t->width * sizeof(double));
        if (data == NULL)
            return -1; /* the caller raises MemoryError once it holds the GIL again */
        t->data = data;
        t->cap = cap;
    }
    memcpy(t->data + t->len * t->width, row, (size_t)t->width * sizeof(double));
    t->len++;
    return 0;
}

static PyObject *table_bytes(const Table *t)
{
    return PyBytes_FromStringAndSize((const char *)t->data,
                                     (Py_ssize_t)((size_t)t->len * (size_t)t->width * sizeof(double)));
}

static int push_row(Table *rows, double bar, int side, double qty, double entry, double exit_price,
                    double borrow, double pnl, double after)
{
    if (rows == NULL)
        return 0;
    double row[ROW_WIDTH] = {bar, (double)side, qty, entry, exit_price, borrow, pnl, after};
    return table_push(rows, row);
}

/* The decision at bar t (target exposure exp_t, decided at the close; borrow_t and equity_t marked at that
 * close by the caller with the engine's expressions). Returns 1 when a fill re-sized the position (a new
 * segment starts at bar t + 1), 0 when the target equals the position, -1 on a memory error. */
static int decide(Book *b, Py_ssize_t t, double exp_t, double cum_t, double price, double borrow_t,
                  double equity_t, double cost_rate, double borrow_rate, Table *rows)
{
    double target = equity_t > 0.0 ? exp_t * equity_t / price : 0.0;
    double units = b->units;
    if (target == units)
        return 0;
    double bar = (double)(t + 1);
    double notional, flow, opening, held;
    if (units != 0.0 && (target == 0.0 || (target > 0.0) != (units > 0.0) || fabs(target) < fabs(units))) {
        /* reduce or close (and possibly flip): the closing part is its own row */
        int closing = target == 0.0 || (target > 0.0) != (units > 0.0);
        double qty = closing ? -units : target - units;
        double borrow = 0.0;
        if (units < 0.0) {
            double unallocated = borrow_t - b->allocated;
            borrow = closing ? unallocated : unallocated * (qty / -units);
            b->allocated += borrow;
        }
        double pnl = -qty * (price - b->avg);
        b->realized += pnl;
        double after = closing ? 0.0 : target;
        int side = after == 0.0 ? SIDE_FLAT : (qty > 0.0 ? SIDE_BUY : SIDE_SELL);
        if (push_row(rows, bar, side, qty, b->avg, price, borrow, pnl, after) < 0)
            return -1;
        notional = fabs(qty) * price;
        flow = qty * price;
        opening = closing ? target : 0.0;
        held = 0.0;
    }
    else {
        notional = 0.0;
        flow = 0.0;
        opening = target - units; /* open from flat or increase */
        held = units;
    }
    if (opening != 0.0) {
        if (push_row(rows, bar, opening > 0.0 ? SIDE_BUY : SIDE_SELL, opening, price, NAN, 0.0, 0.0, target) < 0)
            return -1;
        notional += fabs(opening) * price;
        flow += opening * price;
        b->avg = held == 0.0 ? price : (held * b->avg + opening * price) / target;
    }
    else if (target == 0.0) {
        b->avg = 0.0;
    }
    /* cash pays the slipped notional (flow + notional * slip_rate) and the fee (notional * fee_rate) */
    double fee_slip = notional * cost_rate;
    b->cash = b->cash - flow - fee_slip;
    b->costs += fee_slip;
    b->units = target;
    b->b_base = borrow_t;
    b->c_base = cum_t;
    b->s_rate = borrow_rate * (target < 0.0 ? -target : 0.0);
    return 1;
}

static int segment_push(Table *segments, double bar, const Book *b)
{
    double row[SEGMENT_WIDTH] = {bar, b->units, b->cash, b->b_base, b->c_base, b->s_rate, b->avg, b->realized,
                                 b->costs};
    return table_push(segments, row);
}

/* A read-only or writable 1-D C-contiguous float64 buffer of `n` items (n < 0: any length, set on return). */
static int get_doubles(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t *n, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    if (view->ndim != 1 || view->itemsize != (Py_ssize_t)sizeof(double) || strcmp(fmt, "d") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D contiguous float64 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    Py_ssize_t len = view->len / (Py_ssize_t)sizeof(double);
    if (*n >= 0 && len != *n) {
        PyErr_Format(PyExc_ValueError, "%s has %zd values, expected %zd", name, len, *n);
        PyBuffer_Release(view);
        return -1;
    }
    *n = len;
    return 0;
}

static int get_arrays(PyObject **objs, const char **names, int count, int writable_last, Py_buffer *views)
{
    Py_ssize_t n = -1;
    for (int i = 0; i < count; i++) {
        if (get_doubles(objs[i], &views[i], writable_last && i == count - 1, &n, names[i]) < 0) {
            for (int j = 0; j < i; j++)
                PyBuffer_Release(&views[j]);
            return -1;
        }
    }
    return 0;
}

static void release_arrays(Py_buffer *views, int count)
{
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&views[i]);
}

static PyObject *ledger(PyObject *self, PyObject *args)
{
    PyObject *objs[4];
    double initial, cost_rate, borrow_rate;
    int want_rows;
    if (!PyArg_ParseTuple(args, "OOOOdddp:ledger", &objs[0], &objs[1], &objs[2], &objs[3], &initial, &cost_rate,
                          &borrow_rate, &want_rows))
        return NULL;
    static const char *names[] = {"open", "close", "cum_close", "exposure"};
    Py_buffer views[4];
    if (get_arrays(objs, names, 4, 0, views) < 0)
        return NULL;
    const double *open = views[0].buf, *close = views[1].buf, *cum = views[2].buf, *exposure = views[3].buf;
    Py_ssize_t n = views[0].len / (Py_ssize_t)sizeof(double);

    Table segments = {NULL, 0, 0, SEGMENT_WIDTH}, rows = {NULL, 0, 0, ROW_WIDTH};
    Book b = {0.0, initial, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int failed = segment_push(&segments, 0.0, &b) < 0;
    double previous = 0.0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t t = 0; t + 1 < n && !failed; t++) {
        double exp_t = exposure[t];
        if (exp_t != previous) {
            double borrow_t = b.b_base + b.s_rate * (cum[t] - b.c_base);
            double equity_t = (b.cash - borrow_t) + b.units * close[t];
            int filled = decide(&b, t, exp_t, cum[t], open[t + 1], borrow_t, equity_t, cost_rate, borrow_rate,
                                want_rows ? &rows : NULL);
            failed = filled < 0 || (filled == 1 && segment_push(&segments, (double)(t + 1), &b) < 0);
        }
        previous = exp_t;
    }
    Py_END_ALLOW_THREADS
    release_arrays(views, 4);
    PyObject *result = NULL;
    if (failed) {
        PyErr_NoMemory();
    }
    else {
        PyObject *seg = table_bytes(&segments);
        PyObject *rws = want_rows ? table_bytes(&rows) : Py_NewRef(Py_None);
        if (seg != NULL && rws != NULL)
            result = PyTuple_Pack(2, seg, rws);
        Py_XDECREF(seg);
        Py_XDECREF(rws);
    }
    free(segments.data);
    free(rows.data);
    return result;
}

/* A 1-D C-contiguous float64 or float32 buffer of `n` items (n < 0: any length, set on return); *is32 tells. */
static int get_real(PyObject *obj, Py_buffer *view, Py_ssize_t *n, const char *name, int *is32)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    fmt += fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@';
    *is32 = view->itemsize == 4 && strcmp(fmt, "f") == 0;
    if (view->ndim != 1 || !(*is32 || (view->itemsize == 8 && strcmp(fmt, "d") == 0))) {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D contiguous float64 or float32 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    Py_ssize_t len = view->len / view->itemsize;
    if (*n >= 0 && len != *n) {
        PyErr_Format(PyExc_ValueError, "%s has %zd values, expected %zd (the prices' length)", name, len, *n);
        PyBuffer_Release(view);
        return -1;
    }
    *n = len;
    return 0;
}

static inline double real_at(const void *p, int is32, Py_ssize_t i)
{
    return is32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static PyObject *returns(PyObject *self, PyObject *args)
{
    PyObject *objs[5];
    double initial, cost_rate, borrow_rate, lo = -1.0;
    if (!PyArg_ParseTuple(args, "OOOOOddd|d:returns", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &initial,
                          &cost_rate, &borrow_rate, &lo))
        return NULL;
    static const char *names[] = {"open", "close", "year_fraction", "exposure", "out"};
    Py_buffer views[5];
    int is32[5] = {0, 0, 0, 0, 0}, got = 0;
    Py_ssize_t n = -1;
    for (; got < 5; got++) {
        int failed;
        if (got == 2 || got == 4) { /* year_fraction, out: float64 */
            failed = get_doubles(objs[got], &views[got], got == 4, &n, names[got]) < 0;
        }
        else
            failed = get_real(objs[got], &views[got], &n, names[got], &is32[got]) < 0;
        if (failed) {
            release_arrays(views, got);
            return NULL;
        }
    }
    const void *open = views[0].buf, *close = views[1].buf, *exposure = views[3].buf;
    const double *yf = views[2].buf;
    double *out = views[4].buf;
    int open32 = is32[0], close32 = is32[1], exp32 = is32[3];

    Book b = {0.0, initial, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    double cum = 0.0, previous = 0.0, equity_prev = 0.0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < n; s++) {
        double close_s = real_at(close, close32, s);
        double accrual = close_s * yf[s];
        cum = s == 0 ? accrual : cum + accrual;
        double borrow = b.b_base + b.s_rate * (cum - b.c_base);
        double equity = (b.cash - borrow) + b.units * close_s;
        out[s] = (s > 0 && equity_prev > 0.0) ? equity / equity_prev - 1.0 : 0.0;
        equity_prev = equity;
        double exp_s = real_at(exposure, exp32, s);
        exp_s = exp_s < lo ? lo : (exp_s > 1.0 ? 1.0 : exp_s); /* np.clip(exposure, lo, 1) */
        if (s + 1 < n && exp_s != previous)
            decide(&b, s, exp_s, cum, real_at(open, open32, s + 1), borrow, equity, cost_rate, borrow_rate, NULL);
        previous = exp_s;
    }
    Py_END_ALLOW_THREADS
    release_arrays(views, 5);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"ledger", ledger, METH_VARARGS, "The engine's ledger loop: (segments bytes, rows bytes or None)."},
    {"returns", returns, METH_VARARGS, "The engine's per-bar returns, fused (cumulative close, ledger, equity)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ledger",
    "The backtest engine's ledger loop, compiled (bit-identical to the pure-Python reference).", -1, methods,
};

PyMODINIT_FUNC PyInit__ledger(void)
{
    return PyModule_Create(&module);
}
