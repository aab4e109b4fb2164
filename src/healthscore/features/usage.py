"""Usage: who uses the product, how often, how broadly, which parts of it, and whether it is growing.

Reads usage_events. Events are first summed per account, user and day (that does not depend on any
observation date), then each observation sees the days strictly before its as_of through the windowing
helper. The key product features (``features.key_features``: learned at training, or configured) give
breadth and a family of two columns each: the share of active users using it and that share's change.
"""

from __future__ import annotations

from datetime import date, timedelta

from healthscore.features._registry import Column, Component, FeatureSpec, instantiate
from healthscore.features._window import Window, sql_text
from healthscore.features.time_to_value import BLOCK_DAYS, ERA_BLOCKS
from healthscore.features.vocabulary import key_feature_slugs, unique_key_features

component = Component("usage")

#: days per bucket of the table that finds the last activity up to a year back
BUCKET_DAYS = 30
#: the longest window read from user-days (``usage_users``)
USER_DAY_LOOKBACK_DAYS = 90
#: tables that are views with one observation day: the last 90 days' events, read once by ``usage_users``,
#: stream through it instead of being copied (no memory that grows with the events per user and day)
ONE_DAY_VIEWS = ("usage_user_days",)
#: decimal sums are exact, so event counts do not depend on row order or threads
EXACT_QUANTITY = "CAST(quantity AS DECIMAL(18, 6))"
#: how far back days_since_last_activity looks; older activity (or none) reads as this many days
LAST_ACTIVITY_CAP_DAYS = 365


# -- tables that do not depend on the observation date -----------------------------------------------
#: key features per bit mask column (a BIGINT holds 63 bits; more key features take more columns)
MASK_BITS = 60


def key_feature_masks(w: Window) -> dict[str, list[str]]:
    """Mask columns ``kf_0``, ``kf_1``, ... and the key features (sorted) whose use each one's bits flag."""
    names = _key_features(w)
    return {f"kf_{i // MASK_BITS}": names[i:i + MASK_BITS] for i in range(0, len(names), MASK_BITS)}


def _key_features(w: Window) -> list[str]:
    return sorted(set(w.config.key_features))


def key_feature_bits(w: Window) -> dict[str, tuple[str, int]]:
    """Each key feature's mask column and bit in it."""
    return {name: (col, bit) for col, names in key_feature_masks(w).items() for bit, name in enumerate(names)}


def _midnight(day: int) -> str:
    """The SQL timestamp at the start of day number ``day`` (days since 1970-01-01)."""
    return f"TIMESTAMP '{(date(1970, 1, 1) + timedelta(days=int(day))).isoformat()}'"


def _uses(col: str, bit: int) -> str:
    """The user-day used the key feature of bit ``bit`` of mask column ``col``."""
    return f"(({col} & CAST({1 << bit} AS BIGINT)) <> 0)"


@component.table(reads=("usage_events",))
def usage_user_days(w: Window) -> str:
    """Events (summed quantity) per account, user and day, and a bit per key feature used.

    One pass over the raw events; every day-level usage window reads this instead. Quantities are summed as
    decimals so the result is exact whatever the order rows arrive in. Key-feature use is one bit mask per
    row (one aggregate instead of one per key feature), bit ``i`` for the ``i``-th key feature of its column.

    With one observation day (``Window.one_day``) it is one row per event of the ``USER_DAY_LOOKBACK_DAYS``
    days before that day, not summed per day: no window reads further back (the longer ones read
    ``usage_user_eras``), and ``usage_users`` reads only sums, maxima and OR-ed bits, the same over a day's
    events as over the day. Grouping them first was the cost: measured on 50M events at one date, 3.6 s to
    turn the last 90 days' 6.2M events into 5.9M user-days; read as a view (``ONE_DAY_VIEWS``) they cost
    the one scan ``usage_users`` makes of them.
    """
    # each event's key-feature bits, one mask column per MASK_BITS key features
    bits = {col: "CASE feature " + " ".join(f"WHEN {sql_text(name)} THEN CAST({1 << bit} AS BIGINT)"
                                             for bit, name in enumerate(names)) + " ELSE CAST(0 AS BIGINT) END"
            for col, names in key_feature_masks(w).items()}
    if w.one_day is not None:
        masks = "".join(f", {expr} AS {col}" for col, expr in bits.items())
        since = w.one_day - USER_DAY_LOOKBACK_DAYS
        # the same days said on the timestamp itself: DuckDB applies that filter inside the scan, before the
        # other columns are decoded (day is an expression of ts it cannot see through). On 50M events at one
        # date, 10% of them in these 90 days: 1.15 s against 1.6 s for the scan
        return (
            f"SELECT account_id, user_id, day, {EXACT_QUANTITY} AS events{masks} FROM in_usage_events "
            f"WHERE day >= {since} AND ts >= {_midnight(since)} AND ts < {_midnight(w.one_day)}"
        )
    masks = "".join(f", bit_or({expr}) AS {col}" for col, expr in bits.items())
    return (
        f"SELECT account_id, user_id, day, sum({EXACT_QUANTITY}) AS events{masks} FROM in_usage_events "
        "GROUP BY account_id, user_id, day"
    )


@component.table(reads=("usage_events",))
def usage_user_eras(w: Window) -> str:
    """Per account, user and era (``ERA_BLOCKS`` 30-day blocks since the customer's start): a bit mask of the
    blocks the user was active in, and the user's last active day.

    Days before the customer's start (or with no known start) have era NULL and mask 0: they count for the
    last active day only. Read by time to value (active users per block) and, with one observation day, by
    ``usage_account_buckets``. Built from ``usage_user_days``, or, with one observation day (whose user-days
    do not go back far enough), straight from the events.
    """
    # ``in_usage_events`` holds only events before the latest as_of (``build_features`` cuts every source)
    source = "usage_user_days" if w.one_day is None else "in_usage_events"
    since = "(u.day - c.customer_start)"
    started = "u.day >= c.customer_start"
    era = f"CASE WHEN {started} THEN CAST(floor({since} / {BLOCK_DAYS * ERA_BLOCKS}.0) AS INTEGER) END"
    block = f"CAST(floor({since} / {BLOCK_DAYS}.0) AS INTEGER) - {ERA_BLOCKS} * {era}"
    return f"""
        SELECT u.account_id, u.user_id, c.customer_start, {era} AS era,
               bit_or(CASE WHEN {started} THEN CAST(power(2, {block}) AS BIGINT) ELSE CAST(0 AS BIGINT) END) AS mask,
               max(u.day) AS last_day
        FROM {source} AS u LEFT JOIN in_customers AS c ON c.account_id = u.account_id
        GROUP BY u.account_id, u.user_id, c.customer_start, {era}
    """


@component.table(reads=("usage_events",))
def usage_account_buckets(w: Window) -> str:
    """The last active day of each account in each 30-day bucket (for days_since_last_activity).

    With one observation day only each account's last bucket (its last active day before that day): that
    is all ``usage_last_day`` can read then, as every row is before the day.
    """
    if w.one_day is not None:
        return (
            f"SELECT account_id, CAST(floor(max(last_day) / {BUCKET_DAYS}.0) AS INTEGER) AS bucket, "
            "max(last_day) AS last_day FROM usage_user_eras GROUP BY account_id"
        )
    return (
        f"SELECT account_id, CAST(floor(day / {BUCKET_DAYS}.0) AS INTEGER) AS bucket, max(day) AS last_day "
        f"FROM usage_user_days GROUP BY account_id, CAST(floor(day / {BUCKET_DAYS}.0) AS INTEGER)"
    )


# -- what each observation sees --------------------------------------------------------------------
@component.source(reads=("usage_events",))
def usage_users(w: Window) -> str:
    """Each user active in the 90 days before as_of, one row per observation and user: every usage window
    is aggregated from these partial sums.

    Two levels, as a hand-written query would: the account's user-days in the 90 days are first summed
    per user (last active day, events in each 30-day window, a 30-bit mask of active days, bit
    ``as_of - 1 - day``, whose bits count the user-days, and the key features used as bit masks: in the 90
    days, and in the 30-day windows the per-feature columns need, ``features.usage_by_feature``), then per
    observation.
    Distinct users are then plain counts of these rows, and distinct days and key features the bits of
    OR-ed masks: no window function over the user-days, and no DISTINCT.
    """
    recent, prev = w.within("day", 30), w.between("day", 60, 30)
    zero = "CAST(0 AS BIGINT)"
    bit = f"CAST(power(2, {w.days_since('day')} - 1) AS BIGINT)"
    by_feature = w.config.usage_by_feature
    masks = "".join(
        f", bit_or({col}) AS {col}"
        + (f", bit_or(CASE WHEN {recent} THEN {col} ELSE {zero} END) AS {col}_30d" if by_feature != "off" else "")
        + (f", bit_or(CASE WHEN {prev} THEN {col} ELSE {zero} END) AS {col}_prev_30d"
           if by_feature == "share_and_change" else "")
        for col in key_feature_masks(w)
    )
    return (
        "SELECT key_id, as_of, user_id, max(day) AS last_day, "
        f"max(CASE WHEN {prev} THEN 1 ELSE 0 END) AS active_prev_30d, "
        f"sum(CASE WHEN {recent} THEN events ELSE 0 END) AS events_30d, "
        f"sum(CASE WHEN {prev} THEN events ELSE 0 END) AS events_prev_30d, "
        f"bit_or(CASE WHEN {recent} THEN {bit} ELSE {zero} END) AS days_mask_30d{masks} "
        f"FROM {w.events('usage_user_days', 'day', lookback_days=USER_DAY_LOOKBACK_DAYS)} AS e "
        "GROUP BY key_id, as_of, user_id"
    )


@component.source(reads=("usage_events",))
def usage_last_day(w: Window) -> str:
    """The last active day of each 30-day bucket (days since 1970 // 30) in the year before as_of.

    A bucket counts only when its last active day is before as_of; activity earlier in a bucket that is
    skipped is within 30 days of as_of, so ``usage_users`` has it. About 12 rows per observation instead
    of 365.
    """
    ev = w.events("usage_account_buckets", "last_day", lookback_days=LAST_ACTIVITY_CAP_DAYS)
    return f"SELECT key_id, as_of, last_day FROM {ev} AS e"


# -- features ----------------------------------------------------------------------------------------
@component.feature(source="usage_users", unit="users", window_days=30, direction=+1, empty=0.0)
def active_users_30d(w: Window) -> str:
    """Distinct users with any usage event in the 30 days before as_of.

    No events: 0.
    """
    return f"count(CASE WHEN {w.within('last_day', 30)} THEN 1 END)"


@component.feature(source="usage_users", unit="users", window_days=90, direction=+1, empty=0.0)
def active_users_90d(w: Window) -> str:
    """Distinct users with any usage event in the 90 days before as_of.

    No events: 0.
    """
    return "count(*)"


@component.feature(unit="share of seats", window_days=30, direction=+1)
def seat_utilization_30d(w: Window) -> str:
    """Active users in the last 30 days per licensed seat of the observed contract (can exceed 1).

    No events: 0. No contract or no seats: NaN.
    """
    return "active_users_30d / NULLIF(o.contract_seats, 0)"


@component.measure(source="usage_users", empty=0.0)
def _user_days_30d(w: Window) -> str:
    # a user's days in the 30 days are the bits of their mask (the rows may be events, ``Window.one_day``)
    return "sum(bit_count(days_mask_30d))"


@component.measure(source="usage_users", empty=0.0)
def _events_30d(w: Window) -> str:
    return "CAST(sum(events_30d) AS DOUBLE)"


@component.measure(source="usage_users", empty=0.0)
def _events_prev_30d(w: Window) -> str:
    return "CAST(sum(events_prev_30d) AS DOUBLE)"


@component.feature(unit="ratio", window_days=30, direction=+1)
def stickiness_dau_mau_30d(w: Window) -> str:
    """Average daily active users over the last 30 days divided by the 30-day active users (0-1).

    No events: NaN.
    """
    return "(_user_days_30d / 30.0) / NULLIF(active_users_30d, 0)"


@component.feature(unit="events per user", window_days=30, direction=+1)
def events_per_active_user_30d(w: Window) -> str:
    """Usage events (summed quantity) in the last 30 days per 30-day active user.

    No events: NaN.
    """
    return "_events_30d / NULLIF(active_users_30d, 0)"


@component.feature(source="usage_users", unit="days", window_days=30, direction=+1, empty=0.0)
def active_days_30d(w: Window) -> str:
    """Days with any usage event in the 30 days before as_of (0-30).

    No events: 0.
    """
    # distinct days without grouping by day: bit (as_of - 1 - day) of each user's 30-bit mask, OR-ed, counted
    return "CAST(bit_count(bit_or(days_mask_30d)) AS INTEGER)"


@component.measure(source="usage_users", empty=0.0)
def _key_features_90d(w: Window) -> str:
    used = [f"CAST(bit_count(bit_or({col})) AS INTEGER)" for col in key_feature_masks(w)]
    return " + ".join(used) if used else "0"


@component.feature(unit="share of key features", window_days=90, direction=+1)
def feature_breadth_90d(w: Window) -> str:
    """Share of the key product features (learned at training, or configured) used at least once in the 90
    days before as_of (0-1).

    No events: 0. No key features (none learned or configured): NaN.
    """
    n = len(set(w.config.key_features))
    return f"_key_features_90d / NULLIF({n}.0, 0)"


@component.measure(source="usage_users")
def _last_active_day_90d(w: Window) -> str:
    return "max(last_day)"


@component.measure(source="usage_last_day")
def _last_active_day_365d(w: Window) -> str:
    return "max(last_day)"


@component.feature(unit="days", window_days=LAST_ACTIVITY_CAP_DAYS, direction=-1)
def days_since_last_activity(w: Window) -> str:
    """Days since the last usage event, or since the customer started if none since, capped at 365.

    No events: days since the customer started (365 when that is unknown or longer ago).
    """
    since = "GREATEST(_last_active_day_90d, _last_active_day_365d, o.customer_start)"
    return f"LEAST({LAST_ACTIVITY_CAP_DAYS}, COALESCE({w.days_since(since, 'o.as_of')}, {LAST_ACTIVITY_CAP_DAYS}))"


@component.feature(unit="relative change", window_days=30, direction=+1)
def usage_trend_30d(w: Window) -> str:
    """Relative change in usage events, last 30 days vs the 30 days before (-1 = stopped, 0 = flat).

    No events in the earlier 30 days: NaN.
    """
    return "(_events_30d - _events_prev_30d) / NULLIF(_events_prev_30d, 0)"


# -- usage by key product feature: a family of columns per feature -------------------------------------
def _active_users_prev_30d(w: Window) -> str:
    return "count(CASE WHEN active_prev_30d = 1 THEN 1 END)"


USES_SHARE = FeatureSpec(
    name="uses_<feature>_share_30d",
    component="usage",
    unit="share of active users",
    window_days=30,
    direction=+1,
    description="Share of the 30-day active users who used the key product feature <feature> in the 30 days "
    "before as_of (0-1).",
    when_empty="No active user in the 30 days: NaN.",
    tables=("usage_events",),
    label="Share of active users using <feature> (30 days)",
)
USES_SHARE_CHANGE = FeatureSpec(
    name="uses_<feature>_share_change_30d",
    component="usage",
    unit="percentage points",
    window_days=30,
    direction=0,
    description="Share of active users using <feature> in the last 30 days minus that share in the 30 days "
    "before (positive = spreading).",
    when_empty="No active user in either 30 days: NaN.",
    tables=("usage_events",),
    label="Change in the share of active users using <feature> (30 days vs the 30 before)",
)


@component.family(templates=(USES_SHARE, USES_SHARE_CHANGE))
def uses_by_key_feature(w: Window) -> list[Column]:
    """Per key product feature (in the vocabulary's order): its share of active users, and that share's change
    (``features.usage_by_feature``: "share" by default, "share_and_change", or "off").

    Column names come from the feature's value through ``vocabulary.key_feature_slugs`` (``[a-z0-9_]``,
    capped, unique); the value itself only reaches SQL quoted, in ``usage_user_days``. A user counts once
    per window: their row of ``usage_users`` has the feature's bit in that window's mask.
    """
    if w.config.usage_by_feature == "off":
        return []
    changes = w.config.usage_by_feature == "share_and_change"
    names = unique_key_features(w.config.key_features)
    slugs = key_feature_slugs(names)
    bits = key_feature_bits(w)
    reads = ("usage_events",)
    out: list[Column] = []
    if changes and names:
        out.append(Column("_active_users_prev_30d", _active_users_prev_30d, "usage_users", 0.0, None, reads))
    for name in names:
        slug, (col, bit) = slugs[name], bits[name]
        now, before = f"_uses_{slug}_users_30d", f"_uses_{slug}_users_prev_30d"
        used_30d, used_prev = _uses(f"{col}_30d", bit), _uses(f"{col}_prev_30d", bit)

        def users_30d(w: Window, used: str = used_30d) -> str:
            return f"count(CASE WHEN {used} THEN 1 END)"

        def users_prev_30d(w: Window, used: str = used_prev) -> str:
            return f"count(CASE WHEN {used} THEN 1 END)"

        share = f"{now} / NULLIF(active_users_30d, 0)"
        change = f"{share} - {before} / NULLIF(_active_users_prev_30d, 0)"
        share_spec, change_spec = instantiate(USES_SHARE, slug), instantiate(USES_SHARE_CHANGE, slug)
        out += [Column(now, users_30d, "usage_users", 0.0, None, reads),
                Column(share_spec.name, lambda w, sql=share: sql, None, None, share_spec, reads)]
        if changes:
            out += [Column(before, users_prev_30d, "usage_users", 0.0, None, reads),
                    Column(change_spec.name, lambda w, sql=change: sql, None, None, change_spec, reads)]
    return out
