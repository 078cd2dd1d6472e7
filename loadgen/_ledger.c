/* The ledger's event loop in C: the same decisions, balances and bytes as Ledger.run in
 * loadgen/ledger.py (the reference; tests compare the two byte for byte), 20-40x faster.
 *
 * Python prepares everything that does not depend on the order of events (numpy columns, see
 * Ledger.prepare); this loop takes the rows in time order, decides approvals against balances,
 * floors and limits, keeps the refund pool, and writes each event's JSON text into one buffer.
 * It keeps no Python object per event: a call returns one bytes buffer of the events, back to
 * back, with their offsets, times and accounts as raw int64 arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define N_TYPES 8
#define MAX_TYPOLOGIES 16
#define TYPE_TRANSFER 2
#define TYPE_REFUND 5
#define INTERNAL_UPKEEP 2 /* the internal column of a card's upkeep (loadgen.ledger.UPKEEP) */
#define TYPE_CLOSE (-1) /* a credit card's statement closes (loadgen.draw.CLOSE): no event */
#define RAIL_PIX 0      /* positions in the contract's RAILS (tests/unit/test_native.py) */
#define RAIL_INTERNAL 5
#define CP_ACCOUNT 1
#define CP_MERCHANT 2
#define CP_EXTERNAL 3
#define CP_EMPLOYER 4
#define CP_CASH 5
#define CP_BILLER 6
#define CP_BANK 7
#define N_STATE 10
#define MERCHANT_RANKS 100000000LL

static const char APPROVED[] = "\"status\":\"approved\",\"decline_reason\":null,";
static const char INSUFFICIENT[] = "\"status\":\"declined\",\"decline_reason\":\"insufficient_funds\",";
static const char LIMIT[] = "\"status\":\"declined\",\"decline_reason\":\"limit_exceeded\",";
static const char BLOCKED[] = "\"status\":\"declined\",\"decline_reason\":\"blocked_fraud\",";
static const char NO_FRAUD[] = "\"fraud\":false,\"typology\":null,\"fraud_instance\":null,\"ref_tx\":";
static const char *const KINDS[] = {"none", "account", "merchant", "external",
                                    "employer", "cash", "biller", "bank"};

/* ------------------------------------------------------------------ text tables */

typedef struct {
    char *data;
    int64_t *offsets; /* n + 1 */
    Py_ssize_t n;
} Table;

static void table_free(Table *t) {
    PyMem_Free(t->data);
    PyMem_Free(t->offsets);
    t->data = NULL;
    t->offsets = NULL;
    t->n = 0;
}

/* A list of str (ASCII) or bytes -> one buffer with offsets. */
static int table_from(Table *t, PyObject *seq) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of strings");
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        if (PyUnicode_Check(items[i])) {
            if (PyUnicode_AsUTF8AndSize(items[i], &len) == NULL) goto fail;
        } else if (PyBytes_Check(items[i])) {
            len = PyBytes_GET_SIZE(items[i]);
        } else {
            PyErr_SetString(PyExc_TypeError, "expected str or bytes in a table");
            goto fail;
        }
        total += len;
    }
    t->data = PyMem_Malloc(total ? total : 1);
    t->offsets = PyMem_Malloc(sizeof(int64_t) * (n + 1));
    if (t->data == NULL || t->offsets == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    t->n = n;
    int64_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *text;
        Py_ssize_t len;
        if (PyUnicode_Check(items[i])) {
            text = PyUnicode_AsUTF8AndSize(items[i], &len);
        } else {
            text = PyBytes_AS_STRING(items[i]);
            len = PyBytes_GET_SIZE(items[i]);
        }
        t->offsets[i] = at;
        memcpy(t->data + at, text, len);
        at += len;
    }
    t->offsets[n] = at;
    Py_DECREF(fast);
    return 0;
fail:
    Py_DECREF(fast);
    return -1;
}

/* ------------------------------------------------------------------ output buffer */

/* The events are written once, straight into the bytes object handed back (this machine's
 * kind moves memory slowly: every copy of an event's text counts). */
typedef struct {
    PyObject *bytes;
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Out;

static int out_open(Out *o, Py_ssize_t cap) {
    o->bytes = PyBytes_FromStringAndSize(NULL, cap > 0 ? cap : 1);
    if (o->bytes == NULL) return -1;
    o->data = PyBytes_AS_STRING(o->bytes);
    o->len = 0;
    o->cap = cap;
    return 0;
}

static int out_reserve(Out *o, Py_ssize_t more) {
    if (o->len + more <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 65536;
    while (cap < o->len + more) cap *= 2;
    if (_PyBytes_Resize(&o->bytes, cap) < 0) return -1;
    o->data = PyBytes_AS_STRING(o->bytes);
    o->cap = cap;
    return 0;
}

/* the bytes object, cut to what was written */
static PyObject *out_close(Out *o) {
    if (_PyBytes_Resize(&o->bytes, o->len) < 0) return NULL;
    PyObject *bytes = o->bytes;
    o->bytes = NULL;
    return bytes;
}

#define PUT(o, text, n)                        \
    do {                                       \
        memcpy((o)->data + (o)->len, text, n); \
        (o)->len += (n);                       \
    } while (0)
#define PUTS(o, literal) PUT(o, literal, sizeof(literal) - 1)

static inline void put_table(Out *o, const Table *t, Py_ssize_t i) {
    int64_t a = t->offsets[i], b = t->offsets[i + 1];
    PUT(o, t->data + a, (Py_ssize_t)(b - a));
}

static inline void put_i64(Out *o, int64_t v) {
    char digits[24];
    int n = 0;
    uint64_t u;
    if (v < 0) {
        o->data[o->len++] = '-';
        u = (uint64_t)0 - (uint64_t)v;
    } else {
        u = (uint64_t)v;
    }
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n) o->data[o->len++] = digits[--n];
}

/* v in decimal, at least `width` digits (v >= 0) */
static inline void put_padded(Out *o, int64_t v, int width) {
    char digits[24];
    int n = 0;
    uint64_t u = (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n < width) digits[n++] = '0';
    while (n) o->data[o->len++] = digits[--n];
}

static inline void put_hex(Out *o, uint64_t v, int width) {
    static const char hex[] = "0123456789abcdef";
    char digits[24];
    int n = 0;
    do {
        digits[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    while (n < width) digits[n++] = '0';
    while (n) o->data[o->len++] = digits[--n];
}

/* ------------------------------------------------------------------ the ledger */

typedef struct {
    int64_t counter, time, left, cp_key; /* left: what may still be refunded */
    int32_t account;
} Purchase;

typedef struct {
    PyObject_HEAD
    Table who, keys, heads, categories, typologies;
    char *prefix, *instance_prefix, *tail;
    Py_ssize_t prefix_len, instance_prefix_len, tail_len, max_line;
    int n_channels;
    double partial_share, max_age_ms;
    int has_night, has_daily, has_device_daily;
    int64_t night_max, daily_max, device_daily_max;
    int64_t device_per_pix; /* a new-device book transfer paid by Pix instead: its cap */
    int64_t counter;
    Purchase *pool;
    Py_ssize_t pool_len, pool_cap;
    /* balance, floor, seq, night_key, night_sum, day_key, day_sum, the day and running total
     * of Pix from a new device, and what each credit card owed at its last statement */
    PyObject *state[N_STATE];
    PyObject *key_list; /* the accounts' ids (str): the events' Kafka keys */
} Ledger;

static void Ledger_dealloc(Ledger *self) {
    table_free(&self->who);
    table_free(&self->keys);
    table_free(&self->heads);
    table_free(&self->categories);
    table_free(&self->typologies);
    PyMem_Free(self->prefix);
    PyMem_Free(self->instance_prefix);
    PyMem_Free(self->tail);
    PyMem_Free(self->pool);
    for (int i = 0; i < N_STATE; i++) Py_XDECREF(self->state[i]);
    Py_XDECREF(self->key_list);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static char *copy_text(PyObject *text, Py_ssize_t *len) {
    const char *data = PyUnicode_AsUTF8AndSize(text, len);
    if (data == NULL) return NULL;
    char *out = PyMem_Malloc(*len + 1);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, data, *len + 1);
    return out;
}

static Py_ssize_t table_longest(const Table *t) {
    Py_ssize_t longest = 0;
    for (Py_ssize_t i = 0; i < t->n; i++) {
        Py_ssize_t len = (Py_ssize_t)(t->offsets[i + 1] - t->offsets[i]);
        if (len > longest) longest = len;
    }
    return longest;
}

/* Ledger(who, keys, heads, categories, typologies, prefix, instance_prefix, tail, n_channels,
 *        partial_share, max_age_ms, night_max or None, daily_max or None,
 *        new-device daily max or None, new-device cap of one Pix (or INT64_MAX),
 *        state arrays (10)) */
static int Ledger_init(Ledger *self, PyObject *args, PyObject *kwds) {
    PyObject *who, *keys, *heads, *categories, *typologies, *prefix, *instance_prefix, *tail;
    PyObject *night_max, *daily_max, *device_daily_max, *state;
    int n_channels;
    double partial_share, max_age_ms;
    long long device_per_pix;
    if (!PyArg_ParseTuple(args, "OOOOOUUUiddOOOLO", &who, &keys, &heads, &categories,
                          &typologies, &prefix, &instance_prefix, &tail, &n_channels,
                          &partial_share, &max_age_ms, &night_max, &daily_max, &device_daily_max,
                          &device_per_pix, &state))
        return -1;
    if (self->key_list != NULL) {
        PyErr_SetString(PyExc_TypeError, "Ledger is already initialised");
        return -1;
    }
    if (!PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "keys: a list of str");
        return -1;
    }
    self->key_list = keys;
    Py_INCREF(keys);
    if (table_from(&self->who, who) < 0 || table_from(&self->keys, keys) < 0 ||
        table_from(&self->heads, heads) < 0 || table_from(&self->categories, categories) < 0 ||
        table_from(&self->typologies, typologies) < 0)
        return -1;
    if (self->typologies.n > MAX_TYPOLOGIES) {
        PyErr_SetString(PyExc_ValueError, "too many typologies");
        return -1;
    }
    if ((self->prefix = copy_text(prefix, &self->prefix_len)) == NULL) return -1;
    if ((self->instance_prefix = copy_text(instance_prefix, &self->instance_prefix_len)) == NULL)
        return -1;
    if ((self->tail = copy_text(tail, &self->tail_len)) == NULL) return -1;
    self->n_channels = n_channels;
    self->partial_share = partial_share;
    self->max_age_ms = max_age_ms;
    self->has_night = night_max != Py_None;
    self->has_daily = daily_max != Py_None;
    self->night_max = self->has_night ? PyLong_AsLongLong(night_max) : 0;
    self->daily_max = self->has_daily ? PyLong_AsLongLong(daily_max) : 0;
    self->has_device_daily = device_daily_max != Py_None;
    self->device_daily_max = self->has_device_daily ? PyLong_AsLongLong(device_daily_max) : 0;
    self->device_per_pix = device_per_pix;
    if (PyErr_Occurred()) return -1;
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != N_STATE) {
        PyErr_SetString(PyExc_TypeError, "state: a tuple of 10 int64 arrays");
        return -1;
    }
    for (int i = 0; i < N_STATE; i++) {
        self->state[i] = PyTuple_GET_ITEM(state, i);
        Py_INCREF(self->state[i]);
    }
    /* the longest line: fixed texts + the longest table entries + 12 numbers of 20 digits */
    self->max_line = 1024 + 2 * table_longest(&self->who) + table_longest(&self->keys) +
                     table_longest(&self->heads) + table_longest(&self->categories) +
                     table_longest(&self->typologies) + 2 * self->prefix_len +
                     self->instance_prefix_len + self->tail_len;
    return 0;
}

/* the buffers of one call's columns, and of the state */
typedef struct {
    Py_buffer view;
    int held;
} Column;

static int column(Column *c, PyObject *obj, Py_ssize_t itemsize, Py_ssize_t n, const char *name,
                  int writable) {
    if (PyObject_GetBuffer(obj, &c->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) <
        0)
        return -1;
    c->held = 1;
    if (c->view.itemsize != itemsize || c->view.len / itemsize < n) {
        PyErr_Format(PyExc_ValueError, "column %s: expected %zd items of %zd bytes", name, n,
                     itemsize);
        return -1;
    }
    return 0;
}

enum {
    C_ACC, C_TYP, C_DIR, C_AMOUNT, C_CP_KIND, C_CP_ID, C_U, C_FRAUD, C_INSTANCE, C_DRAIN,
    C_NEW_DEVICE, C_BLOCKED, C_TIME, C_NKEY, C_DKEY, C_LIMITED, C_SPECIAL, C_INTERNAL,
    C_REFUNDABLE, C_HEAD, C_CATEGORY, C_CAP, C_NDKEY, N_COLUMNS
};
static const char *COLUMN_NAMES[N_COLUMNS] = {
    "acc", "typ", "direction", "amount", "cp_kind", "cp_id", "u", "fraud", "instance", "drain",
    "new_device", "blocked", "time_ms", "nkey", "dkey", "limited", "special", "internal",
    "refundable", "head", "category", "cap", "ndkey"};
static const Py_ssize_t COLUMN_SIZES[N_COLUMNS] = {8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 1, 1,
                                                   8, 8, 8, 1, 1, 1, 1, 8, 8, 8, 8};

/* whether `amt` would take account a's running total of window `k` (a night, a day) past `most`;
 * a total of another window starts again from zero */
static inline int window_over(int64_t *key, int64_t *sum, int64_t a, int64_t k, int64_t amt,
                              int64_t most) {
    if (key[a] != k) {
        key[a] = k;
        sum[a] = 0;
    }
    return sum[a] > most - amt;
}

/* the counterparty fields of (kind, id); `account_key` for an account */
static void put_counterparty(Out *o, Ledger *self, int64_t kind, int64_t ident) {
    PUTS(o, "\"counterparty\":");
    switch (kind) {
    case CP_ACCOUNT:
        o->data[o->len++] = '"';
        put_table(o, &self->keys, (Py_ssize_t)ident);
        o->data[o->len++] = '"';
        break;
    case CP_MERCHANT:
        PUTS(o, "\"M");
        put_padded(o, ident / MERCHANT_RANKS, 2);
        put_padded(o, ident % MERCHANT_RANKS, 8);
        o->data[o->len++] = '"';
        break;
    case CP_EXTERNAL:
        PUTS(o, "\"X");
        put_hex(o, (uint64_t)ident & 0xFFFFFFFFULL, 8);
        o->data[o->len++] = '"';
        break;
    case CP_EMPLOYER:
        PUTS(o, "\"E");
        put_padded(o, ident, 6);
        o->data[o->len++] = '"';
        break;
    case CP_BILLER:
        PUTS(o, "\"B");
        put_padded(o, ident, 6);
        o->data[o->len++] = '"';
        break;
    case CP_CASH:
        PUTS(o, "\"cash\"");
        break;
    case CP_BANK:
        PUTS(o, "\"bank\"");
        break;
    default:
        PUTS(o, "null");
    }
    PUTS(o, ",\"counterparty_kind\":\"");
    const char *name = KINDS[(kind >= 0 && kind < 8) ? kind : 0];
    PUT(o, name, (Py_ssize_t)strlen(name));
    o->data[o->len++] = '"';
}

static void put_fraud(Out *o, Ledger *self, int64_t code, int64_t instance) {
    PUTS(o, "\"fraud\":true,\"typology\":\"");
    put_table(o, &self->typologies, (Py_ssize_t)(code - 1));
    PUTS(o, "\",\"fraud_instance\":\"");
    PUT(o, self->instance_prefix, self->instance_prefix_len);
    put_hex(o, (uint64_t)instance, 6);
    PUTS(o, "\",\"ref_tx\":");
}

/* the `who` fields of account a; with a new device, its device replaced */
static void put_who(Out *o, Ledger *self, int64_t a, int new_device) {
    int64_t start = self->who.offsets[a], end = self->who.offsets[a + 1];
    if (!new_device) {
        PUT(o, self->who.data + start, (Py_ssize_t)(end - start));
        return;
    }
    int64_t cut = end - 1;
    while (cut > start && self->who.data[cut] != ',') cut--;
    PUT(o, self->who.data + start, (Py_ssize_t)(cut - start));
    PUTS(o, ",\"device\":\"D-new-");
    put_table(o, &self->keys, (Py_ssize_t)a);
    o->data[o->len++] = '"';
}

static void pool_remove(Ledger *self, Py_ssize_t j) {
    self->pool[j] = self->pool[self->pool_len - 1];
    self->pool_len--;
}

/* where in the pool an earlier approved purchase still in the refund window is, or -1 */
static Py_ssize_t refundable(Ledger *self, double u, int64_t tms) {
    while (self->pool_len) {
        Py_ssize_t n = self->pool_len;
        Py_ssize_t j = (Py_ssize_t)(((int64_t)(u * (double)n)) % n);
        if ((double)(tms - self->pool[j].time) <= self->max_age_ms) return j;
        pool_remove(self, j);
    }
    return -1;
}

static int pool_push(Ledger *self, Purchase p) {
    if (self->pool_len == self->pool_cap) {
        Py_ssize_t cap = self->pool_cap ? self->pool_cap * 2 : 4096;
        Purchase *pool = PyMem_Realloc(self->pool, sizeof(Purchase) * cap);
        if (pool == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->pool = pool;
        self->pool_cap = cap;
    }
    self->pool[self->pool_len++] = p;
    return 0;
}

static PyObject *int64_bytes(const int64_t *values, Py_ssize_t n) {
    return PyBytes_FromStringAndSize((const char *)values, n * (Py_ssize_t)sizeof(int64_t));
}

/* run(columns (23 arrays), i0, i1, limit) -> (lines bytes, offsets bytes, times bytes,
 *   keys list, done, legs, skipped, money_in, money_out, events, declined (8), looked at (8),
 *   fraud (k), each event's type code (bytes)) */
static PyObject *Ledger_run(Ledger *self, PyObject *args) {
    PyObject *columns;
    Py_ssize_t i0, i1;
    long long limit;
    if (!PyArg_ParseTuple(args, "O!nnL", &PyTuple_Type, &columns, &i0, &i1, &limit)) return NULL;
    if (PyTuple_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_Format(PyExc_TypeError, "run: expected %d columns", N_COLUMNS);
        return NULL;
    }
    if (self->key_list == NULL || self->state[0] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "run: the Ledger is not initialised");
        return NULL;
    }
    if (i0 < 0 || i1 < i0) {
        PyErr_SetString(PyExc_IndexError, "run: rows [i0, i1) out of order");
        return NULL;
    }
    Column col[N_COLUMNS] = {{{0}}};
    Column st[N_STATE] = {{{0}}};
    PyObject *result = NULL;
    Out out = {NULL, NULL, 0, 0};
    int64_t *offsets = NULL, *times = NULL, *accounts = NULL;
    PyObject *types_bytes = NULL;
    char *types = NULL;
    for (int c = 0; c < N_COLUMNS; c++)
        if (column(&col[c], PyTuple_GET_ITEM(columns, c), COLUMN_SIZES[c], i1, COLUMN_NAMES[c],
                   0) < 0)
            goto done;
    for (int c = 0; c < N_STATE; c++)
        if (column(&st[c], self->state[c], 8, self->keys.n, "state", 1) < 0) goto done;

    const int64_t *acc = col[C_ACC].view.buf, *typ = col[C_TYP].view.buf;
    const int64_t *dir = col[C_DIR].view.buf, *amount = col[C_AMOUNT].view.buf;
    const int64_t *cp_kind = col[C_CP_KIND].view.buf, *cp_id = col[C_CP_ID].view.buf;
    const double *uu = col[C_U].view.buf, *drain = col[C_DRAIN].view.buf;
    const int64_t *fraud = col[C_FRAUD].view.buf, *instance = col[C_INSTANCE].view.buf;
    const char *new_device = col[C_NEW_DEVICE].view.buf, *blocked = col[C_BLOCKED].view.buf;
    const int64_t *time_ms = col[C_TIME].view.buf, *nkey = col[C_NKEY].view.buf;
    const int64_t *dkey = col[C_DKEY].view.buf;
    const char *limited = col[C_LIMITED].view.buf, *special = col[C_SPECIAL].view.buf;
    const char *internal_col = col[C_INTERNAL].view.buf;
    const char *refundable_col = col[C_REFUNDABLE].view.buf;
    const int64_t *head = col[C_HEAD].view.buf, *category = col[C_CATEGORY].view.buf;
    const int64_t *cap = col[C_CAP].view.buf, *ndkey = col[C_NDKEY].view.buf;
    int64_t *balance = st[0].view.buf, *floor_ = st[1].view.buf, *seq = st[2].view.buf;
    int64_t *night_key = st[3].view.buf, *night_sum = st[4].view.buf;
    int64_t *day_key = st[5].view.buf, *day_sum = st[6].view.buf;
    int64_t *device_key = st[7].view.buf, *device_sum = st[8].view.buf;
    int64_t *statement = st[9].view.buf;

    Py_ssize_t rows = i1 > i0 ? i1 - i0 : 0;
    Py_ssize_t most = 2 * rows; /* every row makes at most two events */
    if (out_open(&out, rows * 900 + 2 * self->max_line) < 0) goto done;
    offsets = PyMem_Malloc(sizeof(int64_t) * (most + 1));
    times = PyMem_Malloc(sizeof(int64_t) * (most + 1));
    accounts = PyMem_Malloc(sizeof(int64_t) * (most + 1));
    if (offsets == NULL || times == NULL || accounts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    types_bytes = PyBytes_FromStringAndSize(NULL, most + 1);
    if (types_bytes == NULL) goto done;
    types = PyBytes_AS_STRING(types_bytes);
    Py_ssize_t n_lines = 0;
    int64_t counter = self->counter;
    int64_t end = counter + limit;
    int64_t declined[N_TYPES] = {0};
    int64_t fraud_counts[MAX_TYPOLOGIES] = {0};
    int64_t looked_at[N_TYPES] = {0};
    int64_t legs = 0, money_in = 0, money_out = 0, skipped = 0;
    Py_ssize_t done_rows = rows;
    Py_ssize_t n_categories = self->categories.n;
    Py_ssize_t max_line = self->max_line;
    Py_ssize_t n_accounts = self->keys.n, n_heads = self->heads.n;

    for (Py_ssize_t g = i0; g < i1; g++) {
        if (counter >= end) {
            done_rows = g - i0;
            break;
        }
        if (out_reserve(&out, 2 * max_line) < 0) goto done;
        int64_t t = typ[g];
        if (t >= 0 && t < N_TYPES) looked_at[t]++;
        int64_t a = acc[g], amt = amount[g], tms = time_ms[g];
        if (a < 0 || a >= n_accounts || head[g] < 0 || head[g] + self->n_channels >= n_heads ||
            category[g] >= n_categories || fraud[g] < 0 || fraud[g] > self->typologies.n ||
            (cp_kind[g] == CP_ACCOUNT && (cp_id[g] < 0 || cp_id[g] >= n_accounts))) {
            PyErr_Format(PyExc_IndexError, "run: row %zd refers to no account, type or table", g);
            goto done;
        }
        if (t == TYPE_CLOSE) { /* a credit card's statement closes: what it owes now, no event */
            statement[a] = balance[a] < 0 ? -balance[a] : 0;
            continue;
        }
        int internal = internal_col[g];
        int external_instead = 0;
        if (internal == INTERNAL_UPKEEP && counter + 1 == end) {
            /* a card's own upkeep (a statement paid, a prepaid card topped up) never leaves the
             * bank: with no room for both legs it makes no event */
            if (t >= 0 && t < N_TYPES) looked_at[t]--;
            continue;
        }
        if (internal && counter + 1 == end) {
            /* no room for both legs: the last event of the quota pays outside the bank (a book
             * transfer, which cannot, by Pix) */
            internal = 0;
            external_instead = 1;
        }
        const char *status = APPROVED;
        Py_ssize_t status_len = sizeof(APPROVED) - 1;
        int is_fraud = 0, has_ref = 0, from_pool = 0, device = 0;
        int64_t ref_counter = 0, pool_cp = 0, f = 0;
        if (special[g]) {
            if (t == TYPE_REFUND) {
                Py_ssize_t j = refundable(self, uu[g], tms);
                if (j < 0) { /* nothing left to refund */
                    skipped++;
                    continue;
                }
                Purchase *p = &self->pool[j];
                a = p->account;
                int64_t left = p->left;
                double u = uu[g];
                if (fmod(u * 7.0, 1.0) < self->partial_share && left > 1) {
                    amt = (int64_t)((double)left * fmod(u * 13.0, 1.0));
                    if (amt < 1) amt = 1;
                } else {
                    amt = left;
                }
                ref_counter = p->counter;
                pool_cp = p->cp_key;
                has_ref = 1;
                from_pool = 1;
                if (amt >= left)
                    pool_remove(self, j);
                else
                    p->left -= amt;
            }
            double d = drain[g];
            if (d > 0.0 && dir[g] < 0) {
                amt = (int64_t)((double)(balance[a] - floor_[a]) * d);
                if (amt < 1) amt = 1;
            } else if (d < 0.0) {
                /* a credit card's statement paid: this share of what it owed at the close, never
                 * more than it owes now (refunds since); nothing owed, no payment */
                int64_t b = cp_id[g];
                if (b < 0 || b >= n_accounts) {
                    PyErr_Format(PyExc_IndexError, "run: row %zd pays no account", g);
                    goto done;
                }
                int64_t owed = balance[b] == INT64_MIN ? INT64_MAX : -balance[b];
                if (statement[b] < owed) owed = statement[b];
                if (owed <= 0) {
                    if (t >= 0 && t < N_TYPES) looked_at[t]--;
                    continue;
                }
                amt = (int64_t)ceil((double)owed * -d);
                if (amt < 1) amt = 1;
                if (amt > owed) amt = owed;
                /* checking holding less pays what it holds (a partial payment); nothing: declined */
                int64_t room;
                if (!__builtin_sub_overflow(balance[a], floor_[a], &room) && room > 0 && room < amt)
                    amt = room;
            }
            f = fraud[g];
            if (f) {
                is_fraud = 1;
                if (f >= 1 && f <= MAX_TYPOLOGIES) fraud_counts[f - 1]++;
            }
            device = new_device[g];
            if (blocked[g]) {
                status = BLOCKED;
                status_len = sizeof(BLOCKED) - 1;
            }
        }
        int64_t before = balance[a], after, low;
        if (__builtin_sub_overflow(before, amt, &low)) low = INT64_MIN;
        if (dir[g] < 0) {
            if (status != APPROVED) {
                /* blocked */
            } else if (low < floor_[a]) {
                status = INSUFFICIENT;
                status_len = sizeof(INSUFFICIENT) - 1;
            } else if (limited[g]) {
                int64_t nk = nkey[g], dk = dkey[g], vk = ndkey[g], one_cap = cap[g];
                if (vk < -1) { /* a book transfer from a new device: a Pix's caps if paid so */
                    if (external_instead) {
                        vk = -2 - vk;
                        one_cap = self->device_per_pix;
                    } else {
                        vk = -1;
                    }
                }
                /* one operation over its own cap (new-device Pix, cash by day or night), or a
                 * running total (new-device Pix of the day, the night, the day) over its limit */
                if (amt > one_cap ||
                    (vk >= 0 && window_over(device_key, device_sum, a, vk, amt,
                                            self->device_daily_max)) ||
                    (nk >= 0 && window_over(night_key, night_sum, a, nk, amt, self->night_max)) ||
                    (dk >= 0 && window_over(day_key, day_sum, a, dk, amt, self->daily_max))) {
                    status = LIMIT;
                    status_len = sizeof(LIMIT) - 1;
                }
                if (status == APPROVED) {
                    if (nk >= 0) night_sum[a] += amt;
                    if (dk >= 0) day_sum[a] += amt;
                    if (vk >= 0) device_sum[a] += amt;
                }
            }
            if (status == APPROVED) {
                after = balance[a] = low;
                if (!internal && __builtin_add_overflow(money_out, amt, &money_out)) goto overflow;
            } else {
                after = before;
                if (t >= 0 && t < N_TYPES) declined[t]++;
            }
        } else {
            if (__builtin_add_overflow(before, amt, &after)) goto overflow;
            balance[a] = after;
            if (__builtin_add_overflow(money_in, amt, &money_in)) goto overflow;
        }
        int64_t s = ++seq[a];
        counter++;

        offsets[n_lines] = out.len;
        times[n_lines] = tms;
        accounts[n_lines] = a;
        types[n_lines] = (char)t;
        n_lines++;
        PUTS(&out, "{\"tx_id\":\"");
        PUT(&out, self->prefix, self->prefix_len);
        put_i64(&out, counter);
        PUTS(&out, "\",");
        put_who(&out, self, a, device);
        out.data[out.len++] = ',';
        Py_ssize_t h = (Py_ssize_t)head[g];
        if (external_instead && (h / self->n_channels / 2) % 8 - 1 == RAIL_INTERNAL)
            h -= (RAIL_INTERNAL - RAIL_PIX) * 2 * self->n_channels; /* a book transfer: by Pix */
        put_table(&out, &self->heads, h);
        PUTS(&out, ",\"amount\":");
        put_i64(&out, amt);
        PUTS(&out, ",\"balance_before\":");
        put_i64(&out, before);
        PUTS(&out, ",\"balance_after\":");
        put_i64(&out, after);
        out.data[out.len++] = ',';
        PUT(&out, status, status_len);
        if (from_pool)
            put_counterparty(&out, self, pool_cp >> 40, pool_cp & 0xFFFFFFFFFFLL);
        else if (external_instead)
            put_counterparty(&out, self, CP_EXTERNAL, cp_id[g]);
        else
            put_counterparty(&out, self, cp_kind[g], cp_id[g]);
        out.data[out.len++] = ',';
        int64_t cat = category[g];
        put_table(&out, &self->categories, (Py_ssize_t)(cat >= 0 ? cat : n_categories - 1));
        PUTS(&out, "\"seq\":");
        put_i64(&out, s);
        PUTS(&out, ",\"event_time\":");
        put_i64(&out, tms);
        out.data[out.len++] = ',';
        if (is_fraud)
            put_fraud(&out, self, f, instance[g]);
        else
            PUTS(&out, NO_FRAUD);
        if (has_ref) {
            out.data[out.len++] = '"';
            PUT(&out, self->prefix, self->prefix_len);
            put_i64(&out, ref_counter);
            out.data[out.len++] = '"';
        } else {
            PUTS(&out, "null");
        }
        PUT(&out, self->tail, self->tail_len);

        if (status != APPROVED) continue;
        if (refundable_col[g]) {
            Purchase p = {counter, tms, amt, (cp_kind[g] << 40) | cp_id[g], (int32_t)a};
            if (pool_push(self, p) < 0) goto done;
        } else if (internal) {
            /* the other leg: the same money arrives in the counterparty's account */
            int64_t b = cp_id[g];
            int64_t b_before = balance[b], b_after;
            if (__builtin_add_overflow(b_before, amt, &b_after)) goto overflow;
            balance[b] = b_after;
            int64_t sb = ++seq[b];
            if (t == TYPE_TRANSFER)
                legs++;
            else if (t >= 0 && t < N_TYPES)
                looked_at[t]++; /* the credit leg of a statement paid */
            if (is_fraud && f >= 1 && f <= MAX_TYPOLOGIES) fraud_counts[f - 1]++;
            counter++;
            offsets[n_lines] = out.len;
            times[n_lines] = tms;
            accounts[n_lines] = b;
            types[n_lines] = (char)t;
            n_lines++;
            PUTS(&out, "{\"tx_id\":\"");
            PUT(&out, self->prefix, self->prefix_len);
            put_i64(&out, counter);
            PUTS(&out, "\",");
            put_who(&out, self, b, 0);
            out.data[out.len++] = ',';
            put_table(&out, &self->heads, (Py_ssize_t)(head[g] + self->n_channels));
            PUTS(&out, ",\"amount\":");
            put_i64(&out, amt);
            PUTS(&out, ",\"balance_before\":");
            put_i64(&out, b_before);
            PUTS(&out, ",\"balance_after\":");
            put_i64(&out, b_after);
            PUTS(&out, ",\"status\":\"approved\",\"decline_reason\":null,");
            put_counterparty(&out, self, CP_ACCOUNT, a);
            PUTS(&out, ",\"merchant_category\":null,\"mcc\":null,\"seq\":");
            put_i64(&out, sb);
            PUTS(&out, ",\"event_time\":");
            put_i64(&out, tms);
            out.data[out.len++] = ',';
            if (is_fraud)
                put_fraud(&out, self, f, instance[g]);
            else
                PUTS(&out, NO_FRAUD);
            out.data[out.len++] = '"';
            PUT(&out, self->prefix, self->prefix_len);
            put_i64(&out, counter - 1);
            out.data[out.len++] = '"';
            PUT(&out, self->tail, self->tail_len);
        }
    }
    offsets[n_lines] = out.len;
    self->counter = counter;

    PyObject *declined_t = PyTuple_New(N_TYPES);
    PyObject *looked_t = PyTuple_New(N_TYPES);
    PyObject *fraud_t = PyTuple_New(self->typologies.n);
    if (declined_t == NULL || looked_t == NULL || fraud_t == NULL) {
        Py_XDECREF(declined_t);
        Py_XDECREF(looked_t);
        Py_XDECREF(fraud_t);
        goto done;
    }
    for (int k = 0; k < N_TYPES; k++) {
        PyTuple_SET_ITEM(declined_t, k, PyLong_FromLongLong(declined[k]));
        PyTuple_SET_ITEM(looked_t, k, PyLong_FromLongLong(looked_at[k]));
    }
    for (Py_ssize_t k = 0; k < self->typologies.n; k++)
        PyTuple_SET_ITEM(fraud_t, k, PyLong_FromLongLong(fraud_counts[k]));
    PyObject *keys_out = PyList_New(n_lines);
    if (keys_out == NULL) {
        Py_DECREF(declined_t);
        Py_DECREF(looked_t);
        Py_DECREF(fraud_t);
        goto done;
    }
    Py_ssize_t n_keys = PyList_GET_SIZE(self->key_list);
    for (Py_ssize_t k = 0; k < n_lines; k++) {
        PyObject *key = accounts[k] < n_keys ? PyList_GET_ITEM(self->key_list, accounts[k]) : Py_None;
        Py_INCREF(key);
        PyList_SET_ITEM(keys_out, k, key);
    }
    if (_PyBytes_Resize(&types_bytes, n_lines) < 0) {
        Py_DECREF(keys_out);
        Py_DECREF(declined_t);
        Py_DECREF(looked_t);
        Py_DECREF(fraud_t);
        goto done;
    }
    result = Py_BuildValue("(NNNNnLLLLLNNNN)", out_close(&out),
                           int64_bytes(offsets, n_lines + 1), int64_bytes(times, n_lines),
                           keys_out, done_rows, (long long)legs,
                           (long long)skipped, (long long)money_in, (long long)money_out,
                           (long long)n_lines, declined_t, looked_t, fraud_t, types_bytes);
    types_bytes = NULL;
    goto done;
overflow:
    PyErr_SetString(PyExc_OverflowError,
                    "an account's balance, or the money in or out of the bank, passed the 64-bit "
                    "range of cents: lower the scenario's amounts or the run's length");
done:
    for (int c = 0; c < N_COLUMNS; c++)
        if (col[c].held) PyBuffer_Release(&col[c].view);
    for (int c = 0; c < N_STATE; c++)
        if (st[c].held) PyBuffer_Release(&st[c].view);
    Py_XDECREF(out.bytes);
    Py_XDECREF(types_bytes);
    PyMem_Free(offsets);
    PyMem_Free(times);
    PyMem_Free(accounts);
    return result;
}

/* sweep(oldest_ms): forget purchases older than `oldest_ms` (the pool keeps its order) */
static PyObject *Ledger_sweep(Ledger *self, PyObject *args) {
    double oldest;
    if (!PyArg_ParseTuple(args, "d", &oldest)) return NULL;
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < self->pool_len; i++)
        if ((double)self->pool[i].time >= oldest) self->pool[kept++] = self->pool[i];
    self->pool_len = kept;
    return PyLong_FromSsize_t(kept);
}

static PyObject *Ledger_get_counter(Ledger *self, void *closure) {
    return PyLong_FromLongLong(self->counter);
}

static PyObject *Ledger_get_pool_size(Ledger *self, void *closure) {
    return PyLong_FromSsize_t(self->pool_len);
}

/* gather(parts, part, start, length, send_ms, newline) -> (bytes, offsets): the events [start, start +
 * length) of parts[part], in the order given (int64 arrays), back to back, each followed by a
 * newline when `newline` (JSON lines). With `send_ms` (an int64 array, or None), each event's
 * final `null}` (its send_time) becomes the number: one copy for the order and the send time.
 * `offsets` (int64, n + 1) says where each event starts in it. */
static PyObject *gather(PyObject *module, PyObject *args) {
    PyObject *parts, *part_obj, *start_obj, *length_obj, *send_obj;
    int newline;
    if (!PyArg_ParseTuple(args, "O!OOOOp", &PyTuple_Type, &parts, &part_obj, &start_obj,
                          &length_obj, &send_obj, &newline))
        return NULL;
    Py_buffer part = {0}, start = {0}, length = {0}, send = {0};
    PyObject *result = NULL;
    if (PyObject_GetBuffer(part_obj, &part, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(start_obj, &start, PyBUF_C_CONTIGUOUS) < 0) goto done;
    if (PyObject_GetBuffer(length_obj, &length, PyBUF_C_CONTIGUOUS) < 0) goto done;
    if (send_obj != Py_None && PyObject_GetBuffer(send_obj, &send, PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    Py_ssize_t n = part.len / 8;
    if (part.itemsize != 8 || start.len != part.len || length.len != part.len ||
        (send.buf && send.len != part.len)) {
        PyErr_SetString(PyExc_ValueError, "gather: int64 arrays of one length");
        goto done;
    }
    const int64_t *p = part.buf, *a = start.buf, *l = length.buf, *ms = send.buf;
    Py_ssize_t n_parts = PyTuple_GET_SIZE(parts), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= n_parts) {
            PyErr_SetString(PyExc_IndexError, "gather: no such part");
            goto done;
        }
        PyObject *b = PyTuple_GET_ITEM(parts, p[i]);
        if (!PyBytes_Check(b) || a[i] < 0 || l[i] < 5 || a[i] > PyBytes_GET_SIZE(b) ||
            l[i] > PyBytes_GET_SIZE(b) - a[i]) {
            PyErr_SetString(PyExc_IndexError, "gather: an event outside its part");
            goto done;
        }
        if (ms && memcmp(PyBytes_AS_STRING(b) + a[i] + l[i] - 5, "null}", 5) != 0) {
            PyErr_SetString(PyExc_ValueError, "gather: an event's send time is already set");
            goto done;
        }
        if (__builtin_add_overflow(total, l[i] + newline + (ms ? 16 : 0), &total)) {
            PyErr_SetString(PyExc_OverflowError, "gather: more than fits in memory");
            goto done;
        }
    }
    Out out = {NULL, NULL, 0, 0};
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * (Py_ssize_t)sizeof(int64_t));
    if (offsets == NULL) goto done;
    int64_t *at = (int64_t *)PyBytes_AS_STRING(offsets);
    if (out_open(&out, total) < 0) {
        Py_DECREF(offsets);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        at[i] = out.len;
        const char *event = PyBytes_AS_STRING(PyTuple_GET_ITEM(parts, p[i])) + a[i];
        if (ms) {
            PUT(&out, event, l[i] - 5);
            put_i64(&out, ms[i]);
            out.data[out.len++] = '}';
        } else {
            PUT(&out, event, l[i]);
        }
        if (newline) out.data[out.len++] = '\n';
    }
    at[n] = out.len;
    PyObject *data = out_close(&out);
    if (data == NULL) {
        Py_XDECREF(out.bytes);
        Py_DECREF(offsets);
        goto done;
    }
    result = Py_BuildValue("(NN)", data, offsets);
done:
    PyBuffer_Release(&part);
    if (start.buf) PyBuffer_Release(&start);
    if (length.buf) PyBuffer_Release(&length);
    if (send.buf) PyBuffer_Release(&send);
    return result;
}

/* values(parts, part, start, length, send_ms) -> list of bytes: each event as its own bytes
 * object (a Kafka message value), its final `null}` replaced by its send time: one copy. */
static PyObject *values(PyObject *module, PyObject *args) {
    PyObject *parts, *part_obj, *start_obj, *length_obj, *send_obj;
    if (!PyArg_ParseTuple(args, "O!OOOO", &PyTuple_Type, &parts, &part_obj, &start_obj,
                          &length_obj, &send_obj))
        return NULL;
    Py_buffer part = {0}, start = {0}, length = {0}, send = {0};
    PyObject *result = NULL;
    if (PyObject_GetBuffer(part_obj, &part, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(start_obj, &start, PyBUF_C_CONTIGUOUS) < 0) goto done;
    if (PyObject_GetBuffer(length_obj, &length, PyBUF_C_CONTIGUOUS) < 0) goto done;
    if (PyObject_GetBuffer(send_obj, &send, PyBUF_C_CONTIGUOUS) < 0) goto done;
    Py_ssize_t n = part.len / 8;
    if (part.itemsize != 8 || start.len != part.len || length.len != part.len ||
        send.len != part.len) {
        PyErr_SetString(PyExc_ValueError, "values: int64 arrays of one length");
        goto done;
    }
    const int64_t *p = part.buf, *a = start.buf, *l = length.buf, *ms = send.buf;
    Py_ssize_t n_parts = PyTuple_GET_SIZE(parts);
    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = p[i] >= 0 && p[i] < n_parts ? PyTuple_GET_ITEM(parts, p[i]) : NULL;
        if (b == NULL || !PyBytes_Check(b) || a[i] < 0 || l[i] < 5 ||
            a[i] > PyBytes_GET_SIZE(b) || l[i] > PyBytes_GET_SIZE(b) - a[i]) {
            PyErr_SetString(PyExc_IndexError, "values: an event outside its part");
            Py_CLEAR(result);
            goto done;
        }
        const char *event = PyBytes_AS_STRING(b) + a[i];
        if (memcmp(event + l[i] - 5, "null}", 5) != 0) {
            PyErr_SetString(PyExc_ValueError, "values: an event's send time is already set");
            Py_CLEAR(result);
            goto done;
        }
        char tail[24];
        Out t = {NULL, tail, 0, sizeof(tail)};
        put_i64(&t, ms[i]);
        t.data[t.len++] = '}';
        PyObject *value = PyBytes_FromStringAndSize(NULL, l[i] - 5 + t.len);
        if (value == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        memcpy(PyBytes_AS_STRING(value), event, l[i] - 5);
        memcpy(PyBytes_AS_STRING(value) + l[i] - 5, tail, t.len);
        PyList_SET_ITEM(result, i, value);
    }
done:
    PyBuffer_Release(&part);
    if (start.buf) PyBuffer_Release(&start);
    if (length.buf) PyBuffer_Release(&length);
    if (send.buf) PyBuffer_Release(&send);
    return result;
}

static PyMethodDef module_methods[] = {
    {"gather", gather, METH_VARARGS, "events of several buffers, in a given order, as lines"},
    {"values", values, METH_VARARGS, "events as bytes objects, their send times filled in"},
    {NULL, NULL, 0, NULL}};

static PyMethodDef Ledger_methods[] = {
    {"run", (PyCFunction)Ledger_run, METH_VARARGS, "the events of rows [i0, i1)"},
    {"sweep", (PyCFunction)Ledger_sweep, METH_VARARGS, "forget purchases past the window"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Ledger_getset[] = {
    {"counter", (getter)Ledger_get_counter, NULL, "events made so far", NULL},
    {"pool_size", (getter)Ledger_get_pool_size, NULL, "refundable purchases held", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject LedgerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loadgen._ledger.Ledger",
    .tp_basicsize = sizeof(Ledger),
    .tp_dealloc = (destructor)Ledger_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The ledger's event loop (see loadgen/ledger.py for the reference).",
    .tp_methods = Ledger_methods,
    .tp_getset = Ledger_getset,
    .tp_init = (initproc)Ledger_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ledger",
                                    "The ledger's event loop in C.", -1, module_methods};

PyMODINIT_FUNC PyInit__ledger(void) {
    if (PyType_Ready(&LedgerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&LedgerType);
    if (PyModule_AddObject(m, "Ledger", (PyObject *)&LedgerType) < 0) {
        Py_DECREF(&LedgerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
