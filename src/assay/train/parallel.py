"""How `assay train` spreads a model over torchrun's processes: `train.parallel`.

    ddp   DistributedDataParallel: every process holds the whole model, its gradients and its AdamW
          moments; gradients are all-reduced after the backward pass (`Replicated`)
    fsdp  FSDP2 (`torch.distributed.fsdp.fully_shard`), applied as torchtitan applies it: each
          transformer block is one group, the root (embedding, final norm, head, whatever else the
          model holds) another. A process keeps 1/N of every parameter, gradient and AdamW moment;
          a group's weights are all-gathered just before it runs and freed after, its gradients
          reduce-scattered (`Sharded`)

In one process (no torchrun) both train the plain model. What the trainer does with the model,
under FSDP:

    start           every process builds (or loads) the whole model, takes rank 0's weights
                    (`synchronise`, for ddp too) and shards them; the optimizer and the EMA then
                    follow the shards
    micro-batches   gradients are reduce-scattered after each one, so they stay sharded
    grad clipping   the norm over every shard of every gradient
    evaluation      every group is all-gathered once and the task evaluates the whole model without
                    collectives (ranks evaluate different numbers of batches); resharded after
    checkpoints     the full weights and AdamW state, gathered to rank 0 on the CPU and written as a
                    single process writes them: one process, or another number of them, reads them
    unfreezing      the trunk's shards become trainable in place (FSDP passes requires_grad on to
                    the gathered weights at every all-gather); nothing is re-wrapped

torch.compile is not supported with fsdp (TrainConfig refuses the combination).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn as nn

from assay.train.distributed import Dist


def parallel_for(kind: str, dist: Dist, device: torch.device) -> Replicated:
    """The strategy `train.parallel = kind` names; one process always trains the plain model."""
    if kind == "fsdp" and dist.enabled:
        return Sharded(dist, device)
    return Replicated(dist, device)


class Replicated:
    """One process, or DDP: every process holds the whole model and its optimizer state."""

    def __init__(self, dist: Dist, device: torch.device):
        self.dist, self.device = dist, device

    def synchronise(self, model: nn.Module) -> None:
        """Every process takes rank 0's weights: each built the model under its own seed. (DDP
        would broadcast them too, but only when it wraps the model, after the EMA copied them.)"""
        if not self.dist.enabled:
            return
        import torch.distributed as tdist

        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tdist.broadcast(tensor, src=0)

    def shard(self, model: nn.Module) -> nn.Module:
        """The model the optimizer and the EMA are built on (before `wrap`)."""
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls."""
        if not self.dist.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, step_model: nn.Module):
        """Around the backward of a micro-batch that is not the step's last."""
        return step_model.no_sync() if self.dist.enabled else nullcontext()

    def clip_grad_norm(self, params: list[nn.Parameter], max_norm: float) -> float:
        """Clip the global gradient norm of `params` to `max_norm`; returns the norm before clipping."""
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    def gathered(self, model: nn.Module):
        """Inside: the model holds its whole weights and runs without collectives (evaluation)."""
        return nullcontext()

    def full_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict | None, Any]:
        """(weights, optimizer) as `save_checkpoint` takes them: None = the model's own."""
        return None, optimizer

    def full_tensors(self, tensors: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """Whole tensors from tensors laid out like the parameters (collectively, under FSDP)."""
        return tensors

    def like_param(self, tensor: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
        """A whole `tensor` laid out like `param` (its shard of it, under FSDP)."""
        return tensor

    def load_optimizer(self, checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        checkpoint.load_optimizer(optimizer)


class Sharded(Replicated):
    """FSDP2 under torchrun (see the module docstring)."""

    def __init__(self, dist: Dist, device: torch.device):
        super().__init__(dist, device)
        self._reshard_after_forward: dict[nn.Module, bool] = {}

    def shard(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        mesh = init_device_mesh(self.device.type, (self.dist.world_size,))
        blocks = list(model.blocks)
        for i, block in enumerate(blocks):
            # The last block's weights are needed again at once by the backward pass (torchtitan).
            keep = i < len(blocks) - 1
            fully_shard(block, mesh=mesh, reshard_after_forward=keep)
            self._reshard_after_forward[block] = keep
        fully_shard(model, mesh=mesh, reshard_after_forward=False)  # the root: likewise
        self._reshard_after_forward[model] = False
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        return model  # fully_shard changed the model itself

    def no_sync(self, step_model: nn.Module):
        # Reduce-scattering every micro-batch keeps the gradients sharded; skipping it would hold
        # whole ones until the step's last micro-batch.
        return nullcontext()

    def clip_grad_norm(self, params: list[nn.Parameter], max_norm: float) -> float:
        from torch.distributed.tensor import DTensor

        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()  # the norm over every rank's shards
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return float(norm)

    @contextmanager
    def gathered(self, model: nn.Module):
        modules = list(self._reshard_after_forward)
        for module in modules:
            module.set_reshard_after_forward(False, recurse=False)
            module.unshard()
        try:
            yield
        finally:
            for module, keep in self._reshard_after_forward.items():
                module.reshard()
                module.set_reshard_after_forward(keep, recurse=False)

    def full_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        weights = get_model_state_dict(model, options=_full_options())
        return weights, FullOptimizerState.gather(model, optimizer)

    def full_tensors(self, tensors: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        if tensors is None:
            return None
        return {name: _whole(t).cpu() for name, t in tensors.items()}

    def like_param(self, tensor: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
        from torch.distributed.tensor import DTensor, distribute_tensor

        if not isinstance(param, DTensor):
            return tensor
        # every rank holds the whole tensor: each keeps its own shard, no communication
        return distribute_tensor(tensor.to(param.device), param.device_mesh, param.placements, src_data_rank=None)

    def load_optimizer(self, checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        checkpoint.load_optimizer(FullOptimizerState(model, optimizer))


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


class FullOptimizerState:
    """The AdamW state of a sharded model as one process holds it (parameters numbered in the
    optimizer's order, whole tensors): what `assay.checkpoint_io.save_optimizer` writes and
    `load_optimizer` reads, through `state_dict` and `load_state_dict`.

    `gather` collects it on rank 0 (collectively); `load_state_dict` gives every rank its shards
    (collectively; every rank reads the files)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict | None = None):
        self.model, self.optimizer, self._state = model, optimizer, state

    @classmethod
    def gather(cls, model: nn.Module, optimizer: torch.optim.Optimizer) -> FullOptimizerState:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        by_name = get_optimizer_state_dict(model, optimizer, options=_full_options())  # {} off rank 0
        if not by_name:
            return cls(model, optimizer, {})
        ids: dict[str, int] = {}
        groups = []
        for group in by_name["param_groups"]:
            groups.append({**group, "params": [ids.setdefault(name, len(ids)) for name in group["params"]]})
        state = {ids[name]: slots for name, slots in by_name["state"].items()}
        return cls(model, optimizer, {"state": state, "param_groups": groups})

    def state_dict(self) -> dict:
        if self._state is None:
            raise RuntimeError("FullOptimizerState.gather() collects the state to save")
        return self._state

    def load_state_dict(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        names = {id(p): name for name, p in self.model.named_parameters()}  # a tied weight by its first name
        order = [names[id(p)] for group in self.optimizer.param_groups for p in group["params"]]
        saved = [i for group in state["param_groups"] for i in group["params"]]
        if sorted(saved) != list(range(len(order))):
            raise ValueError(f"the checkpoint's optimizer has {len(saved)} parameters, this model trains {len(order)}")
        by_name = {
            "state": {order[int(i)]: slots for i, slots in state["state"].items()},
            "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in state["param_groups"]],
        }
        set_optimizer_state_dict(self.model, self.optimizer, by_name, options=StateDictOptions(full_state_dict=True))
