"""The execution plan of a model's graph, computed once when the model is built (and its loss part once
per compile).

Every tensor of the graph gets a slot in one list (`values`): the model's inputs first, then each node's
outputs in topological order. Each node runs on an executor: the layer itself for its first node, a
shallow copy for each further node of a shared layer (same weight views, buffers of its own, its own
`_need_dx`), so every tensor's buffer is allocated once per batch size by the layer that writes it.

Forward is a list of chains: a run of nodes in which each feeds only the next is one entry
``(forward functions, getter of the first node's inputs, output slot, number of outputs)``, so a
Sequential model is one chain and costs what a plain loop over its layers costs.

Backward runs the nodes that lead from a parameter to a loss, in reverse topological order, also in
chains. Gradients arrive as contributions: each tensor has a fixed list with one place per producer of
a gradient for it (a loss head, or a consumer's dx), filled during the pass; a tensor with one
contribution uses it as it is, one with several sums them into a buffer allocated once per batch size,
always in the same order. A layer used at several nodes writes its parameter gradients at the first
node that runs backward into the flat gradient buffer and at the others into shadow regions after it;
the shadows are added in after the pass, so the optimizer still sees one flat gradient buffer.
"""
import copy
import operator

import numpy as np

from nncore.layers.base import MAX_CACHED_SHAPES

__all__ = ["Plan"]


def _trainable(layer):
    return bool(layer._specs) and getattr(layer, "trainable", True)


def _getter(slots, as_list):
    """A callable giving a node's input(s) from the values list: one value, or a tuple for a list call."""
    if not as_list:
        return operator.itemgetter(slots[0])
    if len(slots) > 1:
        return operator.itemgetter(*slots)
    only = slots[0]
    return lambda v: (v[only],)


class Plan:
    """Slots, executors and chains for the nodes of a model.

    Parameters
    ----------
    nodes : list of Node
        In topological order, without the Input nodes.
    inputs, outputs : list of SymbolicTensor
        The model's inputs and outputs, in order.
    """

    def __init__(self, nodes, inputs, outputs):
        self.nodes = nodes
        tensors = list(inputs) + [t for node in nodes for t in node.outputs]
        self.tensors = tensors
        self.slot = {id(t): i for i, t in enumerate(tensors)}
        self.values = [None] * len(tensors)
        self.n_inputs = len(inputs)
        self.out_slots = [self.slot[id(t)] for t in outputs]
        self.consumers = [[] for _ in tensors]          # slot -> [(node index, input position)]
        for j, node in enumerate(nodes):
            for p, t in enumerate(node.inputs):
                self.consumers[self.slot[id(t)]].append((j, p))
        needs = [False] * len(tensors)                   # does a trainable parameter lie upstream?
        for node in nodes:
            g = _trainable(node.layer) or any(needs[self.slot[id(t)]] for t in node.inputs)
            for t in node.outputs:
                needs[self.slot[id(t)]] = g
        self.needs_grad = needs
        seen = set()
        self.executors = []
        for node in nodes:
            if node.impl is not None:
                impl = node.impl
            elif id(node.layer) not in seen:
                impl = node.layer
            else:
                impl = copy.copy(node.layer)             # shares the weight views, not the buffers
                impl._bufs = {}
            seen.add(id(node.layer))
            impl._need_dx_of = tuple(needs[self.slot[id(t)]] for t in node.inputs)
            impl._need_dx = any(impl._need_dx_of)
            self.executors.append(impl)
        self.infer = self._forward_chains(set())
        self.train, self.backward_chains, self.shared = self.infer, [], []
        self._bufs = {}

    # ---- structure ---------------------------------------------------------------------------------
    def _slots(self, ts):
        return [self.slot[id(t)] for t in ts]

    def _forward_chains(self, logits):
        """Chains of nodes; a node in `logits` runs forward_logits (the fused loss follows it)."""
        chains, nodes, j = [], self.nodes, 0
        while j < len(nodes):
            start, fs = j, []
            while True:
                impl = self.executors[j]
                fs.append(impl.forward_logits if j in logits else impl.forward)
                if not (j + 1 < len(nodes) and self._feeds_only_next(j)):
                    break
                j += 1
            first, last = nodes[start], nodes[j]
            many = len(last.outputs) if last.many else 0
            chains.append((tuple(fs), _getter(self._slots(first.inputs), first.gets_list),
                           self.slot[id(last.outputs[0])], many))
            j += 1
        return chains

    def _feeds_only_next(self, j):
        node, nxt = self.nodes[j], self.nodes[j + 1]
        if node.many or nxt.gets_list or nxt.inputs[0] is not node.outputs[0]:
            return False
        s = self.slot[id(node.outputs[0])]
        return len(self.consumers[s]) == 1 and s not in self.out_slots and not node.many

    def set_heads(self, heads, main_grads, shadow_grads):
        """The loss-dependent part: which nodes run backward, where gradients go, the chains.

        heads : list of (has_loss, fused) per model output.
        main_grads : layer -> flat view of its gradient region in the flat gradient buffer.
        shadow_grads : (layer, k) -> (flat view, {attr: view}) of the layer's k-th shadow region (k >= 1).
        """
        nodes, slot = self.nodes, self.slot
        gets = [False] * len(self.tensors)
        for s, (has_loss, _) in zip(self.out_slots, heads):
            gets[s] = gets[s] or has_loss
        runs = [False] * len(nodes)
        for j in range(len(nodes) - 1, -1, -1):
            node = nodes[j]
            if any(gets[slot[id(t)]] for t in node.outputs) and (
                    _trainable(node.layer) or self.executors[j]._need_dx):
                runs[j] = True
                for t in node.inputs:
                    if self.needs_grad[slot[id(t)]]:
                        gets[slot[id(t)]] = True
        # contribution places: the loss head first, then each consumer's dx in backward order
        places = [0] * len(self.tensors)
        for s, (has_loss, _) in zip(self.out_slots, heads):
            if has_loss and places[s] == 0:
                places[s] = 1
        sinks = [None] * len(nodes)
        for j in range(len(nodes) - 1, -1, -1):
            if not runs[j]:
                continue
            per_input = []
            for t in nodes[j].inputs:
                s = slot[id(t)]
                if self.needs_grad[s]:
                    per_input.append((s, places[s]))
                    places[s] += 1
                else:
                    per_input.append(None)
            sinks[j] = tuple(per_input)
        self.places = places
        self.contrib = [[None] * k for k in places]
        # gradient routing of shared layers: the first node that runs backward writes the layer's own
        # gradient views, the others write shadow regions that are added in after backward
        self.shared, uses = [], {}
        for j, node in enumerate(nodes):
            if not runs[j] or not node.layer._specs:
                continue
            k = uses.get(id(node.layer), 0)
            uses[id(node.layer)] = k + 1
            impl = self.executors[j]
            if k == 0:
                impl._grad_of = node.layer._grad_of
            else:
                flat, views = shadow_grads(node.layer, k)
                impl._grad_of = views
                self.shared.append((main_grads(node.layer), flat))
        fused = {j for j, node in enumerate(nodes) for s, (has_loss, f) in zip(self.out_slots, heads)
                 if f and has_loss and slot[id(node.outputs[0])] == s}
        self.train = self._forward_chains(fused)
        self.backward_chains = self._backward_chains(runs, sinks, fused)
        self.runs = runs
        self._bufs = {}

    def _backward_chains(self, runs, sinks, fused):
        nodes, slot = self.nodes, self.slot
        order = [j for j in range(len(nodes) - 1, -1, -1) if runs[j]]
        chains, i = [], 0
        while i < len(order):
            start = i
            while i + 1 < len(order) and self._grad_feeds_only(order[i], order[i + 1]):
                i += 1
            js = order[start:i + 1]
            bs = tuple(self.executors[j].backward_logits if j in fused else self.executors[j].backward for j in js)
            head = nodes[js[0]]
            src = tuple(self._slots(head.outputs)) if head.many else slot[id(head.outputs[0])]
            last = nodes[js[-1]]
            ends = sinks[js[-1]]
            single = ends[0] if not last.gets_list else None
            chains.append((bs, src, ends if any(e is not None for e in ends) else (), single))
            i += 1
        return chains

    def _grad_feeds_only(self, j, k):
        """Node j's dx is the whole gradient of node k's only output (k runs right before j, backward)."""
        node, prev = self.nodes[j], self.nodes[k]
        if node.gets_list or prev.many or node.inputs[0] is not prev.outputs[0]:
            return False
        return self.places[self.slot[id(prev.outputs[0])]] == 1 and self.slot[id(prev.outputs[0])] not in \
            self.out_slots

    # ---- running -----------------------------------------------------------------------------------
    def forward(self, chains, training):
        """Run the chains; the model's inputs must be in values[:n_inputs]."""
        v = self.values
        for fs, get, o, many in chains:
            x = get(v)
            for f in fs:
                x = f(x, training)
            if many:
                v[o:o + many] = x
            else:
                v[o] = x

    def backward(self, n):
        """Backward over the chains (the loss heads' gradients already in `contrib`), then the shadows of
        shared layers added into the flat gradient buffer."""
        c = self.contrib
        bufs = self._bufs.get(n)
        if bufs is None:
            bufs = self._buffers(n)
        for bs, src, sinks, single in self.backward_chains:
            dy = self._grad(src, c, bufs) if type(src) is int else [self._grad(t, c, bufs) for t in src]
            for b in bs:
                dy = b(dy)
            if single is not None:
                c[single[0]][single[1]] = dy
            elif sinks:
                for s, d in zip(sinks, dy):
                    if s is not None:
                        c[s[0]][s[1]] = d
        for main, shadow in self.shared:
            np.add(main, shadow, out=main)

    @staticmethod
    def _grad(s, c, bufs):
        """The gradient of tensor slot s: its one contribution, the sum of several (into the slot's
        buffer, in a fixed order), or zeros when nothing reaches it."""
        cs = c[s]
        if len(cs) == 1:
            return cs[0]
        out = bufs[s]
        if not cs:
            return out
        np.add(cs[0], cs[1], out=out)
        for k in range(2, len(cs)):
            np.add(out, cs[k], out=out)
        return out

    def _buffers(self, n):
        """Per batch size: the sum buffer of each tensor with several contributions and the zeros of
        each output that gets none."""
        if len(self._bufs) >= MAX_CACHED_SHAPES:
            self._bufs.clear()
        dtype = self._dtype
        bufs = {}
        for j, node in enumerate(self.nodes):
            for t in node.outputs:
                s = self.slot[id(t)]
                if self.runs[j] and self.places[s] != 1:
                    bufs[s] = np.zeros((n,) + tuple(t.shape[1:]), dtype)
        self._bufs[n] = bufs
        return bufs

    _dtype = np.float32

    def set_threads(self, n_threads):
        for impl in self.executors:
            impl._n_threads = n_threads
