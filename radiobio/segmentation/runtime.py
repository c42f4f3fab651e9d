"""Batch prediction for inference, per Keras backend: ``batch_predictor(model)``.

On TensorFlow and JAX the model's own ``predict_on_batch`` is already a compiled graph. On PyTorch, Keras runs a
functional model layer by layer and keeps every intermediate tensor until the end of the call; its convolutions
also copy each input twice (channels-last to channels-first and back to oneDNN's channels-last layout) and its
transposed convolutions and poolings take PyTorch's slow channels-first path. For PyTorch, radiobio therefore
walks the Keras graph itself, under ``torch.inference_mode``:

* convolutions, transposed convolutions, poolings, group/batch normalisation, activations, concatenation,
  nearest up-sampling and dropout run as the equivalent ``torch.nn.functional`` calls on channels-last views
  (no layout copies; the same weights, the same arithmetic up to float32 round-off);
* any other layer runs as the Keras layer itself, so every model still works;
* each tensor is released after its last use, and an activation whose input nobody else needs runs in place.

Only what the first output needs is computed (segmentation uses the main head, not deep-supervision heads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], Any]


def batch_predictor(model, first_output_only: bool = True) -> Predict:
    """A function mapping a float32 batch ``(b, *spatial, channels)`` to the model's probabilities (NumPy).

    With ``first_output_only`` a multi-output model returns only its first output. Objects that are not Keras
    functional models (or whose graph cannot be walked) are called through ``predict_on_batch``.
    """
    import keras

    if keras.backend.backend() == "torch":
        try:
            return TorchGraphRunner(model, first_output_only)
        except (AttributeError, TypeError, KeyError, ValueError):
            pass  # not a functional graph radiobio can walk: Keras' own path is always correct
    return model.predict_on_batch


class TorchGraphRunner:
    """Runs a Keras functional model on the PyTorch backend with channels-last kernels and early freeing."""

    def __init__(self, model, first_output_only: bool = True):
        outputs = model.outputs[:1] if first_output_only else model.outputs
        self.input_ids = [id(x) for x in model.inputs]
        self.output_ids = [id(x) for x in outputs]
        self.single = len(outputs) == 1
        weights = model.weights
        self.device = weights[0].value.device if weights else "cpu"  # where Keras placed the model (CPU or GPU)
        self.steps = _fuse_concatenations(_plan(model, set(self.output_ids)), set(self.output_ids))
        self.fast_steps = sum(1 for step in self.steps if step.fast)
        last_use: dict[int, int] = {}
        for index, step in enumerate(self.steps):
            for tensor_id in step.input_ids:
                last_use[tensor_id] = index
        keep = set(self.output_ids)
        self.release = [[t for t in step.input_ids if last_use[t] == i and t not in keep]
                        for i, step in enumerate(self.steps)]
        # a fast kernel may overwrite its single input when nothing reads that input later
        self.in_place_input = [step.input_ids[0] if step.fast and len(step.input_ids) == 1
                               and step.input_ids[0] in release else None
                               for step, release in zip(self.steps, self.release)]

    def __call__(self, batch: np.ndarray):
        import torch

        with torch.inference_mode():
            values: dict[int, Any] = {}
            for tensor_id, array in zip(self.input_ids, batch if isinstance(batch, (list, tuple)) else [batch]):
                values[tensor_id] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)
            owned: set[int] = set()  # tensors produced here, whose storage nobody else shares
            for step, release, in_place_input in zip(self.steps, self.release, self.in_place_input):
                inputs = [values[t] for t in step.input_ids]
                args, kwargs = ((inputs,), {}) if step.parts else step.arguments.fill_in(values)
                in_place = in_place_input is not None and in_place_input in owned
                result = step.run(*args, in_place=in_place, **kwargs)
                for tensor_id in release:
                    values.pop(tensor_id, None)
                    owned.discard(tensor_id)
                results = result if isinstance(result, (list, tuple)) else [result]
                for tensor_id, value in zip(step.output_ids, results):
                    values[tensor_id] = value
                    if step.fast and all(value is not a for a in inputs):  # identity kernels return their input
                        owned.add(tensor_id)
            out = [values[i].detach().cpu().numpy() for i in self.output_ids]
        return out[0] if self.single else out


class _Step:
    def __init__(self, operation, arguments, input_ids: list[int], output_ids: list[int]):
        self.operation = operation
        self.arguments = arguments
        self.input_ids = input_ids
        self.output_ids = output_ids
        self.parts = False  # True once a concatenation is fused in: the kernel gets the list of its inputs
        kernel = _fast_kernel(operation)
        self.fast = kernel is not None
        if kernel is None:
            has_training = getattr(operation, "_call_has_training_arg", False)

            def kernel(*args, in_place=False, **kwargs):
                if has_training:
                    kwargs["training"] = False
                return operation(*args, **kwargs)
        self.run = kernel


def _plan(model, needed_outputs: set[int]) -> list[_Step]:
    """The graph's nodes in execution order, restricted to those the requested outputs depend on."""
    nodes = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                nodes.append(node)
    needed = set(needed_outputs)
    kept = []
    for node in reversed(nodes):
        if any(id(x) in needed for x in node.outputs):
            kept.append(node)
            needed.update(id(x) for x in node.input_tensors)
    kept.reverse()
    return [_Step(model._get_operation_for_node(node), node.arguments, [id(x) for x in node.input_tensors],
                  [id(x) for x in node.outputs]) for node in kept]


def _fuse_concatenations(steps: list[_Step], outputs: set[int]) -> list[_Step]:
    """Fold a channel concatenation into the convolution that alone consumes it: ``conv(concat(a, b), W)`` becomes
    ``conv(a, W_a) + conv(b, W_b)``, the same sum of products without the concatenated tensor (U-Net skips)."""
    from keras import layers

    consumers: dict[int, list[_Step]] = {}
    for step in steps:
        for tensor_id in step.input_ids:
            consumers.setdefault(tensor_id, []).append(step)
    fused = []
    for step in steps:
        op = step.operation
        if type(op) is layers.Concatenate and step.fast and op.axis in (-1, len(op.output.shape) - 1):
            (out,) = step.output_ids
            users = consumers.get(out, [])
            if out not in outputs and len(users) == 1 and getattr(users[0].run, "accepts_parts", False) \
                    and users[0].input_ids == [out]:
                users[0].input_ids = list(step.input_ids)
                users[0].parts = True
                continue
        fused.append(step)
    return fused


# ---------------------------------------------------------------------------------------------------------------
# Channels-last kernels. Tensors flow in Keras' logical layout (batch, *spatial, channels), contiguous; a permute to
# (batch, channels, *spatial) is then a free view in PyTorch's channels-last memory format, which oneDNN uses
# directly.


def _to_cf(x):
    return x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def _to_cl(x):
    out = x.permute(0, *range(2, x.ndim), 1)
    return out if out.is_contiguous() else out.contiguous()


def _channels_last_weights(tensor):
    """A kernel ``(out or in, in or out, *k)`` laid out channels-last, as oneDNN reads it."""
    import torch

    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(tensor.ndim, torch.contiguous_format)
    return tensor.contiguous(memory_format=layout)


def _torch_weights(layer, dims: int):
    """``(kernel, bias)`` of a Keras (transposed) convolution in PyTorch's order: Keras stores ``(*k, a, b)`` and
    PyTorch wants ``(b, a, *k)`` for both (``(out, in, *k)`` for a convolution, ``(in, out, *k)`` transposed)."""
    kernel = _channels_last_weights(layer.kernel.value.detach().permute(dims + 1, dims, *range(dims)))
    return kernel, (layer.bias.value.detach() if layer.use_bias else None)


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _float32(layer) -> bool:
    return getattr(layer, "compute_dtype", "float32") == "float32"


def _activation(function) -> Callable | None:
    """An in-place-capable torch version of a Keras activation function, or None when there is none."""
    import keras
    import torch
    import torch.nn.functional as F

    table = {
        keras.activations.linear: lambda x, in_place: x,
        keras.activations.relu: lambda x, in_place: F.relu_(x) if in_place else F.relu(x),
        keras.activations.sigmoid: lambda x, in_place: x.sigmoid_() if in_place else torch.sigmoid(x),
        keras.activations.tanh: lambda x, in_place: x.tanh_() if in_place else torch.tanh(x),
        keras.activations.softmax: lambda x, in_place: torch.softmax(x, dim=-1),
    }
    return table.get(function)


def _fast_kernel(layer) -> Callable | None:
    """The channels-last torch implementation of ``layer``, or None to run the Keras layer itself."""
    from keras import layers

    if not _float32(layer) or not _channels_last(layer):
        return None
    kind = type(layer)
    builders = {
        layers.Conv1D: _conv, layers.Conv2D: _conv, layers.Conv3D: _conv,
        layers.Conv2DTranspose: _conv_transpose, layers.Conv3DTranspose: _conv_transpose,
        layers.MaxPooling2D: _pool, layers.MaxPooling3D: _pool, layers.AveragePooling2D: _pool,
        layers.AveragePooling3D: _pool,
        layers.GroupNormalization: _group_norm, layers.BatchNormalization: _batch_norm,
        layers.LeakyReLU: _leaky_relu, layers.ReLU: _relu, layers.Activation: _activation_layer,
        layers.Concatenate: _concatenate, layers.UpSampling2D: _upsampling, layers.UpSampling3D: _upsampling,
        layers.Dropout: _identity, layers.SpatialDropout2D: _identity, layers.SpatialDropout3D: _identity,
        layers.GaussianNoise: _identity, layers.GaussianDropout: _identity,
    }
    builder = builders.get(kind)
    return None if builder is None else builder(layer)


def _identity(layer):
    return lambda x, in_place=False, **kwargs: x


def _conv(layer):
    import torch
    import torch.nn.functional as F

    if getattr(layer, "groups", 1) != 1 or layer.padding not in ("same", "valid"):
        return None
    activation = _activation(layer.activation)
    if activation is None:
        return None
    dims = len(layer.kernel_size)
    sizes = np.asarray(layer.kernel_size)
    strides = [int(s) for s in layer.strides]
    dilation = [int(d) for d in layer.dilation_rate]
    span = (sizes - 1) * np.asarray(dilation)
    symmetric = layer.padding == "valid" or (all(s == 1 for s in strides) and bool(np.all(span % 2 == 0)))
    padding = [0] * dims if layer.padding == "valid" else [int(p) for p in span // 2]
    kernel, bias = _torch_weights(layer, dims)
    # PyTorch sends small batch-1 3D convolutions to a slow native kernel (a heuristic sized for 2D); oneDNN's
    # convolution is called directly on CPU instead
    onednn = dims > 1 and kernel.device.type == "cpu" and torch.backends.mkldnn.is_available()
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    split_cache: dict[tuple[int, ...], list] = {}

    def convolve(x, weights, with_bias):
        x = _to_cf(x)
        pad = padding
        if not symmetric:  # TensorFlow's "same": pad total = (ceil(n / s) - 1) * s + span + 1 - n, extra voxel after
            pads = []
            for n, s, extent in zip(reversed(x.shape[2:]), reversed(strides), reversed(span)):
                total = max((-(-int(n) // s) - 1) * s + int(extent) + 1 - int(n), 0)
                pads += [total // 2, total - total // 2]
            x, pad = F.pad(x, pads), [0] * dims
        b = bias if with_bias else None
        if onednn:
            return torch.ops.aten.mkldnn_convolution(x, weights, b, pad, strides, dilation, 1)
        return conv(x, weights, b, stride=strides, padding=pad, dilation=dilation)

    def run(x, in_place=False, **kwargs):
        if not isinstance(x, list):
            return activation(_to_cl(convolve(x, kernel, True)), True)
        channels = tuple(int(part.shape[-1]) for part in x)
        if channels not in split_cache:
            bounds = np.cumsum((0, *channels))
            split_cache[channels] = [_channels_last_weights(kernel[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        y = None
        for index, (part, weights) in enumerate(zip(x, split_cache[channels])):
            partial = convolve(part, weights, index == 0)
            y = partial if y is None else y.add_(partial)
        return activation(_to_cl(y), True)

    run.accepts_parts = True
    return run


def _conv_transpose(layer):
    import torch.nn.functional as F

    dims = len(layer.kernel_size)
    simple = (tuple(layer.kernel_size) == tuple(layer.strides) and all(d == 1 for d in layer.dilation_rate)
              and getattr(layer, "output_padding", None) is None and layer.padding in ("same", "valid"))
    activation = _activation(layer.activation)
    if not simple or activation is None:  # kernel == stride: "same" and "valid" give the same n * s output
        return None
    kernel, bias = _torch_weights(layer, dims)
    conv = {2: F.conv_transpose2d, 3: F.conv_transpose3d}[dims]
    strides = tuple(int(s) for s in layer.strides)

    def run(x, in_place=False, **kwargs):
        return activation(_to_cl(conv(_to_cf(x), kernel, bias, stride=strides)), True)

    return run


def _pool(layer):
    import torch.nn.functional as F
    from keras import layers

    if layer.padding != "valid":
        return None
    dims = len(layer.pool_size)
    average = isinstance(layer, (layers.AveragePooling2D, layers.AveragePooling3D))
    pool = {(2, False): F.max_pool2d, (3, False): F.max_pool3d, (2, True): F.avg_pool2d,
            (3, True): F.avg_pool3d}[(dims, average)]
    size = tuple(int(s) for s in layer.pool_size)
    strides = tuple(int(s) for s in (layer.strides or layer.pool_size))

    def run(x, in_place=False, **kwargs):
        return _to_cl(pool(_to_cf(x), size, strides))

    return run


def _group_norm(layer):
    import torch.nn.functional as F

    if layer.axis not in (-1,):
        return None
    gamma = layer.gamma.value.detach() if layer.scale else None
    beta = layer.beta.value.detach() if layer.center else None

    def run(x, in_place=False, **kwargs):
        return _to_cl(F.group_norm(_to_cf(x), layer.groups, gamma, beta, layer.epsilon))

    return run


def _batch_norm(layer):
    import torch

    if layer.axis not in (-1,) or getattr(layer, "renorm", False):
        return None
    scale = torch.rsqrt(layer.moving_variance.value.detach() + layer.epsilon)
    if layer.scale:
        scale = scale * layer.gamma.value.detach()
    shift = -layer.moving_mean.value.detach() * scale
    if layer.center:
        shift = shift + layer.beta.value.detach()

    def run(x, in_place=False, **kwargs):
        return x.mul_(scale).add_(shift) if in_place else torch.addcmul(shift, x, scale)

    return run


def _leaky_relu(layer):
    import torch.nn.functional as F

    slope = float(layer.negative_slope)
    return lambda x, in_place=False, **kwargs: F.leaky_relu_(x, slope) if in_place else F.leaky_relu(x, slope)


def _relu(layer):
    import keras

    if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        return None
    relu = _activation(keras.activations.relu)
    return lambda x, in_place=False, **kwargs: relu(x, in_place)


def _activation_layer(layer):
    activation = _activation(layer.activation)
    if activation is None:
        return None
    return lambda x, in_place=False, **kwargs: activation(x, in_place)


def _concatenate(layer):
    import torch

    def run(tensors, in_place=False, **kwargs):
        axis = layer.axis if layer.axis >= 0 else tensors[0].ndim + layer.axis
        if axis != tensors[0].ndim - 1:
            return torch.cat(tensors, dim=axis)
        # torch.cat along the last axis copies runs of a few channels at a time; slice copies are several times
        # faster for the short channel runs of image tensors
        out = torch.empty((*tensors[0].shape[:-1], sum(t.shape[-1] for t in tensors)), dtype=tensors[0].dtype,
                          device=tensors[0].device)
        start = 0
        for t in tensors:
            out[..., start:start + t.shape[-1]].copy_(t)
            start += t.shape[-1]
        return out

    return run


def _upsampling(layer):
    if getattr(layer, "interpolation", "nearest") != "nearest":
        return None
    size = tuple(int(s) for s in layer.size)

    def run(x, in_place=False, **kwargs):
        for axis, factor in enumerate(size, start=1):
            if factor > 1:
                x = x.repeat_interleave(factor, dim=axis)
        return x

    return run
