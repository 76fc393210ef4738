"""RFC 6962 / 9162 Merkle tree hashing and proofs.

Test vectors: the eight leaves, tree heads of sizes 1..8 and the inclusion and consistency proofs
below are the published RFC 6962 vectors of the Certificate Transparency project
(google/certificate-transparency, merkle_tree_test.cc), as carried by transparency-dev/merkle
(proof/verify_test.go). Sizes and leaf numbers there are 1-based; here indices are 0-based.
"""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    build_proof,
    consistency_plan,
    fold,
    inclusion_plan,
    leaf_hash,
    node_hash,
    plan_nodes,
    root_from_inclusion,
    root_from_leaves,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (leaf index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


class NodeStore:
    """Every node the way the ledger stores them: leaves plus the nodes append() completes."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.tree = CompactRange()
        self.nodes: dict[NodeId, bytes] = {}
        for i, leaf in enumerate(leaves):
            self.nodes[(0, i)] = leaf
            self.nodes.update(self.tree.append(leaf))

    def proof(self, plan: list[list[NodeId]]) -> list[bytes]:
        return build_proof(plan, self.nodes)

    def root(self, size: int) -> bytes:
        return fold([self.nodes[n] for n in root_nodes(size)])


# Reference proofs straight from the recursive definitions of RFC 9162 §2.1.3.1 and §2.1.4.1.
def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, leaves[:k]), root_from_leaves(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), root_from_leaves(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_from_leaves(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), root_from_leaves(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), root_from_leaves(leaves[:k])]


def ref_consistency(m: int, leaves: list[bytes]) -> list[bytes]:
    return [] if m == 0 else ref_subproof(m, leaves, True)


VECTOR_LEAVES = [leaf_hash(x) for x in LEAVES]
VECTOR_STORE = NodeStore(VECTOR_LEAVES)


def test_empty_tree_head_is_the_hash_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT == root_from_leaves([])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_tree_heads_match_the_published_vectors(size: int) -> None:
    assert root_from_leaves(VECTOR_LEAVES[:size]) == ROOTS[size - 1]
    assert VECTOR_STORE.root(size) == ROOTS[size - 1]
    tree = CompactRange()
    for leaf in VECTOR_LEAVES[:size]:
        tree.append(leaf)
    assert tree.root() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_published_vectors(
    index: int, size: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert VECTOR_STORE.proof(inclusion_plan(index, size)) == expected
    verify_inclusion(VECTOR_LEAVES[index], index, size, expected, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_published_vectors(
    old: int, new: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert VECTOR_STORE.proof(consistency_plan(old, new)) == expected
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], expected)


def test_every_proof_of_every_small_tree_matches_the_rfc_definition() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(40)]
    store = NodeStore(leaves)
    for size in range(1, len(leaves) + 1):
        root = root_from_leaves(leaves[:size])
        assert store.root(size) == root
        for index in range(size):
            proof = store.proof(inclusion_plan(index, size))
            assert proof == ref_path(index, leaves[:size])
            verify_inclusion(leaves[index], index, size, proof, root)
        for old in range(size + 1):
            proof = store.proof(consistency_plan(old, size))
            assert proof == ref_consistency(old, leaves[:size])
            old_root = root_from_leaves(leaves[:old])
            verify_consistency(old, size, old_root, root, proof)


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 1_000_000, 2**40 + 12345])
def test_proofs_and_heads_need_logarithmically_many_stored_nodes(size: int) -> None:
    bound = 2 * max(1, math.ceil(math.log2(size))) + 1
    assert len(root_nodes(size)) <= bound
    for index in {0, size // 3, size // 2, size - 1}:
        assert len(plan_nodes(inclusion_plan(index, size))) <= bound
    for old in {1, size // 3, size - 1}:
        if old > 0:
            assert len(plan_nodes(consistency_plan(old, size))) <= bound


def test_append_reports_exactly_the_nodes_the_new_leaf_completes() -> None:
    tree = CompactRange()
    for index in range(64):
        completed = tree.append(leaf_hash(index.to_bytes(2, "big")))
        trailing_ones = (~index & (index + 1)).bit_length() - 1
        assert [n for n, _ in completed] == [
            (level, index >> level) for level in range(1, trailing_ones + 1)
        ]


def test_compact_range_rejects_a_frontier_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="needs 2 hashes"):
        CompactRange(3, [EMPTY_ROOT])


# Corruptions in the spirit of transparency-dev's verify tests.


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[str]) -> None:
    good = [bytes.fromhex(h) for h in proof]
    leaf, root = VECTOR_LEAVES[index], ROOTS[size - 1]
    bad_cases = [
        (leaf, index + 1, size, good, root),
        (leaf, index ^ 2, size, good, root),
        (leaf, index, size * 2, good, root),
        (leaf, index, size // 2, good, root),
        (leaf_hash(b"wrong"), index, size, good, root),
        (leaf, index, size, good, EMPTY_ROOT),
        (leaf, index, size, [*good, root], root),
        (leaf, index, size, [root, *good], root),
        (leaf, index, size, good[:-1], root),
        (leaf, index, size, [b"short", *good[1:]], root),
    ]
    for i in range(len(good)):
        flipped = list(good)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        bad_cases.append((leaf, index, size, flipped, root))
    for case in bad_cases:
        with pytest.raises(GatewayError) as e:
            verify_inclusion(*case)
        assert e.value.code == "proof_invalid"


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    good = [bytes.fromhex(h) for h in proof]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    bad_cases = [
        (old - 1, new, r1, r2, good),
        (old + 1, new, r1, r2, good),
        (old, new * 2, r1, r2, good),
        (old, new, r2, r1, good),
        (old, new, EMPTY_ROOT, r2, good),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*good, r1]),
        (old, new, r1, r2, [r2, *good]),
        (old, new, r1, r2, good[:-1]),
        (new, old, r1, r2, good),
    ]
    for i in range(len(good)):
        flipped = list(good)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        bad_cases.append((old, new, r1, r2, flipped))
    for case in bad_cases:
        if case[0] == 0:
            continue  # from the empty tree every proof is the empty one
        with pytest.raises(GatewayError):
            verify_consistency(*case)


def test_consistency_edge_cases() -> None:
    some = hashlib.sha256(b"x").digest()
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, some, [])
    verify_consistency(3, 3, some, some, [])
    for case in [
        (3, 3, some, EMPTY_ROOT, []),  # two heads for one size: a fork
        (3, 3, some, some, [some]),
        (0, 1, EMPTY_ROOT, some, [some]),
        (2, 1, some, some, []),
    ]:
        with pytest.raises(GatewayError):
            verify_consistency(*case)


def test_plans_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError):
        inclusion_plan(5, 5)
    with pytest.raises(ValueError):
        consistency_plan(6, 5)
    with pytest.raises(GatewayError):
        root_from_inclusion(EMPTY_ROOT, 0, 0, [])


# Property tests over random trees.

sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=sizes)
def test_any_inclusion_proof_verifies_and_a_changed_leaf_or_proof_fails(
    data: st.DataObject, size: int
) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    store = NodeStore(leaves)
    root = store.root(size)
    index = data.draw(st.integers(0, size - 1))
    proof = store.proof(inclusion_plan(index, size))
    verify_inclusion(leaves[index], index, size, proof, root)
    with pytest.raises(GatewayError):
        verify_inclusion(leaf_hash(b"changed"), index, size, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(proof[i])
        flipped[bit // 8] ^= 1 << (bit % 8)
        changed = [*proof[:i], bytes(flipped), *proof[i + 1 :]]
        with pytest.raises(GatewayError):
            verify_inclusion(leaves[index], index, size, changed, root)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index))
        with pytest.raises(GatewayError):
            verify_inclusion(leaves[index], other, size, proof, root)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=sizes)
def test_any_consistency_proof_verifies_and_a_changed_one_fails(
    data: st.DataObject, size: int
) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    store = NodeStore(leaves)
    old = data.draw(st.integers(1, size))
    proof = store.proof(consistency_plan(old, size))
    verify_consistency(old, size, store.root(old), store.root(size), proof)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        changed = list(proof)
        changed[i] = hashlib.sha256(changed[i]).digest()
        with pytest.raises(GatewayError):
            verify_consistency(old, size, store.root(old), store.root(size), changed)
    if old < size:
        forked = list(leaves)
        forked[data.draw(st.integers(0, old - 1))] = leaf_hash(b"rewritten history")
        with pytest.raises(GatewayError):
            verify_consistency(old, size, NodeStore(forked).root(old), store.root(size), proof)
