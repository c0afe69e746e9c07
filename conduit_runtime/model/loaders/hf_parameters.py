"""Which request `parameters` an `hf_pipeline` takes, per task, and how far.

A request's parameters go into the pipeline call (`pipe(x, **parameters)`), where
every argument transformers accepts is reachable, including the ones that cost
without bound (`max_new_tokens: 1000000`, `num_beams: 64`, `num_return_sequences:
1000` wedge text generation for every caller). So each task takes only the
arguments of its pipeline's call listed here; anything else is 422 naming it.
A task not listed takes none: its call's arguments are not known here, so none
can be vouched for.

Integer arguments that multiply the work are capped: `max_new_tokens` and
`min_new_tokens` by `models[i].max_new_tokens` (conduit.yaml, default 512),
`num_beams` and `num_return_sequences` by BEAMS and SEQUENCES.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import InputRejected

BEAMS = 8
SEQUENCES = 8

# Generation (text-generation's and the encoder-decoder tasks' call → model.generate).
GENERATE = frozenset({
    "max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p", "typical_p",
    "repetition_penalty", "no_repeat_ngram_size", "num_beams", "num_return_sequences",
})
SEQ2SEQ = GENERATE | {"truncation", "clean_up_tokenization_spaces", "return_text"}

ALLOWED: dict[str, frozenset[str]] = {
    "text-generation": GENERATE | {"return_full_text", "stop_sequence", "clean_up_tokenization_spaces"},
    "text2text-generation": SEQ2SEQ,
    "summarization": SEQ2SEQ,
    "translation": SEQ2SEQ | {"src_lang", "tgt_lang"},
    # The tokenizer's arguments (truncation, padding, max_length) only cut or pad the input.
    "text-classification": frozenset({"top_k", "function_to_apply", "truncation", "padding", "max_length"}),
    "token-classification": frozenset({"aggregation_strategy", "ignore_labels"}),
    "fill-mask": frozenset({"top_k", "targets"}),
    "question-answering": frozenset({"top_k", "max_answer_len", "handle_impossible_answer", "align_to_words"}),
    "zero-shot-classification": frozenset({"candidate_labels", "hypothesis_template", "multi_label"}),
    "feature-extraction": frozenset({"truncation"}),
    "image-classification": frozenset({"top_k", "function_to_apply"}),
    "automatic-speech-recognition": frozenset({"return_timestamps"}),
}


def parameter_check(task: str | None, max_new_tokens: int) -> Callable[[dict[str, Any]], None]:
    """A check of one request's parameters for a pipeline of `task` (its normalised name,
    `pipe.task`): InputRejected (422) for a parameter not allowed or past its cap."""
    allowed = ALLOWED.get(task or "", frozenset())
    caps = {"max_new_tokens": (1, max_new_tokens), "min_new_tokens": (0, max_new_tokens), "num_beams": (1, BEAMS),
            "num_return_sequences": (1, SEQUENCES)}
    where = f"the {task or 'unknown'} pipeline"

    def check(parameters: dict[str, Any]) -> None:
        for name, value in parameters.items():
            if name not in allowed:
                takes = ", ".join(sorted(allowed)) or "no parameters"
                raise InputRejected(f"parameter {name!r} is not taken by {where}; it takes {takes}")
            bounds = caps.get(name)
            if bounds is not None and (type(value) is not int or not bounds[0] <= value <= bounds[1]):
                cap = " (models[i].max_new_tokens)" if "new_tokens" in name else ""
                raise InputRejected(f"parameter {name!r} must be an integer from {bounds[0]} to {bounds[1]}{cap}")

    return check
