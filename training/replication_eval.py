"""Evaluation of the replication's checkpoints through lm-eval's backend, as ``iopo-eval run`` uses it.

The model is created by lm-eval's registry from a backend name and model args (``hf``,
``pretrained=DIR,dtype=...``), every prompt is one user turn rendered by the backend's
``apply_chat_template`` (what ``apply_chat_template=True`` does in a run), and the responses come from its
``generate_until`` with greedy decoding, as IFEval's task asks (``until: []``, ``do_sample: false``), with the
replication's ``max_gen_toks``. Two item sets, both scored by their own checkers:

- held-out rule instructions (rule_builder.heldout_items: topics and parameter values never used for
  training), followed when every constraint's checker passes;
- IFEval (all 541 prompts, or a fixed random subset), scored strict by iopo_eval.scoring.ifeval.

The generations of a model are written to ``<out>/generations/<name>.json`` and reused by a rerun.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

IFEVAL_SUBSET_SEED = 1234
GENERATION = {"until": [], "do_sample": False, "temperature": 0.0}


def eval_items(n_heldout: int, n_ifeval: int) -> tuple[list[Any], list[Any]]:
    """(held-out rule items, IFEval items): the whole IFEval when ``n_ifeval`` covers it."""
    from iopo_eval.scoring.ifeval import load_ifeval
    from iopo_eval.training.rule_builder import heldout_items

    ifeval = load_ifeval() if n_ifeval else []
    if n_ifeval < len(ifeval):
        ifeval = random.Random(IFEVAL_SUBSET_SEED).sample(ifeval, n_ifeval)
    return heldout_items(n_heldout), ifeval


def generate(
    model_dir: Path, prompts: list[str], max_gen_toks: int, batch_size: int, dtype: str
) -> list[str]:
    """Greedy responses through lm-eval's ``hf`` backend, one chat-templated user turn per prompt."""
    import lm_eval.models  # noqa: F401  (registers lm-eval's backends, as iopo_eval.run does)
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    lm = get_model("hf").create_from_arg_string(
        f"pretrained={model_dir},dtype={dtype}", {"batch_size": batch_size, "device": "cpu"}
    )
    kwargs = {**GENERATION, "max_gen_toks": max_gen_toks}
    requests = [
        Instance(
            "generate_until", {}, (lm.apply_chat_template([{"role": "user", "content": p}]), dict(kwargs)), i
        )
        for i, p in enumerate(prompts)
    ]
    return [r.strip() for r in lm.generate_until(requests)]


def evaluate(name: str, model_dir: Path, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Generate and score one model on both item sets (cached in ``out/generations``)."""
    path = out / "generations" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from iopo_eval.scoring.ifeval import check_response
    from iopo_eval.training.constraints import satisfied

    heldout, ifeval = eval_items(settings["n_heldout"], settings["n_ifeval"])
    t0 = time.time()
    responses = generate(
        model_dir,
        [i.prompt for i in heldout] + [x.prompt for x in ifeval],
        settings["max_new_tokens"],
        settings["gen_batch"],
        settings["eval_dtype"],
    )
    held, ife = responses[: len(heldout)], responses[len(heldout) :]
    rows = []
    for item, resp in zip(heldout, held, strict=True):
        rows.append({
            "set": "heldout", "id": item.id, "followed": satisfied(resp, item.constraints),
            "kinds": [f"{c.family}:{c.kind}" for c in item.constraints], "response": resp,
        })  # fmt: skip
    for item, resp in zip(ifeval, ife, strict=True):
        rows.append({
            "set": "ifeval", "id": item.key, "followed": list(check_response(item, resp).strict),
            "kinds": list(item.instruction_id_list), "response": resp,
        })  # fmt: skip
    result = {
        "model": name,
        "path": str(model_dir),
        "backend": "hf (lm-eval)",
        "generation": {
            **GENERATION,
            "max_gen_toks": settings["max_new_tokens"],
            "dtype": settings["eval_dtype"],
        },
        "seconds": round(time.time() - t0),
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    tmp.replace(path)
    return result
