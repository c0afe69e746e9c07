"""conduit.yaml: its schema, `load()` into frozen typed objects that remember
file:line:col, and `conduit init`'s skeletons.

    schema.py     the pydantic models (shape and values) and the JSON Schema
    positions.py  where each key and value sits in the YAML text
    rules.py      what deploy needs beyond the shape (Kubernetes names, resources)
    loader.py     load(): shape, rules and the files it names, every problem at once
    scaffold.py   `conduit init`
"""

from .loader import Project, load

__all__ = ["Project", "load"]
