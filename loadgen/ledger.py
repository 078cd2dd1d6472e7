"""The exact ledger: planned rows, in time order, become events with approvals and balances.

Sequential by nature (a balance depends on everything before it), so this is the one Python loop
of the engine, kept lean: integer cents in plain lists, JSON assembled from pre-encoded fragments.
Invariants it keeps: an approved debit never takes a balance below the account's floor (minus its
overdraft limit); a declined event leaves balances unchanged; a transfer inside the bank debits
one account and credits another by the same amount; a refund credits at most what is left of an
earlier approved purchase of the same account; sequence numbers are gap-free per account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.events import CHANNELS, FRESH_END
from loadgen.chunk import Chunk
from loadgen.draw import (
    CLOSE,
    CP_ACCOUNT,
    CP_BANK,
    CP_BILLER,
    CP_CASH,
    CP_EMPLOYER,
    CP_EXTERNAL,
    CP_KINDS,
    CP_MERCHANT,
    Rows,
)
from loadgen.errors import LoadgenError
from loadgen.model import (
    BILL,
    CARD,
    FEE,
    INTERNAL,
    MERCHANT_RANKS,
    PIX,
    REFUND,
    SALARY,
    TRANSFER,
    TYPES,
    WITHDRAWAL,
    EngineModel,
    q,
)
from loadgen.population import CellState

# Fragments carry the separator that follows them: an f-string of more than 30 parts compiles to
# a slower ''.join of a list, so the event's f-string is kept at 30 parts.
APPROVED = '"status":"approved","decline_reason":null,'
INSUFFICIENT = '"status":"declined","decline_reason":"insufficient_funds",'
LIMIT = '"status":"declined","decline_reason":"limit_exceeded",'
BLOCKED = '"status":"declined","decline_reason":"blocked_fraud",'
NO_FRAUD = '"fraud":false,"typology":null,"fraud_instance":null,"ref_tx":'
NO_MERCHANT = '"merchant_category":null,"mcc":null,'
NORMAL = NO_FRAUD + "null"  # no fraud, no referenced transaction
N_CHANNELS = len(CHANNELS)
MAX_CENTS = 2**63 - 1  # balances and sums are 64-bit (the C loop's, MongoDB's long)
OVERFLOW = (
    "{}: an account's balance, or the money in or out of the bank, passed the 64-bit range of "
    "cents: lower the scenario's amounts or the run's length"
)
POOL_TARGET = 4096  # refundable purchases a cell keeps (a sample of its refund window)
NO_CAP = 2**63 - 1  # an operation without a cap of its own
UPKEEP = 2  # Prepared.internal of a card's upkeep (INTERNAL_UPKEEP in the C loop)


# A refundable purchase is kept as one int, not a container the garbage collector would track
# (one for every card purchase and bill): its tx counter, account, amount, time (ms, shifted to
# stay positive) and counterparty key, in fields of these many bits, the last lowest.
CP_BITS, TIME_BITS, AMOUNT_BITS, ACCOUNT_BITS = 48, 45, 56, 32
TIME_SHIFT = 1 << 44


def purchase(counter: int, account: int, amount: int, time_ms: int, cp_key: int) -> int:
    packed = (counter << ACCOUNT_BITS | account) << AMOUNT_BITS | amount
    return (packed << TIME_BITS | time_ms + TIME_SHIFT) << CP_BITS | cp_key


def time_of(entry: int) -> int:
    """The time (ms) of a packed purchase."""
    return ((entry >> CP_BITS) & ((1 << TIME_BITS) - 1)) - TIME_SHIFT


def unpack(entry: int) -> tuple[int, int, int, int, int]:
    """(counter, account, amount, time ms, counterparty key) of a packed purchase."""
    cp_key = entry & ((1 << CP_BITS) - 1)
    time_ms = time_of(entry)
    entry >>= CP_BITS + TIME_BITS
    amount = entry & ((1 << AMOUNT_BITS) - 1)
    entry >>= AMOUNT_BITS
    return entry >> ACCOUNT_BITS, entry & ((1 << ACCOUNT_BITS) - 1), amount, time_ms, cp_key


def window_over(key: list[int], total: list[int], a: int, k: int, amt: int, most: int) -> bool:
    """Whether ``amt`` would take account ``a``'s running total of window ``k`` (a night, a day)
    past ``most``; a total of another window starts again from zero."""
    if key[a] != k:
        key[a] = k
        total[a] = 0
    return total[a] + amt > most


def opening_statements(state: CellState) -> NDArray[np.int64]:
    """What each account owed at its last statement before the run (credit cards), else 0."""
    out = np.zeros(state.size, dtype=np.int64)
    if state.cards is not None:
        out[state.cards.credit] = state.cards.statement
    return out


def _counterparty(kind: int, ident: int | str) -> str:
    """The counterparty fields of a counterparty (an account is given by its id)."""
    if kind == CP_ACCOUNT:
        who = q(str(ident))
    elif kind == CP_MERCHANT:
        category, rank = divmod(int(ident), MERCHANT_RANKS)
        who = f'"M{category:02d}{rank:08d}"'
    elif kind == CP_EXTERNAL:
        who = f'"X{int(ident):08x}"'
    elif kind == CP_EMPLOYER:
        who = f'"E{int(ident):06d}"'
    elif kind == CP_BILLER:
        who = f'"B{int(ident):06d}"'
    elif kind == CP_CASH:
        who = '"cash"'
    elif kind == CP_BANK:
        who = '"bank"'
    else:
        who = "null"
    return f'"counterparty":{who},"counterparty_kind":"{CP_KINDS[kind]}"'


def _fragments(model: EngineModel) -> tuple[list[str], list[str]]:
    """The merchant fields by category (index -1, not a card purchase, gives the empty ones) and
    the type and channel fields by ``type code * CHANNELS + channel``: the same for every cell."""
    hit = model.cache.get("fragments")
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    category_frag = [f"{text}," for text in model.merchant_frag] + [NO_MERCHANT]
    # type fields by code ((type * 8 + rail + 1) * 2 + credit), a list for fast lookups
    type_frag = [""] * (len(TYPES) * 8 * 2)
    for (t, rail, direction), text in model.type_frag.items():
        type_frag[type_code(t, rail, direction)] = text
    # the credit leg of a debit is + len(CHANNELS) (its type code is one more); where the
    # customer did nothing (money received but deposits, the bank's fees) the channel is none
    none = q("none")
    heads = [
        f'{text},"channel":{none if _passive(code) else channel}'
        for code, text in enumerate(type_frag)
        for channel in model.channel_frag
    ]
    model.cache["fragments"] = (category_frag, heads)
    return category_frag, heads


def _passive(code: int) -> bool:
    """Whether events of this type code happen without the customer acting: incoming transfers
    (and the credit legs of transfers inside the bank), salaries, refunds, fees, and a credit
    card's statement paid by automatic debit (both legs: a bill payment inside the bank)."""
    t, rail, direction = code_parts(code)
    return (
        t in (SALARY, REFUND, FEE)
        or (t == TRANSFER and direction > 0)
        or (t == BILL and rail == INTERNAL)
    )


def outside_head(head: int) -> int:
    """The head of a transfer that was to stay inside the bank, paid outside it instead: a book
    transfer's becomes a Pix's (the C loop does the same)."""
    code, channel = divmod(head, N_CHANNELS)
    t, rail, direction = code_parts(code)
    return type_code(t, PIX, direction) * N_CHANNELS + channel if rail == INTERNAL else head


def type_code(t: Any, rail: Any, direction: Any) -> Any:
    """The type code of (type, rail, direction): one number a fragment, for ints or arrays."""
    return (t * 8 + rail + 1) * 2 + (direction > 0)


def code_parts(code: int) -> tuple[int, int, int]:
    """(type, rail, direction) of a type code: ``type_code`` undone."""
    rest, credit = divmod(code, 2)
    t, rail = divmod(rest, 8)
    return t, rail - 1, 1 if credit else -1


@dataclass
class Stats:
    """What the cell emitted: counts by type and status, money in and out of the bank."""

    counts: list[int] = field(default_factory=lambda: [0] * (2 * len(TYPES)))
    money_in: int = 0  # approved credits from outside the bank
    money_out: int = 0  # approved debits to outside the bank
    fraud: list[int] = field(default_factory=list)  # per typology of the scenario, in order
    skipped_refunds: int = 0

    def by_type(self) -> dict[str, dict[str, int]]:
        return {
            name: {"approved": self.counts[2 * i], "declined": self.counts[2 * i + 1]}
            for i, name in enumerate(TYPES)
        }


@dataclass
class Prepared:
    """A chunk's rows with what the ledger needs of them worked out for all at once."""

    rows: Rows
    time_ms: NDArray[np.int64]
    nkey: NDArray[np.int64]  # the night a capped debit counts in, or -1
    dkey: NDArray[np.int64]  # the day a capped debit counts in, or -1
    limited: NDArray[np.bool_]
    special: NDArray[np.bool_]  # refunds, fraud, drains, new devices, blocked: see _special
    # a transfer to another account of the cell: 1, or 2 for a card's upkeep (a statement paid,
    # a prepaid card topped up), which never leaves the bank
    internal: NDArray[np.int8]
    refundable: NDArray[np.bool_]
    head: NDArray[np.int64]  # type and channel fragment
    category: NDArray[np.int64]  # merchant category, or -1
    cp_key: NDArray[np.int64]  # kind << 40 | id
    cap: NDArray[np.int64]  # the most this one operation may move (new-device Pix, cash)
    # the day a Pix from a new device counts in, or -1 (-2 - day: a book transfer from a new
    # device, which counts there only if it is paid by Pix instead)
    ndkey: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.time_ms)


class Ledger:
    def __init__(self, model: EngineModel, state: CellState) -> None:
        self.model = model
        self.state = state
        # the fields every event of the run shares, and the markers the producer may rewrite
        self.tail = f",{model.tail},{FRESH_END}"
        self.prefix = f"{model.tag}-{state.cell:04x}-"
        self.counter = 0
        self.typologies = [t.kind for t in model.anomalies.typologies]
        self.stats = Stats(fraud=[0] * len(self.typologies))
        self.pool: list[int] = []  # refundable purchases, packed (``purchase``)
        self.refunded: dict[int, int] = {}  # tx counter -> refunded so far, when partly refunded
        self.pool_cap = 4096  # the pool is swept of expired purchases when it grows past this
        self.max_age = model.refund_max_age
        # A refund picks one of the purchases of the refund window at random; the pool keeps a
        # random sample of them (each approved purchase with this probability, by the row's own
        # uniform draw), so that a dense cell's window does not grow its memory without bound:
        # about POOL_TARGET purchases a cell, at most all of them.
        purchases = float(state.activity.sum()) * self.max_age / 86_400.0 * 0.5
        self.sample = min(1.0, POOL_TARGET / purchases) if purchases > 0 else 1.0
        self.partial_share = model.refund_partial_share
        night = model.limits.night
        self.night_max = night.max_total if night.enabled else None
        self.daily_max = model.limits.daily_outgoing
        device = model.limits.new_device
        self.device_daily_max = device.daily if device.enabled else None
        # a book transfer from a new device that ends a quota is paid outside the bank by Pix
        # (``outside_head``): then the new-device caps of a Pix bind it
        self.device_per_pix = device.per_pix if device.enabled else NO_CAP
        self._books(state)
        # merchant fields by category; index -1 (not a card purchase) gives the empty ones
        self.category_frag, self.heads = _fragments(model)
        self.instance_prefix = f"{model.tag}-F{state.cell:04x}-"
        # counterparty fields: accounts of this cell by index (made when first needed), the
        # others shared by every cell of the model
        self.account_cp: list[str | None] = [None] * state.size
        self.cp_cache: dict[int, str] = model.cache.setdefault("counterparties", {})

    def _books(self, state: CellState) -> None:
        """Each account's running totals (night, day, new device) and what each credit card owed
        when its last statement closed, as lists for the Python loop (the C loop keeps its own
        arrays and does not make these)."""
        size = state.size
        self.night_key = [-1] * size
        self.night_sum = [0] * size
        self.day_key = [-1] * size
        self.day_sum = [0] * size
        self.device_key = [-1] * size
        self.device_sum = [0] * size
        self.statement = opening_statements(state).tolist()

    def counterparty(self, kind: int, ident: int) -> str:
        """The counterparty fields; all but one-off external ids are made once and kept."""
        if kind == CP_EXTERNAL:
            return f'"counterparty":"X{ident:08x}","counterparty_kind":"external"'
        if kind == CP_ACCOUNT:
            text = self.account_cp[ident]
            if text is None:
                text = self.account_cp[ident] = _counterparty(kind, self.state.key[ident])
            return text
        key = kind << 40 | ident
        text = self.cp_cache.get(key)
        if text is None:
            if len(self.cp_cache) > 1_000_000:
                self.cp_cache.clear()
            text = self.cp_cache[key] = _counterparty(kind, ident)
        return text

    def counterparties(self, kind: NDArray[np.int64], ident: NDArray[np.int64]) -> list[str]:
        """The counterparty fields of rows of these kinds and ids: one-off external ids are
        formatted in one go (as hex text of the whole column), the others come from caches."""
        cp_cache = self.cp_cache
        out: list[str | None] = [cp_cache.get(k) for k in ((kind << 40) | ident).tolist()]
        external = kind == CP_EXTERNAL
        if external.any():
            text = (ident & 0xFFFFFFFF).astype(">u4").tobytes().hex()
            for j in np.flatnonzero(external).tolist():
                out[j] = (
                    f'"counterparty":"X{text[8 * j : 8 * j + 8]}","counterparty_kind":"external"'
                )
        accounts = np.flatnonzero(kind == CP_ACCOUNT)
        if len(accounts):
            account_cp, counterparty = self.account_cp, self.counterparty
            for j, a in zip(accounts.tolist(), ident[accounts].tolist(), strict=True):
                out[j] = account_cp[a] or counterparty(CP_ACCOUNT, a)
        if None in out:
            for j, (k, i) in enumerate(zip(kind.tolist(), ident.tolist(), strict=True)):
                if out[j] is None:
                    out[j] = self.counterparty(k, i)
        return out  # type: ignore[return-value]

    def prepare(
        self, rows: Rows, local_hour: NDArray[np.int64], day: NDArray[np.int64]
    ) -> Prepared:
        """What does not depend on the order of events, for all of ``rows`` (sorted by time) at
        once; ``run`` then takes them in order, as many at a time as asked."""
        typ, direction = rows.typ, rows.direction
        debit = direction < 0
        # a bill payment to an account of the bank: a credit card's statement paid by automatic
        # debit, which no customer limit stops
        to_account = rows.cp_kind == CP_ACCOUNT
        statement = (typ == BILL) & to_account
        capped = debit & ((typ == TRANSFER) | (typ == BILL) | (typ == CARD)) & ~statement
        night = self.model.limits.night
        if night.start_hour > night.end_hour:  # e.g. 20h to 6h: across midnight
            in_night = (local_hour >= night.start_hour) | (local_hour < night.end_hour)
            night_of = np.where(local_hour >= night.start_hour, day, day - 1)
        else:  # e.g. 0h to 6h: within one day
            in_night = (local_hour >= night.start_hour) & (local_hour < night.end_hour)
            night_of = day
        nkey = np.where(capped & in_night & (self.night_max is not None), night_of, -1)
        dkey = np.where(capped & (self.daily_max is not None), day, -1)
        # caps of one operation: a Pix from a new device, cash by day and by night
        limits = self.model.limits
        cap = np.full(len(typ), NO_CAP, dtype=np.int64)
        ndkey = np.full(len(typ), -1, dtype=np.int64)
        if limits.new_device.enabled:
            new_transfer = rows.new_device & debit & (typ == TRANSFER)
            new_pix = new_transfer & (rows.rail == PIX)
            cap[new_pix] = limits.new_device.per_pix
            ndkey[new_pix] = day[new_pix]
            # a book transfer's day, kept as -2 - day: its caps bind only if it becomes a Pix
            book = new_transfer & (rows.rail == INTERNAL)
            ndkey[book] = -2 - day[book]
        if limits.cash.enabled:
            cash = debit & (typ == WITHDRAWAL)
            cap[cash] = np.where(in_night[cash], limits.cash.night, limits.cash.day)
        tcode = np.where(typ >= 0, type_code(typ, rows.rail, direction), 0)  # CLOSE: no event
        prepared = Prepared(
            rows=rows,
            time_ms=(rows.time * 1000.0).astype(np.int64),
            nkey=nkey,
            dkey=dkey,
            limited=(nkey >= 0) | (dkey >= 0) | (cap < NO_CAP) | (ndkey != -1),
            special=(typ == REFUND)
            | (rows.fraud > 0)
            | (rows.drain != 0)
            | rows.new_device
            | rows.blocked,
            internal=np.where(
                debit & ((typ == TRANSFER) | statement) & to_account,
                np.where(rows.cp_id >= self.state.n_bank, UPKEEP, 1),
                0,
            ).astype(np.int8),
            refundable=((typ == CARD) | (typ == BILL))
            & ~to_account
            & (rows.fraud == 0)
            & (rows.u < self.sample),
            head=tcode * N_CHANNELS + rows.channel,
            category=np.where(rows.cp_kind == CP_MERCHANT, rows.cp_id // MERCHANT_RANKS, -1),
            cp_key=(rows.cp_kind << 40) | rows.cp_id,
            cap=cap,
            ndkey=ndkey,
        )
        if self.pool_size > self.pool_cap and len(rows):
            # forget purchases past the refund window; sweeping again only once the pool has
            # doubled keeps the cost per event constant (refunds skip expired entries anyway)
            kept = self.sweep(float(rows.time[0]) * 1000.0 - self.max_age * 1000.0)
            self.pool_cap = max(4096, 2 * kept)
        return prepared

    @property
    def pool_size(self) -> int:
        return len(self.pool)

    def sweep(self, oldest: float) -> int:
        """Forget purchases made before ``oldest`` (epoch ms); how many are left."""
        pool = self.pool
        pool[:] = [e for e in pool if time_of(e) >= oldest]
        if self.refunded:
            kept = {unpack(e)[0] for e in pool}
            self.refunded = {c: r for c, r in self.refunded.items() if c in kept}
        return len(pool)

    def count(
        self,
        looked_at: list[int],
        declined: list[int],
        legs: int,
        skipped: int,
        money_in: int,
        money_out: int,
    ) -> None:
        """Events by type and status: every row looked at gave one event (two for an approved
        transfer inside the bank), but for refunds with nothing left to refund."""
        stats = self.stats
        looked_at[REFUND] -= skipped
        stats.skipped_refunds += skipped
        looked_at[TRANSFER] += legs  # (the credit legs of other types are in looked_at)
        for t, n in enumerate(looked_at):
            stats.counts[2 * t] += n - declined[t]
            stats.counts[2 * t + 1] += declined[t]
        stats.money_in += money_in
        stats.money_out += money_out
        if max(stats.money_in, stats.money_out) > MAX_CENTS:
            raise LoadgenError(OVERFLOW.format(self.model.scenario_name))

    def run(self, prepared: Prepared, i0: int, i1: int, limit: int) -> tuple[Chunk, int]:
        """Events for rows [i0, i1) of ``prepared``, in order, at most ``limit`` of them, and
        how many rows were looked at."""
        state, stats, rows = self.state, self.stats, prepared.rows
        balance, floor, seq, keys_of = state.balance, state.floor, state.seq, state.key
        who_of = state.who
        tail, prefix, pool = self.tail, self.prefix, self.pool
        # (a row has a window's key only when the window has a limit: none stands for no cap)
        night_max = NO_CAP if self.night_max is None else self.night_max
        daily_max = NO_CAP if self.daily_max is None else self.daily_max
        night_key, night_sum, day_key, day_sum = (
            self.night_key,
            self.night_sum,
            self.day_key,
            self.day_sum,
        )
        device_key, device_sum = self.device_key, self.device_sum
        device_max = NO_CAP if self.device_daily_max is None else self.device_daily_max
        device_per_pix = self.device_per_pix
        statement = self.statement
        keys: list[str] = []
        lines: list[str] = []
        times: list[int] = []
        types: list[int] = []
        out_key, out_line, out_time = keys.append, lines.append, times.append
        out_type = types.append

        part = slice(i0, i1)
        nkey_l, dkey_l = prepared.nkey[part].tolist(), prepared.dkey[part].tolist()
        limited_l = prepared.limited[part].tolist()
        cap_l, ndkey_l = prepared.cap[part].tolist(), prepared.ndkey[part].tolist()
        special_l = prepared.special[part].tolist()
        internal_l = prepared.internal[part].tolist()
        refundable_l = prepared.refundable[part].tolist()
        head_l = prepared.head[part].tolist()
        cat_l = prepared.category[part].tolist()
        cpk_l = prepared.cp_key[part].tolist()
        cp_l = self.counterparties(rows.cp_kind[part], rows.cp_id[part])
        counterparty = self.counterparty
        time_l = prepared.time_ms[part].tolist()
        typ = rows.typ[part]
        acc_l, typ_l, dir_l = rows.acc[part].tolist(), typ.tolist(), rows.direction[part].tolist()
        amt_l, cpi_l = rows.amount[part].tolist(), rows.cp_id[part].tolist()
        heads, category_frag = self.heads, self.category_frag
        fraud_codes = rows.fraud

        counter = self.counter
        end = counter + limit  # the counter of the last event allowed
        declined = [0] * len(TYPES)
        legs = money_in = money_out = skipped = other_legs = 0
        skipped_bills = 0
        unseen = [0] * len(TYPES)  # rows of a card's upkeep with no room left for both legs
        done = len(acc_l)  # rows looked at
        for i, a, amt, cpf, tms in zip(range(done), acc_l, amt_l, cp_l, time_l, strict=True):
            if counter >= end:
                done = i
                break
            if typ_l[i] == CLOSE:  # a credit card's statement closes: what it owes now
                owed = -balance[a]
                statement[a] = owed if owed > 0 else 0
                continue
            internal = internal_l[i]
            head = head_l[i]
            outside = False
            if internal and counter + 1 == end:
                if internal == UPKEEP:  # a card's own upkeep waits for a quota with room
                    unseen[typ_l[i]] += 1
                    continue
                # no room for both legs: the last event of the quota pays outside the bank (a
                # book transfer, which cannot, by Pix)
                internal = False
                outside = True
                cpf = self.counterparty(CP_EXTERNAL, cpi_l[i])
                head = outside_head(head)
            who = who_of[a]
            status = APPROVED
            fraud = NORMAL
            if special_l[i]:
                found = self._special(rows, i0 + i, a, amt, tms)
                if found is None:  # a refund with nothing left to refund, a statement paid
                    if typ_l[i] == REFUND:
                        skipped += 1
                    else:
                        skipped_bills += 1
                    continue
                a, amt, fraud, status, cp_text, who = found
                if cp_text is not None:
                    cpf = cp_text
            before = balance[a]
            if dir_l[i] < 0:
                if status is not APPROVED:
                    pass
                elif before - amt < floor[a]:
                    status = INSUFFICIENT
                elif limited_l[i]:
                    nk, dk, vk, one_cap = nkey_l[i], dkey_l[i], ndkey_l[i], cap_l[i]
                    if vk < -1:  # a book transfer from a new device: a Pix's caps if paid so
                        vk, one_cap = (-2 - vk, device_per_pix) if outside else (-1, one_cap)
                    # one operation over its own cap (new-device Pix, cash), or a running total
                    # (new-device Pix of the day, the night, the day) over its limit
                    if (
                        amt > one_cap
                        or (vk >= 0 and window_over(device_key, device_sum, a, vk, amt, device_max))
                        or (nk >= 0 and window_over(night_key, night_sum, a, nk, amt, night_max))
                        or (dk >= 0 and window_over(day_key, day_sum, a, dk, amt, daily_max))
                    ):
                        status = LIMIT
                    if status is APPROVED:
                        if nk >= 0:
                            night_sum[a] += amt
                        if dk >= 0:
                            day_sum[a] += amt
                        if vk >= 0:
                            device_sum[a] += amt
                if status is APPROVED:
                    after = balance[a] = before - amt
                    if not internal:
                        money_out += amt
                else:
                    after = before
                    declined[typ_l[i]] += 1
            else:
                after = balance[a] = before + amt
                money_in += amt
                if after > MAX_CENTS:
                    raise LoadgenError(OVERFLOW.format(self.model.scenario_name))
            s = seq[a] = seq[a] + 1
            counter += 1
            out_key(keys_of[a])
            out_time(tms)
            out_type(typ_l[i])
            out_line(
                f'{{"tx_id":"{prefix}{counter!s}",{who},{heads[head]},"amount":{amt!s},'
                f'"balance_before":{before!s},"balance_after":{after!s},{status}{cpf},'
                f'{category_frag[cat_l[i]]}"seq":{s!s},"event_time":{tms!s},{fraud}{tail}'
            )
            if status is not APPROVED:
                continue
            if refundable_l[i]:
                pool.append(purchase(counter, a, amt, tms, cpk_l[i]))
            elif internal:
                # the other leg: the same money arrives in the counterparty's account
                b = cpi_l[i]
                b_before = balance[b]
                balance[b] = b_before + amt
                if b_before + amt > MAX_CENTS:
                    raise LoadgenError(OVERFLOW.format(self.model.scenario_name))
                sb = seq[b] = seq[b] + 1
                if typ_l[i] == TRANSFER:
                    legs += 1
                else:
                    other_legs += 1
                leg_fraud = NO_FRAUD
                f = int(fraud_codes[i0 + i])
                if f > 0:
                    stats.fraud[f - 1] += 1
                    leg_fraud = self.fraud_text(f, int(rows.instance[i0 + i]))
                counter += 1
                out_key(keys_of[b])
                out_time(tms)
                out_type(typ_l[i])
                out_line(
                    f'{{"tx_id":"{prefix}{counter!s}",{who_of[b]},{heads[head_l[i] + N_CHANNELS]},'
                    f'"amount":{amt!s},"balance_before":{b_before!s},'
                    f'"balance_after":{b_before + amt!s},"status":"approved",'
                    f'"decline_reason":null,{counterparty(CP_ACCOUNT, a)},'
                    f'"merchant_category":null,"mcc":null,"seq":{sb!s},'
                    f'"event_time":{tms!s},{leg_fraud}"{prefix}{counter - 1!s}"{tail}'
                )
        self.counter = counter
        # (CLOSE rows, -1, make no event: counted at 0 and dropped)
        looked_at = np.bincount(typ[:done] + 1, minlength=len(TYPES) + 1)[1:].tolist()
        looked_at[BILL] += other_legs - skipped_bills
        looked_at = [n - u for n, u in zip(looked_at, unseen, strict=True)]
        self.count(looked_at, declined, legs, skipped, money_in, money_out)
        return Chunk.of_lines(keys, lines, times, types), done

    def _special(
        self, rows: Rows, i: int, a: int, amt: int, tms: int
    ) -> tuple[int, int, str, str, str | None, str] | None:
        """Refunds, fraud, drains and credit card statements paid: (account, amount, fraud and
        ref_tx fields, status so far, counterparty, who: account, place and device fields), or
        None when the row yields no event (a refund with nothing left to refund, a statement
        with nothing owed)."""
        state = self.state
        ref = "null"
        cp_text = None
        if int(rows.typ[i]) == REFUND:
            j = self._refundable(float(rows.u[i]), tms)
            if j is None:
                return None
            counter, a, original, _, cp_key = unpack(self.pool[j])
            refunded = self.refunded.get(counter, 0)
            left = original - refunded
            u = float(rows.u[i])
            amt = (
                max(1, int(left * (u * 13.0 % 1.0)))
                if u * 7.0 % 1.0 < self.partial_share and left > 1
                else left
            )
            if refunded + amt >= original:  # nothing left to refund: out of the pool
                self.pool[j] = self.pool[-1]
                self.pool.pop()
                self.refunded.pop(counter, None)
            else:
                self.refunded[counter] = refunded + amt
            ref = f'"{self.prefix}{counter}"'
            cp_text = self.counterparty(cp_key >> 40, cp_key & 0xFFFFFFFFFF)
        drain = float(rows.drain[i])
        if drain > 0.0 and int(rows.direction[i]) < 0:
            amt = max(1, int((state.balance[a] - state.floor[a]) * drain))
        elif drain < 0.0:
            # a credit card's statement paid: this share of what it owed at the close, and never
            # more than it owes now (refunds since); nothing owed, no payment
            b = int(rows.cp_id[i])
            owed = min(self.statement[b], -state.balance[b])
            if owed <= 0:
                return None
            amt = min(owed, max(1, math.ceil(owed * -drain)))
            # checking holding less pays what it holds (a partial payment); nothing: declined
            room = state.balance[a] - state.floor[a]
            if 0 < room < amt:
                amt = room
        fraud = NO_FRAUD
        f = int(rows.fraud[i])
        if f:
            self.stats.fraud[f - 1] += 1
            fraud = self.fraud_text(f, int(rows.instance[i]))
        who = state.who[a]
        if rows.new_device[i]:
            who = f'{who[: who.rindex(",")]},"device":"D-new-{state.key[a]}"'
        status = BLOCKED if rows.blocked[i] else APPROVED
        return a, amt, fraud + ref, status, cp_text, who

    def fraud_text(self, code: int, instance: int) -> str:
        """The fraud fields of a labelled event, up to the ref_tx value."""
        return (
            f'"fraud":true,"typology":"{self.typologies[code - 1]}",'
            f'"fraud_instance":"{self.instance_prefix}{instance:06x}","ref_tx":'
        )

    def _refundable(self, u: float, tms: int) -> int | None:
        """Where in the pool an earlier approved purchase still within the refund window is,
        or None."""
        pool = self.pool
        max_age_ms = self.max_age * 1000.0
        while pool:
            j = int(u * len(pool)) % len(pool)
            if tms - time_of(pool[j]) <= max_age_ms:
                return j
            self.refunded.pop(unpack(pool[j])[0], None)
            pool[j] = pool[-1]
            pool.pop()
        return None
