/*
 * One side of an order book, compiled: the hot path of every depth update.
 *
 * A side holds its levels in two parallel arrays sorted so that the BEST level
 * is LAST: updates happen near the top of the book, so inserting or removing
 * a level there moves only the few entries after it.
 *
 * Keys are integer ticks on the 1e-8 grid, signed so that keys ascend from the
 * best level (asks: +tick, bids: -tick), exactly as the pure-Python reference
 * `microstream.book.orderbook.PySide` computes them:
 *     key = sign * (int64)(price * 1e8 + 0.5)
 * The arrays hold keys DESCENDING, so the best (smallest) key is at n - 1.
 *
 * Invalid input raises ValueError; the Python wrapper turns it into
 * InvalidEventError. A side may be partly updated when that happens, which is
 * why the synchronizer discards the whole book on that error (as it does with
 * the reference implementation).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PRICE_SCALE 100000000.0
/* Prices at or above this are rejected: the tick must fit an int64 exactly. */
#define MAX_PRICE 1e10

typedef struct {
    PyObject_HEAD
    int64_t *keys;  /* descending: best (smallest) key last */
    double *qty;
    Py_ssize_t n;
    Py_ssize_t cap;
    int sign;       /* +1 asks, -1 bids */
} SideObject;

static int
side_reserve(SideObject *self, Py_ssize_t need)
{
    if (need <= self->cap)
        return 0;
    Py_ssize_t cap = self->cap ? self->cap : 64;
    while (cap < need)
        cap *= 2;
    int64_t *keys = PyMem_Realloc(self->keys, (size_t)cap * sizeof(int64_t));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->keys = keys;
    double *qty = PyMem_Realloc(self->qty, (size_t)cap * sizeof(double));
    if (qty == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->qty = qty;
    self->cap = cap;
    return 0;
}

/* Index of `key` if present (*found = 1), else where it would be inserted. */
static Py_ssize_t
side_find(const SideObject *self, int64_t key, int *found)
{
    Py_ssize_t lo = 0, hi = self->n;
    const int64_t *k = self->keys;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (k[mid] > key)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = (lo < self->n && k[lo] == key);
    return lo;
}

static int
read_level(PyObject *item, double *price, double *qty)
{
    PyObject *p, *q;
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        p = PyTuple_GET_ITEM(item, 0);
        q = PyTuple_GET_ITEM(item, 1);
    } else if (PyList_CheckExact(item) && PyList_GET_SIZE(item) == 2) {
        p = PyList_GET_ITEM(item, 0);
        q = PyList_GET_ITEM(item, 1);
    } else {
        PyErr_Format(PyExc_ValueError, "level %R is not a (price, quantity) pair", item);
        return -1;
    }
    *price = PyFloat_CheckExact(p) ? PyFloat_AS_DOUBLE(p) : PyFloat_AsDouble(p);
    if (*price == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "level price %R is not a number", p);
        return -1;
    }
    *qty = PyFloat_CheckExact(q) ? PyFloat_AS_DOUBLE(q) : PyFloat_AsDouble(q);
    if (*qty == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "level quantity %R is not a number", q);
        return -1;
    }
    return 0;
}

static int
level_error(double price, double qty)
{
    PyObject *p = PyFloat_FromDouble(price), *q = PyFloat_FromDouble(qty);
    if (p && q)
        PyErr_Format(PyExc_ValueError, "level (%R, %R) is not valid", p, q);
    Py_XDECREF(p);
    Py_XDECREF(q);
    return -1;
}

/* A level as two doubles with 0 < price < MAX_PRICE and 0 <= qty < inf (NaN fails). */
static int
read_valid_level(PyObject *item, double *price, double *qty)
{
    if (read_level(item, price, qty) < 0)
        return -1;
    if (!(*price > 0.0 && *price < MAX_PRICE && *qty >= 0.0 && *qty < INFINITY))
        return level_error(*price, *qty);
    return 0;
}

/* The levels argument as a fast sequence, once the side is known to be initialised. */
static PyObject *
levels_of(const SideObject *self, PyObject *levels)
{
    if (self->sign == 0) {
        PyErr_SetString(PyExc_ValueError, "Side was not initialised with a sign");
        return NULL;
    }
    return PySequence_Fast(levels, "levels must be a sequence");
}

static inline int64_t
key_of(double price, int sign)
{
    return (int64_t)sign * (int64_t)(price * PRICE_SCALE + 0.5);
}

static int
side_set(SideObject *self, int64_t key, double qty)
{
    int found;
    Py_ssize_t i = side_find(self, key, &found);
    if (qty == 0.0) {
        if (found) {
            Py_ssize_t tail = self->n - i - 1;
            memmove(self->keys + i, self->keys + i + 1, (size_t)tail * sizeof(int64_t));
            memmove(self->qty + i, self->qty + i + 1, (size_t)tail * sizeof(double));
            self->n--;
        }
        return 0;
    }
    if (found) {
        self->qty[i] = qty;
        return 0;
    }
    if (side_reserve(self, self->n + 1) < 0)
        return -1;
    Py_ssize_t tail = self->n - i;
    memmove(self->keys + i + 1, self->keys + i, (size_t)tail * sizeof(int64_t));
    memmove(self->qty + i + 1, self->qty + i, (size_t)tail * sizeof(double));
    self->keys[i] = key;
    self->qty[i] = qty;
    self->n++;
    return 0;
}

/* update(levels): apply absolute quantities; 0 removes the level. */
static PyObject *
side_update(SideObject *self, PyObject *levels)
{
    PyObject *seq = levels_of(self, levels);
    if (seq == NULL)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t j = 0; j < m; j++) {
        double price, qty;
        if (read_valid_level(items[j], &price, &qty) < 0)
            goto fail;
        if (side_set(self, key_of(price, self->sign), qty) < 0)
            goto fail;
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    return NULL;
}

/* update_packed(buf): the same as update() for levels packed as native doubles
 * (price, qty, price, qty, ...), as the compiled frame reader produces them. */
static PyObject *
side_update_packed(SideObject *self, PyObject *buf)
{
    if (self->sign == 0) {
        PyErr_SetString(PyExc_ValueError, "Side was not initialised with a sign");
        return NULL;
    }
    if (!PyBytes_Check(buf) || PyBytes_GET_SIZE(buf) % (2 * sizeof(double)) != 0) {
        PyErr_SetString(PyExc_ValueError, "packed levels must be bytes of (price, qty) doubles");
        return NULL;
    }
    Py_ssize_t m = PyBytes_GET_SIZE(buf) / (Py_ssize_t)(2 * sizeof(double));
    const double *v = (const double *)PyBytes_AS_STRING(buf);
    for (Py_ssize_t j = 0; j < m; j++) {
        double price = v[2 * j], qty = v[2 * j + 1];
        if (!(price > 0.0 && price < MAX_PRICE && qty >= 0.0 && qty < INFINITY)) {
            level_error(price, qty);
            return NULL;
        }
        if (side_set(self, key_of(price, self->sign), qty) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

typedef struct {
    int64_t key;
    double qty;
    Py_ssize_t order;
} Entry;

static int
entry_cmp(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    /* descending key; for equal keys the later one first, so it wins the dedup */
    if (x->key != y->key)
        return x->key < y->key ? 1 : -1;
    return x->order < y->order ? 1 : (x->order > y->order ? -1 : 0);
}

/* load(levels): replace the side (a snapshot; zero quantities are skipped). */
static PyObject *
side_load(SideObject *self, PyObject *levels)
{
    PyObject *seq = levels_of(self, levels);
    if (seq == NULL)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Entry *entries = PyMem_Malloc((size_t)(m ? m : 1) * sizeof(Entry));
    if (entries == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t count = 0;
    for (Py_ssize_t j = 0; j < m; j++) {
        double price, qty;
        if (read_valid_level(items[j], &price, &qty) < 0)
            goto fail;
        entries[count].key = key_of(price, self->sign);
        entries[count].qty = qty;
        entries[count].order = j;
        count++;
    }
    qsort(entries, (size_t)count, sizeof(Entry), entry_cmp);
    if (side_reserve(self, count) < 0)
        goto fail;
    Py_ssize_t n = 0;
    for (Py_ssize_t j = 0; j < count; j++) {
        if (j > 0 && entries[j].key == entries[j - 1].key)
            continue; /* an earlier duplicate: the later quantity already won */
        if (entries[j].qty > 0.0) {
            self->keys[n] = entries[j].key;
            self->qty[n] = entries[j].qty;
            n++;
        }
    }
    self->n = n;
    PyMem_Free(entries);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    PyMem_Free(entries);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *
side_clear(SideObject *self, PyObject *Py_UNUSED(ignored))
{
    self->n = 0;
    Py_RETURN_NONE;
}

static inline PyObject *
price_of(const SideObject *self, int64_t key)
{
    return PyFloat_FromDouble((double)((int64_t)self->sign * key) / PRICE_SCALE);
}

/* levels(depth=None): [(price, qty), ...] best first. */
static PyObject *
side_levels(SideObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t depth = self->n;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "levels() takes at most one argument");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        depth = PyLong_AsSsize_t(args[0]);
        if (depth == -1 && PyErr_Occurred())
            return NULL;
        if (depth < 0)
            depth = 0;
        if (depth > self->n)
            depth = self->n;
    }
    PyObject *out = PyList_New(depth);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < depth; j++) {
        Py_ssize_t i = self->n - 1 - j;
        PyObject *pair = Py_BuildValue("(Nd)", price_of(self, self->keys[i]), self->qty[i]);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, pair);
    }
    return out;
}

/* top(depth): (prices, quantities), two tuples of exactly `depth`, padded with None. */
static PyObject *
side_top(SideObject *self, PyObject *arg)
{
    Py_ssize_t depth = PyLong_AsSsize_t(arg);
    if (depth == -1 && PyErr_Occurred())
        return NULL;
    if (depth < 0)
        depth = 0;
    PyObject *px = PyTuple_New(depth), *qty = PyTuple_New(depth);
    if (px == NULL || qty == NULL) {
        Py_XDECREF(px);
        Py_XDECREF(qty);
        return NULL;
    }
    for (Py_ssize_t j = 0; j < depth; j++) {
        PyObject *p, *q;
        if (j < self->n) {
            Py_ssize_t i = self->n - 1 - j;
            p = price_of(self, self->keys[i]);
            q = PyFloat_FromDouble(self->qty[i]);
            if (p == NULL || q == NULL) {
                Py_XDECREF(p);
                Py_XDECREF(q);
                Py_DECREF(px);
                Py_DECREF(qty);
                return NULL;
            }
        } else {
            p = Py_NewRef(Py_None);
            q = Py_NewRef(Py_None);
        }
        PyTuple_SET_ITEM(px, j, p);
        PyTuple_SET_ITEM(qty, j, q);
    }
    PyObject *res = PyTuple_Pack(2, px, qty);
    Py_DECREF(px);
    Py_DECREF(qty);
    return res;
}

/* best(): (price, qty) of the best level, or None. */
static PyObject *
side_best(SideObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->n == 0)
        Py_RETURN_NONE;
    Py_ssize_t i = self->n - 1;
    return Py_BuildValue("(Nd)", price_of(self, self->keys[i]), self->qty[i]);
}

/* best_tick(): the integer tick of the best level, or None. */
static PyObject *
side_best_tick(SideObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->n == 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)self->sign * self->keys[self->n - 1]);
}

static Py_ssize_t
side_len(SideObject *self)
{
    return self->n;
}

static int
side_init(SideObject *self, PyObject *args, PyObject *kwds)
{
    int sign;
    static char *kwlist[] = {"sign", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &sign))
        return -1;
    if (sign != 1 && sign != -1) {
        PyErr_SetString(PyExc_ValueError, "sign must be 1 (asks) or -1 (bids)");
        return -1;
    }
    self->sign = sign;
    self->n = 0;
    return 0;
}

static void
side_dealloc(SideObject *self)
{
    PyMem_Free(self->keys);
    PyMem_Free(self->qty);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef side_methods[] = {
    {"update", (PyCFunction)side_update, METH_O,
     "update(levels): apply (price, qty) levels; qty 0 removes. ValueError on a bad level."},
    {"update_packed", (PyCFunction)side_update_packed, METH_O,
     "update_packed(buf): update() for levels packed as native (price, qty) doubles."},
    {"load", (PyCFunction)side_load, METH_O,
     "load(levels): replace every level (a snapshot); qty 0 is skipped."},
    {"clear", (PyCFunction)side_clear, METH_NOARGS, "clear(): remove every level."},
    {"levels", (PyCFunction)(void (*)(void))side_levels, METH_FASTCALL,
     "levels(depth=None): [(price, qty)] best first (all levels when depth is None)."},
    {"top", (PyCFunction)side_top, METH_O,
     "top(depth): (prices, quantities) tuples of exactly depth entries, padded with None."},
    {"best", (PyCFunction)side_best, METH_NOARGS, "best(): (price, qty) of the best level or None."},
    {"best_tick", (PyCFunction)side_best_tick, METH_NOARGS,
     "best_tick(): integer tick (1e-8) of the best level or None."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods side_as_sequence = {
    .sq_length = (lenfunc)side_len,
};

static PyTypeObject SideType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstream.book._cside.Side",
    .tp_basicsize = sizeof(SideObject),
    .tp_dealloc = (destructor)side_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One side of an order book on integer ticks (Side(1): asks, Side(-1): bids).",
    .tp_methods = side_methods,
    .tp_as_sequence = &side_as_sequence,
    .tp_init = (initproc)side_init,
    .tp_new = PyType_GenericNew,
};

/*
 * first_bad_level(levels, allow_zero): index of the first level that is not a
 * (price, qty) pair of floats with 0 < price < inf and 0 <= qty < inf (qty > 0
 * unless allow_zero), or -1 when every level is valid. NaN fails every check.
 */
static PyObject *
first_bad_level(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "first_bad_level(levels, allow_zero)");
        return NULL;
    }
    int allow_zero = PyObject_IsTrue(args[1]);
    if (allow_zero < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(args[0], "levels must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t bad = -1;
    for (Py_ssize_t j = 0; j < m && bad < 0; j++) {
        PyObject *item = items[j], *p, *q;
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            bad = j;
            break;
        }
        p = PyTuple_GET_ITEM(item, 0);
        q = PyTuple_GET_ITEM(item, 1);
        if (!PyFloat_CheckExact(p) || !PyFloat_CheckExact(q)) {
            bad = j;
            break;
        }
        double price = PyFloat_AS_DOUBLE(p), qty = PyFloat_AS_DOUBLE(q);
        if (!(price > 0.0 && price < INFINITY && qty >= 0.0 && qty < INFINITY)
            || (!allow_zero && qty == 0.0))
            bad = j;
    }
    Py_DECREF(seq);
    return PyLong_FromSsize_t(bad);
}

/*
 * ofi_levels(cur_bid_px, cur_bid_qty, prev_bid_px, prev_bid_qty,
 *            cur_ask_px, cur_ask_qty, prev_ask_px, prev_ask_qty):
 * (level-1 OFI, levels 1-N OFI) of one depth event when every level of both
 * books is present (all arguments tuples of N floats), else None. The same
 * operations in the same order as the Python reference
 * (microstream.features.book_math.ofi_pair), so the results are bit-identical.
 */
static PyObject *
ofi_levels(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "ofi_levels takes 8 level tuples");
        return NULL;
    }
    Py_ssize_t n = -1;
    for (int k = 0; k < 8; k++) {
        if (!PyTuple_CheckExact(args[k]))
            Py_RETURN_NONE;
        if (n < 0)
            n = PyTuple_GET_SIZE(args[k]);
        else if (PyTuple_GET_SIZE(args[k]) != n)
            Py_RETURN_NONE;
    }
    double total = 0.0, first = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v[8];
        for (int k = 0; k < 8; k++) {
            PyObject *x = PyTuple_GET_ITEM(args[k], i);
            if (!PyFloat_CheckExact(x))
                Py_RETURN_NONE;
            v[k] = PyFloat_AS_DOUBLE(x);
        }
        double b = v[0], qb = v[1], b0 = v[2], qb0 = v[3];
        double a = v[4], qa = v[5], a0 = v[6], qa0 = v[7];
        double bterm, e;
        if (b > b0)
            bterm = qb;
        else if (b == b0)
            bterm = qb - qb0;
        else
            bterm = -qb0;
        if (a < a0)
            e = bterm - qa;
        else if (a == a0)
            e = (bterm - qa) + qa0;
        else
            e = bterm + qa0;
        if (i == 0)
            first = e;
        total += e;
    }
    return Py_BuildValue("(dd)", first, total);
}

static PyMethodDef module_methods[] = {
    {"ofi_levels", (PyCFunction)(void (*)(void))ofi_levels, METH_FASTCALL,
     "ofi_levels(8 level tuples): (level-1 OFI, all-level OFI), or None if a level is missing."},
    {"first_bad_level", (PyCFunction)(void (*)(void))first_bad_level, METH_FASTCALL,
     "first_bad_level(levels, allow_zero): index of the first invalid (price, qty) level, or -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cside_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "microstream.book._cside",
    .m_doc = "Compiled order-book side (see microstream.book.orderbook).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__cside(void)
{
    if (PyType_Ready(&SideType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&cside_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Side", (PyObject *)&SideType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
