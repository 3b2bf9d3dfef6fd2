"""Layers, losses, optimizers and checkpoints, built on the public Tensor API, spelled as `torch.nn`."""

from . import functional, init, lr_scheduler, optim, utils
from . import functional as F
from .fused import fused_gru, fused_lstm, fused_lstm_cell, fused_rnn
from .layers import (
    ELU,
    GELU,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    L1Loss,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSigmoid,
    LogSoftmax,
    ModuleDict,
    ModuleList,
    MSELoss,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .module import Module, Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .variants import LSTMVariant, LSTMVariantCell

__all__ = [
    "ELU", "GELU", "GRU", "LSTM", "RNN", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Embedding", "F",
    "GRUCell", "L1Loss", "LSTMCell", "LayerNorm", "LeakyReLU", "Linear", "LogSigmoid", "LogSoftmax", "MSELoss",
    "Module", "ModuleDict", "ModuleList", "NLLLoss", "Parameter", "RNNCell", "ReLU", "Sequential", "SiLU", "Sigmoid",
    "Softmax", "Softplus", "Tanh", "functional", "fused_gru", "fused_lstm", "fused_lstm_cell", "fused_rnn", "init",
    "lr_scheduler", "optim", "utils",
    "LSTMVariant", "LSTMVariantCell",
]
