/* numpy's PCG64 (XSL-RR 128/64, numpy/random/src/pcg64/pcg64.h), shared by the kernels that step its stream
 * themselves (_resample.c: the bootstrap's raw words; _permute.c: the permutation test's draws): one step is
 * ``state = state * PCG_MULT + inc``, then the output of the new state. Needs a 128-bit integer type: the
 * kernels' callers fall back to numpy's own generator where __SIZEOF_INT128__ is not defined. Include it after
 * Python.h. */
#ifndef ALPHAFORGE_PCG64_H
#define ALPHAFORGE_PCG64_H
#if defined(__SIZEOF_INT128__)
#include <stdint.h>

typedef unsigned __int128 u128;
#define PCG_MULT ((((u128)0x2360ED051FC65DA4ULL) << 64) | (u128)0x4385DF649FCCF645ULL)

static inline uint64_t pcg_output(u128 state) {
    uint64_t x = (uint64_t)(state >> 64) ^ (uint64_t)state;
    unsigned rot = (unsigned)(state >> 122);
    return (x >> rot) | (x << ((-rot) & 63u));
}

/* The first ``count`` arguments as unsigned 64-bit words (the generator's state halves and the like, as the
 * Python side splits them: resample.pcg64_words); -1 with the error set. */
static int pcg_words(PyObject *const *args, int count, unsigned long long *part) {
    for (int i = 0; i < count; i++) {
        part[i] = PyLong_AsUnsignedLongLong(args[i]);
        if (part[i] == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

#endif
#endif
