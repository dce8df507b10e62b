"""iopo-eval: measure and improve complex instruction following the way the IOPO paper does.

Data enters through :mod:`iopo_eval.data`, responses are judged in :mod:`iopo_eval.judges`,
scored in :mod:`iopo_eval.scoring`, and leave as run results (:mod:`iopo_eval.results`) that the
leaderboard (:mod:`iopo_eval.leaderboard`) and the regression gate (:mod:`iopo_eval.gate`) consume.
"""

__version__ = "0.1.0"
