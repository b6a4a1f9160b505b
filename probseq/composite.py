"""Composite-tensor classes: networks and emission heads that pass through `tf.function`.

A `tfp.experimental.AutoCompositeTensor` is rebuilt from its constructor arguments:
tensors and variables become the components of its `tf.TypeSpec`, everything else
(sizes, the cell's name, dtypes) is metadata that identifies the spec. TFP applies
`tfp.experimental.auto_composite_tensor` to every subclass of its
`AutoCompositeTensorDistribution` through a metaclass; `AutoComposite` does the same for
probseq's other classes, so a user's own head or network subclass gets its own spec
without a decorator.

The contract (TFP's): every constructor argument is readable back as an attribute
`name` or `_name` (or an entry of `parameters`), and rebuilding from those values gives
an equal object.
"""

from __future__ import annotations

import abc

import tensorflow_probability as tfp

__all__ = ["AutoComposite"]


class _AutoCompositeMeta(abc.ABCMeta):
    """Gives every class its own auto-generated `TypeSpec` (not an inherited one)."""

    def __new__(mcs, classname, bases, attrs):
        cls = super().__new__(mcs, classname, bases, attrs)
        return tfp.experimental.auto_composite_tensor(
            cls,
            omit_kwargs=getattr(cls, "_composite_omit_kwargs", ()),
            non_identifying_kwargs=("name",),
        )


class AutoComposite(tfp.experimental.AutoCompositeTensor, metaclass=_AutoCompositeMeta):
    """Base class: subclasses are `CompositeTensor`s rebuilt from their constructor
    arguments. `_composite_omit_kwargs` names arguments that are not rebuilt (e.g. an
    initialization seed, unused once the weights exist)."""

    _composite_omit_kwargs: tuple[str, ...] = ()
