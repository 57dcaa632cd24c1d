"""A chain of modules, each feeding the next: a model in a few lines.

    model = Sequential(Embedding(V, E), LSTM(E, H), Linear(H, C))
    logits, backward = model.forward(ids, lengths)
    backward(d_logits)

Parameters are named by position as in ``torch.nn.Sequential``: ``0.weight``,
``1.weight_ih_l0``, ``2.weight``, ``2.bias``.
"""

from __future__ import annotations

from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import Recurrent


class Sequential(Module):
    """Apply ``modules`` in order. A recurrent layer in the chain gets ``lengths``, starts from a
    zero state and passes on only its output (its final state is dropped). An Embedding can only
    come first, since no module produces token ids.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if not modules:
            raise UserError("Sequential needs at least one module, e.g. Sequential(Linear(3, 2))")
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise UserTypeError(
                    f"Sequential: argument {index} is a {type(module).__name__}, not an rnnkit "
                    "Module; pass layers such as Linear(3, 2)"
                )
            if index > 0 and isinstance(module, Embedding):
                raise UserError(
                    f"Sequential: the Embedding at position {index} would receive vectors, but "
                    "it looks up integer ids; put the Embedding first"
                )
            self._add_child(str(index), module)
        self.modules = modules

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, index: int) -> Module:
        return self.modules[index]

    def generators(self, prefix: str = "") -> dict:
        """The random generators of the modules in the chain, named by position: ``1.rng``."""
        found = {}
        for index, module in enumerate(self.modules):
            found.update(module.generators(f"{prefix}{index}."))
        return found

    def config(self) -> dict:
        raise NotImplementedError(
            "Sequential has no config(): it cannot be rebuilt from JSON; save and rebuild its "
            "modules one by one, or use a model class from rnnkit.models"
        )

    def __call__(self, x, lengths=None):
        """Inference: the last module's output; no dropout, nothing kept for backward."""
        for module in self.modules:
            if isinstance(module, Recurrent):
                x, _ = module(x, lengths)
            else:
                x = module(x)
        return x

    def forward(self, x, lengths=None):
        """Training path: ``(y, backward)``.

        Args:
            x: the first module's input (token ids (T, B) for an Embedding, else floats).
            lengths: (B,) ints, passed to every recurrent layer; None when all have T steps.
        Returns:
            y: the last module's output;
            backward(dy) -> dx: the gradient with respect to x, or None when the chain starts
                with an Embedding; every module's parameter gradients accumulate.
        """
        backwards = []
        for module in self.modules:
            if isinstance(module, Recurrent):
                (x, _), recurrent_backward = module.forward(x, lengths)
                backwards.append(lambda dy, run=recurrent_backward: run(dy)[0])  # d_x only
            else:
                x, module_backward = module.forward(x)
                backwards.append(module_backward)

        def backward(dy):
            for module_backward in reversed(backwards):
                dy = module_backward(dy)
            return dy

        return x, backward

    def __repr__(self) -> str:
        inner = ", ".join(repr(module) for module in self.modules)
        return f"Sequential({inner})"
