"""healthscore: a churn-calibrated customer health score.

Learns component weights from renewal outcomes, calibrates the probability so that a score of 80 means
about 80% likely to renew, and explains every score by component.
"""

__version__ = "0.1.0"
