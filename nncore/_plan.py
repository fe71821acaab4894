"""The execution plan of a model's graph, computed once when the model is built (and its loss part once
per compile).

Every tensor of the graph gets a slot in one list (`values`): the model's inputs first, then each node's
outputs in topological order. Each node runs on an executor: the layer itself for its first node, a
shallow copy for each further node of a shared layer (same weight views, buffers of its own, its own
`_need_dx`), so every tensor's buffer is allocated once per batch size by the layer that writes it.

Forward is one flat list of calls ``x = f(x, training)``: runs of nodes in which each feeds only the
next (chains) are their layers' forward methods back to back, and between two chains a junction keeps
the tensor just made in `values` and fetches the next chain's input(s). A Sequential model is one chain:
its step calls exactly its layers, except that a pair (`Plan.pairs`: a Conv2D whose output only a 2x2 stride-2
MaxPooling2D reads) runs as one call of the conv's, forward and backward, the conv output never written.

Backward runs the nodes that lead from a parameter to a loss, in reverse topological order, in the same
way: ``dy = b(dy)`` over the layers' backward methods, with a junction before each chain that hands the
previous chain's dx to the tensors it belongs to and fetches the gradient this chain starts from.
Gradients arrive as contributions: each tensor has a fixed list with one place per producer of a
gradient for it (a loss head, or a consumer's dx), filled during the pass; a tensor with one
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

# Whether plans pair a Conv2D with the MaxPooling2D that alone reads it (`Plan.pairs`); a private switch for the
# tests and benchmarks that compare the pair against the two layers (read when a plan is made; no environment
# variable sets it: STYLE.md)
FUSE_CONV_POOL = True


def _none(dy):
    return None


def _keep_then_get(v, where, get):
    """A forward junction: keep the tensor x just made at values[where], return the next chain's input(s)."""
    def junction(x, training):
        v[where] = x
        return get(v)
    return junction


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
    dtype : numpy dtype
        Of every tensor (the model's).
    trained : set of int
        id(layer) of the layers with weights the optimizer updates (the model's `_params.Layout`):
        gradients start at them, frozen layers and parameter-free ones only pass dx on.

    Attributes
    ----------
    last : Plan or None (class attribute)
        The plan prepared last in the process: while it is a model's own, that model's executors still
        hold its thread count and input places (a layer shared with another model may since have been
        prepared there); ``Model._lay_out`` resets it.
    """
    last = None

    def __init__(self, nodes, inputs, outputs, dtype, trained):
        self.nodes, self._dtype, self._trained = nodes, dtype, trained
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
            g = id(node.layer) in trained or any(needs[self.slot[id(t)]] for t in node.inputs)
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
            self.executors.append(impl)
        self._need_dx_of = [tuple(needs[self.slot[id(t)]] for t in node.inputs) for node in nodes]
        self._call_kwargs = [node.kwargs for node in nodes]
        # masks (Masking, Embedding(mask_zero=True)): each tensor's mask in a list beside `values`
        self.masked = any(impl._makes_mask for impl in self.executors)
        self.masks = [None] * len(tensors)
        # pairs run as one step: node j (a convolution) whose output only node j + 1 reads (a max pool),
        # j -> (forward, backward) of the pair from the conv's `_pool_pair` (it says which pairs qualify)
        self.pairs = {}
        if FUSE_CONV_POOL and not self.masked:
            for j in range(len(nodes) - 1):
                pair = getattr(self.executors[j], "_pool_pair", None)
                if pair is not None and self._feeds_only_next(j) and not self.nodes[j + 1].kwargs:
                    fb = pair(self.executors[j + 1])
                    if fb is not None:
                        self.pairs[j] = fb
        self.prepare(1)
        chains = self._forward_chains(set())
        # the first chain reads the batch itself (its inputs are model inputs: batch[i] is slot i); the
        # model inputs other nodes read, or that are outputs, are copied into values first
        first = len(chains[0][0]) if chains else 0
        self.feed = tuple(s for s in range(len(inputs)) if s in self.out_slots
                          or any(j >= first for j, _ in self.consumers[s]))
        self.infer = self._forward_program(chains)
        self.train, self.backward, self.shared = self.infer, _none, []
        self.runs, self._hook = None, None
        self.n = 0
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
                if j in self.pairs:                  # the pair's step, then on from the pool's node
                    fs.append(self.pairs[j][0])
                    j += 1
                else:
                    f = impl.forward_logits if j in logits else impl.forward
                    fs.append(self._masked_call(j, f) if self.masked else f)
                if not (j + 1 < len(nodes) and self._feeds_only_next(j)):
                    break
                j += 1
            first, last = nodes[start], nodes[j]
            many = len(last.outputs) if last.many else 0
            chains.append((tuple(fs), _getter(self._slots(first.inputs), first.gets_list),
                           self.slot[id(last.outputs[0])], many))
            j += 1
        return chains

    def _masked_call(self, j, f):
        """Node j's forward with masks: the mask of its (first) input goes to a layer that uses masks,
        and the layer's compute_mask gives those of its outputs (Keras's mask propagation)."""
        impl, node, masks = self.executors[j], self.nodes[j], self.masks
        src, outs = self.slot[id(node.inputs[0])], self._slots(node.outputs)
        uses, makes = impl._uses_mask, impl._makes_mask

        def call(x, training):
            m = masks[src]
            y = f(x, training, mask=m) if uses and m is not None else f(x, training)
            om = impl.compute_mask(x, m) if m is not None or makes else None
            if len(outs) == 1:
                masks[outs[0]] = om
            else:
                for s, mo in zip(outs, om if isinstance(om, list) else [om] * len(outs)):
                    masks[s] = mo
            return y
        return call

    def _feeds_only_next(self, j):
        node, nxt = self.nodes[j], self.nodes[j + 1]
        if node.many or nxt.gets_list or nxt.inputs[0] is not node.outputs[0]:
            return False
        s = self.slot[id(node.outputs[0])]
        return len(self.consumers[s]) == 1 and s not in self.out_slots and not node.many

    def _forward_program(self, chains):
        """The forward pass over `chains` as one function run(batch, training): the model inputs other
        chains read go into `values`, the first chain reads the batch itself (its inputs are model
        inputs: batch[i] is slot i), then one flat list of calls; the last output lands in `values`."""
        v, feed = self.values, self.feed
        if not chains:
            def run(batch, training):
                for i in feed:
                    v[i] = batch[i]
            return run
        calls = list(chains[0][0])
        for (_, _, o, many), nxt in zip(chains, chains[1:]):
            calls.append(_keep_then_get(v, slice(o, o + many) if many else o, nxt[1]))
            calls.extend(nxt[0])
        calls, first = tuple(calls), chains[0][1]
        _, _, o, many = chains[-1]
        last = slice(o, o + many) if many else o

        def run(batch, training):
            for i in feed:
                v[i] = batch[i]
            x = first(batch)
            for f in calls:                      # each layer writes into buffers allocated once per batch size
                x = f(x, training)
            v[last] = x

        def run_chain(batch, training):          # no model input read past the first chain (Sequential)
            x = first(batch)
            for f in calls:
                x = f(x, training)
            v[last] = x
        return run if feed else run_chain

    def set_heads(self, heads, layout):
        """The loss-dependent part: which nodes run backward, where gradients go, the chains.

        heads : list of (has_loss, fused) per model output.
        layout : the model's `_params.Layout` (gradient regions, shadows, `bind_node`).
        """
        nodes, slot = self.nodes, self.slot
        gets = [False] * len(self.tensors)
        for s, (has_loss, _) in zip(self.out_slots, heads):
            gets[s] = gets[s] or has_loss
        runs = [False] * len(nodes)
        for j in range(len(nodes) - 1, -1, -1):
            node = nodes[j]
            if any(gets[slot[id(t)]] for t in node.outputs) and (
                    id(node.layer) in self._trained or any(self._need_dx_of[j])):
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
            layer = node.layer
            if not runs[j] or id(layer) not in self._trained:
                continue
            k = uses.get(id(layer), 0)
            uses[id(layer)] = k + 1
            impl = self.executors[j]
            if impl is not layer or k:               # the layer itself is bound to its own views already
                shadow = layout.bind_node(impl, layer, k)
                if shadow is not None:
                    self.shared.append((layout.grads[slice(*layout.grad_region[id(layer)])], shadow))
        fused = {j for j, node in enumerate(nodes) for s, (has_loss, f) in zip(self.out_slots, heads)
                 if f and has_loss and slot[id(node.outputs[0])] == s}
        self.train = self._forward_program(self._forward_chains(fused))
        self.runs, self._sinks, self._fused = runs, sinks, fused
        self.backward = self._backward_program(self._backward_chains(runs, sinks, fused))
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
            # a pair's pool (followed by its conv in this chain) runs inside the conv's backward step
            js_run = [j for p, j in enumerate(js)
                      if not (j - 1 in self.pairs and p + 1 < len(js) and js[p + 1] == j - 1)]
            bs = tuple(self.pairs[j][1] if j in self.pairs and j + 1 in js else
                       self.executors[j].backward_logits if j in fused else self.executors[j].backward for j in js_run)
            if self._hook is not None:
                bs = tuple(self._hook(b, nodes[j].layer) for b, j in zip(bs, js_run))
            head = nodes[js[0]]
            src = tuple(self._slots(head.outputs)) if head.many else slot[id(head.outputs[0])]
            last = nodes[js[-1]]
            ends = sinks[js[-1]]
            single = ends[0] if not last.gets_list else None
            chains.append((bs, src, ends if any(e is not None for e in ends) else (), single))
            i += 1
        return chains

    def hook_backward(self, hook):
        """Rebuild the backward program with every node's backward call wrapped as hook(call, layer) -> call,
        in backward order (None: the plain calls again); a pair's one call is wrapped with the conv's layer
        (its pool, which has no weights, is not seen). nncore.distributed starts the allreduce of a
        layer's gradient right after its backward this way."""
        self._hook = hook
        if self.runs is not None:
            self.backward = self._backward_program(self._backward_chains(self.runs, self._sinks, self._fused))

    def _grad_feeds_only(self, j, k):
        """Node j's dx is the whole gradient of node k's only output (k runs right before j, backward)."""
        node, prev = self.nodes[j], self.nodes[k]
        if node.gets_list or prev.many or node.inputs[0] is not prev.outputs[0]:
            return False
        return self.places[self.slot[id(prev.outputs[0])]] == 1 and self.slot[id(prev.outputs[0])] not in \
            self.out_slots

    def _backward_program(self, chains):
        """The backward pass as one function run(n): a flat list of calls dy = b(dy) (each layer writes
        its parameter gradients), then the shadows of shared layers added into the flat gradient buffer.
        The first chain starts from its tensor's one contribution (a loss head's gradient) when it has
        only one, else from a junction."""
        calls, sinks, single = [], (), None
        start = None
        for i, (bs, src, next_sinks, next_single) in enumerate(chains):
            if i == 0 and type(src) is int and self.places[src] == 1:
                start = self.contrib[src]
            else:
                calls.append(self._junction(sinks, single, src))
            calls.extend(bs)
            sinks, single = next_sinks, next_single
        if sinks or single is not None:      # cannot happen (the last chain's inputs need no gradient)
            calls.append(self._junction(sinks, single, None))
        calls, shared, plan = tuple(calls), tuple(self.shared), self

        def run(n):
            plan.n = n
            dy = None if start is None else start[0]
            for b in calls:
                dy = b(dy)
            for main, shadow in shared:
                np.add(main, shadow, out=main)

        def run_chain(n):                        # one chain from one loss, no shared layer (Sequential)
            dy = start[0]
            for b in calls:
                dy = b(dy)
        return run_chain if len(chains) == 1 and start is not None and not shared else run

    def _junction(self, sinks, single, src):
        """dy -> the gradient a backward chain starts from: first give dy (the previous chain's dx; one
        array, or a list for a node with several inputs) to the contribution places `sinks`, then fetch
        the gradient of `src` (a slot, or a tuple of slots for a node with several outputs)."""
        c, grad = self.contrib, self._grad
        if src is None:
            fetch = _none
        elif type(src) is not int:
            def fetch(dy):
                return [grad(t) for t in src]
        elif self.places[src] == 1:
            only = c[src]

            def fetch(dy):
                return only[0]
        else:
            def fetch(dy):
                return grad(src)
        if single is not None:
            place, k = c[single[0]], single[1]

            def junction(dy):
                place[k] = dy
                return fetch(None)
            return junction
        if sinks:
            places = [None if e is None else (c[e[0]], e[1]) for e in sinks]

            def junction(dy):
                for pk, d in zip(places, dy):
                    if pk is not None:
                        pk[0][pk[1]] = d
                return fetch(None)
            return junction
        return fetch

    # ---- running -----------------------------------------------------------------------------------
    def _grad(self, s):
        """The gradient of tensor slot s: its one contribution, the sum of several (into the slot's
        buffer for this batch size, in a fixed order), or zeros when nothing reaches it."""
        n = self.n
        cs = self.contrib[s]
        if len(cs) == 1:
            return cs[0]
        bufs = self._bufs.get(n)
        if bufs is None:
            bufs = self._buffers(n)
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

    def prepare(self, n_threads):
        """Before each fit/evaluate/predict: the executors' thread count, which inputs need a gradient and
        where tensor keyword arguments sit in their inputs (set again each time: a layer may also run in
        another model, where its place differs)."""
        for impl, need, kwargs in zip(self.executors, self._need_dx_of, self._call_kwargs):
            impl._n_threads = n_threads
            impl._need_dx_of = need
            impl._need_dx = any(need)
            impl._call_kwargs = kwargs
        Plan.last = self
