"""`ParamsSpec`: the one owner of the params structure's layout.

A params structure is a nested dict (`{"layer_0": {"input_kernel", "recurrent_kernel",
"bias"}, ..., "output": {"kernel", "bias"}}`, or a `Seq2SeqNetwork`'s `{"encoder": ...,
"decoder": ...}`) whose leaves may carry the same leading *batch* dims (posterior draws,
batched params) before their *core* shape. The spec holds the core shapes and answers
everything about the layout in one place, with one wording of every error: leaf paths,
sizes, the batch shape of a structure, and validation of a given structure against it.
The networks, the distributions' `params=`, `evaluate` and the variational surrogate all
check params through it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["CORE_RANKS", "ParamsSpec", "is_mapping", "plain"]

# Rank of every leaf's core shape, by leaf name (the rest are leading batch dims).
CORE_RANKS = {"input_kernel": 2, "recurrent_kernel": 2, "bias": 1, "kernel": 2}


def is_mapping(value) -> bool:
    """A dict of a params structure (`tf.Module` wraps dict attributes in a
    `_DictWrapper`, which is not a `Mapping`)."""
    return isinstance(value, Mapping) or (hasattr(value, "items") and hasattr(value, "keys"))


def plain(structure) -> dict:
    """A params structure (possibly `tf.Module`-wrapped dicts) as plain nested dicts."""
    return {key: plain(value) if is_mapping(value) else value for key, value in structure.items()}


def _items(structure) -> Iterator[tuple[str, object]]:
    """`(path, leaf)` pairs in `tf.nest.flatten` order (sorted keys)."""
    for key in sorted(structure):
        value = structure[key]
        if is_mapping(value):
            for path, leaf in _items(value):
                yield f"[{key!r}]{path}", leaf
        else:
            yield f"[{key!r}]", value


def _pack(template, leaves: list):
    """Plain nested dicts of `template`'s structure holding `leaves` (flatten order)."""
    iterator = iter(leaves)

    def build(node):
        return {
            key: build(node[key]) if is_mapping(node[key]) else next(iterator)
            for key in sorted(node)
        }

    return build(template)


class ParamsSpec:
    """The core shapes of a params structure (plain nested dicts of `tf.TensorShape`).

    Build one from a network's own params (`ParamsSpec.of(network.params)`: every leaf's
    shape is its core shape) or from any params structure whose leaves may carry batch
    dims (`ParamsSpec.infer(params)`: the core rank of a leaf comes from its name,
    `CORE_RANKS`).
    """

    def __init__(self, shapes: Mapping):
        self.shapes = _pack(shapes, [tf.TensorShape(s) for _, s in _items(shapes)])
        self.paths = [path for path, _ in _items(self.shapes)]
        # `decoder/layer_0/bias`: what variables of the structure are named (errors and
        # warnings that list variables then say which leaf they are)
        self.names = [path[2:-2].replace("']['", "/") for path in self.paths]
        self.core_shapes = [shape for _, shape in _items(self.shapes)]

    @classmethod
    def of(cls, params: Mapping) -> ParamsSpec:
        """The spec whose core shapes are `params`' leaf shapes (no batch dims); leaves
        may be tensors, variables or `tf.TensorShape`s."""
        return cls(_pack(params, [_shape(leaf) for _, leaf in _items(params)]))

    @classmethod
    def infer(cls, params: Mapping, what: str = "params") -> ParamsSpec:
        """The spec of `params` whose leaves may carry batch dims (core rank by name)."""
        _check_mapping(params, what)
        shapes = []
        for path, leaf in _items(params):
            name = path.rsplit("[", 1)[-1].strip("]'\"")
            rank = CORE_RANKS.get(name)
            shape = tf.TensorShape(getattr(leaf, "shape", None))
            if rank is None or shape.rank is None or shape.rank < rank:
                raise ValueError(
                    f"{what}{path} is not a params leaf (known leaves: {sorted(CORE_RANKS)} "
                    f"of ranks {sorted(set(CORE_RANKS.values()))}), got shape {shape}."
                )
            shapes.append(shape[shape.rank - rank :])
        return cls(_pack(params, shapes))

    # ------------------------------------------------------------------- sizes
    @property
    def num_layers(self) -> int:
        """Recurrent layers (of a stack, or of a decoder for an encoder-decoder)."""
        stack = self.shapes.get("decoder", self.shapes)
        return sum(1 for key in stack if key.startswith("layer_"))

    @property
    def num_weights(self) -> int:
        """Scalar weights in one structure (no batch dims)."""
        return int(sum(shape.num_elements() for shape in self.core_shapes))

    # --------------------------------------------------------------- checking
    def flatten(self, params: Mapping) -> list:
        """`params`' leaves in this spec's order (`tf.nest.flatten` order)."""
        return [leaf for _, leaf in _items(params)]

    def pack(self, leaves: list) -> dict:
        """Leaves in flatten order as plain nested dicts of this structure."""
        return _pack(self.shapes, leaves)

    def check(
        self,
        params: Mapping,
        *,
        dtype=None,
        max_batch_ndims: int | None = None,
        what: str = "params",
        reference: str = "network.params",
        hint: str = "",
    ) -> tuple[dict, tf.TensorShape]:
        """Validate `params` against the spec; returns `(params, batch_shape)`.

        Leaves are converted to tensors of `dtype` (variables and other references are
        kept as they are). Errors (`ValueError`, one wording everywhere): a different
        structure, a leaf whose trailing dims are not its core shape, leaves with
        different batch shapes, more than `max_batch_ndims` batch dims (`hint` says
        what they are, e.g. " (S draws)"), another dtype.
        """
        _check_mapping(params, what)
        try:
            tf.nest.assert_same_structure(self.shapes, _pack(params, self.flatten(params)))
            if [p for p, _ in _items(params)] != self.paths:
                raise ValueError(f"leaves {[p for p, _ in _items(params)]} vs {self.paths}")
        except (ValueError, TypeError) as error:
            keys = sorted(self.shapes)
            raise ValueError(
                f"{what} must have the same structure as {reference} (keys {keys}): {error}"
            ) from None
        leaves, batch_shapes = [], set()
        for path, core, leaf in zip(
            self.paths, self.core_shapes, self.flatten(params), strict=True
        ):
            if not _is_ref(leaf):
                leaf = tf.convert_to_tensor(leaf, dtype)
            shape = leaf.shape
            if (
                shape.rank is None
                or shape.rank < core.rank
                or shape[shape.rank - core.rank :] != core
            ):
                raise ValueError(
                    f"{what}{path} must have shape [..., {', '.join(map(str, core))}] (the "
                    f"model's core shape), got {shape.as_list() if shape.rank else shape}."
                )
            if dtype is not None and leaf.dtype != tf.as_dtype(dtype):
                raise ValueError(
                    f"{what}{path} must be {tf.as_dtype(dtype).name}, got {leaf.dtype.name}."
                )
            batch_shapes.add(tuple(shape[: shape.rank - core.rank].as_list()))
            leaves.append(leaf)
        if len(batch_shapes) != 1:
            raise ValueError(
                f"all {what} must share the same leading batch shape, got {sorted(batch_shapes)}."
            )
        (batch,) = batch_shapes
        if max_batch_ndims is not None and len(batch) > max_batch_ndims:
            allowed = {0: "no batch dims", 1: "at most one leading dim"}.get(
                max_batch_ndims, f"at most {max_batch_ndims} leading dims"
            )
            raise ValueError(f"{what} may carry {allowed}{hint}; got leading shape {list(batch)}.")
        return _pack(params, leaves), tf.TensorShape(batch)


def _is_ref(value) -> bool:
    """A variable or a `tfp.util.DeferredTensor` (kept as it is: reading it later sees
    its current value)."""
    return isinstance(value, (tf.Variable, tfp.util.DeferredTensor))


def _shape(leaf) -> tf.TensorShape:
    return leaf if isinstance(leaf, tf.TensorShape) else tf.TensorShape(leaf.shape)


def _check_mapping(params, what: str) -> None:
    if not is_mapping(params):
        raise TypeError(
            f"{what} must be a params structure (nested dicts), got {type(params).__name__}."
        )
