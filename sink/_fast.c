/* The sink's fast path: one Kafka message of an event, as the engine writes it, straight to the
 * BSON document `transactions` stores (`_id` = tx id first, then the fields), with the contract's
 * whole check on the way (bankstream/events.py `problem`, and the key being the account).
 *
 * It only takes what it can take for certain: the fields in the contract's order, each once, no
 * whitespace, integers without fraction or exponent, strings of valid UTF-8. Anything else
 * (another order, a float, a bad escape, a failed rule) gives None, and the caller decodes the
 * message the slow way (orjson + `problem`), which accepts or refuses it with its reason. So the
 * fast path never decides that a message is bad, and a document it makes is the one pymongo
 * would make of the slow path's dict (ints that fit 32 bits as int32, others as int64; tested).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { K_STR = 1, K_OSTR = 2, K_INT = 3, K_BOOL = 4, K_ENUM = 5, K_OINT = 6 };
enum { V_NULL = 0, V_STR = 1, V_INT = 2, V_BOOL = 3 };

#define MAX_FIELDS 64
#define MAX_VALUES 32

typedef struct {
    const char *s; /* unescaped UTF-8 in the scratch buffer */
    Py_ssize_t n;
    int64_t i;
    int kind; /* V_* */
} Value;

typedef struct {
    PyObject_HEAD
    int n_fields;
    int kinds[MAX_FIELDS];
    char *names[MAX_FIELDS]; /* owned copies */
    Py_ssize_t name_len[MAX_FIELDS];
    /* allowed values of an enum field: strings, and whether null is allowed */
    int n_allowed[MAX_FIELDS];
    char *allowed[MAX_FIELDS][MAX_VALUES];
    Py_ssize_t allowed_len[MAX_FIELDS][MAX_VALUES];
    int null_ok[MAX_FIELDS];
    int64_t version;
    int i_tx, i_account, i_amount, i_seq, i_mcc, i_send, i_status, i_decline, i_version;
    char *approved;
    Py_ssize_t approved_len;
    Py_ssize_t max_bytes; /* a longer message is not an event (the slow path says so) */
    char *scratch;        /* unescaped strings of one message */
} Contract;

static void Contract_dealloc(Contract *self) {
    for (int f = 0; f < self->n_fields; f++) {
        PyMem_Free(self->names[f]);
        for (int v = 0; v < self->n_allowed[f]; v++) PyMem_Free(self->allowed[f][v]);
    }
    PyMem_Free(self->approved);
    PyMem_Free(self->scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static char *copy_bytes(PyObject *b, Py_ssize_t *len) {
    char *data;
    if (PyBytes_AsStringAndSize(b, &data, len) < 0) return NULL;
    char *out = PyMem_Malloc((size_t)*len + 1);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, data, (size_t)*len);
    out[*len] = '\0';
    return out;
}

/* Contract(names, kinds, enums, version, positions, approved, max_bytes)
 *   names: tuple of bytes (the fields in order); kinds: bytes (K_* per field);
 *   enums: tuple, per field None or (tuple of bytes allowed, null allowed);
 *   positions: (tx_id, account, amount, seq, mcc, send_time, status, decline_reason,
 *               event_version) indexes; approved: the status that has no decline reason */
static int Contract_init(Contract *self, PyObject *args, PyObject *kw) {
    PyObject *names, *enums, *positions, *approved;
    const char *kinds;
    Py_ssize_t n_kinds, max_bytes;
    long long version;
    if (self->scratch != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "contract: already initialised");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O!y#O!LO!Sn", &PyTuple_Type, &names, &kinds, &n_kinds,
                          &PyTuple_Type, &enums, &version, &PyTuple_Type, &positions, &approved,
                          &max_bytes))
        return -1;
    if (max_bytes < 2 || max_bytes > (Py_ssize_t)1 << 30) {
        PyErr_SetString(PyExc_ValueError, "contract: max_bytes out of range");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (n > MAX_FIELDS || n != n_kinds || n != PyTuple_GET_SIZE(enums) ||
        PyTuple_GET_SIZE(positions) != 9) {
        PyErr_SetString(PyExc_ValueError, "contract: names, kinds and enums disagree");
        return -1;
    }
    self->n_fields = 0;
    for (Py_ssize_t f = 0; f < n; f++) {
        self->names[f] = copy_bytes(PyTuple_GET_ITEM(names, f), &self->name_len[f]);
        if (self->names[f] == NULL) return -1;
        self->n_fields = (int)f + 1;
        self->kinds[f] = kinds[f];
        self->n_allowed[f] = 0;
        self->null_ok[f] = 0;
        PyObject *e = PyTuple_GET_ITEM(enums, f);
        if (e == Py_None) continue;
        PyObject *values = PyTuple_GetItem(e, 0), *null_ok = PyTuple_GetItem(e, 1);
        if (values == NULL || null_ok == NULL || !PyTuple_Check(values) ||
            PyTuple_GET_SIZE(values) > MAX_VALUES) {
            PyErr_SetString(PyExc_ValueError, "contract: an enum is (values, null allowed)");
            return -1;
        }
        self->null_ok[f] = PyObject_IsTrue(null_ok);
        if (self->null_ok[f] < 0) return -1;
        for (Py_ssize_t v = 0; v < PyTuple_GET_SIZE(values); v++) {
            self->allowed[f][v] =
                copy_bytes(PyTuple_GET_ITEM(values, v), &self->allowed_len[f][v]);
            if (self->allowed[f][v] == NULL) return -1;
            self->n_allowed[f] = (int)v + 1;
        }
    }
    int *at[9] = {&self->i_tx,     &self->i_account, &self->i_amount,
                  &self->i_seq,    &self->i_mcc,     &self->i_send,
                  &self->i_status, &self->i_decline, &self->i_version};
    for (int k = 0; k < 9; k++) {
        long p = PyLong_AsLong(PyTuple_GET_ITEM(positions, k));
        if (p < 0 || p >= n) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "contract: bad position");
            return -1;
        }
        *at[k] = (int)p;
    }
    /* the rules read these fields as strings, integers and enums: refuse a contract where they
     * are not (tx_id, account; amount, seq; mcc, send_time; status, decline_reason; version) */
    static const int expected[9] = {K_STR, K_STR, K_INT, K_INT, K_OINT, K_OINT, K_ENUM, K_ENUM,
                                    K_INT};
    for (int k = 0; k < 9; k++) {
        if (self->kinds[*at[k]] != expected[k]) {
            PyErr_SetString(PyExc_ValueError, "contract: a field of the rules has another kind");
            return -1;
        }
    }
    if (!self->null_ok[self->i_decline]) {
        PyErr_SetString(PyExc_ValueError, "contract: decline_reason must allow null");
        return -1;
    }
    self->version = version;
    self->approved = copy_bytes(approved, &self->approved_len);
    if (self->approved == NULL) return -1;
    self->max_bytes = max_bytes;
    self->scratch = PyMem_Malloc((size_t)max_bytes + 16);
    if (self->scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *out) {
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* the length of a valid UTF-8 sequence at p (first byte >= 0x80), or 0 */
static int utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    int n;
    uint32_t cp, least;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, least = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F, least = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, least = 0x10000;
    else return 0;
    if (end - p < n) return 0;
    for (int k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp < least || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

static char *put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* a JSON string at *pp (just after its opening quote), unescaped into *out; 0 or -1 */
static int read_string(const unsigned char **pp, const unsigned char *end, char **out,
                       Value *v) {
    const unsigned char *p = *pp;
    char *o = *out;
    v->s = o;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            v->n = o - v->s;
            v->kind = V_STR;
            *pp = p + 1;
            *out = o;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (end - p < 2) return -1;
            unsigned char e = p[1];
            p += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                uint32_t cp, low;
                if (hex4(p, end, &cp) < 0) return -1;
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return -1; /* a lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
                    if (hex4(p + 2, end, &low) < 0 || low < 0xDC00 || low > 0xDFFF) return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                o = put_utf8(o, cp);
                break;
            }
            default:
                return -1;
            }
            continue;
        }
        if (c >= 0x80) {
            int n = utf8_length(p, end);
            if (n == 0) return -1;
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
            continue;
        }
        *o++ = (char)c;
        p++;
    }
    return -1;
}

/* a JSON integer (no fraction, no exponent) that a signed 64-bit integer holds */
static int read_int(const unsigned char **pp, const unsigned char *end, Value *v) {
    const unsigned char *p = *pp;
    int negative = 0;
    if (p < end && *p == '-') negative = 1, p++;
    if (p >= end || *p < '0' || *p > '9') return -1;
    if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') return -1; /* leading zero */
    uint64_t u = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p - '0');
        if (u > (UINT64_MAX - d) / 10) return -1;
        u = u * 10 + d;
        p++;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return -1;
    if (negative) {
        if (u > (uint64_t)INT64_MAX + 1) return -1;
        v->i = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX) return -1;
        v->i = (int64_t)u;
    }
    v->kind = V_INT;
    *pp = p;
    return 0;
}

static int literal(const unsigned char **pp, const unsigned char *end, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(end - *pp) < n || memcmp(*pp, word, n) != 0) return -1;
    *pp += n;
    return 0;
}

static int is(const Value *v, const char *s, Py_ssize_t n) {
    return v->kind == V_STR && v->n == n && memcmp(v->s, s, (size_t)n) == 0;
}

static Py_ssize_t element_size(const Contract *self, int f, const Value *v) {
    Py_ssize_t head = 1 + self->name_len[f] + 1;
    switch (v->kind) {
    case V_STR: return head + 4 + v->n + 1;
    case V_INT: return head + (v->i >= INT32_MIN && v->i <= INT32_MAX ? 4 : 8);
    case V_BOOL: return head + 1;
    default: return head;
    }
}

static char *put_le32(char *o, int32_t x) {
    uint32_t u = (uint32_t)x;
    for (int k = 0; k < 4; k++) *o++ = (char)((u >> (8 * k)) & 0xFF);
    return o;
}

static char *put_element(char *o, const char *name, Py_ssize_t name_len, const Value *v) {
    char type = v->kind == V_STR ? 0x02
                : v->kind == V_BOOL ? 0x08
                : v->kind == V_NULL ? 0x0A
                : (v->i >= INT32_MIN && v->i <= INT32_MAX) ? 0x10
                                                            : 0x12;
    *o++ = type;
    memcpy(o, name, (size_t)name_len);
    o += name_len;
    *o++ = '\0';
    switch (type) {
    case 0x02:
        o = put_le32(o, (int32_t)(v->n + 1));
        memcpy(o, v->s, (size_t)v->n);
        o += v->n;
        *o++ = '\0';
        break;
    case 0x08: *o++ = (char)(v->i ? 1 : 0); break;
    case 0x10: o = put_le32(o, (int32_t)v->i); break;
    case 0x12: {
        uint64_t u = (uint64_t)v->i;
        for (int k = 0; k < 8; k++) *o++ = (char)((u >> (8 * k)) & 0xFF);
        break;
    }
    default: break;
    }
    return o;
}

/* convert(value, key) -> (BSON document, send_time or None), or None: see the top */
static PyObject *Contract_convert(Contract *self, PyObject *args) {
    Py_buffer value;
    PyObject *key;
    if (self->scratch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "contract not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*O", &value, &key)) return NULL;
    PyObject *result = NULL;
    Value vals[MAX_FIELDS];
    const unsigned char *p = value.buf, *end = p + value.len;
    char *scratch = self->scratch;
    if (value.len > self->max_bytes || !PyBytes_Check(key)) goto slow;
    if (p >= end || *p++ != '{') goto slow;
    for (int f = 0; f < self->n_fields; f++) {
        if (f > 0 && (p >= end || *p++ != ',')) goto slow;
        /* "name": */
        Py_ssize_t nl = self->name_len[f];
        if (end - p < nl + 3 || p[0] != '"' || memcmp(p + 1, self->names[f], (size_t)nl) != 0 ||
            p[nl + 1] != '"' || p[nl + 2] != ':')
            goto slow;
        p += nl + 3;
        if (p >= end) goto slow;
        Value *v = &vals[f];
        int kind = self->kinds[f];
        if (*p == 'n') {
            if (literal(&p, end, "null") < 0) goto slow;
            if (!(kind == K_OSTR || kind == K_OINT || (kind == K_ENUM && self->null_ok[f])))
                goto slow;
            v->kind = V_NULL;
            continue;
        }
        switch (kind) {
        case K_STR:
        case K_OSTR:
        case K_ENUM:
            if (*p != '"') goto slow;
            p++;
            if (read_string(&p, end, &scratch, v) < 0) goto slow;
            if (kind == K_ENUM) {
                int found = 0;
                for (int a = 0; a < self->n_allowed[f] && !found; a++)
                    found = is(v, self->allowed[f][a], self->allowed_len[f][a]);
                if (!found) goto slow;
            }
            break;
        case K_INT:
        case K_OINT:
            if (read_int(&p, end, v) < 0) goto slow;
            break;
        case K_BOOL:
            if (*p == 't') {
                if (literal(&p, end, "true") < 0) goto slow;
                v->i = 1;
            } else {
                if (literal(&p, end, "false") < 0) goto slow;
                v->i = 0;
            }
            v->kind = V_BOOL;
            break;
        default:
            goto slow;
        }
    }
    if (p >= end || *p++ != '}' || p != end) goto slow;
    /* the contract's rules (events.problem), and the key */
    if (vals[self->i_version].i != self->version) goto slow;
    if (vals[self->i_amount].i <= 0 || vals[self->i_seq].i <= 0) goto slow;
    const Value *mcc = &vals[self->i_mcc], *send = &vals[self->i_send];
    if (mcc->kind == V_INT && (mcc->i < 0 || mcc->i >= 10000)) goto slow;
    if (send->kind == V_INT && send->i < 0) goto slow;
    int approved = is(&vals[self->i_status], self->approved, self->approved_len);
    if (approved != (vals[self->i_decline].kind == V_NULL)) goto slow;
    const Value *account = &vals[self->i_account];
    if (PyBytes_GET_SIZE(key) != account->n ||
        memcmp(PyBytes_AS_STRING(key), account->s, (size_t)account->n) != 0)
        goto slow;
    /* the document: _id (the tx id) first, then every field in order */
    static const char id_name[] = "_id";
    const Value *tx = &vals[self->i_tx];
    Py_ssize_t size = 4 + 1 + 3 + 1 + 4 + tx->n + 1 + 1;
    for (int f = 0; f < self->n_fields; f++) size += element_size(self, f, &vals[f]);
    if (size > INT32_MAX) goto slow;
    PyObject *doc = PyBytes_FromStringAndSize(NULL, size);
    if (doc == NULL) goto done;
    char *o = PyBytes_AS_STRING(doc);
    o = put_le32(o, (int32_t)size);
    o = put_element(o, id_name, 3, tx);
    for (int f = 0; f < self->n_fields; f++)
        o = put_element(o, self->names[f], self->name_len[f], &vals[f]);
    *o++ = '\0';
    PyObject *sent = send->kind == V_INT ? PyLong_FromLongLong(send->i) : Py_NewRef(Py_None);
    if (sent == NULL) {
        Py_DECREF(doc);
        goto done;
    }
    result = PyTuple_Pack(2, doc, sent);
    Py_DECREF(doc);
    Py_DECREF(sent);
    goto done;
slow:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&value);
    return result;
}

static PyMethodDef Contract_methods[] = {
    {"convert", (PyCFunction)Contract_convert, METH_VARARGS,
     "convert(value, key) -> (BSON document, send_time or None), or None: decode the slow way"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ContractType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sink._fast.Contract",
    .tp_basicsize = sizeof(Contract),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Contract_init,
    .tp_dealloc = (destructor)Contract_dealloc,
    .tp_methods = Contract_methods,
    .tp_doc = "The event contract, compiled: Kafka message -> BSON document (see sink/fast.py)",
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sink._fast", "The sink's fast path (sink/fast.py)", -1, NULL,
};

PyMODINIT_FUNC PyInit__fast(void) {
    if (PyType_Ready(&ContractType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Contract", (PyObject *)&ContractType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
