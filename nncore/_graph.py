"""The functional graph: symbolic tensors, nodes, the walk from a model's outputs to its inputs, and its config.

Calling a layer on symbolic tensors (what ``nncore.Input`` returns, or another layer's output) computes
nothing: it builds the layer from the input shapes and records a `Node` (the layer, its input tensors,
its output tensors) whose outputs are new symbolic tensors. A tensor knows the node that made it, a node
its inputs, so a model finds its graph by walking back from its outputs (`topological_nodes`).

The layer protocol of a node (what the model's execution plan calls, see nncore/_plan.py):
- ``forward(x, training)``: x is one array when the layer was called on one tensor, a list of arrays
  (in call order) when it was called on a list, or when tensors came in through keyword arguments
  (``layer._tensor_kwargs`` names them, e.g. ``initial_state``; they follow the positional ones, and the
  node's executor has ``_call_kwargs`` = {name: [positions in x]}). It returns one array, or a list of
  arrays when `compute_output_shape` returned a list of shapes (several outputs).
- ``backward(dy)``: dy is one array, or a list of arrays (one per output, zeros for an output that
  receives no gradient; never written to); returns dx for each input in the same structure as x,
  with None for inputs that need none (``_need_dx`` False; for list inputs ``_need_dx_of[j]``).
"""
import copy

__all__ = ["SymbolicTensor", "Node", "is_symbolic", "call_symbolic", "topological_nodes", "node_config",
           "graph_from_config"]


class SymbolicTensor:
    """A value a model will compute: its shape (batch dimension first, None) and the node that makes it.

    Made by ``nncore.Input`` and by calling a layer on symbolic tensors; used to define a
    ``nncore.models.Model(inputs, outputs)``.

    Attributes
    ----------
    shape : tuple
        ``(None, ...)``.
    node : Node
        The layer call that produces this tensor.
    index : int
        Which output of that call it is.
    """
    __slots__ = ("shape", "node", "index")

    def __init__(self, shape, node, index):
        self.shape = tuple(shape)
        self.node = node
        self.index = index

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def name(self):
        """The name of the layer that produces the tensor (with the output index for several outputs)."""
        layer = self.node.layer
        return layer.name if len(self.node.outputs) == 1 else f"{layer.name}:{self.index}"

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} from layer {self.node.layer.name!r}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values. Build a Model(inputs, outputs) and call "
                        "predict/fit on arrays")


class Node:
    """One call of a layer on symbolic tensors.

    ``inputs`` is the flat tuple of input tensors: the positional ones, then those of tensor keyword
    arguments; ``as_list`` says whether the positional argument was a list; ``kwargs`` maps each tensor
    keyword argument to its positions in ``inputs``; ``impl`` is a copy of the layer built for this
    node's shapes when a layer without parameters is called on tensors of another shape than its first
    call (otherwise None: the model runs the layer itself or a copy sharing its weights).
    """
    __slots__ = ("layer", "inputs", "outputs", "as_list", "kwargs", "impl", "many")

    def __init__(self, layer, inputs, as_list=False, kwargs=None, impl=None):
        self.layer = layer
        self.inputs = tuple(inputs)
        self.outputs = ()
        self.many = False          # the layer returns a list of outputs (compute_output_shape gave a list)
        self.as_list = as_list
        self.kwargs = kwargs or {}
        self.impl = impl

    @property
    def gets_list(self):
        """Whether the layer's forward gets a list of arrays (rather than one array)."""
        return self.as_list or bool(self.kwargs)

    def __repr__(self):
        return f"<Node of layer {self.layer.name!r}: {len(self.inputs)} inputs, {len(self.outputs)} outputs>"


def is_symbolic(x):
    return isinstance(x, SymbolicTensor) or (isinstance(x, (list, tuple)) and any(
        isinstance(t, SymbolicTensor) for t in x))


def _features(shape):
    return [tuple(s[1:]) for s in shape] if isinstance(shape, list) else tuple(shape[1:])


def _tensors(value, what, layer):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for t in items:
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}): {what} mixes symbolic tensors with "
                            f"{type(t).__name__}; call a layer either on symbolic tensors or on arrays")
    return items


def call_symbolic(layer, inputs, kwargs):
    """Record a call of `layer` on symbolic tensors: build the layer for their shapes, return its output
    tensor(s)."""
    as_list = isinstance(inputs, (list, tuple))
    flat = _tensors(inputs, "its input", layer)
    if as_list and not flat:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): called on an empty list")
    positional = len(flat)
    positions = {}
    for key, value in kwargs.items():
        if key not in layer._tensor_kwargs:
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}): unexpected keyword argument {key!r} "
                            "in a call on symbolic tensors")
        if value is None:
            continue
        more = _tensors(value, f"keyword argument {key!r}", layer)
        positions[key] = list(range(len(flat), len(flat) + len(more)))
        flat += more
    shapes = [t.shape for t in flat[:positional]]
    in_shape = shapes if as_list else shapes[0]
    impl = None
    if layer.built and _features(in_shape) != _features(layer.input_shape) and not layer._specs:
        impl = copy.copy(layer)                  # a layer without weights on tensors of another shape
        impl.built, impl._bufs = False, {}
        out_shape = impl._build(in_shape)
    else:
        out_shape = layer._build(in_shape)       # builds once; a layer with weights checks the shape
    node = Node(layer, flat, as_list=as_list, kwargs=positions, impl=impl)
    node.many = isinstance(out_shape, list)
    shapes_out = out_shape if node.many else [out_shape]
    node.outputs = tuple(SymbolicTensor(s, node, i) for i, s in enumerate(shapes_out))
    return list(node.outputs) if isinstance(out_shape, list) else node.outputs[0]


def topological_nodes(outputs):
    """The nodes the outputs depend on, each after the nodes of its inputs (depth-first from the outputs,
    in order), without recursion. A cycle (possible only in a hand-made config) is a ValueError."""
    order, state = [], {}          # state: id(node) -> 1 while on the path, 2 when done
    for out in outputs:
        stack = [(out.node, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                if state.get(id(node)) == 2:
                    continue
                if state.get(id(node)) == 1:
                    raise ValueError(f"the graph has a cycle through layer {node.layer.name!r}")
                state[id(node)] = 1
            if i < len(node.inputs):
                stack.append((node, i + 1))
                nxt = node.inputs[i].node
                if state.get(id(nxt)) == 1:
                    raise ValueError(f"the graph has a cycle through layer {nxt.layer.name!r}")
                if state.get(id(nxt)) != 2:
                    stack.append((nxt, 0))
            else:
                state[id(node)] = 2
                order.append(node)
    return order


# ---- config: layers with their inbound nodes, the model's inputs and outputs ----------------------------
def node_config(node, ref):
    """{"args": [inputs], "kwargs": {...}} of a node (Keras 3's layout), with `ref(tensor)` giving
    [layer_name, node_index, tensor_index]: inputs is one reference, or a list for a call on a list."""
    refs = [ref(t) for t in node.inputs]
    positional = len(refs) - sum(len(p) for p in node.kwargs.values())
    args = refs[:positional] if node.as_list else refs[0]
    return {"args": [args], "kwargs": {k: [refs[i] for i in p] for k, p in node.kwargs.items()}}


def _ref_of(value, bad):
    """A tensor reference [layer_name, node_index, tensor_index]: nncore's list or Keras 3's __keras_tensor__."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        value = (value.get("config") or {}).get("keras_history")
    if (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str)
            and all(type(v) is int and v >= 0 for v in value[1:])):
        return tuple(value)
    bad(f"expected a tensor reference [layer_name, node_index, tensor_index], got {value!r:.80}")


def _is_ref(value):
    return (isinstance(value, dict) and value.get("class_name") == "__keras_tensor__") or (
        isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str))


def _structure_refs(value, bad):
    """A ref, a list of refs or a dict of refs -> the same structure of ref tuples."""
    if _is_ref(value):
        return _ref_of(value, bad)
    if isinstance(value, dict):
        return {k: _ref_of(v, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_ref_of(v, bad) for v in value]
    bad(f"expected tensor references, got {value!r:.80}")


def graph_from_config(config, get_layer_class, input_layer_class):
    """Rebuild the layers and call them on each other as the config says; returns (inputs, outputs, layers)
    with inputs/outputs in the config's structure (ref, list or dict). Each node waits for the nodes that
    make its inputs (and for the layer's previous node, so node indexes match); a node that never becomes
    ready refers to a missing node or lies on a cycle: ValueError."""
    def bad(reason):
        raise ValueError(f"Model.from_config: {reason}")

    specs = config.get("layers")
    if not isinstance(specs, list):
        bad("expected a 'layers' list")
    layers, nodes = {}, []                  # nodes: (layer_name, node_index, inbound spec)
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
            bad(f"layer {i}: expected {{'class_name': str, 'config': dict, 'inbound_nodes': list}}")
        cls = get_layer_class(spec["class_name"])
        layer = cls.from_config(dict(spec.get("config") or {}))
        if layer.name in layers:
            bad(f"two layers are named {layer.name!r}")
        layers[layer.name] = layer
        inbound = spec.get("inbound_nodes", [])
        if not isinstance(inbound, list):
            bad(f"layer {layer.name!r}: 'inbound_nodes' must be a list")
        if isinstance(layer, input_layer_class):
            if inbound:
                bad(f"input layer {layer.name!r} cannot have inbound nodes")
            continue
        for k, node in enumerate(inbound):
            if not isinstance(node, dict) or not isinstance(node.get("args"), list) or len(node["args"]) != 1:
                bad(f"layer {layer.name!r} node {k}: expected {{'args': [inputs], 'kwargs': {{...}}}}")
            nodes.append((layer.name, k, node))
    made = {name: [[layer._tensor]] for name, layer in layers.items() if isinstance(layer, input_layer_class)}

    def refs_of(node):
        args = _structure_refs(node["args"][0], bad)
        kwargs = node.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            bad("a node's 'kwargs' must be a dict")
        return args, {k: _structure_refs(v, bad) for k, v in kwargs.items()}

    def flat(structure):
        if isinstance(structure, tuple):
            return [structure]
        return list(structure.values()) if isinstance(structure, dict) else list(structure)

    # Kahn's algorithm over the nodes: O(nodes + references) whatever order the config lists them in
    key_of = {(name, k): j for j, (name, k, _) in enumerate(nodes)}
    parsed = [refs_of(node) for _, _, node in nodes]
    waiting = [0] * len(nodes)
    users = [[] for _ in nodes]
    for j, ((name, k, _), (args, kwargs)) in enumerate(zip(nodes, parsed)):
        needs = {(r[0], r[1]) for s in [args, *kwargs.values()] for r in flat(s)}
        if k > 0:
            needs.add((name, k - 1))
        for need in needs:
            if need in key_of:
                waiting[j] += 1
                users[key_of[need]].append(j)
            elif not (need[0] in made and need[1] == 0):
                bad(f"layer {name!r} node {k} refers to node {need[1]} of layer {need[0]!r}, which does not exist")
    ready = [j for j in range(len(nodes)) if waiting[j] == 0]

    def tensor(ref):
        outs = made.get(ref[0])
        if outs is None or ref[1] >= len(outs) or ref[2] >= len(outs[ref[1]]):
            bad(f"reference {list(ref)} names a tensor that does not exist")
        return outs[ref[1]][ref[2]]

    def resolve(structure):
        if isinstance(structure, tuple):
            return tensor(structure)
        if isinstance(structure, dict):
            return {k: tensor(r) for k, r in structure.items()}
        return [tensor(r) for r in structure]

    done = 0
    while ready:
        j = ready.pop()
        name, k, _ = nodes[j]
        args, kwargs = parsed[j]
        out = layers[name](resolve(args), **{key: resolve(v) for key, v in kwargs.items()})
        made.setdefault(name, []).append(out if isinstance(out, list) else [out])
        done += 1
        for u in users[j]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    if done != len(nodes):
        name, k, _ = next(nodes[j] for j in range(len(nodes)) if waiting[j] > 0)
        bad(f"layer {name!r} node {k} can never run: its inputs lie on a cycle")
    for key in ("input_layers", "output_layers"):
        if key not in config:
            bad(f"missing {key!r}")
    inputs = resolve(_structure_refs(config["input_layers"], bad))
    outputs = resolve(_structure_refs(config["output_layers"], bad))
    return inputs, outputs, list(layers.values())
