"""A check shared by the fused-layer tests: a fused layer and its composed twin agree on everything."""

import numpy as np

import tinygrad_lstm as tl


def assert_fused_equals_composed(fused, composed, rng: np.random.Generator, steps: int, batch: int) -> None:
    """Same weights (copied from `fused`), then the same output and gradient for the input and every weight,
    under a random upstream gradient (float64, 1e-12)."""
    composed.load_state_dict({name: p.detach().numpy() for name, p in fused.state_dict().items()})
    x_data = rng.standard_normal((steps, batch, fused.input_size))
    upstream = rng.standard_normal((steps, batch, fused.hidden_size))
    results = []
    for model in (fused, composed):
        x = tl.Tensor(x_data, requires_grad=True)
        output, _ = model(x)
        (output * tl.Tensor(upstream)).sum().backward()
        results.append([output, x.grad] + [p.grad for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-12)
