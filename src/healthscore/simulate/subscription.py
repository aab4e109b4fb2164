"""The subscription world: a self-serve design tool sold per seat on monthly, semi-annual and annual terms.

A second shape of world beside the b2b one (``simulate.py``), because one simulator is not the user's data:
here there is no customer-success data at all, only ``accounts``, ``contracts`` and ``usage_events`` (plus
``truth``); most terms last a month; and what predicts renewal is *which* product features a team uses
(and how many of its seats), not how much it uses the product in general. Build it with ``simulate(SimulationSpec(business="subscription"))``.

The product is a collaborative design tool with event names of its own (``FEATURES``, 26 of them):
``app_open`` (one row per active user and week, quantity = active days), editing, components, shared
libraries, prototypes, comments, exports, plugins, video, the billing page…; every other row is one user's
uses of one feature in one week (quantity = uses).

Accounts. Three plans as segments: ``self_serve`` (1–4 seats), ``team`` (about 3–40) and ``business``
(about 12–250; only these have a success manager). Each account picks a term at sign-up (self-serve
mostly monthly, business mostly annual) and may switch at a renewal: engaged monthly teams move to annual,
disengaged annual ones back to monthly. About 4% of accounts are free workspaces that never pay: no
contract, a little usage.

Engagement. Every paying account has a hidden engagement ``e`` (about standard normal; higher is better)
that moves week by week as a mean-reverting random walk around the account's own level, with rare shocks
(a project ends, the team is reorganised, a new project starts). Each week each seat's user is active with
a probability that rises with ``e``, the user's own propensity and an onboarding ramp; an active user uses
each feature with a probability of its own, most of them barely related to ``e``.

Sticky features. Four core features (``STICKY_FEATURES``: publishing components, syncing a shared library,
linking prototypes, resolving comments) are used only once the account has *adopted* them. Some are
adopted at sign-up; later adoption happens week by week at a rate that rises with ``e`` and team size,
and an adopted feature lapses now and then when ``e`` is low.

Renewal. At each term's end the account renews with probability ``p_renew = sigmoid(logit)`` where (see
``_renewal_logit``)::

    logit = b_term + segment + 0.45·(sticky_breadth − 1) + 0.3·log1p(sticky_uses_per_user)
            + 0.6·(utilisation − 0.5)/0.25 + 0.4·e − 0.5·first_term − 1.0·inactive

measured on the simulated events of the four weeks before the decision: ``sticky_breadth`` is how many of
the four sticky features anyone used (0–4), ``sticky_uses_per_user`` their uses per weekly active user,
``utilisation`` weekly active users over seats, and ``inactive`` 1 when nobody was active. ``b_term``
(``_TERM_RENEW``) makes churn a few percent per monthly term and more per semi-annual and annual term
(about 5%, 11% and 16% at the default size). A model that reads which features are used can approach the
truth but not reach it. Two events hint at churn without causing it: the account's admin opens
``billing_page_view`` more often when ``e`` is low (and in the two weeks before a renewal), and users of
disengaged teams run ``bulk_export``.

Time runs in weeks from the world's start (the last may be short). A term ending within a week is decided
at that week's start; a renewed term continues from the old ``end_date`` with seats changed by
utilisation and engagement; a churned account has no events on or after its last ``end_date``. All
events lie in ``[start, start + months)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.simulate.b2b import (
    _SEC_DAY,
    SimulationSpec,
    World,
    _accounts_frame,
    _add_months,
    _arrivals,
    _contracts_frame,
    _Events,
    _rep,
    _sigmoid,
    _uniform_ts,
    _usage_frame,
    _within,
)

SEGMENTS: tuple[str, ...] = ("self_serve", "team", "business")
INDUSTRIES: tuple[str, ...] = (
    "agency", "software", "ecommerce", "media", "education", "marketing", "gaming", "nonprofit",
)
#: success managers look after business plans only
CSMS: tuple[str, ...] = ("Ines Duarte", "Kwame Mensah", "Li Wei", "Sofia Rossi")
#: the term lengths sold, in months
TERM_MONTHS: tuple[int, ...] = (1, 6, 12)

# Per feature: kind, base logit per active user and week, weight of engagement, mean extra uses per week.
# Kinds: ``login`` (every active user), ``plain``, ``sticky`` (only once adopted), ``admin`` (the
# account's first seat, whether active or not).
_FEATURE_TABLE: tuple[tuple[str, str, float, float, float], ...] = (
    ("app_open", "login", 0.0, 0.0, 0.0),
    ("canvas_edit", "plain", 0.6, 0.3, 8.0),
    ("file_create", "plain", -1.0, 0.3, 1.5),
    ("text_style", "plain", -0.8, 0.2, 4.0),
    ("vector_draw", "plain", -1.2, 0.2, 5.0),
    ("image_upload", "plain", -1.4, 0.0, 2.0),
    ("template_use", "plain", -1.8, -0.2, 1.0),
    ("auto_layout", "plain", -1.7, 0.3, 3.0),
    ("plugin_run", "plain", -2.4, 0.2, 2.0),
    ("asset_export", "plain", -1.2, 0.1, 2.0),
    ("share_link", "plain", -1.8, 0.3, 1.0),
    ("comment_add", "plain", -1.4, 0.4, 3.0),
    ("comment_resolve", "sticky", -0.7, 0.4, 2.5),
    ("prototype_play", "plain", -2.0, 0.3, 2.0),
    ("prototype_link", "sticky", -0.9, 0.4, 1.5),
    ("component_create", "plain", -2.2, 0.4, 2.0),
    ("component_publish", "sticky", -1.2, 0.4, 1.5),
    ("library_sync", "sticky", -0.3, 0.4, 3.0),
    ("handoff_inspect", "plain", -2.2, 0.3, 3.0),
    ("version_restore", "plain", -3.4, 0.0, 0.5),
    ("brand_kit_apply", "plain", -3.0, 0.3, 1.0),
    ("video_render", "plain", -3.2, 0.1, 1.0),
    ("presentation_mode", "plain", -2.8, 0.2, 1.0),
    ("bulk_export", "plain", -5.0, -1.2, 0.5),
    ("seat_invite", "admin", -3.4, 0.8, 0.3),
    ("billing_page_view", "admin", -3.8, -1.2, 0.5),
)
FEATURES: tuple[str, ...] = tuple(f[0] for f in _FEATURE_TABLE)
#: the core features whose use keeps a team (renewal depends on them; see the module docstring)
STICKY_FEATURES: tuple[str, ...] = ("component_publish", "library_sync", "prototype_link", "comment_resolve")

_KIND = np.array([f[1] for f in _FEATURE_TABLE])
_F_BASE = np.array([f[2] for f in _FEATURE_TABLE])
_F_ENGAGE = np.array([f[3] for f in _FEATURE_TABLE])
_F_USES = np.array([f[4] for f in _FEATURE_TABLE])
_USER_COLS = np.flatnonzero(np.isin(_KIND, ["plain", "sticky"]))  # features an active user may use
_STICKY_COLS = np.array([FEATURES.index(f) for f in STICKY_FEATURES])
_STICKY_INDEX = np.full(len(FEATURES), -1)  # feature code → position in STICKY_FEATURES, −1 if not sticky
_STICKY_INDEX[_STICKY_COLS] = np.arange(len(STICKY_FEATURES))
_ADMIN_COLS = np.flatnonzero(_KIND == "admin")
_NEAR_END_BOOST = np.where(np.array(FEATURES)[_ADMIN_COLS] == "billing_page_view", 1.2, 0.0)
_NOT_ADOPTED_LOGIT = -5.5  # a sticky feature an account has not adopted is tried only now and then
# weekly adoption hazard of each sticky feature: base logit (plus 0.9·e + 0.35·log seats)
_ADOPT_BASE = np.array([-5.4, -5.6, -4.8, -5.0])

_SEG_MIX = np.array([0.5, 0.38, 0.12])
# seats: log median, sd, min, max
_SEG_SEATS = np.array([[np.log(1.6), 0.5, 1, 4], [np.log(6.0), 0.55, 3, 40], [np.log(22.0), 0.6, 12, 250]])
_SEG_TERMS = np.array([[0.8, 0.07, 0.13], [0.6, 0.15, 0.25], [0.3, 0.2, 0.5]])  # P(monthly, semi, annual)
_SEG_PRICE = np.array([15.0, 15.0, 20.0])  # per seat and month on a monthly term
_TERM_DISCOUNT = np.array([1.0, 0.9, 0.8])  # longer terms pay less per month
_SEG_ENGAGE = np.array([-0.1, 0.05, 0.15])
_SEG_RENEW = np.array([-0.2, 0.0, 0.3])
_TERM_RENEW = np.array([3.5, 2.3, 1.6])  # b_term per term length in TERM_MONTHS

# Shocks to engagement: (what happened, effect); rare, mostly bad.
_SHOCKS: tuple[tuple[str, float], ...] = (
    ("project ended", -1.0), ("team reorganised", -0.7), ("trialling a competitor", -0.6),
    ("new project started", 0.7),
)
_SHOCK_P = np.array([0.35, 0.25, 0.15, 0.25])
_SHOCK_RATE = 0.004  # per active account-week
_FREE_SHARE = 0.04
_WEEK_S = 7 * _SEC_DAY


def simulate_subscription(spec: SimulationSpec) -> World:
    """Simulate the subscription world of the module docstring: accounts, contracts, usage_events and truth.

    ``spec.business`` should be ``"subscription"`` (``simulate`` dispatches here on it); ``spec.drift`` is
    not simulated in this world.
    """
    return _Subscription(spec).run()


def _renewal_logit(*, seg, term, breadth, uses_per_user, util, e, first_term, inactive) -> np.ndarray:
    """The true renewal logit (module docstring); ``term`` indexes ``TERM_MONTHS``."""
    return (
        _TERM_RENEW[term]
        + _SEG_RENEW[seg]
        + 0.45 * (breadth - 1.0)
        + 0.3 * np.log1p(uses_per_user)
        + 0.6 * (util - 0.5) / 0.25
        + 0.4 * e
        - 0.5 * first_term
        - 1.0 * inactive
    )


class _Subscription:
    """The world's state, advanced one week at a time; each week's events are drawn for all accounts at once."""

    def __init__(self, spec: SimulationSpec) -> None:
        self.spec = spec
        n = self.n = int(spec.accounts)
        root = np.random.default_rng(spec.seed)
        # one stream per concern, as in the b2b world
        (self.r_acc, self.r_engage, self.r_use, self.r_renew, self.r_contract, self.r_names) = root.spawn(6)
        r = self.r_acc

        start_day = int(np.datetime64(spec.start, "D").astype(np.int64))
        self.end_day = int(_add_months(np.array([start_day]), int(spec.months))[0])
        self.end_s = self.end_day * _SEC_DAY
        world_days = self.end_day - start_day
        n_w = -(-world_days // 7)
        self.week_days = np.minimum(start_day + 7 * np.arange(n_w + 1), self.end_day)
        self.n_w = n_w

        # --- accounts ---------------------------------------------------------------------------------
        self.seg = seg = r.choice(3, size=n, p=_SEG_MIX)
        self.free = np.zeros(n, bool)
        if n >= 10:
            self.free[r.choice(n, size=max(1, round(_FREE_SHARE * n)), replace=False)] = True
        self.first_start = _arrivals(r, n, world_days, start_day, early_share=0.45)  # sign-ups
        self.created = np.where(self.free, start_day + r.integers(0, world_days, n), self.first_start)
        self.industry = r.choice(len(INDUSTRIES), size=n)
        self.csm = np.where(seg == 2, r.integers(0, len(CSMS), n), -1)
        self.mu = _SEG_ENGAGE[seg] + r.normal(0.0, 0.6, n)
        self.usage_prop = r.normal(0.0, 0.35, n)  # how much a team uses the tool, unrelated to engagement
        self.term = (r.random(n)[:, None] > np.cumsum(_SEG_TERMS[seg], axis=1)).sum(axis=1).clip(0, 2)
        sp = _SEG_SEATS[seg]
        self.seats0 = np.clip(np.round(np.exp(r.normal(sp[:, 0], sp[:, 1]))), sp[:, 2], sp[:, 3]).astype(np.int64)
        self.price = _SEG_PRICE[seg] * np.exp(r.normal(0.0, 0.08, n))  # per seat and month, monthly term
        self.seat_cap = 2 * self.seats0 + 3
        self.seat_off = np.cumsum(self.seat_cap) - self.seat_cap
        self.z_seat = r.normal(0.0, 1.0, int(self.seat_cap.sum()))
        self.account_ids = np.char.add("A-", np.char.zfill(np.arange(1, n + 1).astype(str), 5))

        # --- state --------------------------------------------------------------------------------------
        self.e = np.full(n, np.nan)
        self.tau = np.full(n, np.nan)  # weeks to ramp up
        self.adopted = np.zeros((n, len(STICKY_FEATURES)), bool)
        self.alive_from_s = np.where(self.free, np.iinfo(np.int64).max, self.first_start * _SEC_DAY)
        self.alive_to_s = np.full(n, self.end_s, dtype=np.int64)
        self.cur = np.full(n, -1)
        self.n_terms = np.zeros(n, dtype=np.int64)
        # the last four weeks of what the renewal decision reads, as ring buffers indexed by week % 4
        self.ring_users = np.zeros((n, 4))
        self.ring_seats = np.zeros((n, 4))
        self.ring_sticky = np.zeros((n, 4, len(STICKY_FEATURES)))
        self.con = {k: np.zeros(0, np.int64) for k in ("acc", "start", "end", "term", "seats", "outcome")}
        self.con["arr"] = np.zeros(0)
        self.truth_parts: list[dict[str, np.ndarray]] = []
        self.use = _Events("acc", "user", "ts", "feature", "qty")

    # --- the week loop ------------------------------------------------------------------------------------

    def run(self) -> World:
        for w in range(self.n_w):
            new = self._arrivals(w)
            self._decide(w)
            alive, lo, hi = self._step(w, new)
            if alive.size:
                self._usage(w, alive, lo, hi)
            self._free_usage(w)
        return self._world()

    def _new_contracts(self, acc: np.ndarray, start: np.ndarray, seats: np.ndarray) -> None:
        term = self.term[acc]
        months = np.array(TERM_MONTHS)[term]
        arr = np.round(seats * self.price[acc] * _TERM_DISCOUNT[term] * 12, 2)
        first = self.con["acc"].size
        for key, values in (("acc", acc), ("start", start), ("end", _add_months(start, months)), ("term", term),
                            ("seats", seats), ("arr", arr), ("outcome", np.full(acc.size, -1))):
            self.con[key] = np.concatenate([self.con[key], values])
        self.cur[acc] = np.arange(first, first + acc.size)
        self.n_terms[acc] += 1

    def _arrivals(self, w: int) -> np.ndarray:
        """Accounts whose first term starts this week subscribe; engagement, ramp and adoption are set."""
        lo_d, hi_d = self.week_days[w], self.week_days[w + 1]
        new = np.flatnonzero(~self.free & (self.first_start >= lo_d) & (self.first_start < hi_d))
        if new.size:
            self._new_contracts(new, self.first_start[new], self.seats0[new])
            r = self.r_engage
            self.e[new] = self.mu[new] + r.normal(0.0, 0.5, new.size)
            self.tau[new] = 2.5 * np.exp(-0.5 * self.e[new])
            # teams moving their existing design system in bring some core habits with them
            p0 = _sigmoid(-2.8 + 0.8 * self.e[new] + 0.3 * np.log(self.seats0[new]))
            self.adopted[new] = r.random((new.size, len(STICKY_FEATURES))) < p0[:, None]
        return new

    def _decide(self, w: int) -> None:
        """Terms ending this week renew or churn, from the four weeks before (the rings)."""
        has = self.cur >= 0
        cend = np.full(self.n, np.iinfo(np.int64).max)
        cend[has] = self.con["end"][self.cur[has]]
        lo_d, hi_d = self.week_days[w], self.week_days[w + 1]
        dec = np.flatnonzero(has & (cend >= lo_d) & (cend < hi_d) & (self.alive_to_s == self.end_s))
        if dec.size == 0:
            return
        users = self.ring_users[dec].sum(1)
        util = users / np.maximum(self.ring_seats[dec].sum(1), 1.0)
        sticky = self.ring_sticky[dec].sum(1)  # (accounts, sticky features): uses in four weeks
        breadth = (sticky > 0).sum(1).astype(float)
        uses_per_user = sticky.sum(1) / np.maximum(users, 1.0)
        cids = self.cur[dec]
        term = self.con["term"][cids]
        logit = _renewal_logit(
            seg=self.seg[dec], term=term, breadth=breadth, uses_per_user=uses_per_user, util=util,
            e=self.e[dec], first_term=(self.n_terms[dec] == 1).astype(float), inactive=(users == 0).astype(float),
        )
        p = _sigmoid(logit)
        renew = self.r_renew.random(dec.size) < p
        self.con["outcome"][cids] = renew.astype(np.int64)
        self.truth_parts.append(dict(
            contract=cids, p_renew=p, engagement=self.e[dec].copy(), logit=logit, utilisation=util,
            sticky_breadth=breadth, sticky_uses_per_user=uses_per_user, term_months=np.array(TERM_MONTHS)[term],
        ))
        gone = dec[~renew]
        self.alive_to_s[gone] = cend[gone] * _SEC_DAY
        stay = dec[renew]
        if stay.size:
            r, e_s, u_s = self.r_contract, self.e[stay], util[renew]
            # engaged monthly teams commit to a year; disengaged annual ones fall back to monthly
            t = self.term[stay]
            to_annual = (t == 0) & (r.random(stay.size) < _sigmoid(-4.5 + 0.8 * e_s))
            to_monthly = (t == 2) & (r.random(stay.size) < _sigmoid(-3.0 - 1.0 * e_s))
            self.term[stay] = np.where(to_annual, 2, np.where(to_monthly, 0, t))
            # seats follow utilisation, more over a longer term
            f = np.array(TERM_MONTHS)[term[renew]] / 12.0
            growth = r.normal(f * (0.04 + 0.06 * e_s + 0.5 * (u_s - 0.55)), 0.15 * np.sqrt(f))
            seats = np.round(self.con["seats"][cids[renew]] * np.exp(growth))
            seats = np.clip(seats, 1, self.seat_cap[stay]).astype(np.int64)
            self.price[stay] *= 1.0 + r.uniform(0.0, 0.05, stay.size) * f
            self._new_contracts(stay, cend[stay], seats)

    def _step(self, w: int, new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Who is paying this week; engagement moves (not in the week of sign-up), shocks strike, habits change."""
        slot = w % 4
        self.ring_users[:, slot] = 0.0
        self.ring_seats[:, slot] = 0.0
        self.ring_sticky[:, slot] = 0.0
        w_lo, w_hi = self.week_days[w] * _SEC_DAY, self.week_days[w + 1] * _SEC_DAY
        lo = np.maximum(w_lo, self.alive_from_s)
        hi = np.minimum(w_hi, self.alive_to_s)
        alive = np.flatnonzero(hi > lo)
        if alive.size == 0:
            return alive, lo[:0], hi[:0]
        lo, hi = lo[alive], hi[alive]
        r, e, mu = self.r_engage, self.e, self.mu
        old = alive[~np.isin(alive, new)]
        e[old] = mu[old] + 0.963 * (e[old] - mu[old]) + r.normal(0.0, 0.16, old.size)
        shocked = old[r.random(old.size) < _SHOCK_RATE]
        if shocked.size:
            effect = np.array([x for _, x in _SHOCKS])[r.choice(len(_SHOCKS), size=shocked.size, p=_SHOCK_P)]
            e[shocked] += effect
        seats = np.log(self.con["seats"][self.cur[old]])[:, None]
        ad = self.adopted[old]
        u = r.random(ad.shape)
        adopt = u < _sigmoid(_ADOPT_BASE[None, :] + 0.9 * e[old][:, None] + 0.35 * seats)
        lapse = u < _sigmoid(-4.6 - 1.2 * e[old])[:, None]
        self.adopted[old] = np.where(ad, ~lapse, adopt)
        return alive, lo, hi

    # --- usage for one week ------------------------------------------------------------------------------

    def _usage(self, w: int, alive: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Seats × week: which users are active, which features each uses and how often; the admin's events."""
        r, slot = self.r_use, w % 4
        frac = (hi - lo) / _WEEK_S
        e = self.e[alive]
        con = self.cur[alive]
        seats = self.con["seats"][con]
        tenure_w = ((lo + hi) / 2 - self.first_start[alive] * _SEC_DAY) / _WEEK_S
        ramp = 1.0 - np.exp(-(tenure_w + 0.5) / self.tau[alive])
        act_logit = 0.4 + 1.1 * e + self.usage_prop[alive]
        sr, sj = _rep(seats), _within(seats)
        user = self.seat_off[alive][sr] + sj
        z = self.z_seat[user]
        active = r.random(sr.size) < ramp[sr] * _sigmoid(act_logit[sr] + z) * np.sqrt(frac[sr])
        ua, uz, ug = sr[active], z[active], user[active]  # alive position, propensity, global user of each
        ue = e[ua]
        self.ring_users[alive, slot] = np.bincount(ua, minlength=alive.size)
        self.ring_seats[alive, slot] = seats

        # app_open: every active user, quantity = active days that week
        days = np.maximum(np.round(6 * frac[ua]), 1).astype(np.int64)
        qty = 1 + r.binomial(days - 1, _sigmoid(-0.2 + 0.8 * ue + 0.3 * uz))
        self._add(alive[ua], ug, lo[ua], hi[ua], np.full(ua.size, FEATURES.index("app_open")), qty)

        # every other feature an active user may use: one draw per (user, feature)
        logits = _F_BASE[_USER_COLS][None, :] + _F_ENGAGE[_USER_COLS][None, :] * ue[:, None] + 0.4 * uz[:, None]
        sticky_at = np.searchsorted(_USER_COLS, _STICKY_COLS)
        adopted = self.adopted[alive[ua]]
        logits[:, sticky_at] = np.where(adopted, logits[:, sticky_at], _NOT_ADOPTED_LOGIT)
        rows, cols = np.nonzero(r.random(logits.shape) < _sigmoid(logits))
        f = _USER_COLS[cols]
        qty = 1 + r.poisson(_F_USES[f] * np.exp(0.3 * ue[rows]))
        self._add(alive[ua[rows]], ug[rows], lo[ua[rows]], hi[ua[rows]], f, qty)
        j = _STICKY_INDEX[f]
        is_sticky = j >= 0
        counts = np.bincount(ua[rows][is_sticky] * len(STICKY_FEATURES) + j[is_sticky], weights=qty[is_sticky],
                             minlength=alive.size * len(STICKY_FEATURES))
        self.ring_sticky[alive, slot] = counts.reshape(alive.size, len(STICKY_FEATURES))

        # the admin (first seat) invites teammates and looks at the billing page, active or not
        near_end = (self.con["end"][con] * _SEC_DAY - lo) <= 14 * _SEC_DAY
        p = _sigmoid(_F_BASE[_ADMIN_COLS][None, :] + _F_ENGAGE[_ADMIN_COLS][None, :] * e[:, None]
                     + _NEAR_END_BOOST[None, :] * near_end[:, None]) * frac[:, None]
        rows, cols = np.nonzero(r.random(p.shape) < p)
        f = _ADMIN_COLS[cols]
        self._add(alive[rows], self.seat_off[alive[rows]], lo[rows], hi[rows], f, 1 + r.poisson(_F_USES[f]))

    def _free_usage(self, w: int) -> None:
        """Free workspaces: one user who opens the app and edits now and then, from when the workspace exists."""
        lo_d, hi_d = self.week_days[w], self.week_days[w + 1]
        acc = np.flatnonzero(self.free & (self.created < hi_d))
        if acc.size == 0:
            return
        r = self.r_use
        acc = acc[r.random(acc.size) < 0.3]
        lo = np.maximum(self.created[acc], lo_d) * _SEC_DAY
        hi = np.full(acc.size, hi_d * _SEC_DAY)
        for name in ("app_open", "canvas_edit"):
            self._add(acc, self.seat_off[acc], lo, hi, np.full(acc.size, FEATURES.index(name)),
                      1 + r.poisson(1.0, acc.size))

    def _add(self, acc, user, lo, hi, feature, qty) -> None:
        if acc.size:
            self.use.add(acc=acc, user=user, ts=_uniform_ts(self.r_use, lo, hi), feature=feature.astype(np.int8),
                         qty=qty.astype(np.float64))

    # --- frames -------------------------------------------------------------------------------------------

    def _world(self) -> World:
        ids, con = self.account_ids, self.con
        user_ids = np.char.add(
            np.repeat(ids, self.seat_cap),
            np.char.add("-U", np.char.zfill((_within(self.seat_cap) + 1).astype(str), 4)),
        )
        contracts = _contracts_frame(ids, con["acc"], con["start"], con["seats"], con["arr"], con["outcome"],
                                     term_months=np.array(TERM_MONTHS)[con["term"]])
        tables = {
            "accounts": _accounts_frame(self.r_names, ids, self.seg, self.industry, self.csm, self.created,
                                        segments=SEGMENTS, industries=INDUSTRIES, csms=CSMS),
            "contracts": contracts,
            "usage_events": _usage_frame(self.use, ids, user_ids, features=FEATURES),
        }
        return World(spec=self.spec, tables=tables, truth=_truth_frame(self.truth_parts, contracts))


_TRUTH_COLUMNS = ("contract_id", "p_renew", "engagement", "logit", "utilisation", "sticky_breadth",
                  "sticky_uses_per_user", "term_months")


def _truth_frame(parts: list[dict[str, np.ndarray]], contracts: pd.DataFrame) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="str" if c == "contract_id" else "float64") for c in _TRUTH_COLUMNS})
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cat["contract"], kind="stable")
    frame = pd.DataFrame({"contract_id": contracts["contract_id"].to_numpy()[cat["contract"][order]]})
    for col in _TRUTH_COLUMNS[1:]:
        frame[col] = cat[col][order].astype("int64" if col == "term_months" else "float64")
    return frame.astype({"contract_id": "str"})
