"""The Open Inference Protocol in a built image: the iris example's container answers the
real Triton client (`tritonclient[http]`) on /v2, with its key, as `conduit serve` does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from conftest import Built, build

from conduit_build.image import engine as docker_engine

pytestmark = pytest.mark.docker
KEY = "oip-image-key"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


@pytest.fixture(scope="module")
def iris_image(engine: Any, examples: Path) -> Built:
    """The iris example's image: a no-op when the session (test_images) built it already."""
    return build(examples / "iris" / "conduit.yaml")


@pytest.fixture(scope="module")
def iris_container(engine: Any, iris_image: Built) -> Iterator[str]:
    container = docker_engine.run(engine, iris_image.tag, {"CONDUIT_API_KEY": KEY}, 8000)
    try:
        url = f"127.0.0.1:{docker_engine.host_port(container, 8000)}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the container never got ready:\n{docker_engine.logs(container)}")
            time.sleep(0.2)
        yield url
    finally:
        docker_engine.remove(container)


def test_the_triton_client_against_the_image(iris_container: str) -> None:
    client = triton.InferenceServerClient(iris_container)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
        assert client.get_server_metadata()["name"] == "conduit"
        assert client.get_model_metadata("iris")["inputs"][0]["shape"] == [-1, 4]
        for binary in (True, False):
            given = triton.InferInput("rows", list(ROWS.shape), "FP32")
            given.set_data_from_numpy(ROWS, binary_data=binary)
            result = client.infer("iris", [given], headers={"Authorization": KEY}, request_id="image",
                                  outputs=[triton.InferRequestedOutput("output-0", binary_data=binary)])
            assert result.as_numpy("output-0").tolist() == [0, 2]
            assert result.get_response()["id"] == "image"
        unauthorized = httpx.post(f"http://{iris_container}/v2/models/iris/infer", json={"inputs": []})
        assert unauthorized.status_code == 401 and set(unauthorized.json()) == {"error"}
    finally:
        client.close()
