"""`hf_pipeline` with `task: text-generation`: one prompt's text as it is generated.

The model call returns a `TextStream`, an iterator of text pieces, so the
server streams it like any generator (Server-Sent Events with
`Accept: text/event-stream`; else the pieces are joined into the envelope).
Generation runs in a thread of its own that feeds transformers'
`TextIteratorStreamer`; a `StoppingCriteria` ends it at the next token once
the stream is closed (the client left) or the prediction is cancelled
(`conduit_runtime.cancelled()`), and the thread then ends.

The joined pieces are the pipeline's own `generated_text`: the prompt first
(as a first piece) unless the request says `return_full_text: false`, then
the new text. Several prompts, beam search or several sequences per prompt
are not streamed: the pipeline's own answer, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from ...cancellation import cancel_event
from .model import Model, identity

# Parameters under which one prompt does not give one stream of text.
NOT_STREAMED = {"num_beams", "num_return_sequences"}


def one_prompt(data: Any) -> str | None:
    """The prompt of a request for one text (`"text"` or `["text"]`), else None."""
    if isinstance(data, str):
        return data
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], str):
        return data[0]
    return None


def text_generation(pipe: Any, check: Callable[[dict[str, Any]], None]) -> Model:
    """`check` refuses parameters not allowed or past their caps (hf_parameters.py)."""
    # One generation at a time: the fast tokenizer refuses a second caller ("Already
    # borrowed"), and the streamer decodes in the generation thread, after the model
    # call returned. So the lock is held by that thread, not by the stage.
    busy = threading.Lock()

    def call(x: Any, files: list[Any], params: dict[str, Any]) -> Any:
        if params:
            check(params)
        prompt = one_prompt(x)
        if prompt is None or any(params.get(name, 1) != 1 for name in NOT_STREAMED):
            with busy:
                return pipe(x, **params)
        return TextStream(pipe, busy, prompt, params, cancel_event())

    return Model(call=call, coerce=identity, thread_safe=True)


class TextStream(Iterator[str]):
    """The pieces of one prompt's generated text, as they come."""

    def __init__(self, pipe: Any, busy: threading.Lock, prompt: str, params: dict[str, Any],
                 cancel: threading.Event | None) -> None:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        self.stopped = threading.Event()  # set by close()
        self.error: BaseException | None = None
        self.head = prompt if params.get("return_full_text", True) else ""
        # Parameters are allow-listed (hf_parameters.py): no stopping criteria of the request's own.
        self.streamer = TextIteratorStreamer(pipe.tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.flags = [self.stopped] if cancel is None else [self.stopped, cancel]
        criteria = StoppingCriteriaList([stop_when(self.flags)])
        kwargs = {**params, "streamer": self.streamer, "stopping_criteria": criteria}
        self.thread = threading.Thread(target=self.generate, args=(pipe, busy, prompt, kwargs),
                                       name="conduit-generate", daemon=True)
        self.thread.start()

    def generate(self, pipe: Any, busy: threading.Lock, prompt: str, kwargs: dict[str, Any]) -> None:
        try:
            with busy:
                if not any(flag.is_set() for flag in self.flags):  # closed or cancelled while it waited
                    pipe(prompt, **kwargs)
        except BaseException as exc:  # handed to the reader: next() raises it
            self.error = exc
        finally:
            self.streamer.end()  # wakes the reader even when generate() failed before it began

    def __next__(self) -> str:
        if self.head:
            head, self.head = self.head, ""
            return head
        for piece in self.streamer:  # the streamer ends with an empty piece: not a chunk
            if piece:
                return str(piece)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        raise StopIteration

    def close(self) -> None:
        """Stop generating at the next token (never waits: called on the event loop)."""
        self.stopped.set()


def stop_when(flags: list[threading.Event]) -> Any:
    """A StoppingCriteria that ends generation once one of the flags is set."""
    import torch
    from transformers import StoppingCriteria

    class Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = any(flag.is_set() for flag in flags)
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return Stop()
