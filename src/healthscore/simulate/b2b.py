"""The synthetic B2B SaaS world with known truth: eight tables as in CONTRACT §1, plus ``truth``.

This is the ``b2b`` business, the default; ``SimulationSpec(business="subscription")`` simulates a world of
another shape instead (monthly to annual self-serve terms, usage only: ``simulate.subscription``).

Every account carries a hidden health ``h`` (roughly standard normal; higher is healthier) that moves
month by month as a mean-reverting random walk around the account's own baseline, with occasional
shocks (a champion leaves, the customer is acquired, a budget is cut, a new executive sponsor…). Each
shock is logged by the CSM as one adjustment row (sometimes plus a follow-up). Health shows up,
noisily, in every table:

- ``usage_events``: one row per (user, month, feature) with ``quantity`` = uses that month (``login``
  counts active days). Active users vs seats, login frequency and feature breadth rise with health;
  utilisation ramps up over the first months at a speed that depends on health at the start (time to
  value). Each account also has a usage propensity unrelated to health, so usage is a noisy proxy.
- ``tickets``: volume and the share of high/urgent tickets rise as health falls; resolution time and
  ticket CSAT worsen with it; tickets unresolved at the world's end stay open.
- ``surveys``: quarterly NPS and occasional CSAT, answered more often (and higher) by healthy accounts.
- ``touchpoints``: email open and click rates, meetings, webinars, web visits track health; executive
  business reviews (``ebr``) happen mostly in mid_market/enterprise and less when health is low.
- ``invoices``: annual (or quarterly for some accounts) per contract; paid on time, late or never with
  probabilities driven by health.

Renewal. At each contract end inside the world, the account renews with probability
``p_renew = sigmoid(logit)`` where (see ``_renewal_logit``)::

    logit = b0 + segment + w_h·h + w_u·(utilisation − 0.55)/0.2 − w_s·support_bad
            − 0.6·no_ebr_this_term (mid_market/enterprise) − 0.4·late_invoices − 0.3·first_term

``h`` is the health in the month before the decision; ``utilisation`` (active users / seats) and
``support_bad`` (share of high/urgent tickets, log resolution hours and ticket CSAT) are measured on
the simulated events of the three months before the renewal month, so a model that reads the tables
can approach the truth but not reach it. Plain world: ``w_h, w_u, w_s = 0.9, 0.45, 0.5``.

Drift (``drift=True``): from the world's midpoint on, the customer base starts judging the vendor by
its support: renewals decided in the second half use ``w_h, w_u, w_s = 0.4, 0.0, 3.0`` (and
``b0`` 0.35 higher, so the renewal rate stays level) — support experience (urgent tickets, slow
resolution, low ticket CSAT) weighs 6 times as much, usage no longer counts on its own, and the
latent health matters less than half as much. Event generation itself does not change, so the shift is in what drives the
outcome, not in what the tables look like — a model trained on the first half degrades on the second.

Renewed contracts continue seamlessly: the new term starts on the old ``end_date`` (terms are
half-open, ``start_date ≤ T < end_date``, CONTRACT §2), with seats and ARR changed by health and
utilisation. Churned accounts produce no usage, tickets, touchpoints, surveys, invoices or adjustments
on or after their last ``end_date``. New customers arrive over the whole period (more in the first
year), and about 3% of accounts are prospects with no contract (only web visits and marketing email).
All events lie in ``[start, start + months)``; deadlines (``end_date``, ``due_at``, ``expires_at``) may lie
after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from healthscore.errors import HealthscoreError

#: the shapes of world ``simulate`` can build: ``b2b`` (this module, the default) and ``subscription``
BUSINESSES: tuple[str, ...] = ("b2b", "subscription")
SEGMENTS: tuple[str, ...] = ("smb", "mid_market", "enterprise")
FEATURES: tuple[str, ...] = (
    "login", "dashboards", "reports", "integrations", "automation", "collaboration", "api", "export", "settings",
)
INDUSTRIES: tuple[str, ...] = (
    "software", "healthcare", "financial_services", "retail", "manufacturing", "education", "logistics", "media",
)
CSMS: tuple[str, ...] = (
    "Ana Souza", "Ben Okafor", "Chloé Martin", "Dev Patel", "Emma Lindqvist", "Farid Haddad",
)
TOUCH_KINDS: tuple[str, ...] = (
    "email_sent", "email_opened", "email_clicked", "meeting", "ebr", "webinar", "web_visit",
)
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
#: Names that are valid but hostile to naive CSV, HTML and spreadsheet handling; some accounts get them.
HOSTILE_NAMES: tuple[str, ...] = (
    'O\'Brien "Quoted" Ltd',
    "Smith, Jones, and Partners",
    "<b>Bold</b> Markup Inc",
    "Müller & Søn",
    "=HYPERLINK(\"http://example.com\",\"click\")",
    "+44 Holdings",
    "-Minus Labs",
    "@Mention Media",
    "Żółć Systems — Kraków",
    "株式会社サンプル",
    "Café Olé; DROP TABLE accounts;--",
)

# Shocks: (reason logged by the CSM, effect on health). Negative ones are more common.
_SHOCKS: tuple[tuple[str, float], ...] = (
    ("Champion left the company", -1.1),
    ("Customer was acquired; new owner reviewing vendors", -0.8),
    ("Budget cut announced", -0.7),
    ("Reorganisation: our team of users was merged", -0.5),
    ("Escalation after a serious outage", -0.6),
    ("New executive sponsor engaged", 0.8),
    ("Expansion project kicked off", 0.6),
)
_SHOCK_P = np.array([0.2, 0.12, 0.14, 0.1, 0.14, 0.15, 0.15])
_SHOCK_RATE = 0.025  # per active account-month

_SEC_DAY = 86_400
_DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class SimulationSpec:
    """What world to simulate: which business, how many accounts, which seed, when it starts, how long, drift.

    ``business`` is one of ``BUSINESSES``: ``b2b`` (annual contracts, all eight tables) or ``subscription``
    (monthly, semi-annual and annual terms; accounts, contracts and usage_events only). ``drift`` exists
    only in the b2b world.
    """

    accounts: int = 2000
    seed: int = 7
    start: date | None = date(2022, 1, 1)
    months: int = 36
    drift: bool = False
    business: str = "b2b"

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.accounts, (int, np.integer)) or self.accounts < 1:
            problems.append(f"accounts must be a whole number ≥ 1, found {self.accounts!r}")
        if not isinstance(self.months, (int, np.integer)) or not 1 <= self.months <= 240:
            problems.append(f"months must be a whole number from 1 to 240, found {self.months!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            problems.append(f"seed must be a whole number ≥ 0, found {self.seed!r}")
        if self.start is not None and not isinstance(self.start, date):
            problems.append(f"start must be a date, found {self.start!r}")
        if self.business not in BUSINESSES:
            problems.append(f"business must be one of {', '.join(BUSINESSES)}, found {self.business!r}")
        elif self.drift and self.business != "b2b":
            problems.append(f"drift is only simulated in the b2b world, not in {self.business!r}")
        if problems:
            raise HealthscoreError("simulation spec is not valid: " + "; ".join(problems))
        if self.start is None:
            object.__setattr__(self, "start", date(2022, 1, 1))

    @property
    def end(self) -> date:
        """First day after the world (events are strictly before it)."""
        return (pd.Timestamp(self.start) + pd.DateOffset(months=self.months)).date()


@dataclass
class World:
    """A simulated dataset: the contract tables its business has and the hidden truth behind each renewal."""

    spec: SimulationSpec
    tables: dict[str, pd.DataFrame]
    #: one row per decided contract: contract_id, p_renew, and hidden columns (health, logit, drivers)
    truth: pd.DataFrame
    extra: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


# ----------------------------------------------------------------------------------------------------------
# helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _text(values: np.ndarray) -> pd.Series:
    """A text column with the installed pandas' default string dtype (``str`` on pandas 3, object on 2)."""
    return pd.Series(values, dtype="str")


def _ts(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds (NaT as int64 min) to datetime64[ns]."""
    return seconds.astype("datetime64[s]").astype("datetime64[ns]")


def _dates(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[ns]")


def _add_months(days: np.ndarray, months: int | np.ndarray) -> np.ndarray:
    """Add whole months to epoch days, keeping the day of month (clipped to the month's length)."""
    d = np.asarray(days).astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    target = m + np.asarray(months)
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    return (target.astype("datetime64[D]") + np.minimum(dom, length - 1)).astype(np.int64)


def _uniform_ts(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A random whole second in [lo, hi) for each pair (hi > lo)."""
    return lo + np.floor(rng.random(lo.shape[0]) * (hi - lo)).astype(np.int64)


def _rep(counts: np.ndarray) -> np.ndarray:
    """Index of the parent of each child when parent i has counts[i] children."""
    return np.repeat(np.arange(counts.shape[0]), counts)


def _within(counts: np.ndarray) -> np.ndarray:
    """Position of each child within its parent (0, 1, …) for the layout of ``_rep``."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


def _arrivals(r: np.random.Generator, n: int, world_days: int, start_day: int, *, early_share: float) -> np.ndarray:
    """Each account's first start day: an early wave over the first year (``early_share`` of accounts), then a
    steady trickle until a few weeks before the world's end."""
    early = r.random(n) < early_share
    first_year = max(min(365, world_days - 20), 1)
    arrival = np.where(
        early,
        r.integers(0, first_year, n),
        first_year + np.floor(r.random(n) * max(world_days - 20 - first_year, 1)).astype(np.int64),
    )
    return start_day + np.minimum(arrival, world_days - 1)


class _Events:
    """Columns collected month by month, concatenated once at the end."""

    def __init__(self, *names: str) -> None:
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in names}

    def add(self, **cols: np.ndarray) -> None:
        for name, values in cols.items():
            self.parts[name].append(np.asarray(values))

    def get(self, name: str, dtype) -> np.ndarray:
        parts = self.parts[name]
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------
# the world


_SEG_SEATS = np.array([[np.log(9.0), 0.5, 3, 60], [np.log(40.0), 0.45, 12, 250], [np.log(130.0), 0.5, 50, 800]])
_SEG_PRICE = np.array([[540.0, 80.0], [420.0, 60.0], [330.0, 50.0]])  # per seat per year: mean, sd
_SEG_MIX = np.array([0.6, 0.3, 0.1])
_SEG_QUARTERLY = np.array([0.3, 0.2, 0.1])  # share of accounts billed quarterly
_SEG_HEALTH = np.array([-0.1, 0.05, 0.2])
_SEG_RENEW = np.array([-0.2, 0.0, 0.3])

# usage: per-feature base logit, how strongly breadth depends on health, ramp exponent, uses per month
_F_BASE = np.array([9.0, 1.4, 0.4, -0.9, -1.1, 0.0, -1.8, -0.9, -2.3])
_F_HEALTH = np.array([0.0, 0.6, 0.7, 0.8, 0.8, 0.7, 0.6, 0.3, 0.2])
_F_RAMP = np.array([0.0, 0.5, 1.0, 2.0, 2.0, 1.0, 2.5, 0.5, 0.0])
_F_USES = np.array([0.0, 6.0, 3.0, 4.0, 5.0, 4.0, 12.0, 1.0, 0.3])


def _renewal_logit(
    *, seg, h, util, support_bad, no_ebr, late, first_term, drifted
) -> np.ndarray:
    """The true renewal logit (module docstring); ``drifted`` marks decisions in a drift world's second half."""
    w_h = np.where(drifted, 0.4, 0.9)
    w_u = np.where(drifted, 0.0, 0.45)
    w_s = np.where(drifted, 3.0, 0.5)
    return (
        np.where(drifted, 2.95, 2.6)  # keeps the renewal rate level across the shift
        + _SEG_RENEW[seg]
        + w_h * h
        + w_u * (util - 0.55) / 0.2
        - w_s * support_bad
        - 0.6 * no_ebr
        - 0.4 * np.minimum(late, 2)
        - 0.3 * first_term
    )


def simulate_b2b(spec: SimulationSpec) -> World:
    """Simulate one b2b world: its eight tables of CONTRACT §1 plus the truth behind each renewal."""
    return _Simulation(spec).run()


@dataclass
class _Month:
    """The accounts alive in month ``k`` and the slice ``[lo, hi)`` (epoch seconds) each is alive for."""

    k: int
    alive: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    frac: np.ndarray
    h: np.ndarray
    seg: np.ndarray
    tenure_m: np.ndarray


class _Simulation:
    """The world's state, advanced one month at a time; each table's events are drawn for all accounts at once."""

    def __init__(self, spec: SimulationSpec) -> None:
        self.spec = spec
        n, n_m = int(spec.accounts), int(spec.months)
        self.n, self.n_m = n, n_m
        root = np.random.default_rng(spec.seed)
        # one independent stream per concern, so a change in one table's generator leaves the others alone
        (self.r_acc, self.r_health, self.r_use, self.r_tix, self.r_srv, self.r_touch, self.r_inv, self.r_adj,
         self.r_renew, self.r_contract, self.r_names) = root.spawn(11)
        r = self.r_acc

        start_day = int(np.datetime64(spec.start, "D").astype(np.int64))
        self.month_days = _add_months(np.array([start_day]), np.arange(n_m + 1))
        self.month_s = self.month_days * _SEC_DAY
        self.end_day = int(self.month_days[-1])
        self.end_s = self.end_day * _SEC_DAY
        world_days = self.end_day - start_day

        # --- accounts ---------------------------------------------------------------------------------
        self.seg = seg = r.choice(3, size=n, p=_SEG_MIX)
        n_prospects = max(1, round(0.03 * n)) if n >= 10 else 0
        self.prospect = np.zeros(n, bool)
        self.prospect[r.choice(n, size=n_prospects, replace=False)] = True
        self.first_start = _arrivals(r, n, world_days, start_day, early_share=0.55)
        self.created = np.where(self.prospect, start_day + r.integers(0, world_days, n), self.first_start)
        self.industry = r.choice(len(INDUSTRIES), size=n)
        # CSMs cover segments unevenly: the first two hold most enterprise and mid_market books
        csm_p = np.array([
            [0.05, 0.1, 0.2, 0.2, 0.25, 0.2],
            [0.15, 0.3, 0.2, 0.15, 0.1, 0.1],
            [0.45, 0.35, 0.05, 0.05, 0.05, 0.05],
        ])
        self.csm = (r.random(n)[:, None] > np.cumsum(csm_p[seg], axis=1)).sum(axis=1).clip(0, len(CSMS) - 1)
        self.mu = _SEG_HEALTH[seg] + r.normal(0.0, 0.6, n)  # each account's own long-run health
        # propensities unrelated to health, so every signal is a noisy proxy of it
        self.usage_prop = r.normal(0.0, 0.35, n)
        self.ticket_prop = r.normal(0.0, 0.4, n)
        self.email_prop = r.normal(0.0, 0.4, n)
        self.quarterly = r.random(n) < _SEG_QUARTERLY[seg]
        sp = _SEG_SEATS[seg]
        self.seats0 = np.clip(np.round(np.exp(r.normal(sp[:, 0], sp[:, 1]))), sp[:, 2], sp[:, 3]).astype(np.int64)
        self.price = np.maximum(_SEG_PRICE[seg, 0] + r.normal(0, 1, n) * _SEG_PRICE[seg, 1], 100.0)
        # every seat a user can ever hold, each user with a fixed activity propensity
        self.seat_cap = np.maximum(2 * self.seats0, self.seats0 + 10)
        self.seat_off = np.cumsum(self.seat_cap) - self.seat_cap
        self.z_seat = r.normal(0.0, 1.0, int(self.seat_cap.sum()))
        self.account_ids = np.char.add("A-", np.char.zfill(np.arange(1, n + 1).astype(str), 5))

        # --- state --------------------------------------------------------------------------------------
        self.h = np.full(n, np.nan)
        self.tau = np.full(n, np.nan)  # months to ramp up, set from health at the first contract
        self.alive_from_s = np.where(self.prospect, np.iinfo(np.int64).max, self.first_start * _SEC_DAY)
        self.alive_to_s = np.full(n, self.end_s, dtype=np.int64)
        self.cur = np.full(n, -1)  # current contract
        self.cur_late = np.zeros(n)  # invoices of the current contract paid late or never
        self.n_terms = np.zeros(n, dtype=np.int64)
        # per-account monthly statistics the renewal decision reads
        self.st = {name: np.zeros((n, n_m)) for name in
                   ("users", "seats", "tix", "urgent", "logres", "csat", "csat_n", "ebr")}
        self.con = {"acc": np.zeros(0, np.int64), "start": np.zeros(0, np.int64), "seats": np.zeros(0, np.int64),
                    "arr": np.zeros(0), "outcome": np.zeros(0, np.int64)}  # outcome −1 undecided, 0/1
        self.truth_parts: list[dict[str, np.ndarray]] = []
        self.use = _Events("acc", "user", "ts", "feature", "qty")
        self.tix = _Events("acc", "opened", "closed", "prio", "csat")
        self.srv = _Events("acc", "ts", "kind", "score")
        self.tch = _Events("acc", "ts", "kind")
        self.inv = _Events("acc", "issued", "due", "paid", "amount")
        self.adj = _Events("acc", "ts", "points", "reason", "follow", "expires")

    # --- the month loop -------------------------------------------------------------------------------

    def run(self) -> World:
        for k in range(self.n_m):
            new = self._arrivals(k)
            self._decide(k)
            m = self._step(k, new)
            if m is not None:
                self._usage(m)
                self._tickets(m)
                self._surveys(m)
                self._touchpoints(m)
                self._invoices(m)
            self._prospect_touches(k)
        return self._world()

    def _new_contracts(self, acc: np.ndarray, start: np.ndarray, seats: np.ndarray) -> None:
        arr = np.round(seats * self.price[acc], 2)
        first = self.con["acc"].size
        for key, values in (("acc", acc), ("start", start), ("seats", seats), ("arr", arr),
                            ("outcome", np.full(acc.size, -1))):
            self.con[key] = np.concatenate([self.con[key], values])
        self.cur[acc] = np.arange(first, first + acc.size)
        self.cur_late[acc] = 0.0
        self.n_terms[acc] += 1

    def _arrivals(self, k: int) -> np.ndarray:
        """Accounts whose first contract starts this month sign it; their health and ramp speed are set."""
        lo_d, hi_d = self.month_days[k], self.month_days[k + 1]
        new = np.flatnonzero(~self.prospect & (self.first_start >= lo_d) & (self.first_start < hi_d))
        if new.size:
            self._new_contracts(new, self.first_start[new], self.seats0[new])
            self.h[new] = self.mu[new] + self.r_health.normal(0.0, 0.55, new.size)
            self.tau[new] = 1.6 * np.exp(-0.6 * self.h[new])
        return new

    def _decide(self, k: int) -> None:
        """Contracts ending this month renew or churn, from health and the three months before."""
        has = self.cur >= 0
        cend = np.full(self.n, np.iinfo(np.int64).max)
        cend[has] = _add_months(self.con["start"][self.cur[has]], 12)
        lo_d, hi_d = self.month_days[k], self.month_days[k + 1]
        dec = np.flatnonzero(has & (cend >= lo_d) & (cend < hi_d) & (self.alive_to_s == self.end_s))
        if dec.size == 0:
            return
        st, w0 = self.st, max(k - 3, 0)

        def last3(name: str) -> np.ndarray:
            return st[name][dec, w0:k].sum(1)

        util = last3("users") / np.maximum(last3("seats"), 1)
        t_n = last3("tix")
        share = (last3("urgent") + 0.5) / (t_n + 2.0)
        logres = (last3("logres") + 2 * np.log(20.0)) / (t_n + 2.0)
        csat = (last3("csat") + 8.0) / (last3("csat_n") + 2.0)
        support_bad = 3.0 * (share - 0.25) + 0.6 * (logres - np.log(20.0)) + 0.8 * (4.0 - csat)
        no_ebr = (self.seg[dec] > 0) & (st["ebr"][dec, max(k - 12, 0):k].sum(1) == 0)
        drifted = np.full(dec.size, self.spec.drift and k >= self.n_m / 2)
        logit = _renewal_logit(
            seg=self.seg[dec], h=self.h[dec], util=util, support_bad=support_bad, no_ebr=no_ebr.astype(float),
            late=self.cur_late[dec], first_term=(self.n_terms[dec] == 1).astype(float), drifted=drifted,
        )
        p = _sigmoid(logit)
        renew = self.r_renew.random(dec.size) < p
        cids = self.cur[dec]
        self.con["outcome"][cids] = renew.astype(np.int64)
        self.truth_parts.append(dict(
            contract=cids, p_renew=p, health=self.h[dec], logit=logit, utilisation=util,
            support_bad=support_bad, no_ebr=no_ebr, drifted=drifted,
        ))
        gone = dec[~renew]
        self.alive_to_s[gone] = cend[gone] * _SEC_DAY
        stay = dec[renew]
        if stay.size:
            # healthy, well-used accounts add seats; price per seat creeps up
            growth = self.r_contract.normal(0.04 + 0.08 * self.h[stay] + 0.3 * (util[renew] - 0.55), 0.12)
            seats = np.round(self.con["seats"][self.cur[stay]] * np.exp(growth))
            seats = np.clip(seats, 1, self.seat_cap[stay]).astype(np.int64)
            self.price[stay] *= 1.0 + self.r_contract.uniform(0.0, 0.06, stay.size)
            self._new_contracts(stay, cend[stay], seats)

    def _step(self, k: int, new: np.ndarray) -> _Month | None:
        """Who is alive this month; health moves (not in the month of arrival) and shocks strike."""
        m_lo, m_hi = self.month_s[k], self.month_s[k + 1]
        lo = np.maximum(m_lo, self.alive_from_s)
        hi = np.minimum(m_hi, self.alive_to_s)
        alive = np.flatnonzero(hi > lo)
        if alive.size == 0:
            return None
        lo, hi = lo[alive], hi[alive]
        frac = (hi - lo) / (m_hi - m_lo)
        h, mu = self.h, self.mu
        is_new = np.isin(alive, new)
        old = alive[~is_new]
        h[old] = mu[old] + 0.85 * (h[old] - mu[old]) + self.r_health.normal(0.0, 0.32, old.size)
        shocked = (self.r_health.random(alive.size) < _SHOCK_RATE * frac) & ~is_new
        if shocked.any():
            kind = self.r_health.choice(len(_SHOCKS), size=int(shocked.sum()), p=_SHOCK_P)
            effect = np.array([e for _, e in _SHOCKS])[kind]
            h[alive[shocked]] += effect
            self._log_shocks(alive[shocked], kind, effect, lo[shocked], hi[shocked])
        first_s = self.first_start[alive] * _SEC_DAY
        tenure_m = ((lo + hi) / 2 - first_s) / (_SEC_DAY * _DAYS_PER_MONTH)
        return _Month(k, alive, lo, hi, frac, h[alive].copy(), self.seg[alive], tenure_m)

    def _log_shocks(self, acc, kind, effect, lo, hi) -> None:
        """The CSM logs each shock a few days after it happens, sometimes with a follow-up weeks later."""
        r, n = self.r_adj, acc.size
        logged = _uniform_ts(r, lo, hi) + r.integers(0, 10 * _SEC_DAY, n)
        points = np.clip(np.round(effect * 25 + r.normal(0, 5, n)), -100, 100)
        points = np.where(points == 0, np.sign(effect), points)
        expires = np.where(r.random(n) < 0.5, -1, logged // _SEC_DAY + r.integers(60, 180, n))
        follow = r.random(n) < 0.35
        f_at = logged + r.integers(14, 45, n) * _SEC_DAY
        f_pts = np.clip(np.round(points / 2), -100, 100)
        f_pts = np.where(f_pts == 0, np.sign(effect), f_pts)
        f_exp = np.where(r.random(n) < 0.5, -1, f_at // _SEC_DAY + 60)
        nf = int(follow.sum())
        self.adj.add(
            acc=np.concatenate([acc, acc[follow]]), ts=np.concatenate([logged, f_at[follow]]),
            points=np.concatenate([points, f_pts[follow]]), reason=np.concatenate([kind, kind[follow]]),
            follow=np.concatenate([np.zeros(n, bool), np.ones(nf, bool)]),
            expires=np.concatenate([expires, f_exp[follow]]),
        )

    # --- one table's events for one month ---------------------------------------------------------------

    def _usage(self, m: _Month) -> None:
        """Seats × month: which users are active (ramp × health × propensity), then which features they use."""
        r = self.r_use
        seats = self.con["seats"][self.cur[m.alive]]
        ramp = 1.0 - np.exp(-(m.tenure_m + 0.25) / self.tau[m.alive])
        act_logit = np.array([0.1, 0.3, 0.4])[m.seg] + 1.1 * m.h + self.usage_prop[m.alive]
        sr, sj = _rep(seats), _within(seats)
        user = self.seat_off[m.alive][sr] + sj
        z = self.z_seat[user]
        active = r.random(sr.size) < ramp[sr] * _sigmoid(act_logit[sr] + z) * np.sqrt(m.frac[sr])
        ua, uz, ug = sr[active], z[active], user[active]  # alive position, propensity, global user of each
        uh = m.h[ua]
        self.st["users"][m.alive, m.k] = np.bincount(ua, minlength=m.alive.size)
        self.st["seats"][m.alive, m.k] = seats
        for f in range(len(FEATURES)):
            if f == 0:  # login: every active user, quantity = active days
                used = np.ones(ua.size, bool)
            else:
                api_boost = 0.3 * (m.seg[ua] == 2) * (FEATURES[f] == "api")
                pf = _sigmoid(_F_BASE[f] + _F_HEALTH[f] * uh + 0.4 * uz + api_boost)
                used = r.random(ua.size) < pf * ramp[ua] ** _F_RAMP[f]
            who = ua[used]
            if who.size == 0:
                continue
            if f == 0:
                days = np.maximum(np.round(21 * m.frac[who]), 1).astype(np.int64)
                qty = 1 + r.binomial(days - 1, _sigmoid(-0.4 + 0.8 * uh[used] + 0.3 * uz[used]))
            else:
                qty = 1 + r.poisson(_F_USES[f] * np.exp(0.3 * uh[used]))
            self.use.add(acc=m.alive[who], user=ug[used], ts=_uniform_ts(r, m.lo[who], m.hi[who]),
                         feature=np.full(who.size, f, np.int8), qty=qty)

    def _tickets(self, m: _Month) -> None:
        """More tickets, more urgent, slower and less satisfying as health falls; a bump while onboarding."""
        r = self.r_tix
        onboarding = 1.0 + 1.2 * np.exp(-m.tenure_m / 2.0)
        lam = np.array([0.35, 1.2, 3.0])[m.seg] * np.exp(self.ticket_prop[m.alive] - 0.45 * m.h) * onboarding
        n_t = r.poisson(lam * m.frac)
        tr = _rep(n_t)
        if tr.size == 0:
            return
        th = m.h[tr]
        logits = np.stack([np.full(tr.size, 0.2), np.full(tr.size, 1.2), -0.2 - 0.4 * th, -1.4 - 0.9 * th], 1)
        pp = np.exp(logits)
        cum = np.cumsum(pp / pp.sum(1, keepdims=True), 1)
        prio = (r.random(tr.size)[:, None] > cum).sum(1).clip(0, 3)
        opened = _uniform_ts(r, m.lo[tr], m.hi[tr])
        log_res = np.log(np.array([48.0, 30.0, 14.0, 6.0])[prio]) - 0.35 * th + r.normal(0, 0.8, tr.size)
        closed = opened + np.maximum(np.exp(log_res) * 3600, 300).astype(np.int64)
        answered = r.random(tr.size) < 0.55
        score = np.round(3.9 + 0.6 * th - 0.25 * (log_res - np.log(24.0)) + r.normal(0, 0.9, tr.size))
        csat = np.where(answered, np.clip(score, 1, 5), np.nan)
        self.tix.add(acc=m.alive[tr], opened=opened, closed=closed, prio=prio, csat=csat)
        st, a, k, size = self.st, m.alive, m.k, m.alive.size
        st["tix"][a, k] = n_t
        st["urgent"][a, k] = np.bincount(tr, weights=(prio >= 2).astype(float), minlength=size)
        st["logres"][a, k] = np.bincount(tr, weights=log_res, minlength=size)
        st["csat"][a, k] = np.bincount(tr, weights=np.nan_to_num(csat), minlength=size)
        st["csat_n"][a, k] = np.bincount(tr, weights=answered.astype(float), minlength=size)

    def _surveys(self, m: _Month) -> None:
        """NPS in each account's quarterly wave and CSAT now and then; healthy accounts answer more, higher."""
        r = self.r_srv
        wave = np.floor(m.tenure_m).astype(np.int64) % 3 == 2
        nps = wave & (r.random(m.alive.size) < _sigmoid(-0.9 + 0.5 * m.h))
        csat = r.random(m.alive.size) < 0.1 * _sigmoid(0.3 * m.h)
        for code, mask, low, high, centre, slope, sd in (
            (0, nps, 0.0, 10.0, 7.2, 1.6, 1.6), (1, csat, 1.0, 5.0, 3.8, 0.6, 0.8),
        ):
            if mask.any():
                sh = m.h[mask]
                score = np.clip(np.round(centre + slope * sh + r.normal(0, sd, sh.size)), low, high)
                self.srv.add(acc=m.alive[mask], ts=_uniform_ts(r, m.lo[mask], m.hi[mask]),
                             kind=np.full(sh.size, code, np.int8), score=score)

    def _touch(self, m: _Month, kind: str, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rr = _rep(counts)
        ts = _uniform_ts(self.r_touch, m.lo[rr], m.hi[rr])
        self.tch.add(acc=m.alive[rr], ts=ts, kind=np.full(rr.size, TOUCH_KINDS.index(kind), np.int8))
        return rr, ts

    def _touchpoints(self, m: _Month) -> None:
        """Emails opened and clicked, meetings, EBRs, webinars and web visits, all more frequent when healthy."""
        r, h = self.r_touch, m.h
        sent, sent_ts = self._touch(m, "email_sent", r.poisson(np.array([3.0, 4.5, 6.0])[m.seg] * m.frac))
        opened = r.random(sent.size) < _sigmoid(-0.2 + 0.9 * h[sent] + self.email_prop[m.alive][sent])
        open_ts = sent_ts + (r.exponential(8.0, sent.size) * 3600).astype(np.int64) + 60
        opened &= open_ts < m.hi[sent]
        clicked = opened & (r.random(sent.size) < _sigmoid(-1.3 + 0.6 * h[sent]))
        click_ts = open_ts + (r.exponential(0.3, sent.size) * 3600).astype(np.int64) + 5
        clicked &= click_ts < m.hi[sent]
        for kind, mask, ts in (("email_opened", opened, open_ts), ("email_clicked", clicked, click_ts)):
            self.tch.add(acc=m.alive[sent[mask]], ts=ts[mask],
                         kind=np.full(int(mask.sum()), TOUCH_KINDS.index(kind), np.int8))
        self._touch(m, "meeting", r.poisson(np.array([0.15, 0.5, 1.2])[m.seg] * np.exp(0.3 * h) * m.frac))
        ebr, _ = self._touch(m, "ebr", r.poisson(np.array([0.005, 0.07, 0.13])[m.seg] * np.exp(0.7 * h) * m.frac))
        self.st["ebr"][m.alive, m.k] = np.bincount(ebr, minlength=m.alive.size)
        self._touch(m, "webinar", r.poisson(0.12 * np.exp(0.5 * h) * m.frac))
        self._touch(m, "web_visit", r.poisson(np.array([2.0, 3.5, 5.0])[m.seg] * np.exp(0.3 * h) * m.frac))

    def _prospect_touches(self, k: int) -> None:
        """Prospects only visit the website and receive marketing email, from when they appear."""
        m_lo, m_hi = self.month_s[k], self.month_s[k + 1]
        pr = np.flatnonzero(self.prospect & (self.created < self.month_days[k + 1]))
        if pr.size == 0:
            return
        lo = np.maximum(self.created[pr] * _SEC_DAY, m_lo)
        for kind, rate in (("web_visit", 1.5), ("email_sent", 1.0)):
            rr = _rep(self.r_touch.poisson(rate, pr.size))
            ts = _uniform_ts(self.r_touch, lo[rr], np.full(rr.size, m_hi))
            self.tch.add(acc=pr[rr], ts=ts, kind=np.full(rr.size, TOUCH_KINDS.index(kind), np.int8))

    def _invoices(self, m: _Month) -> None:
        """Invoices of the current contract due for issue this month; paid on time, late or never by health."""
        r = self.r_inv
        start = self.con["start"][self.cur[m.alive]]
        d = m.k - (np.searchsorted(self.month_days, start, side="right") - 1)  # months into the contract
        due_now = np.where(self.quarterly[m.alive], (d >= 0) & (d < 12) & (d % 3 == 0), d == 0)
        ia = np.flatnonzero(due_now)
        issued = np.maximum(_add_months(start[ia], d[ia]), start[ia])
        ok = (issued * _SEC_DAY >= m.lo[ia]) & (issued * _SEC_DAY < m.hi[ia])
        ia, issued = ia[ok], issued[ok]
        if ia.size == 0:
            return
        ih, acc = m.h[ia], m.alive[ia]
        due = issued + np.where(m.seg[ia] == 2, 45, 30)
        on_time = r.random(ia.size) < _sigmoid(1.6 + 1.0 * ih)
        unpaid = ~on_time & (r.random(ia.size) < _sigmoid(-2.0 - 1.2 * ih))
        paid = np.where(
            on_time,
            issued + np.floor(r.random(ia.size) * (due - issued + 1)).astype(np.int64),
            due + 1 + (r.exponential(1.0, ia.size) * 20 * np.exp(-0.5 * ih)).astype(np.int64),
        )
        paid = np.where(unpaid | (paid >= self.end_day), -1, paid)
        amount = self.con["arr"][self.cur[acc]] / np.where(self.quarterly[acc], 4.0, 1.0)
        self.inv.add(acc=acc, issued=issued, due=due, paid=paid, amount=np.round(amount, 2))
        # every invoice of a term is past due by its renewal decision, so lateness is known by then
        self.cur_late[acc] += (~on_time).astype(float)

    # --- frames -------------------------------------------------------------------------------------------

    def _world(self) -> World:
        ids, con = self.account_ids, self.con
        seat_cap = self.seat_cap
        user_ids = np.char.add(
            np.repeat(ids, seat_cap), np.char.add("-U", np.char.zfill((_within(seat_cap) + 1).astype(str), 4))
        )
        contracts = _contracts_frame(ids, con["acc"], con["start"], con["seats"], con["arr"], con["outcome"])
        tables = {
            "accounts": _accounts_frame(self.r_names, ids, self.seg, self.industry, self.csm, self.created),
            "contracts": contracts,
            "usage_events": _usage_frame(self.use, ids, user_ids),
            "tickets": _tickets_frame(self.tix, ids, self.alive_to_s, self.end_s),
            "surveys": _surveys_frame(self.srv, ids),
            "touchpoints": _touch_frame(self.tch, ids),
            "invoices": _invoices_frame(self.inv, ids),
            "adjustments": _adjust_frame(self.adj, ids, self.csm, self.alive_to_s, self.end_s),
        }
        return World(spec=self.spec, tables=tables, truth=_truth_frame(self.truth_parts, contracts))


# ----------------------------------------------------------------------------------------------------------
# frames


def _accounts_frame(rng, account_ids, seg, industry, csm, created, *, segments=SEGMENTS, industries=INDUSTRIES,
                    csms=CSMS) -> pd.DataFrame:
    """Accounts with generated names (a few hostile ones); ``csm`` −1 means the account has no CSM."""
    n = account_ids.size
    first = np.array(["Acme", "Blue River", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne",
                      "Hooli", "Vandelay", "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Aperture", "Gringotts",
                      "Oscorp", "Pied Piper", "Dunder", "Monarch", "Nakatomi", "Massive", "Bluth", "Prestige"])
    second = np.array(["Analytics", "Logistics", "Health", "Capital", "Retail", "Foods", "Labs", "Systems",
                       "Energy", "Media", "Learning", "Works", "Partners", "Robotics", "Travel", "Insurance"])
    suffix = np.array(["Inc", "Ltd", "GmbH", "LLC", "SA", "BV", "AB", "Group"])
    names = np.char.add(np.char.add(np.char.add(first[rng.integers(0, first.size, n)], " "),
                                    np.char.add(second[rng.integers(0, second.size, n)], " ")),
                        suffix[rng.integers(0, suffix.size, n)]).astype(object)
    hostile = rng.choice(n, size=min(len(HOSTILE_NAMES), n), replace=False)
    names[hostile] = np.array(HOSTILE_NAMES[: hostile.size], dtype=object)
    return pd.DataFrame({
        "account_id": _text(account_ids),
        "name": _text(names),
        "segment": _text(np.array(segments)[seg]),
        "industry": _text(np.array(industries)[industry]),
        "csm": _text(np.where(csm < 0, None, np.array(csms, dtype=object)[csm])),
        "created_at": _dates(created),
    })


def _contracts_frame(account_ids, acc, start, seats, arr, outcome, *, term_months=12) -> pd.DataFrame:
    """Contracts numbered in order of creation; each ends ``term_months`` (scalar or per contract) after its start."""
    n = start.size
    ends = _add_months(start, term_months)
    out = np.array([None, "churned", "renewed"], dtype=object)[outcome + 1]
    return pd.DataFrame({
        "contract_id": _text(np.char.add("C-", np.char.zfill(np.arange(1, n + 1).astype(str), 6))),
        "account_id": _text(account_ids[acc]),
        "start_date": _dates(start),
        "end_date": _dates(ends),
        "arr": arr.astype(np.float64),
        "seats": seats.astype(np.int64),
        "outcome": _text(out),
    })


def _usage_frame(use: _Events, account_ids, user_ids, *, features=FEATURES) -> pd.DataFrame:
    """Usage rows in time order; ``use.feature`` holds codes into ``features``."""
    ts = use.get("ts", np.int64)
    # time order (ties by account) reads naturally and compresses well
    acc = use.get("acc", np.int64)
    order = np.lexsort((acc, ts))
    feature = pd.Categorical.from_codes(use.get("feature", np.int8)[order], categories=list(features))
    user = pd.Categorical.from_codes(use.get("user", np.int64)[order], categories=pd.Index(user_ids, dtype=object))
    return pd.DataFrame({
        "account_id": _text(account_ids[acc[order]]),
        "user_id": pd.Series(user).astype("str"),
        "ts": _ts(ts[order]),
        "feature": pd.Series(feature).astype("str"),
        "quantity": use.get("qty", np.float64)[order],
    })


def _tickets_frame(tix: _Events, account_ids, alive_to_s, end_s) -> pd.DataFrame:
    acc = tix.get("acc", np.int64)
    opened = tix.get("opened", np.int64)
    closed = tix.get("closed", np.int64)
    # a churned account's open tickets are closed when it leaves; tickets unresolved at the end stay open
    closed = np.minimum(closed, np.where(alive_to_s[acc] < end_s, alive_to_s[acc] - 1, closed))
    closed_ts = np.where(closed >= end_s, np.datetime64("NaT"), _ts(closed))
    order = np.lexsort((acc, opened))
    n = order.size
    return pd.DataFrame({
        "ticket_id": _text(np.char.add("T-", np.char.zfill(np.arange(1, n + 1).astype(str), 7))),
        "account_id": _text(account_ids[acc[order]]),
        "opened_at": _ts(opened[order]),
        "closed_at": closed_ts[order].astype("datetime64[ns]"),
        "priority": _text(np.array(PRIORITIES)[tix.get("prio", np.int64)[order]]),
        "csat": tix.get("csat", np.float64)[order],
    })


def _surveys_frame(srv: _Events, account_ids) -> pd.DataFrame:
    acc, ts = srv.get("acc", np.int64), srv.get("ts", np.int64)
    order = np.lexsort((acc, ts))
    return pd.DataFrame({
        "account_id": _text(account_ids[acc[order]]),
        "responded_at": _ts(ts[order]),
        "kind": _text(np.array(["nps", "csat"])[srv.get("kind", np.int8)[order]]),
        "score": srv.get("score", np.float64)[order],
    })


def _touch_frame(tch: _Events, account_ids) -> pd.DataFrame:
    acc, ts = tch.get("acc", np.int64), tch.get("ts", np.int64)
    kind = tch.get("kind", np.int8)
    order = np.lexsort((kind, acc, ts))
    return pd.DataFrame({
        "account_id": _text(account_ids[acc[order]]),
        "ts": _ts(ts[order]),
        "kind": _text(np.array(TOUCH_KINDS)[kind[order]]),
    })


def _invoices_frame(inv: _Events, account_ids) -> pd.DataFrame:
    acc, issued = inv.get("acc", np.int64), inv.get("issued", np.int64)
    order = np.lexsort((acc, issued))
    paid = inv.get("paid", np.int64)[order]
    n = order.size
    return pd.DataFrame({
        "invoice_id": _text(np.char.add("INV-", np.char.zfill(np.arange(1, n + 1).astype(str), 6))),
        "account_id": _text(account_ids[acc[order]]),
        "issued_at": _dates(issued[order]),
        "due_at": _dates(inv.get("due", np.int64)[order]),
        "paid_at": np.where(paid < 0, np.datetime64("NaT"), _dates(paid)).astype("datetime64[ns]"),
        "amount": inv.get("amount", np.float64)[order],
    })


def _adjust_frame(adj: _Events, account_ids, csm, alive_to_s, end_s) -> pd.DataFrame:
    acc, ts = adj.get("acc", np.int64), adj.get("ts", np.int64)
    keep = (ts < end_s) & (ts < alive_to_s[acc])
    order = np.flatnonzero(keep)[np.lexsort((acc[keep], ts[keep]))]
    follow = adj.get("follow", bool)[order]
    reasons = np.array([r for r, _ in _SHOCKS], dtype=object)[adj.get("reason", np.int64)[order]]
    reasons = np.where(follow, np.char.add("Follow-up: ", reasons.astype(str)).astype(object), reasons)
    expires = adj.get("expires", np.int64)[order]
    return pd.DataFrame({
        "account_id": _text(account_ids[acc[order]]),
        "created_at": _ts(ts[order]),
        "points": adj.get("points", np.int64)[order],
        "reason": _text(reasons),
        "author": _text(np.array(CSMS)[csm[acc[order]]]),
        "expires_at": np.where(expires < 0, np.datetime64("NaT"), _dates(expires)).astype("datetime64[ns]"),
    })


def _truth_frame(parts: list[dict[str, np.ndarray]], contracts: pd.DataFrame) -> pd.DataFrame:
    if not parts:
        cols = ["contract_id", "p_renew", "health", "logit", "utilisation", "support_bad", "no_ebr", "drifted"]
        return pd.DataFrame({c: pd.Series(dtype="str" if c == "contract_id" else "float64") for c in cols})
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cat["contract"], kind="stable")
    return pd.DataFrame({
        "contract_id": contracts["contract_id"].to_numpy()[cat["contract"][order]],
        "p_renew": cat["p_renew"][order],
        "health": cat["health"][order],
        "logit": cat["logit"][order],
        "utilisation": cat["utilisation"][order],
        "support_bad": cat["support_bad"][order],
        "no_ebr": cat["no_ebr"][order].astype(bool),
        "drifted": cat["drifted"][order].astype(bool),
    }).astype({"contract_id": "str"})


# ----------------------------------------------------------------------------------------------------------
# writing
