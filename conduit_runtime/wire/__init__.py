"""The wire formats, as pure functions of bytes and objects (run in worker threads):

    codec.py      JSON in (piecewise past 1 MiB) and out (arrays, tensors, files as data URLs)
    predict.py    /predict: a JSON body or form → Request; the envelope; the error body
    v2.py         the Open Inference Protocol's tensors, binary extension, answers, metadata
    outputs.py    files in a result (bytes, PIL images, paths) as data URLs
    examples.py   a `tests:` example as a request (the warm-up)
"""
