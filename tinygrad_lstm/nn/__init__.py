"""Layers, losses and optimizers built on the public Tensor API."""

from .module import Module, Parameter

__all__ = ["Module", "Parameter"]
