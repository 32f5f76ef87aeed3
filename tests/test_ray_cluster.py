"""Rollout workers on a simulated two-node Ray cluster: spread over the nodes; a lost node costs no batch."""

from __future__ import annotations

import pytest

import natgrad
from natgrad.rollouts.sampler import make_sampler

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={**NODE, "include_dashboard": False})
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def node_of(worker) -> str:
    return ray.get(worker.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()))


def test_workers_spread_over_nodes_and_a_lost_node_costs_no_batch(cluster):
    second = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    model = natgrad.TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=64, workers=2, worker_cpus=0.5, preset=False)
    sampler = make_sampler(model)
    assert sampler.collect(64).obs.shape == (64, 2, 4)
    nodes = [node_of(w) for w in sampler.workers]
    assert len(set(nodes)) == 2  # one worker per node
    cluster.remove_node(second)  # a machine goes away between two updates
    batch = sampler.collect(64)
    assert batch.obs.shape == (64, 2, 4) and sampler.restarts == 1 and sampler.version == 2
    assert {node_of(w) for w in sampler.workers} == {cluster.head_node.node_id}
    model.close()
