"""Layers, losses, optimizers and checkpoints, built on the public Tensor API, spelled as `torch.nn`."""

from . import functional, init, optim, utils
from . import functional as F
from .fused import fused_gru, fused_lstm, fused_lstm_cell, fused_rnn
from .layers import Dropout, Embedding, Linear, ReLU, Sequential, Sigmoid, Tanh
from .module import Module, Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "GRU", "LSTM", "RNN", "Dropout", "Embedding", "F", "GRUCell", "LSTMCell", "Linear", "Module", "Parameter",
    "RNNCell", "ReLU", "Sequential", "Sigmoid", "Tanh", "functional", "fused_gru", "fused_lstm", "fused_lstm_cell",
    "fused_rnn", "init", "optim", "utils",
]
