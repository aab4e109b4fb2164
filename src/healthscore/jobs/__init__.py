"""The jobs the CLI runs, one module each: a short list of steps over the layers below, tracking at the edge.

    train     load → training rows and features → fit (evaluate, refit) → log and register
    score     lock the output folder → load model and data → gates → score → publish one batch
    retrain   train a challenger without the newest renewals → compare on them → gate → register, promote
    backtest  score past renewals point-in-time → compare with what happened → report, log
    demo      simulate → validate → train → score twice → reports → out-of-sample backtest

The CLI parses and prints; these do the work and return what they made, so tests and notebooks call them
directly. Nothing below this package imports it.
"""
