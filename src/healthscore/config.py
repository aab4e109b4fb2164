"""Typed, frozen configuration read from YAML; unknown keys are rejected with a did-you-mean.

Every default lives here, in one place, documented next to the field. A YAML file only needs the
keys it changes::

    bands:
      healthy: 85
    model:
      monotone:
        seat_utilization_30d: 1

``load_config(None)`` returns the defaults.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from healthscore.errors import ConfigError, did_you_mean

COMPONENTS: tuple[str, ...] = (
    "usage",
    "time_to_value",
    "support",
    "engagement",
    "billing",
    "feedback",
    "account",
)
#: the score's bands, best first (cut points: ``bands.healthy``, ``bands.watch``); the one band vocabulary
BANDS: tuple[str, ...] = ("healthy", "watch", "at_risk")
#: the input tables whose records happen over time (CONTRACT §1), checked for freshness
EVENT_TABLES: tuple[str, ...] = ("usage_events", "tickets", "surveys", "touchpoints", "invoices", "adjustments")


#: the choices of ``features.usage_by_feature``
USAGE_BY_FEATURE: tuple[str, ...] = ("share", "share_and_change", "off")


@dataclass(frozen=True)
class TimelineConfig:
    """Where training observations sit relative to each renewal."""

    #: Days before each decided contract's end_date at which a training row is observed.
    lead_times_days: tuple[int, ...] = (30, 90, 180)


@dataclass(frozen=True)
class FeaturesConfig:
    """Choices the feature builders need."""

    #: Product features (``usage_events.feature`` values) that breadth counts (share of them used in 90
    #: days) and that each get a column pair of their own (share of active users using it, and its change).
    #: Empty (the default): learned by ``train`` — the ``key_features_top_k`` features used by the most
    #: training accounts in the year before the latest training observation — and stored with the model,
    #: which scores with those. Names given here are used as given (``validate --config`` warns about a
    #: name the events never carry). Do not list every event name of a large product: each costs 2 columns.
    key_features: tuple[str, ...] = ()
    #: How many product features ``train`` learns when ``key_features`` is empty. Measured on two 2,000-account
    #: simulated worlds (seeds 7, 11) with 4, 6, 8 and 9 (all): 8 had the best or second-best test log loss.
    key_features_top_k: int = 8
    #: The usage-by-feature family, per key feature: "share" — the share of 30-day active users using it;
    #: "share_and_change" — also that share's change vs the 30 days before; "off" — neither. Measured on
    #: four simulated worlds (2,000 accounts seeds 7 and 11, 1,000 and 400 seed 11): the change columns
    #: raised test log loss on all four (+0.001 to +0.008), the shares alone were neutral (-0.005 to +0.004).
    usage_by_feature: str = "share"
    #: Seat utilisation an account must reach to count as having reached value.
    target_utilization: float = 0.8
    #: Builders to use; empty means every registered feature.
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitConfig:
    """Shares of the renewal-date range given to train / calibration / test (oldest to newest)."""

    train: float = 0.6
    calibration: float = 0.2
    test: float = 0.2


@dataclass(frozen=True)
class ModelConfig:
    """LightGBM and calibration settings.

    Defaults are deliberately regularised: on a few hundred renewals an untuned GBM loses to a logistic
    regression, so shallow trees, a minimum leaf size and L2 are chosen by time-ordered CV inside the
    training part from a small grid.
    """

    seed: int = 42
    #: Threads for LightGBM; 0 means "cores actually free" (see PITFALLS: contention slows 10x).
    num_threads: int = 0
    n_estimators: int = 300
    learning_rate: float = 0.05
    #: Candidate values searched by time-ordered CV (the product of the lists).
    num_leaves_grid: tuple[int, ...] = (7, 15)
    min_child_samples_grid: tuple[int, ...] = (20, 50)
    reg_lambda_grid: tuple[float, ...] = (1.0, 10.0)
    max_depth: int = 6
    cv_folds: int = 3
    #: Judge only the time-ordered CV folds whose models learn from at least this share of the training
    #: rows (the dates are cut into 2 × cv_folds blocks); 0 judges every expanding fold. The registered model
    #: is refit on every row, so folds that learned from little of it are poor judges (``selection_folds``).
    cv_min_train_share: float = 0.5
    early_stopping_rounds: int = 30
    #: Isotonic calibration is only considered with at least this many calibration rows,
    isotonic_min_rows: int = 1000
    #: and with at least this many of each outcome among them (churned and renewed): isotonic fits a step
    #: wherever the outcomes change, so its shape rests on the rarer class. Measured on a 400-account
    #: subscription world, 1,350 calibration rows with ~60 churned: isotonic won the calibration slice and
    #: took the test slice's log loss from 0.195 (the uncalibrated margin's) to 0.204.
    isotonic_min_class_rows: int = 100
    #: Start the booster from a logistic regression's log-odds (``model/linear.py``): "auto" lets the
    #: same CV choose between that and a constant start, and how many trees to add (zero included);
    #: "on" / "off" force it.
    linear_start: str = "auto"
    #: Rows the calibration map is fitted on. "holdout": the calibration slice, which the booster never
    #: sees. "cross_fit": out-of-fold margins of the CV inside train + calibration, and the booster then
    #: learns from all those rows (nothing is held back). "auto": holdout when rows have dates (the
    #: newest slice calibrates, as drift demands), cross_fit for a flat table without --time.
    calibration_rows: str = "auto"
    #: Also let CV start from the hand-weighted scorecard (``scorecard.weights``), scaled by a one-input
    #: logistic fit: with few renewals that is often the best a model can do. "auto" (a candidate when
    #: ``linear_start`` is "auto") or "off".
    scorecard_start: str = "auto"
    #: Also let CV start from a scorecard whose weights are learned: each directed feature's percentile (as
    #: the scorecard reads it) with one non-negative weight per feature from a logistic fit
    #: (``LearnedScorecardStart``). "auto" (a candidate when ``linear_start`` is "auto") or "off".
    learned_scorecard_start: str = "auto"
    #: After the time-ordered evaluation, refit the same settings on every renewal decided before as-of
    #: (calibrated on time-ordered out-of-fold margins): that model is registered and scores accounts. The
    #: newest renewals are the most informative; the evaluation measures the procedure. false: register
    #: the evaluated model, which never learned from the newest 40%.
    refit: bool = True
    #: Every feature the catalogue gives a direction (docs/features.md: +1 higher is healthier, -1 lower is)
    #: is constrained to it: the model may learn how much a feature matters, never that more usage or more
    #: money overdue means healthier, so an explanation never contradicts the data. false: only ``monotone``.
    monotone_from_catalogue: bool = True
    #: Directions by feature name, over the catalogue's: +1 never lowers health, -1 never raises it, 0 frees a
    #: feature (also the only constraints of a flat table: its components file's ``directions``).
    monotone: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BandsConfig:
    """Cut points on the final 0-100 score: healthy >= healthy, watch >= watch, else at_risk."""

    healthy: float = 80.0
    watch: float = 60.0


@dataclass(frozen=True)
class ScorecardConfig:
    """The hand-weighted baseline CS teams build (weights in points, summing to 100)."""

    weights: dict[str, float] = field(
        default_factory=lambda: {
            "usage": 35.0,
            "support": 20.0,
            "engagement": 15.0,
            "feedback": 15.0,
            "billing": 10.0,
            "time_to_value": 5.0,
        }
    )


@dataclass(frozen=True)
class AdjustmentRule:
    """A config rule that adds points to the model score, with a reason CS ops can read."""

    name: str = "no_ebr_6_months"
    #: Segments the rule applies to (empty: all).
    segments: tuple[str, ...] = ("mid_market", "enterprise")
    #: A feature and a condition on it, e.g. ``days_since_last_ebr`` ``>`` 182 (missing counts as true).
    feature: str = "days_since_last_ebr"
    op: str = ">"
    value: float = 182.0
    missing_is_true: bool = True
    points: int = -10
    reason: str = "No executive business review in the last 6 months"


@dataclass(frozen=True)
class AdjustmentsConfig:
    #: CSM adjustments without expires_at expire this many days after created_at.
    default_expiry_days: int = 90
    #: Config rules (none by default: the model already learns from the features a rule would read, e.g.
    #: ``days_since_last_ebr``; a rule adds points on top). ``AdjustmentRule()`` is an example to opt into.
    rules: tuple[AdjustmentRule, ...] = ()


@dataclass(frozen=True)
class ExplainConfig:
    #: Driver sentences name only contributions of at least this many points (smaller ones are noise to a
    #: reader; the points still add up in the tables).
    min_points: float = 0.5


@dataclass(frozen=True)
class AlertsConfig:
    #: A drop of at least this many points since the previous run raises an alert.
    drop_points: float = 10.0
    #: How many components to name when attributing a change.
    components_named: int = 2


@dataclass(frozen=True)
class Play:
    """A named play with next steps, an owner role and a due date (days after as-of)."""

    name: str = ""
    steps: tuple[str, ...] = ()
    owner: str = "CSM"
    due_days: int = 14


@dataclass(frozen=True)
class PlaybooksConfig:
    #: Lifecycle stages: onboarding while the customer is younger than this many days ...
    onboarding_days: int = 90
    #: ... renewal window when the renewal is closer than this many days.
    renewal_window_days: int = 120
    #: Play per weakest component, used for watch and at_risk accounts.
    by_component: dict[str, Play] = field(
        default_factory=lambda: {
            "usage": Play("adoption_workshop", ("Run an adoption workshop", "Agree seat activation targets"),
                          "CSM", 14),
            "time_to_value": Play("onboarding_reset", ("Review onboarding plan", "Assign onboarding specialist"),
                                  "Onboarding lead", 7),
            "support": Play("escalation_review", ("Review open and urgent tickets", "Agree a fix plan with support"),
                            "Support manager", 7),
            "engagement": Play("executive_review", ("Schedule an executive business review",), "CSM", 21),
            "billing": Play("finance_outreach", ("Contact finance about overdue invoices",), "Finance", 7),
            "feedback": Play("feedback_followup", ("Call detractors back", "Close the loop on survey comments"),
                             "CSM", 14),
            "account": Play("account_review", ("Review the account plan",), "CSM", 30),
        }
    )
    #: Play for an at_risk account inside the renewal window (overrides the component play).
    renewal_rescue: Play = Play("renewal_rescue", ("Build a save plan", "Involve the account executive"),
                                "CS director", 7)
    #: Healthy accounts with last NPS >= this are flagged as advocates.
    advocate_min_nps: float = 9.0
    advocate: Play = Play("advocate", ("Ask for a reference or case study", "Explore expansion"), "CSM", 30)


@dataclass(frozen=True)
class RetrainConfig:
    """Promotion gate: the challenger may be worse than the champion by at most these margins."""

    log_loss_margin: float = 0.005
    brier_margin: float = 0.002
    auc_margin: float = 0.005
    #: Share of the newest decided renewals held out from both models to compare them.
    holdout_share: float = 0.2


@dataclass(frozen=True)
class DriftConfig:
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    bins: int = 10
    #: a part of a feature's PSI (values, missing share) is flagged only above the PSI two samples of one
    #: population reach with this probability (chance alone; sample-size aware, see ``drift``)
    chance: float = 0.001


@dataclass(frozen=True)
class TrackingConfig:
    model_name: str = "healthscore"
    experiment: str = "healthscore"


@dataclass(frozen=True)
class FreshnessConfig:
    """How far ``score --as-of`` may run past the end of the data before it refuses (``--allow-stale`` overrides).

    A table is stale when more than its limit of whole days before the as-of date have no record at all
    (data through 2024-12-31 scored as of 2025-01-08: 7 days without data). Each table the model learned
    from is checked; sparse feeds get their own limit, since a quiet fortnight without tickets or a
    quarter between surveys is normal while a week without product usage is not.
    """

    #: limit for every checked table not listed in ``max_lag_days_by_table`` (usage events above all)
    max_lag_days: int = 7
    max_lag_days_by_table: dict[str, int] = field(
        default_factory=lambda: {"tickets": 30, "touchpoints": 30, "invoices": 45, "surveys": 120}
    )


@dataclass(frozen=True)
class OutputConfig:
    """The output folder of ``score`` (CONTRACT §6)."""

    #: how many as-of dates keep their batch folder under ``batches/`` (one batch per date; 0 keeps all).
    #: history.parquet, portfolio.csv and drift.csv keep every date's rows whatever this is.
    keep_batches: int = 12


#: words the customer-facing report never contains (``share.*`` text is checked against them as well)
SHARE_BLOCKED_WORDS: tuple[str, ...] = ("churn", "risk", "probability", "renewal probability", "overdue", "owed",
                                        "owing", "unpaid", "debt", "arrears", "arr")


@dataclass(frozen=True)
class ShareConfig:
    """What the customer-facing health report shows (``healthscore share``, ``site --share``).

    The report is built from an allow-list of fields (``reports/share.py``): score, band in the words below,
    the components and how much each counts, the trend, a percentile among the customer's own segment, and
    the customer-facing steps below. Never ARR, CSM adjustments or their reasons, notes, authors, other
    customers, or the internal wording of drivers, plays and alerts.
    """

    #: Which score the customer sees: "model" (the measurement, 100 × the calibrated model output, whose
    #: parts add up on the page) or "final" (with CSM adjustments; their reasons are still never shown, and
    #: the parts are then shown without points, since the difference would reveal the adjustment).
    score: str = "model"
    #: The band of the shared score, in the customer's words (keys: healthy, watch, at_risk).
    band_labels: dict[str, str] = field(
        default_factory=lambda: {"healthy": "Strong", "watch": "Fair", "at_risk": "Needs attention"}
    )
    #: Show where the customer stands among the scored accounts of their own segment...
    show_peers: bool = True
    #: ... only when that segment has at least this many scored accounts (the customer included).
    min_peers: int = 10
    #: How many of the latest as-of dates the trend shows.
    trend_points: int = 12
    #: The customer-facing steps of each play (by ``playbooks`` play name); a play not listed shares no steps.
    plays: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "adoption_workshop": ("A hands-on workshop with our team to get more of your people using the product",
                                  "Agree together on goals for how many of your seats are in use"),
            "onboarding_reset": ("Review your onboarding plan together", "Meet your onboarding specialist"),
            "escalation_review": ("Review your open support requests together",
                                  "Agree a plan and dates for the fixes you need"),
            "executive_review": ("An executive business review of your goals and results",),
            "finance_outreach": ("Confirm your billing contact and how you like to receive invoices",),
            "feedback_followup": ("A call to hear your feedback in more detail",
                                  "We follow up on each of your survey comments"),
            "account_review": ("Review your account plan and goals together",),
            "renewal_rescue": ("Meet to review your goals and the value your team gets from the product",
                               "Agree a success plan with your account team"),
            "advocate": ("Share your success story with other customers, if you wish",
                         "Explore what else the product can do for your team"),
        }
    )
    #: Also show the date the team aims to have done the steps by (the play's due date).
    show_due_date: bool = False


@dataclass(frozen=True)
class Config:
    timeline: TimelineConfig = TimelineConfig()
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    bands: BandsConfig = BandsConfig()
    scorecard: ScorecardConfig = ScorecardConfig()
    adjustments: AdjustmentsConfig = AdjustmentsConfig()
    alerts: AlertsConfig = AlertsConfig()
    explain: ExplainConfig = ExplainConfig()
    playbooks: PlaybooksConfig = PlaybooksConfig()
    retrain: RetrainConfig = RetrainConfig()
    drift: DriftConfig = DriftConfig()
    tracking: TrackingConfig = TrackingConfig()
    freshness: FreshnessConfig = FreshnessConfig()
    output: OutputConfig = OutputConfig()
    share: ShareConfig = ShareConfig()

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), for logging and YAML round trips."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_config(path: str | Path | None = None) -> Config:
    """Read a YAML config over the defaults; raise ConfigError listing every unknown key or bad value."""
    if path is None:
        return Config()
    return config_from_dict(read_yaml_file(path, what="config file", option="--config"), source=str(path))


def read_yaml_file(path: str | Path, *, what: str, option: str) -> Any:
    """Parsed YAML of an existing file (empty file → {}); ConfigError naming the file and the option otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; pass an existing YAML file or omit {option}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None


def config_from_dict(data: dict[str, Any], *, source: str = "config") -> Config:
    """Build a Config from a nested dict; every problem is collected and raised once."""
    problems: list[str] = []
    cfg = _build(Config, data, "", problems)
    _check(cfg, problems)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source} has {len(problems)} problem(s):\n{lines}")
    return cfg


def _build(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{prefix or 'top level'}: expected a mapping, found {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            hint = did_you_mean(key, fields, prefix=prefix) or f"; known keys: {', '.join(fields)}"
            problems.append(f"unknown key '{where}'{hint}")
            continue
        kwargs[key] = _coerce(hints[key], value, where, problems)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where + ".", problems)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, found {value!r}")
            return ()
        return tuple(_coerce(args[0], v, f"{where}[{i}]", problems) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, found {value!r}")
            return {}
        return {str(k): _coerce(args[1], v, f"{where}.{k}", problems) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected a number, found {value!r}")
            return 0.0
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected an integer, found {value!r}")
            return 0
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false, found {value!r}")
            return False
        return value
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{where}: expected text, found {value!r}")
            return ""
        return value
    return value


@dataclass(frozen=True)
class Range:
    """The values a numeric config field may take, and why (shown in errors and docs/config.md)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def __contains__(self, value: float) -> bool:
        if value != value:  # NaN
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def text(self) -> str:
        def num(v: float) -> str:
            return str(int(v)) if float(v).is_integer() else f"{v:g}"

        lo = None if self.low is None else num(self.low)
        hi = None if self.high is None else num(self.high)
        if lo is not None and hi is not None:
            if not (self.low_open or self.high_open):
                return f"between {lo} and {hi}"
            return f"in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        if lo is not None:
            return f"> {lo}" if self.low_open else f"≥ {lo}"
        return f"< {hi}" if self.high_open else f"≤ {hi}"


def _r(low=None, high=None, why="", *, low_open=False, high_open=False) -> Range:
    return Range(low, high, low_open, high_open, why)


#: the range of every numeric field, by path (``[]``: each element of a list, ``*``: each value of a mapping).
#: A test checks that every numeric field has one; relations between fields are in ``_check``.
RANGES: dict[str, Range] = {
    "timeline.lead_times_days[]": _r(1, 3650, "days before a renewal; at least one"),
    "features.target_utilization": _r(0, 1, "a share of seats", low_open=True),
    "model.cv_min_train_share": _r(0, 0.9, "a share of the training rows; 0 judges every fold"),
    "features.key_features_top_k": _r(1, 200, "product features learned at training (when none are listed)"),
    "split.train": _r(0, 1, "a share; the three sum to 1", low_open=True, high_open=True),
    "split.calibration": _r(0, 1, "a share; the three sum to 1", low_open=True, high_open=True),
    "split.test": _r(0, 1, "a share; the three sum to 1", low_open=True, high_open=True),
    "model.seed": _r(0, 2**31 - 1, "a random seed"),
    "model.num_threads": _r(0, 1024, "0: the cores actually free"),
    "model.n_estimators": _r(1, 100_000, "trees at most"),
    "model.learning_rate": _r(0, 1, "LightGBM's shrinkage", low_open=True),
    "model.num_leaves_grid[]": _r(2, 131_072, "leaves per tree"),
    "model.min_child_samples_grid[]": _r(1, None, "rows per leaf"),
    "model.reg_lambda_grid[]": _r(0, None, "L2 penalty"),
    "model.max_depth": _r(-1, 64, "-1: no limit; 0 is not allowed"),
    "model.cv_folds": _r(2, 20, "time-ordered folds"),
    "model.early_stopping_rounds": _r(1, None, "rounds without improvement"),
    "model.isotonic_min_rows": _r(0, None, "calibration rows"),
    "model.isotonic_min_class_rows": _r(0, None, "calibration rows of each outcome"),
    "model.monotone.*": _r(-1, 1, "-1, 0 or 1"),
    "bands.healthy": _r(0, 100, "a score; watch < healthy"),
    "bands.watch": _r(0, 100, "a score; watch < healthy"),
    "scorecard.weights.*": _r(0, None, "points; at least one positive"),
    "adjustments.default_expiry_days": _r(1, 3650, "days"),
    "adjustments.rules[].value": _r(None, None, "compared with the feature"),
    "adjustments.rules[].points": _r(-100, 100, "points added to the score"),
    "alerts.drop_points": _r(0, 100, "a drop of at least this many points alerts", low_open=True),
    "alerts.components_named": _r(0, len(COMPONENTS), "components"),
    "playbooks.onboarding_days": _r(0, 3650, "days of tenure"),
    "playbooks.renewal_window_days": _r(0, 3650, "days before renewal"),
    "playbooks.by_component.*.due_days": _r(0, 365, "days after as-of"),
    "playbooks.renewal_rescue.due_days": _r(0, 365, "days after as-of"),
    "playbooks.advocate_min_nps": _r(0, 10, "an NPS answer"),
    "playbooks.advocate.due_days": _r(0, 365, "days after as-of"),
    "retrain.log_loss_margin": _r(0, 1, "allowed worse by"),
    "retrain.brier_margin": _r(0, 1, "allowed worse by"),
    "retrain.auc_margin": _r(0, 1, "allowed worse by"),
    "retrain.holdout_share": _r(0, 1, "a share of the newest renewals", low_open=True, high_open=True),
    "drift.psi_warn": _r(0, None, "PSI; psi_warn < psi_alert", low_open=True),
    "drift.psi_alert": _r(0, None, "PSI; psi_warn < psi_alert", low_open=True),
    "drift.chance": _r(0, 1, "a probability", low_open=True, high_open=True),
    "explain.min_points": _r(0, 100, "points"),
    "drift.bins": _r(2, 100, "bins"),
    "freshness.max_lag_days": _r(0, 3650, "days without data"),
    "freshness.max_lag_days_by_table.*": _r(0, 3650, "days without data"),
    "output.keep_batches": _r(0, None, "as-of dates; 0 keeps all"),
    "share.min_peers": _r(2, None, "scored accounts of the segment, the customer included"),
    "share.trend_points": _r(2, 120, "as-of dates"),
}


def numeric_fields(value: Any, pattern: str = "", shown: str = "") -> list[tuple[str, str, float]]:
    """(range key, path as written in YAML, value) for every number in a config (booleans excluded)."""
    out: list[tuple[str, str, float]] = []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            out += numeric_fields(getattr(value, f.name), f"{pattern}.{f.name}" if pattern else f.name,
                                  f"{shown}.{f.name}" if shown else f.name)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out += numeric_fields(v, f"{pattern}[]", f"{shown}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            out += numeric_fields(v, f"{pattern}.*", f"{shown}.{k}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append((pattern, shown, value))
    return out


def ranges_markdown() -> str:
    """The table of ranges shown in docs/config.md (a test keeps the two the same)."""
    lines = ["| key | allowed | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {r.text() if (r.low, r.high) != (None, None) else 'any number'} | {r.why} |"
              for key, r in RANGES.items()]
    return "\n".join(lines)


def _check(cfg: Config, problems: list[str]) -> None:
    reported = {p.split(":", 1)[0] for p in problems}  # a value of the wrong type was replaced: not checked again
    for key, shown, value in numeric_fields(cfg):
        allowed = RANGES.get(key)
        if allowed is not None and shown not in reported and value not in allowed:
            problems.append(f"{shown}: must be {allowed.text()} ({allowed.why}), found {value!r}")
    s = cfg.split
    if min(s.train, s.calibration, s.test) > 0 and abs(s.train + s.calibration + s.test - 1.0) > 1e-9:
        problems.append(f"split: train, calibration and test must sum to 1, found {s.train} + {s.calibration} + "
                        f"{s.test} = {s.train + s.calibration + s.test:g}")
    if not cfg.timeline.lead_times_days:
        problems.append("timeline.lead_times_days: give at least one positive number of days")
    if not cfg.bands.watch < cfg.bands.healthy:
        problems.append(f"bands: watch must be below healthy, found watch {cfg.bands.watch:g} and healthy "
                        f"{cfg.bands.healthy:g}")
    if cfg.model.max_depth == 0:
        problems.append("model.max_depth: use -1 (no limit) or a depth of at least 1, found 0")
    if cfg.scorecard.weights and not any(w > 0 for w in cfg.scorecard.weights.values()):
        problems.append("scorecard.weights: at least one weight must be positive")
    if not cfg.drift.psi_warn < cfg.drift.psi_alert:
        problems.append(f"drift: psi_warn must be below psi_alert, found {cfg.drift.psi_warn:g} and "
                        f"{cfg.drift.psi_alert:g}")
    for table in cfg.freshness.max_lag_days_by_table:
        if table not in EVENT_TABLES:
            hint = did_you_mean(table, EVENT_TABLES) or f"; use one of {', '.join(EVENT_TABLES)}"
            problems.append(f"freshness.max_lag_days_by_table: unknown table '{table}'{hint}")
    ops = (">", ">=", "<", "<=", "==")
    for i, rule in enumerate(cfg.adjustments.rules):
        if rule.op not in ops:
            problems.append(f"adjustments.rules[{i}].op: use one of {', '.join(ops)}, found {rule.op!r}")
    for section, key, allowed in (("model", "linear_start", ("auto", "on", "off")),
                                  ("model", "calibration_rows", ("auto", "holdout", "cross_fit")),
                                  ("model", "scorecard_start", ("auto", "off")),
                                  ("model", "learned_scorecard_start", ("auto", "off")),
                                  ("features", "usage_by_feature", USAGE_BY_FEATURE)):
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            hint = did_you_mean(value, allowed)
            problems.append(f"{section}.{key}: use one of {', '.join(allowed)}, found {value!r}{hint}")
    for name, direction in cfg.model.monotone.items():
        if direction not in (-1, 0, 1):
            problems.append(f"model.monotone.{name}: use -1, 0 or 1, found {direction}")
    for comp in cfg.scorecard.weights:
        if comp not in COMPONENTS:
            hint = did_you_mean(comp, COMPONENTS)
            problems.append(f"scorecard.weights: unknown component '{comp}'{hint}")
    for comp in cfg.playbooks.by_component:
        if comp not in COMPONENTS:
            problems.append(f"playbooks.by_component: unknown component '{comp}'")
    if any(not str(name).strip() for name in cfg.features.key_features):
        problems.append("features.key_features: names must be non-empty")
    _check_share(cfg, problems)


def _check_share(cfg: Config, problems: list[str]) -> None:
    """The customer-facing report's words: known bands and plays, and none of the words it must never say."""
    import re

    share = cfg.share
    if share.score not in ("model", "final"):
        problems.append(f"share.score: use model or final, found {share.score!r}")
    bands = BANDS
    for band in bands:
        if not str(share.band_labels.get(band, "")).strip():
            problems.append(f"share.band_labels: give the customer's words for {band}")
    for band in share.band_labels:
        if band not in bands:
            hint = did_you_mean(band, bands) or f"; use {', '.join(bands)}"
            problems.append(f"share.band_labels: unknown band '{band}'{hint}")
    pb = cfg.playbooks
    plays = sorted({p.name for p in (*pb.by_component.values(), pb.renewal_rescue, pb.advocate) if p.name})
    for name, steps in share.plays.items():
        if name not in plays:
            hint = did_you_mean(name, plays) or f"; the plays are {', '.join(plays)}"
            problems.append(f"share.plays: unknown play '{name}'{hint}")
        if any(not str(step).strip() for step in steps):
            problems.append(f"share.plays.{name}: steps must be non-empty")
    blocked = re.compile(r"\b(" + "|".join(re.escape(w) for w in SHARE_BLOCKED_WORDS) + r")\b|risk", re.I)
    texts = [(f"share.band_labels.{k}", v) for k, v in share.band_labels.items()]
    texts += [(f"share.plays.{k}", step) for k, steps in share.plays.items() for step in steps]
    for where, text in texts:
        hit = blocked.search(str(text))
        if hit:
            problems.append(f"{where}: {text!r} says {hit.group(0)!r}, a word the customer's report never uses "
                            f"(blocked: {', '.join(SHARE_BLOCKED_WORDS)}); reword it")
