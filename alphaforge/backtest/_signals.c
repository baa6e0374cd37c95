/* The strategy registry's signal rules in C: features (and prices) -> float32 target exposure in one pass, the
 * same IEEE double comparisons as the numpy references in alphaforge/backtest/strategies.py (``_sma_cross``,
 * ``_ema_cross``, ``_zscore_reversion``, ``_breakout`` followed by ``Strategy.exposure``'s NaN -> 0, clip to
 * [lo, 1] and float32 cast), built with -ffp-contract=off -fno-fast-math: bit-identical
 * (tests/test_signals_kernel.py). The raw signals are -1, 0 or 1 (NaN -> 0), so every zero is +0.
 *
 * cross(fast, slow, warm, lo, out) -> None
 *     ``sign(fast - slow)`` (float64 of the float32 features; NaN -> 0), 0 for bars ``< warm``.
 * zscore_hold(z, entry, exit, lo, out) -> None
 *     Events: ``z < -entry`` long, ``z > entry`` short, ``|z| < exit`` or NaN flat; the last event is held.
 * breakout(high, low, close, lookback, lo, out) -> None
 *     Long when ``close[t]`` > max(high[t-lookback .. t-1]), short when < min(low[...]) (the short rule wins a
 *     tie of both); a window holding NaN gives no event (np.maximum propagates NaN); the last event is held.
 *     The channel extremes: without NaN a sparse table per 4096-bar block (SSE2 max / min over doubling
 *     spans), with NaN van Herk / Gil-Werman block prefix and suffix extremes propagating it; max is exact, so
 *     any grouping gives the reference's values.
 *
 * sma_cross(close, fast, slow, lo, out) -> None
 *     cross() of the sma indicator's float32 values, computed here from ``close`` in the same pass: each
 *     window sum is alphaforge.features.chunked.window_moments' (phase 0: the whole series is one chunk,
 *     which any chunking reproduces): the block's sequential prefix sum plus the previous block's suffix sum
 *     summed from its end (+0.0 at a block's last bar, NaN in block 0), then ``/ window``, rounded to float32.
 * ema_cross(close, fast_factor, fast_new_wt, fast_com_is_one, slow_..., warm, lo, out) -> bool
 *     cross() of the two ema indicators' float32 values, the two recursions (_rolling.ewm's operations, the
 *     series seeded with its first value) interleaved in one pass. False (out unspecified) when ``close``
 *     holds NaN or a value beyond +-1e300: the indicator's NaN rules then run in numpy.
 *
 * momentum(close, lookback, threshold, lo, out) -> None
 *     ``r = close[t] / close[t - lookback] - 1.0`` (float64; NaN for t < lookback): 1 when ``r > threshold``,
 *     else -1 when ``r < -threshold``, else 0 (NaN included).
 *
 * ``fast``, ``slow``, ``z`` and ``out`` are 1-D contiguous float32; ``close`` float64 or float32 (widened exactly;
 * breakout: ``high``, ``low`` and ``close`` all of one of the two).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <emmintrin.h>

static int get_array(PyObject *obj, Py_buffer *view, int writable, char format, Py_ssize_t n, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')
        fmt++;
    Py_ssize_t size = format == 'f' ? 4 : 8;
    if (view->ndim != 1 || view->itemsize != size || fmt[0] != format || fmt[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D contiguous %s array", name,
                     format == 'f' ? "float32" : "float64");
        PyBuffer_Release(view);
        return -1;
    }
    if (n >= 0 && view->len / size != n) {
        PyErr_Format(PyExc_ValueError, "%s has %zd values, expected %zd", name, view->len / size, n);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Strategy.exposure's clip of a raw signal (-1, 0 or 1) to [lo, 1], as float32. */
static inline float clipped(double state, double lo)
{
    return (float)(state < lo ? lo : state);
}

static PyObject *cross(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_a, *o_b, *o_out;
    Py_ssize_t warm;
    double lo;
    if (!PyArg_ParseTuple(args, "OOndO:cross", &o_a, &o_b, &warm, &lo, &o_out))
        return NULL;
    Py_buffer ba, bb, bo;
    if (get_array(o_a, &ba, 0, 'f', -1, "fast") < 0)
        return NULL;
    Py_ssize_t n = ba.len / 4;
    PyObject *result = NULL;
    if (get_array(o_b, &bb, 0, 'f', n, "slow") < 0)
        goto release_a;
    if (get_array(o_out, &bo, 1, 'f', n, "out") < 0)
        goto release_b;
    const float *a = ba.buf, *b = bb.buf;
    float *out = bo.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t flat = warm < n ? (warm > 0 ? warm : 0) : n;
    for (Py_ssize_t i = 0; i < flat; i++)
        out[i] = 0.0f;
    for (Py_ssize_t i = flat; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        out[i] = clipped(d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : 0.0), lo);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
    PyBuffer_Release(&bo);
release_b:
    PyBuffer_Release(&bb);
release_a:
    PyBuffer_Release(&ba);
    return result;
}

static PyObject *zscore_hold(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_z, *o_out;
    double entry, exit_, lo;
    if (!PyArg_ParseTuple(args, "OdddO:zscore_hold", &o_z, &entry, &exit_, &lo, &o_out))
        return NULL;
    Py_buffer bz, bo;
    if (get_array(o_z, &bz, 0, 'f', -1, "z") < 0)
        return NULL;
    Py_ssize_t n = bz.len / 4;
    if (get_array(o_out, &bo, 1, 'f', n, "out") < 0) {
        PyBuffer_Release(&bz);
        return NULL;
    }
    const float *z = bz.buf;
    float *out = bo.buf;
    Py_BEGIN_ALLOW_THREADS
    /* Without branches (|z| < exit is a coin flip bar to bar: a branch on it mispredicts a third of the time).
     * The event of a bar: long if z < -entry, else short if z > entry (entry > 0: never both), else flat when
     * |z| < exit or z is NaN (which no comparison matches); a bar with none of them holds the state. */
    const float levels[3] = {clipped(-1.0, lo), clipped(0.0, lo), clipped(1.0, lo)}; /* by state + 1 */
    double neg_entry = -entry;
    int state = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = (double)z[i];
        int is_long = v < neg_entry, is_short = (v > entry) & !is_long;
        int event = (is_long | is_short | (fabs(v) < exit_) | (v != v));
        state = (is_long - is_short) + (state & (event - 1)); /* an event replaces the state, else it is held */
        out[i] = levels[state + 1];
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bz);
    Py_RETURN_NONE;
}

/* np.maximum / np.minimum on doubles as far as a comparison can tell: NaN propagates, else the extreme. Without
 * NaN among the values read the plain extremes are the same values and compile to maxsd / minsd: the plain
 * pass notes any NaN it reads (no extra pass over memory) and the NaN-aware pass redoes the bars if so. */
#define NAN_MAX(a, b) ((a) != (a) ? (a) : ((b) != (b) ? (b) : ((a) >= (b) ? (a) : (b))))
#define NAN_MIN(a, b) ((a) != (a) ? (a) : ((b) != (b) ? (b) : ((a) <= (b) ? (a) : (b))))
#define PLAIN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PLAIN_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Bars t >= w: the window high[t-w .. t-1] ends at b = t - 1. With b at offset r of its block (block start
 * s = b - r), the window is the suffix of the previous block from offset r + 1 plus the block's prefix up to r
 * (the whole block when r = w - 1). suf_* hold the previous block's suffix extremes. */
#define BREAKOUT_RULE(MAX, MIN, SEEN)                                                                           \
    do {                                                                                                        \
        double pre_high = 0.0, pre_low = 0.0;                                                                   \
        state = 0.0;                                                                                            \
        for (Py_ssize_t s = 0; s + 1 < n; s += w) {                                                             \
            for (Py_ssize_t r = 0; r < w && s + r + 1 < n; r++) {                                              \
                Py_ssize_t b = s + r, t = b + 1;                                                                \
                double h = high[b], l = low[b];                                                                 \
                SEEN;                                                                                           \
                pre_high = r == 0 ? h : MAX(pre_high, h);                                                       \
                pre_low = r == 0 ? l : MIN(pre_low, l);                                                         \
                if (t < w)                                                                                      \
                    continue;                                                                                   \
                double upper = r == w - 1 ? pre_high : MAX(suf_high[r + 1], pre_high);                          \
                double lower = r == w - 1 ? pre_low : MIN(suf_low[r + 1], pre_low);                             \
                double c = close[t];                                                                            \
                state = c > upper ? 1.0 : state;                                                                \
                state = c < lower ? -1.0 : state;                                                               \
                out[t] = clipped(state, lo);                                                                    \
            }                                                                                                   \
            if (s + w < n) { /* this block is complete: its suffix extremes serve the next block's windows */  \
                suf_high[w - 1] = high[s + w - 1];                                                              \
                suf_low[w - 1] = low[s + w - 1];                                                                \
                for (Py_ssize_t r = w - 2; r >= 0; r--) {                                                       \
                    suf_high[r] = MAX(high[s + r], suf_high[r + 1]);                                            \
                    suf_low[r] = MIN(low[s + r], suf_low[r + 1]);                                               \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)

/* high and low as float64 or float32 (the permutation's rebuilt columns: widened exactly when read) */
#define DEFINE_BREAKOUT(NAME, T)                                                                                \
    static void NAME(const T *high, const T *low, const T *close, Py_ssize_t n, Py_ssize_t w, double lo,        \
                     float *out, double *suf_high, double *suf_low)                                             \
    {                                                                                                           \
        double state = 0.0;                                                                                     \
        Py_ssize_t shown = w < n ? w : n; /* bars before the first full window: no event */                     \
        for (Py_ssize_t t = 0; t < shown; t++)                                                                  \
            out[t] = clipped(state, lo);                                                                        \
        int nan_seen = 0;                                                                                       \
        BREAKOUT_RULE(PLAIN_MAX, PLAIN_MIN, nan_seen |= (h != h) | (l != l));                                   \
        if (nan_seen)                                                                                           \
            BREAKOUT_RULE(NAN_MAX, NAN_MIN, (void)0);                                                           \
    }

DEFINE_BREAKOUT(breakout_rule, double)
DEFINE_BREAKOUT(breakout_rule_f32, float)

/* Without NaN (checked block by block as the values are read; else breakout_rule redoes every bar): the channel by a sparse table per block of CHANNEL_BLOCK bars,
 * SSE2 max/min over spans 1, 2, 4, .. K (the largest power of two <= w), the window's extreme being the extreme
 * of two overlapping K-spans. max/min are exact and NaN-free here, so any grouping gives the same values (a
 * +0/-0 tie may come out either way, which no comparison sees). buf_* hold CHANNEL_BLOCK + w values. */
#define CHANNEL_BLOCK 4096
#define DEFINE_SPARSE(NAME, T, VT, VW, VLOAD, VSTORE, VMAX, VMIN, VCMPUNORD, VOR, VMASK, VZERO)               \
    static int NAME(const T *high, const T *low, const T *close, Py_ssize_t n, Py_ssize_t w, double lo,         \
                    float *out, T *buf_high, T *buf_low)                                                        \
    {                                                                                                           \
        const float levels[3] = {clipped(-1.0, lo), clipped(0.0, lo), clipped(1.0, lo)}; /* by event + 1 */   \
        Py_ssize_t shown = w < n ? w : n, k = 1;                                                                \
        while (k * 2 <= w)                                                                                      \
            k *= 2;                                                                                             \
        for (Py_ssize_t t = 0; t < shown; t++)                                                                  \
            out[t] = levels[1];                                                                                 \
        int event = 0;                                                                                          \
        for (Py_ssize_t t0 = w; t0 < n; t0 += CHANNEL_BLOCK) {                                                  \
            Py_ssize_t t1 = t0 + CHANNEL_BLOCK < n ? t0 + CHANNEL_BLOCK : n;                                   \
            Py_ssize_t s0 = t0 - w, len = t1 - t0 + w - 1; /* the windows' values: s0 .. s0 + len - 1 */      \
            memcpy(buf_high, high + s0, (size_t)len * sizeof(T));                                               \
            memcpy(buf_low, low + s0, (size_t)len * sizeof(T));                                                 \
            VT unordered = VZERO(); /* NaN among the values read? */                                           \
            Py_ssize_t i = 0;                                                                                   \
            for (; i + VW <= len; i += VW) {                                                                    \
                unordered = VOR(unordered, VCMPUNORD(VLOAD(buf_high + i), VLOAD(buf_low + i)));                 \
            }                                                                                                   \
            int nan_seen = VMASK(unordered) != 0;                                                               \
            for (; i < len; i++)                                                                                \
                nan_seen |= (buf_high[i] != buf_high[i]) | (buf_low[i] != buf_low[i]);                          \
            if (nan_seen)                                                                                       \
                return 0; /* the NaN-aware rule redoes every bar */                                             \
            for (Py_ssize_t span = 1; span < k; span *= 2) { /* buf[j]: extreme of span values -> 2 span */    \
                Py_ssize_t last = len - 2 * span, j = 0; /* new values valid for j <= last */                  \
                for (; j + VW - 1 <= last; j += VW) {                                                           \
                    VT h = VMAX(VLOAD(buf_high + j), VLOAD(buf_high + j + span));                               \
                    VT l = VMIN(VLOAD(buf_low + j), VLOAD(buf_low + j + span));                                 \
                    VSTORE(buf_high + j, h);                                                                    \
                    VSTORE(buf_low + j, l);                                                                     \
                }                                                                                               \
                for (; j <= last; j++) {                                                                        \
                    buf_high[j] = PLAIN_MAX(buf_high[j], buf_high[j + span]);                                   \
                    buf_low[j] = PLAIN_MIN(buf_low[j], buf_low[j + span]);                                      \
                }                                                                                               \
            }                                                                                                   \
            for (Py_ssize_t t = t0; t < t1; t++) {                                                              \
                Py_ssize_t j = t - t0;                                                                          \
                T upper = PLAIN_MAX(buf_high[j], buf_high[j + w - k]);                                          \
                T lower = PLAIN_MIN(buf_low[j], buf_low[j + w - k]);                                            \
                T c = close[t];                                                                                 \
                int up = c > upper, down = c < lower; /* the short rule wins; no event: the state is held */    \
                event = down ? -1 : (up ? 1 : event);                                                           \
                out[t] = levels[event + 1];                                                                     \
            }                                                                                                   \
        }                                                                                                       \
        return 1;                                                                                               \
    }

DEFINE_SPARSE(channel_sparse, double, __m128d, 2, _mm_loadu_pd, _mm_storeu_pd, _mm_max_pd, _mm_min_pd,
              _mm_cmpunord_pd, _mm_or_pd, _mm_movemask_pd, _mm_setzero_pd)
DEFINE_SPARSE(channel_sparse_f32, float, __m128, 4, _mm_loadu_ps, _mm_storeu_ps, _mm_max_ps, _mm_min_ps,
              _mm_cmpunord_ps, _mm_or_ps, _mm_movemask_ps, _mm_setzero_ps)

static PyObject *breakout(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_h, *o_l, *o_c, *o_out;
    Py_ssize_t w;
    double lo;
    if (!PyArg_ParseTuple(args, "OOOndO:breakout", &o_h, &o_l, &o_c, &w, &lo, &o_out))
        return NULL;
    if (w < 1) {
        PyErr_SetString(PyExc_ValueError, "lookback must be >= 1");
        return NULL;
    }
    Py_buffer bh, bl, bc, bo;
    char kind = 'd'; /* high, low and close: all float64 or all float32 */
    if (PyObject_GetBuffer(o_h, &bh, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        const char *fmt = bh.format ? bh.format : "B";
        fmt += fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@';
        kind = fmt[0] == 'f' ? 'f' : 'd';
        PyBuffer_Release(&bh);
    }
    else
        PyErr_Clear();
    if (get_array(o_c, &bc, 0, kind, -1, "close") < 0)
        return NULL;
    Py_ssize_t n = bc.len / (kind == 'f' ? 4 : 8);
    PyObject *result = NULL;
    if (get_array(o_h, &bh, 0, kind, n, "high") < 0)
        goto release_c;
    if (get_array(o_l, &bl, 0, kind, n, "low") < 0)
        goto release_h;
    if (get_array(o_out, &bo, 1, 'f', n, "out") < 0)
        goto release_l;
    Py_ssize_t width = CHANNEL_BLOCK + w; /* the sparse table's buffers; the first 2 w serve the scalar rule */
    double *scratch = malloc((size_t)(2 * width) * sizeof(double));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto release_out;
    }
    Py_BEGIN_ALLOW_THREADS
    if (kind == 'f') {
        float *fs = (float *)scratch;
        if (!channel_sparse_f32(bh.buf, bl.buf, bc.buf, n, w, lo, bo.buf, fs, fs + width))
            breakout_rule_f32(bh.buf, bl.buf, bc.buf, n, w, lo, bo.buf, scratch, scratch + w);
    }
    else if (!channel_sparse(bh.buf, bl.buf, bc.buf, n, w, lo, bo.buf, scratch, scratch + width))
        breakout_rule(bh.buf, bl.buf, bc.buf, n, w, lo, bo.buf, scratch, scratch + w);
    Py_END_ALLOW_THREADS
    free(scratch);
    result = Py_NewRef(Py_None);
release_out:
    PyBuffer_Release(&bo);
release_l:
    PyBuffer_Release(&bl);
release_h:
    PyBuffer_Release(&bh);
release_c:
    PyBuffer_Release(&bc);
    return result;
}

/* close as float64 or float32 (the permutation's rebuilt prices): *f32 tells */
static int get_close(PyObject *obj, Py_buffer *view, int *f32)
{
    char kind = 'd';
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        const char *fmt = view->format ? view->format : "B";
        fmt += fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@';
        kind = fmt[0] == 'f' ? 'f' : 'd';
        PyBuffer_Release(view);
    }
    else
        PyErr_Clear();
    *f32 = kind == 'f';
    return get_array(obj, view, 0, kind, -1, "close");
}

/* One trailing window's sum as window_moments forms it (phase 0), advanced bar by bar. */
typedef struct {
    Py_ssize_t w, r; /* window, offset of the current bar in its block */
    double head;     /* sequential sum of the block up to the current bar */
    double *suffix;  /* suffix[j]: the previous block's values j+1 .. w-1, summed from the block's end */
    int first_block;
} Window;

/* x[i] of a float64 or float32 (widened exactly) series */
static inline double load(const void *x, int f32, Py_ssize_t i)
{
    return f32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

static inline double window_sum(Window *win, const void *x, int f32, Py_ssize_t i)
{
    Py_ssize_t w = win->w, r = win->r;
    double v = load(x, f32, i);
    if (r == 0) {
        win->head = v;
        if (i > 0) { /* block starts: the previous block's suffix sums (read back while in cache) */
            win->first_block = 0;
            double a = 0.0;
            for (Py_ssize_t j = w - 2; j >= 0; j--) {
                double u = load(x, f32, i - w + j + 1);
                a = j == w - 2 ? u : a + u;
                win->suffix[j] = a;
            }
        }
    }
    else
        win->head = win->head + v;
    double tail = r == w - 1 ? 0.0 : (win->first_block ? NAN : win->suffix[r]);
    win->r = r == w - 1 ? 0 : r + 1;
    return win->head + tail;
}

static inline double signal_of(double fast, double slow)
{
    double d = fast - slow;
    return d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : 0.0);
}

/* The closes (float32 or float64) and a float32 output of the same length; both released on failure. */
static int get_close_and_out(PyObject *o_c, PyObject *o_out, Py_buffer *bc, Py_buffer *bo, int *f32, Py_ssize_t *n)
{
    if (get_close(o_c, bc, f32) < 0)
        return -1;
    *n = bc->len / (*f32 ? 4 : 8);
    if (get_array(o_out, bo, 1, 'f', *n, "out") < 0) {
        PyBuffer_Release(bc);
        return -1;
    }
    return 0;
}

static PyObject *momentum(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_c, *o_out;
    Py_ssize_t lb;
    double th, lo;
    if (!PyArg_ParseTuple(args, "OnddO:momentum", &o_c, &lb, &th, &lo, &o_out))
        return NULL;
    if (lb < 1) {
        PyErr_SetString(PyExc_ValueError, "lookback must be >= 1");
        return NULL;
    }
    Py_buffer bc, bo;
    int f32 = 0;
    Py_ssize_t n;
    if (get_close_and_out(o_c, o_out, &bc, &bo, &f32, &n) < 0)
        return NULL;
    const void *x = bc.buf;
    float *out = bo.buf;
    Py_BEGIN_ALLOW_THREADS
    double neg_th = -th;
    Py_ssize_t flat = lb < n ? lb : n;
    for (Py_ssize_t i = 0; i < flat; i++)
        out[i] = 0.0f;
    for (Py_ssize_t i = flat; i < n; i++) {
        double r = load(x, f32, i) / load(x, f32, i - lb) - 1.0;
        out[i] = clipped(r > th ? 1.0 : (r < neg_th ? -1.0 : 0.0), lo);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bc);
    Py_RETURN_NONE;
}

static PyObject *sma_cross(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_c, *o_out;
    Py_ssize_t fast, slow;
    double lo;
    if (!PyArg_ParseTuple(args, "OnndO:sma_cross", &o_c, &fast, &slow, &lo, &o_out))
        return NULL;
    if (fast < 1 || slow < 1) {
        PyErr_SetString(PyExc_ValueError, "windows must be >= 1");
        return NULL;
    }
    Py_buffer bc, bo;
    int f32 = 0;
    Py_ssize_t n;
    if (get_close_and_out(o_c, o_out, &bc, &bo, &f32, &n) < 0)
        return NULL;
    double *scratch = malloc((size_t)(fast + slow) * sizeof(double));
    if (scratch == NULL) {
        PyBuffer_Release(&bo);
        PyBuffer_Release(&bc);
        return PyErr_NoMemory();
    }
    const void *x = bc.buf;
    float *out = bo.buf;
    Py_BEGIN_ALLOW_THREADS
    Window a = {fast, 0, 0.0, scratch, 1}, b = {slow, 0, 0.0, scratch + fast, 1};
    double fw = (double)fast, sw = (double)slow;
    for (Py_ssize_t i = 0; i < n; i++) {
        float f = (float)(window_sum(&a, x, f32, i) / fw), s = (float)(window_sum(&b, x, f32, i) / sw);
        out[i] = clipped(signal_of((double)f, (double)s), lo);
    }
    Py_END_ALLOW_THREADS
    free(scratch);
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bc);
    Py_RETURN_NONE;
}

/* One step of _rolling.ewm for an observed value (no NaN): the weights as pandas updates them. */
static inline double ewm_step(double weighted, double cur, double factor, double *new_wt, int com_is_one)
{
    double old_wt = factor; /* 1 (reset after the previous observation) times the factor */
    if (com_is_one)
        *new_wt = 1.0 - old_wt;
    if (weighted != cur) {
        weighted = old_wt * weighted + *new_wt * cur;
        double total = old_wt + *new_wt;
        if (total != 1.0)
            weighted /= total;
    }
    return weighted;
}

static PyObject *ema_cross(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_c, *o_out;
    double f_factor, f_new, s_factor, s_new, lo;
    int f_one, s_one;
    Py_ssize_t warm;
    if (!PyArg_ParseTuple(args, "OddpddpndO:ema_cross", &o_c, &f_factor, &f_new, &f_one, &s_factor, &s_new, &s_one,
                          &warm, &lo, &o_out))
        return NULL;
    Py_buffer bc, bo;
    int f32 = 0;
    Py_ssize_t n;
    if (get_close_and_out(o_c, o_out, &bc, &bo, &f32, &n) < 0)
        return NULL;
    const void *x = bc.buf;
    float *out = bo.buf;
    int nan_seen = 0;
    Py_BEGIN_ALLOW_THREADS
    double yf = n > 0 ? load(x, f32, 0) : 0.0, ys = yf;
    for (Py_ssize_t i = 0; i < n; i++) {
        double cur = load(x, f32, i);
        nan_seen |= !(cur <= 1e300 && cur >= -1e300); /* NaN, inf or near overflow: numpy's rules decide */
        if (i > 0) {
            yf = ewm_step(yf, cur, f_factor, &f_new, f_one);
            ys = ewm_step(ys, cur, s_factor, &s_new, s_one);
        }
        float f = (float)yf, s = (float)ys;
        out[i] = i < warm ? 0.0f : clipped(signal_of((double)f, (double)s), lo);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bo);
    PyBuffer_Release(&bc);
    return PyBool_FromLong(!nan_seen);
}

static PyMethodDef methods[] = {
    {"sma_cross", sma_cross, METH_VARARGS, "sma_cross from the closes: both window means and the rule, one pass."},
    {"ema_cross", ema_cross, METH_VARARGS, "ema_cross from the closes: both recursions and the rule, one pass."},
    {"cross", cross, METH_VARARGS, "sign(fast - slow) exposure (sma_cross, ema_cross), clipped, float32."},
    {"zscore_hold", zscore_hold, METH_VARARGS, "zscore_reversion's held events, clipped, float32."},
    {"momentum", momentum, METH_VARARGS, "momentum's lookback-return rule, clipped, float32."},
    {"breakout", breakout, METH_VARARGS, "breakout's channel events, held, clipped, float32."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_signals", "The strategy registry's signal rules, compiled (bit-identical).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__signals(void)
{
    return PyModule_Create(&module);
}
