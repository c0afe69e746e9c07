"""image.weights: separate (issue 21), the build tool's side: which files
are the weights, their validation, the artifact (deterministic, content-addressed, written once),
a tree made from it, and a server image's build context without them."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import httpx
import pytest
from conftest import conduit
from weights_artifact import WEIGHTS_SIZE_MODEL as MODEL

from conduit_build.config import load
from conduit_build.errors import BuildError, ConduitError, ConfigError
from conduit_build.image.context import WEIGHTS_ACTIVE, Symlink, render
from conduit_build.image.pip import PipSettings
from conduit_build.image.registry import Client, Repository, push_weights
from conduit_build.image.weights import (
    INDEX_NAME,
    blob_path,
    build_weights,
    canonical,
    materialize,
    store,
    weight_paths,
    weights_repository,
)


def python_project(root: Path, weights: bytes = b"w" * 3000, mode: str = "separate", extra: str = "") -> Path:
    """A python model whose load reads weights.bin, with a tokenizer folder beside it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(MODEL)
    (root / "weights.bin").write_bytes(weights)
    (root / "tok" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "tok" / "vocab.txt").write_text("a b c\n")
    (root / "tok" / "sub" / "merges.txt").write_text("a b\n")
    (root / "hooks.py").write_text("def pre(data):\n    return data\n")
    config = root / "conduit.yaml"
    config.write_text(
        "name: weighty\n"
        "models:\n"
        "  - type: python\n"
        "    file: model.py:Model\n"
        "    weights: [weights.bin, tok/]\n"
        "    hooks: {pre: hooks.py:pre}\n"
        "image:\n"
        "  repository: 127.0.0.1:5000/weighty\n"
        f"  weights: {mode}\n"
        "tests:\n"
        "  - name: one\n"
        "    json: [[1]]\n" + extra
    )
    return config


def problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(config, display="conduit.yaml")
    return caught.value.problems


# -- which files, and the config -----------------------------------------------------------


def test_weight_paths_are_model_files_and_weights_entries_sorted_once(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    assert weight_paths(load(config)) == ["tok", "weights.bin"]  # model.py:Model is code; tok/ → tok
    (tmp_path / "p" / "clf.pkl").write_bytes(b"pickle")
    config.write_text(config.read_text().replace("models:\n", "models:\n  - type: sklearn\n    file: clf.pkl\n"
                                                 "    weights: [./weights.bin]\n"))
    assert weight_paths(load(config)) == ["clf.pkl", "tok", "weights.bin"]


def test_weights_repository_defaults_beside_the_image(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    assert weights_repository(load(config)) == "127.0.0.1:5000/weighty-weights"
    config.write_text(config.read_text().replace("  weights: separate\n", "  weights: separate\n"
                                                 "  weights_repository: 127.0.0.1:5000/team/w\n"))
    assert weights_repository(load(config)) == "127.0.0.1:5000/team/w"
    config.write_text(config.read_text().replace("  repository: 127.0.0.1:5000/weighty\n", ""))
    assert load(config).config.image.weights_repository == "127.0.0.1:5000/team/w"


def test_bundled_is_the_default(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    config.write_text(config.read_text().replace("  weights: separate\n", ""))
    assert load(config).config.image.weights == "bundled"


@pytest.mark.parametrize(("entries", "position", "text"), [
    ("[missing.bin]", (5, 15), "models[0].weights[0]: 'missing.bin' does not exist"),
    ("[weights.bin, ../outside.bin]", (5, 28), "models[0].weights[1]: '../outside.bin' leaves the project folder ('..')"),
    ("[/etc/passwd]", (5, 15), "models[0].weights[0]: '/etc/passwd' is absolute"),
    ("[weights.bin, ./weights.bin]", (5, 28), "models[0].weights[1]: './weights.bin' is listed twice"),
    ("[tok, tok/vocab.txt]", (5, 20), "models[0].weights[1]: 'tok/vocab.txt' overlaps 'tok' (models[0].weights[0])"),
    ("[.]", (5, 15), "models[0].weights[0]: '.' names the whole project"),
    ("['']", (5, 15), "models[0].weights[0]: the path is empty"),
    ("weights.bin", (5, 14), "models[0].weights: Input should be a valid list"),
])
def test_weights_entries_are_checked_at_their_position(tmp_path: Path, entries: str, position: tuple[int, int],
                                                       text: str) -> None:
    config = python_project(tmp_path / "p")
    config.write_text(config.read_text().replace("[weights.bin, tok/]", entries))
    (line, col), found = position, problems(config)
    assert len(found) == 1, found
    assert found[0].startswith(f"conduit.yaml:{line}:{col}: {text}"), found


def test_a_weights_entry_inside_a_model_folder_is_an_overlap(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    config.write_text(config.read_text().replace("models:\n", "models:\n  - type: spacy\n    file: tok\n")
                      .replace("[weights.bin, tok/]", "[weights.bin, tok/vocab.txt]"))
    [line] = problems(config)
    assert line.startswith("conduit.yaml:7:28: models[1].weights[1]: 'tok/vocab.txt' overlaps 'tok' (models[0].file)")


def test_the_same_folder_as_a_model_file_and_a_weights_entry_is_one_path(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    config.write_text(config.read_text().replace("models:\n", "models:\n  - type: spacy\n    file: tok\n"))
    assert weight_paths(load(config)) == ["tok", "weights.bin"]


def test_separate_without_weights_says_so(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    config.write_text(config.read_text().replace("    weights: [weights.bin, tok/]\n", ""))
    [line] = problems(config)
    assert line.startswith("conduit.yaml:8:12: image.weights: separate, but no model has weights")


def test_bad_mode_and_repository_through_the_cli(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p", mode="seperate", extra="")
    config.write_text(config.read_text().replace("image:\n", "image:\n  weights_repository: Not/Valid\n"))
    result = conduit("validate", "-f", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "conduit.yaml:8:23: image.weights_repository:" in result.stderr
    assert "conduit.yaml:10:12: image.weights: Input should be 'bundled' or 'separate'" in result.stderr


def test_the_json_schema_knows_the_keys() -> None:
    result = conduit("schema")
    schema = json.loads(result.stdout)
    image = schema["$defs"]["Image"]["properties"]
    assert image["weights"]["enum"] == ["bundled", "separate"] and image["weights"]["default"] == "bundled"
    assert "pattern" in image["weights_repository"]["anyOf"][0]
    assert schema["$defs"]["Stage"]["properties"]["weights"]["items"] == {"type": "string"}


# -- the artifact --------------------------------------------------------------------------


def blob(digest: str, root: Path) -> bytes:
    return blob_path(digest, root).read_bytes()


def test_the_artifact_has_the_spec_shape(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifact = build_weights(load(python_project(tmp_path / "p")), root)
    manifest_bytes = blob(artifact.digest, root)
    assert artifact.digest == "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    manifest = json.loads(manifest_bytes)
    assert manifest_bytes == canonical(manifest)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]] == \
        ["tok", "weights.bin", INDEX_NAME]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    config = json.loads(blob(manifest["config"]["digest"], root))
    assert config == {"architecture": "amd64", "os": "linux", "config": {"Labels": {"conduit.weights": "1"}},
                      "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in manifest["layers"]]}}
    for layer in manifest["layers"]:
        data = blob(layer["digest"], root)
        assert len(data) == layer["size"] and "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
    with tarfile.open(blob_path(manifest["layers"][0]["digest"], root)) as archive:
        members = archive.getmembers()
    assert [(m.name, m.type) for m in members] == [
        ("models", tarfile.DIRTYPE), ("models/tok", tarfile.DIRTYPE), ("models/tok/sub", tarfile.DIRTYPE),
        ("models/tok/sub/merges.txt", tarfile.REGTYPE), ("models/tok/vocab.txt", tarfile.REGTYPE)]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    assert {m.mode for m in members if m.isdir()} == {0o755} and {m.mode for m in members if m.isfile()} == {0o644}
    with tarfile.open(blob_path(manifest["layers"][-1]["digest"], root)) as archive:
        assert archive.getnames() == [INDEX_NAME]
        index = archive.extractfile(INDEX_NAME).read()  # type: ignore[union-attr]
    assert index == canonical({"files": {
        "tok/sub/merges.txt": {"sha256": hashlib.sha256(b"a b\n").hexdigest(), "size": 4},
        "tok/vocab.txt": {"sha256": hashlib.sha256(b"a b c\n").hexdigest(), "size": 6},
        "weights.bin": {"sha256": hashlib.sha256(b"w" * 3000).hexdigest(), "size": 3000},
    }})
    assert artifact.reference == f"127.0.0.1:5000/weighty-weights:{artifact.digest[7:19]}"
    assert artifact.bytes == sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"] + \
        len(manifest_bytes)


def test_same_files_same_digest_whatever_the_mtimes_and_stores(tmp_path: Path) -> None:
    first = build_weights(load(python_project(tmp_path / "a")), tmp_path / "s1")
    second_config = python_project(tmp_path / "b")
    os.utime(tmp_path / "b" / "weights.bin", (1_000_000, 1_000_000))
    os.chmod(tmp_path / "b" / "weights.bin", 0o600)
    second = build_weights(load(second_config), tmp_path / "s2")
    assert first.digest == second.digest and first.layers == second.layers


def test_a_retrain_changes_only_its_layer_and_equal_files_share_one(tmp_path: Path) -> None:
    root = tmp_path / "store"
    config = python_project(tmp_path / "p")
    before = build_weights(load(config), root)
    (tmp_path / "p" / "weights.bin").write_bytes(b"v" * 3000)
    after = build_weights(load(config), root)
    assert after.digest != before.digest
    assert after.layers[0] == before.layers[0]  # tok, unchanged: the same layer, stored once
    assert after.layers[1].digest != before.layers[1].digest  # weights.bin
    assert after.layers[2].digest != before.layers[2].digest  # conduit-weights.json
    other = build_weights(load(python_project(tmp_path / "q", weights=b"v" * 3000)), root)
    assert other.layers[1].digest == after.layers[1].digest  # another project, the same file: one layer


def test_a_stored_layer_is_not_written_again(tmp_path: Path) -> None:
    root = tmp_path / "store"
    config = python_project(tmp_path / "p")
    first = build_weights(load(config), root)
    layer = blob_path(first.layers[1].digest, root)
    stamp = (layer.stat().st_ino, layer.stat().st_mtime_ns)
    os.utime(layer, (5, 5))
    second = build_weights(load(config), root)
    assert second.digest == first.digest
    assert (layer.stat().st_ino, layer.stat().st_mtime_ns) == (stamp[0], 5_000_000_000)
    assert not [p for p in (root / "blobs" / "sha256").iterdir() if p.name.startswith(".")]


def test_a_link_inside_a_weights_folder_fails_the_build(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    (tmp_path / "p" / "tok" / "link.txt").symlink_to("vocab.txt")
    with pytest.raises(BuildError, match=r"weights folder 'tok' holds a symbolic link, 'link\.txt'"):
        build_weights(load(config), tmp_path / "store")


def test_store_location(tmp_path: Path) -> None:
    assert store({"CONDUIT_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c/weights")
    assert store({"XDG_CACHE_HOME": "/x"}) == Path("/x/conduit/weights")
    assert store({}) == Path.home() / ".cache" / "conduit" / "weights"


# -- a tree from the store -----------------------------------------------------------------


def test_materialize_makes_the_tree_and_checks_it(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifact = build_weights(load(python_project(tmp_path / "p")), root)
    tree = materialize(artifact.digest, tmp_path / "tree", root)
    assert (tree / "models" / "weights.bin").read_bytes() == b"w" * 3000
    assert (tree / "models" / "tok" / "sub" / "merges.txt").read_text() == "a b\n"
    assert (tree / INDEX_NAME).read_bytes() == canonical({"files": {
        path: {"sha256": sha, "size": size} for path, (sha, size) in sorted(artifact.files.items())}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "store", "tree"]  # no .partial-* left
    with pytest.raises(ConduitError, match="exists already"):
        materialize(artifact.digest, tree, root)


def test_materialize_refuses_a_tampered_blob(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifact = build_weights(load(python_project(tmp_path / "p")), root)
    layer = blob_path(artifact.layers[1].digest, root)
    data = bytearray(layer.read_bytes())
    data[600] ^= 1  # inside weights.bin's bytes
    layer.write_bytes(bytes(data))
    with pytest.raises(ConduitError, match=r"weights layer sha256:\w+ \(weights.bin\) does not match its digest"):
        materialize(artifact.digest, tmp_path / "tree", root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "store"]


def test_materialize_an_unknown_digest(tmp_path: Path) -> None:
    with pytest.raises(ConduitError, match="is not in"):
        materialize("sha256:" + "0" * 64, tmp_path / "tree", tmp_path / "store")
    with pytest.raises(ConduitError, match="not a sha256 digest"):
        materialize("sha256:nope", tmp_path / "tree", tmp_path / "store")


# -- the server image's context ------------------------------------------------------------


def weights_bytes() -> bytes:
    return os.urandom(4096)


def test_the_context_holds_links_not_weights(tmp_path: Path) -> None:
    secret = weights_bytes()
    context = render(load(python_project(tmp_path / "p", weights=secret)), PipSettings())
    assert context.files["model/weights.bin"] == Symlink(f"{WEIGHTS_ACTIVE}/models/weights.bin")
    assert context.files["model/tok"] == Symlink(f"{WEIGHTS_ACTIVE}/models/tok")
    assert not [path for path in context.files if path.startswith(("code/tok", "code/weights", "model/tok/"))]
    assert "code/model.py" in context.files and "code/hooks.py" in context.files
    spec = json.loads(context.files["conduit.json"])  # type: ignore[arg-type]
    assert spec["weights"] == {"mode": "separate", "paths": ["tok", "weights.bin"]}
    with context.tar() as spooled:
        data = spooled.read()
    assert secret[:64] not in data and b"a b c" not in data
    with context.tar() as spooled, tarfile.open(fileobj=spooled) as archive:
        links = {m.name: m.linkname for m in archive.getmembers() if m.issym()}
    assert links == {"model/tok": "/tmp/conduit-weights-active/models/tok",
                     "model/weights.bin": "/tmp/conduit-weights-active/models/weights.bin"}
    dockerfile = context.files["Dockerfile"].decode()  # type: ignore[union-attr]
    assert "COPY model/ /app/" in dockerfile and "image.weights: separate" in dockerfile


def test_a_retrain_keeps_the_context_hash(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p", weights=weights_bytes())
    before = render(load(config), PipSettings())
    (tmp_path / "p" / "weights.bin").write_bytes(weights_bytes() * 2)
    (tmp_path / "p" / "tok" / "vocab.txt").write_text("retrained\n")
    after = render(load(config), PipSettings())
    assert after.hash == before.hash and after.labels() == before.labels()
    (tmp_path / "p" / "hooks.py").write_text("def pre(data):\n    return list(data)\n")
    assert render(load(config), PipSettings()).hash != before.hash


def test_bundled_keeps_the_weights_in_the_image(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p", mode="bundled")
    context = render(load(config), PipSettings())
    assert isinstance(context.files["model/weights.bin"], Path) and "model/tok/vocab.txt" in context.files
    assert not any(isinstance(source, Symlink) for source in context.files.values())
    assert "weights" not in json.loads(context.files["conduit.json"])  # type: ignore[arg-type]
    label = context.labels()["conduit.config"]
    assert "separate" not in label and "weights_repository" not in label


def test_bundled_weights_are_the_model_layer_not_the_code_layer(tmp_path: Path) -> None:
    """A python model's models[i].weights, bundled, go to model/ (COPY model/ comes before COPY
    code/): a hook edit changes code/ only, so the weights' layer stays cached and is not sent
    again. The image holds the same files at the same /app paths as before."""
    config = python_project(tmp_path / "p", mode="bundled")
    (tmp_path / "p" / "notes.txt").write_text("code, not weights\n")
    context = render(load(config), PipSettings())
    model = sorted(path for path in context.files if path.startswith("model/"))
    code = sorted(path for path in context.files if path.startswith("code/"))
    assert model == ["model/tok/sub/merges.txt", "model/tok/vocab.txt", "model/weights.bin"]
    assert code == ["code/hooks.py", "code/model.py", "code/notes.txt"]
    assert context.files["model/weights.bin"] == tmp_path / "p" / "weights.bin"
    dockerfile = context.files["Dockerfile"].decode()  # type: ignore[union-attr]
    assert dockerfile.index("COPY model/ /app/") < dockerfile.index("COPY code/ /app/")
    # A hook edit: the model/ files are the same, only code/ changes.
    (tmp_path / "p" / "hooks.py").write_text("def pre(data):\n    return list(data)\n")
    edited = render(load(config), PipSettings())
    assert edited.hash != context.hash
    assert {p: s for p, s in edited.files.items() if p.startswith("model/")} == {p: context.files[p] for p in model}


def test_bundled_label_is_unchanged_by_the_new_keys(examples: Path) -> None:
    label = render(load(examples / "iris" / "conduit.yaml"), PipSettings()).labels()["conduit.config"]
    assert "weights" not in label


def test_render_writes_the_links(tmp_path: Path) -> None:
    config = python_project(tmp_path / "p")
    render(load(config), PipSettings()).write(tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "model" / "weights.bin") == f"{WEIGHTS_ACTIVE}/models/weights.bin"
    result = conduit("render", "-f", str(config), "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    assert "model/tok" in json.loads(result.stdout)["files"]


# -- push: the token flow (the real registry's anonymous path is in tests/docker) ---------------


def test_push_trades_credentials_for_a_bearer_token(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifact = build_weights(load(python_project(tmp_path / "p")), root)
    artifact = type(artifact)(artifact.digest, "registry.example.com/team/w", artifact.layers, artifact.config,
                              artifact.manifest_size, artifact.files)
    stored: dict[str, bytes] = {}
    seen: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.host == "auth.example.com":
            assert request.headers["Authorization"].startswith("Basic ")
            assert request.url.params["scope"] == "repository:team/w:pull,push"
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("Authorization") != "Bearer t0k":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token",'
                                                                    'service="registry",scope="repository:team/w:pull"'})
        path = request.url.path
        if request.method == "HEAD":
            return httpx.Response(200 if path.rsplit("/", 1)[1] in stored else 404)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/team/w/blobs/uploads/u1?state=x"})
        if request.method == "PUT" and "/blobs/uploads/" in path:
            stored[request.url.params["digest"]] = request.read()
            return httpx.Response(201)
        if request.method == "PUT" and "/manifests/" in path:
            body = request.read()
            stored[path] = body
            return httpx.Response(201, headers={"Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()})
        return httpx.Response(500)

    env = {"CONDUIT_REGISTRY_USERNAME": "me", "CONDUIT_REGISTRY_PASSWORD": "pw"}
    pushed = push_weights(artifact, env, root, httpx.MockTransport(registry))
    assert pushed.layers_sent == 3 and pushed.bytes_sent == sum(b.size for b in artifact.blobs())
    assert stored[f"/v2/team/w/manifests/{artifact.tag}"] == blob(artifact.digest, root)
    assert all(stored[b.digest] == blob(b.digest, root) for b in artifact.blobs())
    again = push_weights(artifact, env, root, httpx.MockTransport(registry))
    assert (again.bytes_sent, again.layers_sent, again.layers_skipped) == (0, 0, 3)
    assert seen[0].startswith("HEAD") and seen[1] == "GET /token"


def test_registry_schemes() -> None:
    assert Repository.parse("127.0.0.1:5000/a/b").base_url({}) == "http://127.0.0.1:5000/v2/a/b"
    assert Repository.parse("localhost/a").base_url({}) == "http://localhost/v2/a"
    assert Repository.parse("ghcr.io/a/b").base_url({}) == "https://ghcr.io/v2/a/b"
    assert Repository.parse("ghcr.io/a/b").base_url({"CONDUIT_REGISTRY_PLAIN_HTTP": "1"}) == "http://ghcr.io/v2/a/b"
    assert Repository.parse("me/w").base_url({}) == "https://registry-1.docker.io/v2/me/w"
    assert Repository.parse("w").name == "library/w"


def test_an_unreachable_registry_is_one_registry_error(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifact = build_weights(load(python_project(tmp_path / "p")), root)
    artifact = type(artifact)(artifact.digest, "127.0.0.1:9/w", artifact.layers, artifact.config,
                              artifact.manifest_size, artifact.files)
    with pytest.raises(ConduitError, match=r"push weights to 127.0.0.1:9/w: ConnectError"):
        push_weights(artifact, {}, root)
    with Client(Repository.parse("127.0.0.1:9/w"), {}) as client:
        assert client.base == "http://127.0.0.1:9/v2/w"
