"""Hooks for this model: change them to fit your data.

pre_process(data) or pre_process(data, files): the request's data list (and the
uploaded files, each a binary file object with .name and .content_type) →
the model's input.
post_process(out), (out, data) or (out, data, files): the model's output →
the result rows sent back (lists, numbers, strings, dicts).
"""


def pre_process(data, files):
    return data


def post_process(out, data):
    return out
