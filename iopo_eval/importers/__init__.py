"""Readers of files made outside iopo-eval (the outputs of upstream evaluators and generators): each reads
one kind of file, checks it row by row against the pinned data, and hands the items to a registered
benchmark's scoring. The commands that use them live in ``iopo_eval.commands``."""
