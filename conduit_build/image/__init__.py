"""From a loaded config to an image in a registry.

    files.py         which project files go in (Docker's .dockerignore rules, Conduit's own outputs out)
    requirements.py  requirements.txt for the CPU or GPU target
    pip.py           index URLs, find-links, CA bundle: builder-stage only
    context.py       render: templates → a deterministic context, its hash, labels, the spooled tar
    engine.py        the Docker SDK (the only module importing docker) and its errors
    weights.py       image.weights: separate: weight_paths, the weights artifact in the local store,
                     materialize (a weights tree from it)
    weights_host.py  a separate image's weights where its containers run: the build tool's tree
                     mounted (local engine) or fetched into the host's volume (remote engine)
    registry.py      push_weights: the artifact through the OCI distribution API (httpx)
    build.py         build_image, push_image, pushed_reference
"""
