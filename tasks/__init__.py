"""lm-eval task definitions of iopo-eval, installed as lm_eval.tasks.iopo_eval."""
