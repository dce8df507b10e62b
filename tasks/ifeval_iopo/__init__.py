"""lm-eval task ifeval_iopo: Google's IFEval scored the upstream way (see README.md)."""
