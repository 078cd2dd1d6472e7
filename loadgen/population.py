"""A cell of the population: its customers and accounts, drawn from the cell's own random stream.

Customer ``g`` (0-based, global) lives in cell ``g % cells``; its accounts stay in that cell, so a
transfer between two customers of a cell never leaves it. Nothing here depends on how many
processes or hosts share the cells.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loadgen.model import EngineModel, q

# streams of a cell, each from SeedSequence(seed, spawn_key=(cell, purpose))
INIT, DRAW, FRAUD = 0, 1, 2


def cell_rng(seed: int, cell: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(cell, purpose)))


def customers_of(cell: int, cells: int, customers: int) -> NDArray[np.int64]:
    return np.arange(cell, customers, cells, dtype=np.int64)


@dataclass
class CellState:
    """Accounts of one cell and their ledger (balances in cents, sequence numbers)."""

    cell: int
    customer: NDArray[np.int64]  # global customer index, per account
    primary: NDArray[np.bool_]  # the customer's first account
    segment: NDArray[np.int64]
    city: NDArray[np.int64]
    activity: NDArray[np.float64]  # expected events per day
    income: NDArray[np.int64]  # monthly, cents
    paid: NDArray[np.bool_]  # receives a salary
    opening: NDArray[np.int64]  # opening balances, cents
    # the ledger, as Python lists: the sequential loop reads and writes them one by one
    balance: list[int]
    floor: array[int]  # -overdraft limit: the lowest an approved debit may leave (read only)
    seq: list[int]
    key: list[str]  # account id (the Kafka key)
    # the event's fields about who: "account":...,"customer":...,"customer_name":..., segment,
    # city, state, region and "device": the customer's usual device
    who: list[str]

    @property
    def size(self) -> int:
        return len(self.balance)

    def checksum(self) -> tuple[int, str]:
        """Sum of balances and a digest of every (account, balance, seq)."""
        import hashlib

        digest = hashlib.sha256()
        for key, bal, seq in zip(self.key, self.balance, self.seq, strict=True):
            digest.update(f"{key}:{bal}:{seq};".encode())
        return sum(self.balance), digest.hexdigest()


@dataclass
class Customers:
    """The customers of a cell as first drawn (the rest of a cell follows from them)."""

    rng: np.random.Generator  # the cell's INIT stream, positioned after these draws
    g: NDArray[np.int64]
    segment: NDArray[np.int64]
    city: NDArray[np.int64]
    names: list[str | None]
    n_accounts: NDArray[np.int64]
    activity: NDArray[np.float64]
    income: NDArray[np.int64]


def draw_customers(model: EngineModel, cell: int) -> Customers:
    """Segment, city, name, number of accounts, activity and income of each customer."""
    scenario = model.scenario
    pop = scenario.population
    rng = cell_rng(scenario.seed, cell, INIT)
    g = customers_of(cell, model.cells, pop.customers)
    n = len(g)
    shares = np.array([s.share for s in pop.segments])
    segment = np.searchsorted(np.cumsum(shares / shares.sum()), rng.random(n), side="right")
    segment = np.minimum(segment, len(shares) - 1)
    city = np.minimum(
        np.searchsorted(model.city_cum, rng.random(n), side="right"), len(pop.cities) - 1
    )
    names: list[str | None] = [None] * n
    city_index = {c.name: i for i, c in enumerate(pop.cities)}
    segment_index = {s.name: i for i, s in enumerate(pop.segments)}
    for j, named in enumerate(pop.named_customers):
        if j % model.cells == cell and j < pop.customers:
            local = j // model.cells
            names[local] = named.name
            if named.city is not None:
                city[local] = city_index[named.city]
            if named.segment is not None:
                segment[local] = segment_index[named.segment]
    per = np.asarray(pop.accounts_per_customer, dtype=np.float64)
    n_accounts = 1 + np.minimum(
        np.searchsorted(np.cumsum(per / per.sum()), rng.random(n), side="right"), len(per) - 1
    )
    activity = np.empty(n)
    income = np.empty(n, dtype=np.int64)
    for s, seg in enumerate(pop.segments):
        mask = segment == s
        k = int(mask.sum())
        shape = seg.activity.shape
        activity[mask] = rng.gamma(shape, seg.activity.mean_per_day / shape, k)
        income[mask] = np.maximum(
            1,
            np.rint(np.exp(np.log(seg.income.median) + seg.income.sigma * rng.standard_normal(k))),
        ).astype(np.int64)
    return Customers(rng, g, segment, city, names, n_accounts, activity, income)


def cell_activity(model: EngineModel, cell: int) -> float:
    """Expected events per day of a cell's customers (cheap: no accounts are built). The
    customers drawn are kept for ``build_cell``, which would draw them again."""
    customers = draw_customers(model, cell)
    model.cache[("customers", cell)] = customers
    return float(customers.activity.sum())


def build_cell(model: EngineModel, cell: int) -> CellState:
    pop = model.scenario.population
    first = model.cache.pop(("customers", cell), None) or draw_customers(model, cell)
    rng, g, segment, city, names = first.rng, first.g, first.segment, first.city, first.names
    n_accounts, activity, income = first.n_accounts, first.activity, first.income
    n = len(g)
    owner = np.repeat(np.arange(n), n_accounts)  # local customer index, per account
    starts = np.cumsum(n_accounts) - n_accounts
    number = np.arange(len(owner)) - np.repeat(starts, n_accounts)  # 0 = primary
    weights = 0.5 ** number.astype(np.float64)
    weights /= np.bincount(owner, weights)[owner]
    acc_activity = activity[owner] * weights
    acc_segment = segment[owner]
    acc_income = income[owner]
    m = len(owner)

    opening = np.zeros(m, dtype=np.int64)
    floor = np.zeros(m, dtype=np.int64)
    paid = np.zeros(m, dtype=bool)
    for s, seg in enumerate(pop.segments):
        mask = acc_segment == s
        k = int(mask.sum())
        ib = seg.initial_balance
        if ib.kind == "empirical" and ib.table:
            bins = np.minimum(
                np.searchsorted(
                    np.cumsum([b.share for b in ib.table]), rng.random(k), side="right"
                ),
                len(ib.table) - 1,
            )
            lows = np.array([b.min for b in ib.table])[bins]
            highs = np.array([b.max for b in ib.table])[bins]
            opening[mask] = lows + np.floor(rng.random(k) * (highs - lows)).astype(np.int64)
        else:
            median = ib.median or 1
            values = np.rint(np.exp(np.log(median) + ib.sigma * rng.standard_normal(k)))
            zero = rng.random(k) < ib.zero_share
            opening[mask] = np.where(zero, 0, values).astype(np.int64)
        od = seg.overdraft
        if od.kind == "fixed":
            limit = np.full(k, od.amount, dtype=np.int64)
        elif od.kind == "income_multiple":
            limit = np.rint(acc_income[mask] * od.multiple).astype(np.int64)
        else:
            limit = np.zeros(k, dtype=np.int64)
        if od.max is not None:
            limit = np.minimum(limit, od.max)
        floor[mask] = -limit
        paid[mask] = (number[mask] == 0) & (rng.random(k) < seg.pay_schedule.share_paid)

    customer = g[owner]
    # the accounts' texts: what belongs to the customer made once a customer
    digits = [f"{c:09d}" for c in g.tolist()]
    place = model.place_frag
    theirs = [
        f'"customer":"C{d}","customer_name":{"null" if name is None else q(name)},'
        f'{place[s][c]},"device":"D{d}"'
        for d, name, s, c in zip(digits, names, segment.tolist(), city.tolist(), strict=True)
    ]
    owners = owner.tolist()
    key = [f"A{digits[o]}-{k}" for o, k in zip(owners, number.tolist(), strict=True)]
    who = [f'"account":"{k}",{theirs[o]}' for k, o in zip(key, owners, strict=True)]
    return CellState(
        cell=cell,
        customer=customer,
        primary=number == 0,
        segment=acc_segment,
        city=city[owner],
        activity=acc_activity,
        income=acc_income,
        paid=paid,
        opening=opening,
        balance=opening.tolist(),
        floor=array("q", floor.astype(np.int64).tobytes()),
        seq=[0] * m,
        key=key,
        who=who,
    )
