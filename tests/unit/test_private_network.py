"""The private network EKS serving and Studio share (stacks/constructs/private_network.py), and the
`moved` blocks that keep an existing EKS network when its resources moved into that construct."""

from __future__ import annotations

import pytest

from stacks.constructs.private_network import PrivateNetworkProps, logical_id


def test_logical_ids_are_cdktfs(synth_all):
    """`moved` blocks name the old addresses by cdktf's own rule: it must be the rule cdktf uses."""
    checked = 0
    for stack in ("platform-dev", "project-demo-dev"):
        for items in synth_all.json(stack)["resource"].values():
            for rid, body in items.items():
                path = body["//"]["metadata"]["path"].split("/")[1:]
                if len(path) > 1:  # a single part is kept as is when short
                    assert logical_id(path) == rid
                    checked += 1
    assert checked > 100


def test_the_eks_network_keeps_its_old_addresses(synth_all):
    doc = synth_all.json("platform-dev")
    moved = {m["to"]: m["from"] for m in doc.get("moved", [])}
    network = {f"{rtype}.{rid}": body["//"]["metadata"]["path"]
               for rtype, items in doc["resource"].items() for rid, body in items.items()
               if body["//"]["metadata"]["path"].startswith("platform-dev/eks/network/")}
    # The flow logs are new with the shared network (never deployed at another address).
    flow_logs = {a for a, path in network.items() if "/network/flow_log" in path}
    assert len(flow_logs) == 4  # log group, flow log, the role and its policy
    # VPC, default SG, routes; 2 zones; SGs; S3; 5 interface endpoints
    assert len(network) - len(flow_logs) == 3 + 2 * 2 + 1 + 1 + 5
    for address, path in network.items():
        if address in flow_logs:
            continue
        rtype = address.split(".")[0]
        old = path.split("/")[1:]
        del old[1]
        assert moved[address] == f"{rtype}.{logical_id(old)}"
    # Studio's network is new: nothing moves into it.
    assert not [to for to in moved if ".studio_" in to]


@pytest.mark.parametrize("zones, cidr, match", [
    ((), "10.0.0.0/16", "at least one availability zone"),
    (("eu-west-1a", "eu-west-1a"), "10.0.0.0/16", "listed twice"),
    (tuple(f"eu-west-1{c}" for c in "abcdefghi"), "10.0.0.0/16", "room for 8 subnets"),
])
def test_bad_networks_are_refused(zones, cidr, match):
    with pytest.raises(ValueError, match=match):
        PrivateNetworkProps(name="n", cidr=cidr, availability_zones=zones, region="eu-west-1",
                            interface_endpoints=("sts",))
