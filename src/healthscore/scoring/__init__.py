"""The batch for CS ops: every account scored, adjusted, banded, trended, alerted, with a play and a rollup.

    bands        cut points and the order of bands
    adjustments  CSM judgement and config rules, added to the model score with their reasons
    alerts       the change since the previous batch and why an account needs attention
    playbooks    lifecycle stage, weakest component, the play with its owner and due date
    portfolio    peer percentiles and the rollup by segment, CSM and renewal quarter
    batch        the one engine (a dataset as of a date, or a flat table) and the batch's files
"""

from healthscore.scoring.bands import band_of
from healthscore.scoring.batch import (
    HISTORY_COLUMNS,
    SCORE_COLUMNS,
    ScoreBatch,
    TableScores,
    batch_drift,
    explanations_schema,
    read_history,
    score_batch,
    score_table,
    write_batch,
)
from healthscore.scoring.portfolio import (
    portfolio,  # the rollup function (the module stays importable by path)
)

__all__ = ["HISTORY_COLUMNS", "SCORE_COLUMNS", "ScoreBatch", "TableScores", "band_of", "batch_drift",
           "explanations_schema", "portfolio", "read_history", "score_batch", "score_table", "write_batch"]
