"""The model side of a prediction: user code, and nothing of HTTP or wire formats.

    loaders/      one module per model family → a Model (+ signatures.py: its tensors)
    userland.py   importing hooks and python models from the project folder
    calls.py      a call of user code, its lock, how its exceptions read (422 or 500)
    batch.py      a stage's model call shared by the requests waiting for it
    flow.py       stages in order, as a plan of calls (run here, or driven by the server)
    service.py    loading, warm-up, readiness state, the worker threads
"""
