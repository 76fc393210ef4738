"""RFC 6962 / RFC 9162 Merkle tree hashing, tree heads, inclusion and consistency proofs (pure).

A tree node is named by ``(level, index)``: it covers leaves ``[index << level,
(index + 1) << level)``. Only *perfect* nodes (complete subtrees) are ever stored; every hash a
proof or a tree head needs is the right fold of at most ``log2(n)`` of them. Proof *plans* say
which stored nodes a proof needs, so a store fetches O(log n) hashes and never walks the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.errors import GatewayError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]  # (level, index)
# One proof element: the perfect nodes (left to right) whose right fold is the element's hash.
ProofPlan = list[list[NodeId]]


def _invalid(message: str) -> GatewayError:
    return GatewayError("proof_invalid", message)


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the hash of one log entry."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its perfect subtrees, given left to right (RFC 6962 MTH)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect nodes that exactly cover leaves ``[begin, end)``, left to right.

    For the ranges a proof or tree head needs (``begin`` aligned to a power of two at least as
    large as the range) these are the binary digits of ``end - begin``, largest first, and their
    right fold is the RFC's MTH of the range.
    """
    if not 0 <= begin <= end:
        raise ValueError(f"bad range [{begin}, {end})")
    nodes: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def root_nodes(size: int) -> list[NodeId]:
    """The perfect nodes whose fold is the tree head of a tree of ``size`` leaves."""
    return range_nodes(0, size)


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The nodes of the RFC 9162 inclusion proof (PATH) of leaf ``index`` in a tree of ``size``.

    Elements are ordered from the leaf upwards, as the RFC and its verifier expect.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    plan: ProofPlan = []
    begin, end = 0, size
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if index < begin + k:
            plan.append(range_nodes(begin + k, end))
            end = begin + k
        else:
            plan.append(range_nodes(begin, begin + k))
            begin += k
    plan.reverse()
    return plan


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """The nodes of the RFC 9162 consistency proof (PROOF) between two tree sizes."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    plan: ProofPlan = []
    begin, end, m, complete = 0, new_size, old_size, True
    while m != end - begin:
        k = _largest_power_of_two_below(end - begin)
        if m <= k:
            plan.append(range_nodes(begin + k, end))
            end = begin + k
        else:
            plan.append(range_nodes(begin, begin + k))
            begin += k
            m -= k
            complete = False
    if not complete:
        plan.append(range_nodes(begin, end))
    plan.reverse()
    return plan


def plan_nodes(plan: ProofPlan) -> set[NodeId]:
    """Every stored node a plan needs (O(log n) of them)."""
    return {node for element in plan for node in element}


def build_proof(plan: ProofPlan, hashes: Mapping[NodeId, bytes]) -> list[bytes]:
    """The proof hashes of ``plan`` from the stored node hashes."""
    return [fold([hashes[node] for node in element]) for element in plan]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); raise GatewayError
    ``proof_invalid`` if it fails."""
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise _invalid(f"inclusion proof of leaf {index} does not lead to the tree head")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The tree head an inclusion proof leads to;
    GatewayError ``proof_invalid`` if its shape is wrong."""
    if not 0 <= index < size:
        raise _invalid(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes([leaf, *proof])
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise _invalid("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise _invalid("inclusion proof is too short")
    return r


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` extends the one of ``old_size`` (RFC 9162 §2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise _invalid(f"tree size went from {old_size} down to {new_size}")
    _check_hashes([old_root, new_root, *proof])
    if old_size == new_size:
        if proof:
            raise _invalid("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise _invalid(f"two different tree heads for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise _invalid("a proof from the empty tree must be empty")
        return
    if not proof:
        raise _invalid("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _invalid("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise _invalid("consistency proof is too short")
    if fr != old_root:
        raise _invalid(f"consistency proof does not lead to the tree head of size {old_size}")
    if sr != new_root:
        raise _invalid(f"consistency proof does not lead to the tree head of size {new_size}")


def _check_hashes(hashes: Iterable[bytes]) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise _invalid(f"a hash is {len(h)} bytes, not {HASH_SIZE}")


@dataclass
class CompactRange:
    """The perfect subtrees covering leaves ``[0, size)``: enough to append and to give the head.

    ``append`` returns the nodes each new leaf completes (none for an even index, one more level
    for each trailing one-bit of the index), which is exactly what a store keeps.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)  # fold order: largest subtree first

    def __post_init__(self) -> None:
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a tree of size {self.size} needs {self.size.bit_count()} hashes")

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf hash; return the completed nodes above level 0, lowest first."""
        completed: list[tuple[NodeId, bytes]] = []
        index, h, level = self.size, leaf, 0
        while (index >> level) & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            completed.append(((level, index >> level), h))
        self.hashes.append(h)
        self.size += 1
        return completed

    def root(self) -> bytes:
        return fold(self.hashes)


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, straight from the RFC's recursive definition (O(n); for checks)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _largest_power_of_two_below(len(leaves))
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))
